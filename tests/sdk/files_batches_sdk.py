"""The official OpenAI SDK's Files and Batches calls through the gateway
(tests/files_batches.rs): the upload names its provider once, every later
call finds it by id.

Usage: files_batches_sdk.py BASE_URL (the gateway's, ending in /v1).
"""
import sys

import openai

c = openai.OpenAI(base_url=sys.argv[1], api_key="sk-client", max_retries=0)
f = c.files.create(
    file=("in.jsonl", b'{"custom_id":"1"}\n'),
    purpose="batch",
    extra_headers={"x-shardgate-provider": "b"},
)
assert f.id.startswith("file-b"), f
got = c.files.retrieve(f.id)
assert got.id == f.id, got
assert c.files.content(f.id).text == '{"custom_id":"from-b"}\n'
b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
assert b.id.startswith("batch_b"), b
done = c.batches.retrieve(b.id)
assert done.status == "completed" and done.usage.input_tokens == 1200, done
print("ok")
