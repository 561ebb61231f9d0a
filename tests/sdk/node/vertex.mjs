// The official OpenAI and Anthropic Node SDKs through the gateway to the
// mock Vertex AI (tests/native_gateway.rs): Gemini and Claude on Vertex AI,
// plain and streamed; a quota error as the SDK's own.
// Usage: node vertex.mjs http://127.0.0.1:PORT
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const base = process.argv[2];
const oa = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-client", maxRetries: 0 });
const an = new Anthropic({ baseURL: base, apiKey: "sk-client", maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello" }];
const GEMINI = "vertex/gemini-2.5-pro";
const CLAUDE = "vertex/claude-sonnet-4@20250514";

for (const [model, said, streamed] of [[GEMINI, "Hello from Gemini", "Hello!"], [CLAUDE, "Hi from Claude on Vertex", "Hi there"]]) {
  const r = await oa.chat.completions.create({ model, messages });
  assert.equal(r.choices[0].message.content, said);
  let text = "";
  for await (const chunk of await oa.chat.completions.create({ model, messages, stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, streamed);
}
const m = await an.messages.create({ model: CLAUDE, max_tokens: 40, messages });
assert.equal(m.content[0].text, "Hi from Claude on Vertex");
const stream = an.messages.stream({ model: CLAUDE, max_tokens: 40, messages });
let said = "";
stream.on("text", (t) => { said += t; });
await stream.finalMessage();
assert.equal(said, "Hi there");
await assert.rejects(oa.chat.completions.create({ model: "vertex/gemini-exhausted", messages }), OpenAI.RateLimitError);
console.log("ok");
