"""The official OpenAI and Anthropic SDKs against shardgate in front of a
mock Bedrock runtime (tests/bedrock_gateway.rs): Converse for OpenAI chat,
InvokeModel for Anthropic's models, Converse for the others; text and tool
calls, plain and streamed; a throttled model raises the SDK's rate-limit
error.

Usage: bedrock_sdk.py http://127.0.0.1:PORT
"""
import sys

import anthropic
import openai

base = sys.argv[1]
oa = openai.OpenAI(base_url=base + "/v1", api_key="sk-client", max_retries=0)
an = anthropic.Anthropic(base_url=base, api_key="sk-client", max_retries=0)
NOVA = "bedrock/amazon.nova-pro-v1:0"
CLAUDE = "bedrock/anthropic.claude-3-haiku-20240307-v1:0"
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}]
USER = [{"role": "user", "content": "Weather in Paris?"}]

r = oa.chat.completions.create(model=NOVA, messages=USER)
assert r.choices[0].message.content == "Hello from Bedrock", r
assert r.usage.prompt_tokens == 15 and r.usage.completion_tokens == 5, r.usage
assert r.model == NOVA, r.model

r = oa.chat.completions.create(model=NOVA, messages=USER, tools=TOOLS)
call = r.choices[0].message.tool_calls[0]
assert r.choices[0].finish_reason == "tool_calls", r
assert (call.id, call.function.name) == ("tooluse_abc", "get_weather"), call
assert call.function.arguments == '{"city":"Paris"}', call

text = "".join(
    c.choices[0].delta.content or ""
    for c in oa.chat.completions.create(model=NOVA, messages=USER, stream=True)
    if c.choices
)
assert text == "Hello!", text

args, names, finish = "", [], None
for c in oa.chat.completions.create(model=NOVA, messages=USER, tools=TOOLS, stream=True):
    if not c.choices:
        continue
    for t in c.choices[0].delta.tool_calls or []:
        if t.function.name:
            names.append(t.function.name)
        args += t.function.arguments or ""
    finish = c.choices[0].finish_reason or finish
assert names == ["get_weather"] and args == '{"city":"Paris"}' and finish == "tool_calls", (names, args, finish)

m = an.messages.create(model=CLAUDE, max_tokens=50, messages=USER)
assert m.content[0].text == "Hi from Claude on Bedrock", m
with an.messages.stream(model=CLAUDE, max_tokens=50, messages=USER) as s:
    assert "".join(s.text_stream) == "Hi there"
    assert s.get_final_message().usage.output_tokens == 6

m = an.messages.create(model="bedrock/amazon.nova-lite-v1:0", max_tokens=50, messages=USER,
                       tools=[{"name": "get_weather", "input_schema": {"type": "object"}}])
tool = [b for b in m.content if b.type == "tool_use"][0]
assert (tool.name, tool.input, m.stop_reason) == ("get_weather", {"city": "Paris"}, "tool_use"), m

try:
    oa.chat.completions.create(model="bedrock/throttled.model-v1:0", messages=USER)
    raise SystemExit("no error")
except openai.RateLimitError:
    pass
try:
    an.messages.create(model="bedrock/anthropic.throttled-v1:0", max_tokens=5, messages=USER)
    raise SystemExit("no error")
except anthropic.RateLimitError:
    pass
print("ok")
