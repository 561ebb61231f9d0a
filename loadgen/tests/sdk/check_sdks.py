"""The mock's bodies, as the official OpenAI and Anthropic Python SDKs parse them.

    pip install openai anthropic
    loadgen mock --listen 127.0.0.1:18300 --tokens 3 &
    python3 loadgen/tests/sdk/check_sdks.py http://127.0.0.1:18300

Not part of `cargo test` (it needs the SDKs); run it after changing mock/bodies.rs.
"""
import sys

import anthropic
import openai

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:18300"
o = openai.OpenAI(base_url=BASE + "/v1", api_key="x", max_retries=0)
c = o.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "hi"}])
assert c.model == "gpt-x" and c.choices[0].message.content == "tok tok tok " and c.usage.total_tokens > 0, c
chunks = list(o.chat.completions.create(model="gpt-x", messages=[], stream=True, stream_options={"include_usage": True}))
assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "tok tok tok " and chunks[-1].usage.completion_tokens == 3
comp = o.completions.create(model="m", prompt="x"); assert comp.choices[0].text == "tok tok tok "
assert "".join(c.choices[0].text for c in o.completions.create(model="m", prompt="x", stream=True) if c.choices) == "tok tok tok "
e = o.embeddings.create(model="e", input=["a", "b"]); assert len(e.data) == 2 and len(e.data[0].embedding) == 1536
r = o.responses.create(model="r", input="hi"); assert r.output_text == "tok tok tok " and r.usage.output_tokens == 3, r
with o.responses.stream(model="r", input="hi") as s:
    for _ in s: pass
    assert s.get_final_response().output_text == "tok tok tok "
assert [m.id for m in o.models.list()] == ["mock-model"]
a = anthropic.Anthropic(base_url=BASE, api_key="x", max_retries=0)
m = a.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
assert m.content[0].text == "tok tok tok " and m.model == "claude-x" and m.usage.output_tokens == 3
with a.messages.stream(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as s:
    assert s.get_final_message().content[0].text == "tok tok tok "
assert a.messages.count_tokens(model="c", messages=[{"role": "user", "content": "hi"}]).input_tokens > 0
assert [x.id for x in a.models.list()] == ["mock-model"]
print("all SDK checks passed")
