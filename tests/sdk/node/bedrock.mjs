// The official OpenAI and Anthropic Node SDKs against shardgate in front of
// a mock Bedrock runtime (tests/bedrock_gateway.rs): Converse for OpenAI
// chat, InvokeModel for Anthropic's models; text and tool calls, plain and
// streamed; a throttled model raises the SDK's rate-limit error.
// Usage: node bedrock.mjs http://127.0.0.1:PORT
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const base = process.argv[2];
const oa = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-client", maxRetries: 0 });
const an = new Anthropic({ baseURL: base, apiKey: "sk-client", maxRetries: 0 });
const NOVA = "bedrock/amazon.nova-pro-v1:0";
const CLAUDE = "bedrock/anthropic.claude-3-haiku-20240307-v1:0";
const messages = [{ role: "user", content: "Weather in Paris?" }];
const tools = [{
  type: "function",
  function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } },
}];

let r = await oa.chat.completions.create({ model: NOVA, messages });
assert.equal(r.choices[0].message.content, "Hello from Bedrock");
assert.deepEqual([r.usage.prompt_tokens, r.usage.completion_tokens], [15, 5]);

r = await oa.chat.completions.create({ model: NOVA, messages, tools });
assert.equal(r.choices[0].finish_reason, "tool_calls");
assert.equal(r.choices[0].message.tool_calls[0].function.arguments, '{"city":"Paris"}');

let text = "";
for await (const chunk of await oa.chat.completions.create({ model: NOVA, messages, stream: true })) {
  text += chunk.choices[0]?.delta?.content ?? "";
}
assert.equal(text, "Hello!");

const m = await an.messages.create({ model: CLAUDE, max_tokens: 50, messages });
assert.equal(m.content[0].text, "Hi from Claude on Bedrock");
const stream = an.messages.stream({ model: CLAUDE, max_tokens: 50, messages });
let said = "";
stream.on("text", (t) => { said += t; });
const final = await stream.finalMessage();
assert.equal(said, "Hi there");
assert.equal(final.usage.output_tokens, 6);

await assert.rejects(
  oa.chat.completions.create({ model: "bedrock/throttled.model-v1:0", messages }),
  OpenAI.RateLimitError,
);
await assert.rejects(
  an.messages.create({ model: "bedrock/anthropic.throttled-v1:0", max_tokens: 5, messages }),
  Anthropic.RateLimitError,
);
console.log("ok");
