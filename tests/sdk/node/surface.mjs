// The official OpenAI Node SDK on the routes beyond chat, through the
// gateway (tests/openai_surface.rs's zero-config mock answers them).
// Usage: node surface.mjs BASE_URL (the gateway's, ending in /v1).
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";

const c = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-client", maxRetries: 0 });
const img = await c.images.generate({ model: "gpt-image-1", prompt: "a gate" });
assert.equal(img.data[0].b64_json, "aW1hZ2U=");
assert.equal(img.usage.output_tokens, 272);
const mod = await c.moderations.create({ input: "hello" });
assert.equal(mod.results[0].flagged, false);
const got = await c.responses.retrieve("resp_abc123");
assert.equal(got.id, "resp_abc123");
await c.responses.delete("resp_abc123");

// Uploads: the SDK writes multipart bodies (the file before the model),
// the gateway routes them by their model field and renames it.
const audio = new Uint8Array(16384).map((_, i) => i % 256);
let t = await c.audio.transcriptions.create({
  file: await toFile(audio, "a.wav", { type: "audio/wav" }),
  model: "openai/whisper-1",
});
assert.equal(t.text, "mock transcript of 16384 bytes by whisper-1");
t = await c.audio.translations.create({ file: await toFile(audio, "a.wav"), model: "whisper-1" });
assert.equal(t.text, "mock transcript of 16384 bytes by whisper-1");
const png = new Uint8Array(1008);
png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const e = await c.images.edit({ image: await toFile(png, "a.png", { type: "image/png" }), prompt: "add a gate", model: "gpt-image-1" });
assert.equal(e.data[0].b64_json, "aW1hZ2U=");
const v = await c.images.createVariation({ image: await toFile(png, "a.png", { type: "image/png" }) });
assert.equal(v.data[0].b64_json, "aW1hZ2U=");
console.log("ok");
