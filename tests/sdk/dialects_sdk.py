#!/usr/bin/env python3
"""The official OpenAI and Anthropic Python SDKs against shardgate in front of
two mock providers, `an` (Anthropic) and `oa` (OpenAI): native and translated
in both directions, plain and streaming, with system prompts, tools, tool
results, usage and errors.

Usage: dialects_sdk.py --gateway http://127.0.0.1:P

Run by tests/gateway_sdk_dialects.rs, whose mock answers from the last
message: "weather" (with tools) -> a get_weather call with input
{"city": "Paris", "unit": "c"}, "ratelimit" -> 429, a tool result ->
"result=<content>", else "system=<system>|user=<text>"; always
11 input and 7 output tokens. Exits non-zero on the first failed check.
"""

import argparse
import json
import sys

import anthropic
import openai

INPUT_TOKENS, OUTPUT_TOKENS = 11, 7
TOOL_INPUT = {"city": "Paris", "unit": "c"}
SYSTEM = "Be terse."
USER = "hello \u00e9 \U0001F600"
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": WEATHER_TOOL_ANTHROPIC["name"],
        "description": WEATHER_TOOL_ANTHROPIC["description"],
        "parameters": WEATHER_TOOL_ANTHROPIC["input_schema"],
    },
}
# Anthropic SDK targets: (label, model, the `model` the SDK gets back).
# Native: the provider's answer passes through as it is, with the upstream
# name. Translated: the name the client asked for.
ANTHROPIC_TARGETS = [
    ("native an", "an/claude-mock", {"claude-mock"}),
    ("translated oa", "oa/gpt-mock", {"oa/gpt-mock"}),
]

checks = 0


def check(cond, what, detail=None):
    global checks
    checks += 1
    if not cond:
        print(f"FAIL {what}", file=sys.stderr)
        if detail is not None:
            print(f"  got: {detail}", file=sys.stderr)
        sys.exit(1)


def ok(label):
    print(f"ok {label}")


def dump(obj):
    return json.dumps(obj.model_dump(mode="json"), sort_keys=True)


# ---------------------------------------------------------------------------
# Anthropic SDK
# ---------------------------------------------------------------------------


def check_anthropic_text(label, msg, models, expected_text):
    d = dump(msg)
    check(isinstance(msg, anthropic.types.Message), f"{label}: a Message", type(msg))
    check(msg.type == "message" and msg.role == "assistant", f"{label}: type/role", d)
    check(msg.model in models, f"{label}: model in {models}", d)
    check(msg.stop_reason == "end_turn", f"{label}: stop_reason end_turn", d)
    texts = [b for b in msg.content if b.type == "text"]
    check(len(msg.content) == 1 and len(texts) == 1, f"{label}: one text block", d)
    check(texts[0].text == expected_text, f"{label}: text {expected_text!r}", d)
    check_anthropic_usage(label, msg, d)


def check_anthropic_usage(label, msg, d):
    check(msg.usage.input_tokens == INPUT_TOKENS, f"{label}: usage.input_tokens", d)
    check(msg.usage.output_tokens == OUTPUT_TOKENS, f"{label}: usage.output_tokens", d)


def check_anthropic_tool(label, msg, models):
    d = dump(msg)
    check(msg.model in models, f"{label}: model in {models}", d)
    check(msg.stop_reason == "tool_use", f"{label}: stop_reason tool_use", d)
    texts = [b for b in msg.content if b.type == "text"]
    tools = [b for b in msg.content if b.type == "tool_use"]
    check([t.text for t in texts] == ["Let me check."], f"{label}: the text before the call", d)
    check(len(tools) == 1, f"{label}: one tool_use block", d)
    t = tools[0]
    check(isinstance(t, anthropic.types.ToolUseBlock), f"{label}: a ToolUseBlock", type(t))
    check(t.name == "get_weather", f"{label}: tool name", d)
    check(isinstance(t.id, str) and t.id, f"{label}: tool id", d)
    check(t.input == TOOL_INPUT, f"{label}: parsed tool input", d)
    check(msg.content[-1].type == "tool_use", f"{label}: the call comes last", d)
    check_anthropic_usage(label, msg, d)
    return t


def anthropic_checks(client):
    for label, model, models in ANTHROPIC_TARGETS:
        expected = f"system={SYSTEM}|user={USER}"
        base = dict(model=model, max_tokens=64, system=SYSTEM)
        user = [{"role": "user", "content": USER}]

        msg = client.messages.create(**base, messages=user)
        check_anthropic_text(f"anthropic create ({label})", msg, models, expected)
        ok(f"anthropic messages.create ({label}) model={msg.model}")

        # System as blocks, user content as blocks.
        msg = client.messages.create(
            model=model,
            max_tokens=64,
            system=[{"type": "text", "text": SYSTEM}],
            messages=[{"role": "user", "content": [{"type": "text", "text": USER}]}],
        )
        check_anthropic_text(f"anthropic create blocks ({label})", msg, models, expected)
        ok(f"anthropic messages.create with content blocks ({label})")

        with client.messages.stream(**base, messages=user) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
        check(streamed == expected, f"anthropic stream ({label}): text_stream", streamed)
        check_anthropic_text(f"anthropic stream ({label})", final, models, expected)
        ok(f"anthropic messages.stream get_final_message ({label}) model={final.model}")

        ask = [{"role": "user", "content": "What is the weather in Paris?"}]
        msg = client.messages.create(**base, messages=ask, tools=[WEATHER_TOOL_ANTHROPIC])
        call = check_anthropic_tool(f"anthropic tools ({label})", msg, models)
        ok(f"anthropic messages.create with tools ({label})")

        with client.messages.stream(**base, messages=ask, tools=[WEATHER_TOOL_ANTHROPIC]) as stream:
            events = [e.type for e in stream]
            final = stream.get_final_message()
        check_anthropic_tool(f"anthropic stream tools ({label})", final, models)
        check("input_json" in events, f"anthropic stream tools ({label}): input_json events", events)
        ok(f"anthropic messages.stream with tools ({label})")

        # The tool result goes back; the mock answers with what it saw.
        follow = ask + [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in msg.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C, sunny"}],
            },
        ]
        msg = client.messages.create(**base, messages=follow, tools=[WEATHER_TOOL_ANTHROPIC])
        check_anthropic_text(f"anthropic tool result ({label})", msg, models, "result=18 C, sunny")
        ok(f"anthropic tool_result round trip ({label})")

    # Errors in the Anthropic dialect.
    try:
        client.messages.create(model="nope/claude", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        check(False, "anthropic unknown provider raises")
    except anthropic.NotFoundError as e:
        body = e.response.json()
        check(e.status_code == 404, "anthropic unknown provider: 404", e.status_code)
        check(body.get("type") == "error", "anthropic unknown provider: Anthropic-shaped body", body)
        check(isinstance(body.get("error"), dict), "anthropic unknown provider: error object", body)
        check(body["error"].get("type") == "not_found_error", "anthropic unknown provider: not_found_error", body)
        check(bool(body["error"].get("message")), "anthropic unknown provider: a message", body)
        ok("anthropic unknown provider -> NotFoundError, Anthropic-shaped")

    for label, model, _ in ANTHROPIC_TARGETS:
        req = dict(model=model, max_tokens=8, messages=[{"role": "user", "content": "ratelimit me"}])
        for how in ["create", "stream"]:
            try:
                if how == "create":
                    client.messages.create(**req)
                else:
                    with client.messages.stream(**req) as s:
                        s.get_final_message()
                check(False, f"anthropic 429 ({label}, {how}) raises")
            except anthropic.RateLimitError as e:
                body = e.response.json()
                check(e.status_code == 429, f"anthropic 429 ({label}, {how}): status", e.status_code)
                check(body.get("type") == "error", f"anthropic 429 ({label}, {how}): Anthropic-shaped", body)
                check(
                    body.get("error", {}).get("type") == "rate_limit_error",
                    f"anthropic 429 ({label}, {how}): rate_limit_error",
                    body,
                )
                check("slow down" in body["error"].get("message", ""), f"anthropic 429 ({label}, {how}): message", body)
            ok(f"anthropic upstream 429 -> RateLimitError ({label}, {how})")


# ---------------------------------------------------------------------------
# OpenAI SDK
# ---------------------------------------------------------------------------


def openai_checks(client):
    model = "an/claude-mock"
    models = {"an/claude-mock"}  # translated: the name the client asked for
    expected = f"system={SYSTEM}|user={USER}"
    chat = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]

    r = client.chat.completions.create(model=model, messages=chat, max_tokens=64)
    d = dump(r)
    check(isinstance(r, openai.types.chat.ChatCompletion), "openai create: a ChatCompletion", type(r))
    check(r.object == "chat.completion" and r.model in models, "openai create: object/model", d)
    check(len(r.choices) == 1, "openai create: one choice", d)
    c = r.choices[0]
    check(c.finish_reason == "stop", "openai create: finish_reason stop", d)
    check(c.message.role == "assistant" and c.message.content == expected, "openai create: content", d)
    check(not c.message.tool_calls, "openai create: no tool calls", d)
    u = r.usage
    check(
        (u.prompt_tokens, u.completion_tokens, u.total_tokens)
        == (INPUT_TOKENS, OUTPUT_TOKENS, INPUT_TOKENS + OUTPUT_TOKENS),
        "openai create: usage",
        d,
    )
    ok(f"openai chat.completions.create (translated an) model={r.model}")

    r = client.chat.completions.create(model=model, messages=ask, tools=[WEATHER_TOOL_OPENAI])
    d = dump(r)
    c = r.choices[0]
    check(c.finish_reason == "tool_calls", "openai tools: finish_reason tool_calls", d)
    check(c.message.content == "Let me check.", "openai tools: the text before the call", d)
    calls = c.message.tool_calls or []
    check(len(calls) == 1, "openai tools: one tool call", d)
    call = calls[0]
    check(call.type == "function" and call.function.name == "get_weather", "openai tools: function", d)
    check(isinstance(call.id, str) and call.id, "openai tools: id", d)
    check(isinstance(call.function.arguments, str), "openai tools: arguments are a JSON string", d)
    check(json.loads(call.function.arguments) == TOOL_INPUT, "openai tools: arguments", d)
    check(r.usage.prompt_tokens == INPUT_TOKENS and r.usage.completion_tokens == OUTPUT_TOKENS, "openai tools: usage", d)
    ok("openai chat.completions.create with tools (translated an)")

    follow = ask + [
        {
            "role": "assistant",
            "content": c.message.content,
            "tool_calls": [call.model_dump(exclude_none=True)],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"},
    ]
    r = client.chat.completions.create(model=model, messages=follow, tools=[WEATHER_TOOL_OPENAI])
    check(r.choices[0].message.content == "result=18 C, sunny", "openai tool result round trip", dump(r))
    check(r.choices[0].finish_reason == "stop", "openai tool result: finish_reason", dump(r))
    ok("openai tool message round trip (translated an)")

    def stream(messages, **extra):
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **extra,
            )
        )
        check(len(chunks) >= 3, "openai stream: chunks", [dump(x) for x in chunks])
        for x in chunks:
            check(x.object == "chat.completion.chunk" and x.model in models, "openai stream: chunk object/model", dump(x))
        # The usage chunk comes last, with no choices; no other has usage.
        last = chunks[-1]
        check(last.choices == [] and last.usage is not None, "openai stream: usage chunk last", dump(last))
        check(all(x.usage is None for x in chunks[:-1]), "openai stream: usage only in the last chunk", [dump(x) for x in chunks])
        u = last.usage
        check(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens)
            == (INPUT_TOKENS, OUTPUT_TOKENS, INPUT_TOKENS + OUTPUT_TOKENS),
            "openai stream: usage",
            dump(last),
        )
        body = chunks[:-1]
        text = "".join(x.choices[0].delta.content or "" for x in body if x.choices)
        finishes = [x.choices[0].finish_reason for x in body if x.choices and x.choices[0].finish_reason]
        check(len(finishes) == 1, "openai stream: one finish_reason", finishes)
        args, names, ids = {}, {}, {}
        for x in body:
            for tc in (x.choices[0].delta.tool_calls or []) if x.choices else []:
                if tc.id:
                    ids[tc.index] = tc.id
                if tc.function and tc.function.name:
                    names[tc.index] = tc.function.name
                if tc.function and tc.function.arguments:
                    args[tc.index] = args.get(tc.index, "") + tc.function.arguments
        return text, finishes[0], ids, names, args

    text, finish, ids, names, args = stream(chat, max_tokens=64)
    check(text == expected, "openai stream: content", text)
    check(finish == "stop", "openai stream: finish_reason stop", finish)
    check(not ids and not args, "openai stream: no tool calls", (ids, args))
    ok("openai chat.completions stream with include_usage (translated an)")

    text, finish, ids, names, args = stream(ask, tools=[WEATHER_TOOL_OPENAI])
    check(text == "Let me check.", "openai stream tools: content", text)
    check(finish == "tool_calls", "openai stream tools: finish_reason tool_calls", finish)
    check(list(ids) == [0] and ids[0], "openai stream tools: one call with an id", ids)
    check(names == {0: "get_weather"}, "openai stream tools: name", names)
    check(json.loads(args.get(0, "")) == TOOL_INPUT, "openai stream tools: arguments", args)
    ok("openai chat.completions stream with tools (translated an)")

    try:
        client.chat.completions.create(model="nope/gpt", messages=[{"role": "user", "content": "x"}])
        check(False, "openai unknown provider raises")
    except openai.NotFoundError as e:
        check(e.status_code == 404, "openai unknown provider: 404", e.status_code)
        check(isinstance(e.body, dict) and e.body.get("message"), "openai unknown provider: OpenAI-shaped", e.body)
        ok("openai unknown provider -> NotFoundError")

    for how in ["create", "stream"]:
        try:
            extra = {"stream": True} if how == "stream" else {}
            r = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "ratelimit me"}], **extra
            )
            if how == "stream":
                list(r)
            check(False, f"openai 429 ({how}) raises")
        except openai.RateLimitError as e:
            check(e.status_code == 429, f"openai 429 ({how}): status", e.status_code)
            body = e.response.json()
            err = body.get("error")
            check(isinstance(err, dict), f"openai 429 ({how}): OpenAI-shaped", body)
            check(sorted(err) == ["code", "message", "param", "type"], f"openai 429 ({how}): error fields", body)
            check("slow down" in (err.get("message") or ""), f"openai 429 ({how}): message", body)
        ok(f"openai upstream 429 -> RateLimitError (translated an, {how})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True, help="http://127.0.0.1:PORT (no /v1)")
    args = ap.parse_args()
    root = args.gateway.rstrip("/")
    claude = anthropic.Anthropic(base_url=root, api_key="sk-client-anthropic", max_retries=0, timeout=10.0)
    gpt = openai.OpenAI(base_url=root + "/v1", api_key="sk-client-openai", max_retries=0, timeout=10.0)
    anthropic_checks(claude)
    openai_checks(gpt)
    print(f"all dialect checks passed ({checks} checks)")


if __name__ == "__main__":
    main()
