// The official OpenAI Node SDK on the routes beyond chat, through the
// gateway (tests/openai_surface.rs's zero-config mock answers them).
// Usage: node surface.mjs BASE_URL (the gateway's, ending in /v1).
import assert from "node:assert/strict";
import OpenAI from "openai";

const c = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-client", maxRetries: 0 });
const img = await c.images.generate({ model: "gpt-image-1", prompt: "a gate" });
assert.equal(img.data[0].b64_json, "aW1hZ2U=");
assert.equal(img.usage.output_tokens, 272);
const mod = await c.moderations.create({ input: "hello" });
assert.equal(mod.results[0].flagged, false);
const got = await c.responses.retrieve("resp_abc123");
assert.equal(got.id, "resp_abc123");
await c.responses.delete("resp_abc123");
console.log("ok");
