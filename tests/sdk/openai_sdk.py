#!/usr/bin/env python3
"""The official OpenAI Python SDK against shardgate and directly against the
mock upstream: every call must give the same parsed objects both ways.

Usage: openai_sdk.py --gateway http://127.0.0.1:P/v1 --direct http://127.0.0.1:M/v1

Run by tests/gateway_sdk.rs. The mock is deterministic, so nothing is
ignored in the comparison. Exits non-zero with a diff on any mismatch.
"""

import argparse
import json
import sys

import openai


def dump(obj):
    return obj.model_dump(mode="json")


def calls(model_prefix):
    """(name, function of a client returning a JSON-able result)."""
    m = lambda name: model_prefix + name  # noqa: E731

    def chat(c):
        return dump(
            c.chat.completions.create(
                model=m("gpt-4o-mini"),
                messages=[{"role": "user", "content": "hello \u00e9 \U0001F600"}],
                temperature=0.5,
            )
        )

    def chat_stream(c):
        stream = c.chat.completions.create(
            model=m("gpt-4o-mini"),
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
        )
        return [dump(chunk) for chunk in stream]

    def completions(c):
        return dump(c.completions.create(model=m("gpt-3.5-turbo-instruct"), prompt="say x"))

    def completions_stream(c):
        return [
            dump(x)
            for x in c.completions.create(
                model=m("gpt-3.5-turbo-instruct"), prompt="say x", stream=True
            )
        ]

    def embeddings(c):
        return dump(
            c.embeddings.create(
                model=m("text-embedding-3-small"), input=["a", "b"], encoding_format="float"
            )
        )

    def responses(c):
        return dump(c.responses.create(model=m("gpt-4o"), input="hi"))

    def models(c):
        return [dump(x) for x in c.models.list()]

    return [
        ("chat", chat),
        ("chat_stream", chat_stream),
        ("completions", completions),
        ("completions_stream", completions_stream),
        ("embeddings", embeddings),
        ("responses", responses),
        ("models", models),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--direct", required=True)
    args = ap.parse_args()

    def client(url):
        return openai.OpenAI(base_url=url, api_key="sk-client-key", max_retries=0, timeout=10.0)

    gateway, direct = client(args.gateway), client(args.direct)
    failures = 0
    direct_calls = dict(calls(""))
    # Bare names, and `openai/` provider-prefixed names through the gateway:
    # the prefix is stripped, so the results equal the direct ones.
    for prefix in ["", "openai/"]:
        for name, call in calls(prefix):
            via_gateway = call(gateway)
            expected = direct_calls[name](direct)
            label = f"{name} (model prefix {prefix!r})"
            if via_gateway != expected:
                failures += 1
                print(f"MISMATCH {label}", file=sys.stderr)
                print("  gateway:", json.dumps(via_gateway, sort_keys=True), file=sys.stderr)
                print("  direct: ", json.dumps(expected, sort_keys=True), file=sys.stderr)
            else:
                print(f"ok {label}")

    # Sanity: the results are the mock's, not empty shells that match trivially.
    chat = direct_calls["chat"](direct)
    assert chat["choices"][0]["message"]["content"] == "echo: hello \u00e9 \U0001F600", chat
    stream = direct_calls["chat_stream"](direct)
    text = "".join(c["choices"][0]["delta"]["content"] or "" for c in stream)
    assert text == "tok0tok1tok2", text
    assert direct_calls["embeddings"](direct)["data"][0]["embedding"] == [0.25, -0.5, 1.0]
    assert direct_calls["responses"](direct)["output"][0]["content"][0]["text"] == "mock response"
    assert len(direct_calls["models"](direct)) == 2

    # Errors the gateway makes itself surface as the SDK's typed errors.
    try:
        gateway.chat.completions.create(model="nope/gpt-4o", messages=[])
        failures += 1
        print("MISMATCH unknown provider prefix was accepted", file=sys.stderr)
    except openai.NotFoundError as e:
        assert e.status_code == 404 and e.code == "model_not_found", (e.status_code, e.code)
        print("ok unknown provider -> NotFoundError(model_not_found)")

    if failures:
        print(f"{failures} mismatch(es)", file=sys.stderr)
        sys.exit(1)
    print("all SDK results match")


if __name__ == "__main__":
    main()
