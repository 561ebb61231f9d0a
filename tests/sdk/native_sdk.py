"""The official OpenAI and Anthropic SDKs against shardgate in front of the
mock Gemini API and mock Cohere (tests/native_gateway.rs): chat plain,
streamed and with tools, Anthropic messages, Cohere embeddings in the SDK's
default base64 encoding, and a quota error raised as the SDK's own.

Usage: native_sdk.py http://127.0.0.1:PORT
"""
import base64
import struct
import sys

import anthropic
import openai

base = sys.argv[1]
oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-client", max_retries=0)
an = anthropic.Anthropic(base_url=base, api_key="sk-client", max_retries=0)
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}]
USER = [{"role": "user", "content": "Weather in Paris?"}]

for model, said in [("flash", "Hello from Gemini"), ("cohere/command-a-03-2025", "Hello from Cohere")]:
    r = oa.chat.completions.create(model=model, messages=USER)
    assert r.choices[0].message.content == said, r
    assert r.model == model, r.model
    text = "".join(
        c.choices[0].delta.content or ""
        for c in oa.chat.completions.create(model=model, messages=USER, stream=True)
        if c.choices
    )
    assert text == "Hello!", (model, text)
    r = oa.chat.completions.create(model=model, messages=USER, tools=TOOLS)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls", r
    assert call.function.name == "get_weather", call
    assert call.function.arguments.replace(" ", "") == '{"city":"Paris"}', call
    with an.messages.stream(model=model, max_tokens=50, messages=USER) as s:
        assert "".join(s.text_stream) == "Hello!", model
        assert s.get_final_message().stop_reason == "end_turn"

# The SDK asks for base64 unless told otherwise and decodes it itself.
e = oa.embeddings.create(model="cohere/embed-v4.0", input=["a", "b"])
assert [d.embedding for d in e.data] == [[0.5, -0.25, 0.0], [0.5, -0.25, 1.0]], e
assert e.usage.prompt_tokens == 6, e.usage

try:
    oa.chat.completions.create(model="google/gemini-exhausted", messages=USER)
    raise SystemExit("no error")
except openai.RateLimitError:
    pass
try:
    an.messages.create(model="cohere/limited", max_tokens=5, messages=USER)
    raise SystemExit("no error")
except anthropic.RateLimitError:
    pass
print("ok")
