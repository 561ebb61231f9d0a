// The response cache through the official OpenAI and Anthropic Node SDKs
// (tests/cache_sdk.rs): a repeat with its keys reordered is a hit with the
// same answer; another tenant's identical prompt is a miss; a streamed hit
// replays the recorded deltas chunk by chunk, in both SDKs.
// Usage: node cache.mjs http://127.0.0.1:PORT RED_KEY BLUE_KEY
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

const [base, red, blue] = process.argv.slice(2);
const oa = (key) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0 });

async function chat(client, body) {
  const { data, response } = await client.chat.completions.create(body).withResponse();
  return [response.headers.get("x-shardgate-cache"), data];
}

const prompt = "Name a node prime.";
let [h, first] = await chat(oa(red), { model: "gpt-4o-mini", temperature: 0, messages: [{ role: "user", content: prompt }] });
assert.equal(h, "miss");
let [h2, again] = await chat(oa(red), { messages: [{ content: prompt, role: "user" }], temperature: 0, model: "gpt-4o-mini" });
assert.equal(h2, "hit");
assert.equal(again.id, first.id);
assert.equal(again.choices[0].message.content, first.choices[0].message.content);
const [h3] = await chat(oa(blue), { model: "gpt-4o-mini", temperature: 0, messages: [{ role: "user", content: prompt }] });
assert.equal(h3, "miss", "another tenant");

async function stream(client) {
  const { data, response } = await client.chat.completions
    .create({ model: "gpt-4o-mini", stream: true, messages: [{ role: "user", content: "Node, stream." }] })
    .withResponse();
  const deltas = [];
  for await (const chunk of data) {
    const t = chunk.choices[0]?.delta?.content;
    if (t) deltas.push(t);
  }
  return [response.headers.get("x-shardgate-cache"), deltas];
}
const [sm, recorded] = await stream(oa(red));
const [sh, replayed] = await stream(oa(red));
assert.deepEqual([sm, sh], ["miss", "hit"]);
assert.ok(replayed.length >= 2, "chunk by chunk");
assert.deepEqual(replayed, recorded);

const an = new Anthropic({ baseURL: base, apiKey: red, maxRetries: 0 });
async function anStream() {
  const { data, response } = await an.messages
    .create({ model: "claude-x", max_tokens: 32, stream: true, messages: [{ role: "user", content: "Node, stream." }] })
    .withResponse();
  const texts = [];
  for await (const ev of data) {
    if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") texts.push(ev.delta.text);
  }
  return [response.headers.get("x-shardgate-cache"), texts];
}
const [am, aRecorded] = await anStream();
const [ah, aReplayed] = await anStream();
assert.deepEqual([am, ah], ["miss", "hit"]);
assert.ok(aReplayed.length >= 2);
assert.deepEqual(aReplayed, aRecorded);
console.log("ok");
