// The official OpenAI and Anthropic Node SDKs against shardgate in front of
// the mock Gemini API and mock Cohere (tests/native_gateway.rs): chat plain,
// streamed and with tools, Anthropic messages streamed, Cohere embeddings in
// the SDK's default base64 encoding, quota errors as the SDK's own.
// Usage: node native.mjs http://127.0.0.1:PORT
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const base = process.argv[2];
const oa = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-client", maxRetries: 0 });
const an = new Anthropic({ baseURL: base, apiKey: "sk-client", maxRetries: 0 });
const messages = [{ role: "user", content: "Weather in Paris?" }];
const tools = [{
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
}];

for (const [model, said] of [["flash", "Hello from Gemini"], ["cohere/command-a-03-2025", "Hello from Cohere"]]) {
  let r = await oa.chat.completions.create({ model, messages });
  assert.equal(r.choices[0].message.content, said);
  let text = "";
  for await (const chunk of await oa.chat.completions.create({ model, messages, stream: true })) {
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, "Hello!");
  r = await oa.chat.completions.create({ model, messages, tools });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), { city: "Paris" });
  const stream = an.messages.stream({ model, max_tokens: 50, messages });
  let streamed = "";
  stream.on("text", (t) => { streamed += t; });
  const final = await stream.finalMessage();
  assert.equal(streamed, "Hello!");
  assert.equal(final.stop_reason, "end_turn");
}

const e = await oa.embeddings.create({ model: "cohere/embed-v4.0", input: ["a", "b"] });
assert.deepEqual(e.data.map((d) => d.embedding), [[0.5, -0.25, 0], [0.5, -0.25, 1]]);

await assert.rejects(
  oa.chat.completions.create({ model: "google/gemini-exhausted", messages }),
  OpenAI.RateLimitError,
);
await assert.rejects(
  an.messages.create({ model: "cohere/limited", max_tokens: 5, messages }),
  Anthropic.RateLimitError,
);
console.log("ok");
