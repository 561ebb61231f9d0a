"""The official OpenAI and Anthropic SDKs through the gateway to the mock
Vertex AI (tests/native_gateway.rs): Gemini on Vertex AI from OpenAI chat,
plain and streamed; Claude on Vertex AI from both SDKs, plain and streamed;
Vertex AI's quota error raised as the SDK's own.

Usage: vertex_sdk.py http://127.0.0.1:PORT
"""
import sys

import anthropic
import openai

base = sys.argv[1]
oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-client", max_retries=0)
an = anthropic.Anthropic(base_url=base, api_key="sk-client", max_retries=0)
USER = [{"role": "user", "content": "Say hello"}]
GEMINI = "vertex/gemini-2.5-pro"
CLAUDE = "vertex/claude-sonnet-4@20250514"

r = oa.chat.completions.create(model=GEMINI, messages=USER)
assert r.choices[0].message.content == "Hello from Gemini", r
text = "".join(
    c.choices[0].delta.content or ""
    for c in oa.chat.completions.create(model=GEMINI, messages=USER, stream=True)
    if c.choices
)
assert text == "Hello!", text

r = oa.chat.completions.create(model=CLAUDE, messages=USER)
assert r.choices[0].message.content == "Hi from Claude on Vertex", r
text = "".join(
    c.choices[0].delta.content or ""
    for c in oa.chat.completions.create(model=CLAUDE, messages=USER, stream=True)
    if c.choices
)
assert text == "Hi there", text

m = an.messages.create(model=CLAUDE, max_tokens=40, messages=USER)
assert m.content[0].text == "Hi from Claude on Vertex", m
assert m.usage.cache_read_input_tokens == 4, m.usage
with an.messages.stream(model=CLAUDE, max_tokens=40, messages=USER) as s:
    assert "".join(s.text_stream) == "Hi there"
with an.messages.stream(model=GEMINI, max_tokens=40, messages=USER) as s:
    assert "".join(s.text_stream) == "Hello!"

try:
    oa.chat.completions.create(model="vertex/gemini-exhausted", messages=USER)
    raise SystemExit("no error")
except openai.RateLimitError:
    pass
print("ok")
