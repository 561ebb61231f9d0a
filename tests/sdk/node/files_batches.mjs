// The official OpenAI Node SDK's Files and Batches calls through the
// gateway (tests/files_batches.rs): the upload names its provider once,
// every later call finds it by id.
// Usage: node files_batches.mjs BASE_URL (the gateway's, ending in /v1).
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";

const c = new OpenAI({ baseURL: process.argv[2], apiKey: "sk-client", maxRetries: 0 });
const f = await c.files.create(
  { file: await toFile(Buffer.from('{"custom_id":"1"}\n'), "in.jsonl"), purpose: "batch" },
  { headers: { "x-shardgate-provider": "b" } },
);
assert.ok(f.id.startsWith("file-b"), f.id);
assert.equal((await c.files.retrieve(f.id)).id, f.id);
assert.equal(await (await c.files.content(f.id)).text(), '{"custom_id":"from-b"}\n');
const b = await c.batches.create({ input_file_id: f.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
assert.ok(b.id.startsWith("batch_b"), b.id);
const done = await c.batches.retrieve(b.id);
assert.equal(done.status, "completed");
assert.equal(done.usage.input_tokens, 1200);
console.log("ok");
