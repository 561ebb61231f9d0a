#!/usr/bin/env python3
"""The official OpenAI and Anthropic Python SDKs talking https to shardgate,
trusting only the test CA: a chat completion (plain and streamed) and an
Anthropic message (translated to the OpenAI mock behind the gateway). Without
the CA the same client must refuse the certificate.

Usage: tls_sdk.py --base https://127.0.0.1:P --ca /path/ca.pem

Run by tests/tls_clients.rs. Prints "tls sdk ok" when every check passed.
"""

import argparse
import ssl
import sys

import anthropic
import openai


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--ca", required=True)
    args = ap.parse_args()
    ctx = ssl.create_default_context(cafile=args.ca)

    gpt = openai.OpenAI(
        base_url=args.base + "/v1",
        api_key="sk-client-key",
        max_retries=0,
        timeout=10.0,
        http_client=openai.DefaultHttpxClient(verify=ctx),
    )
    r = gpt.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "over tls"}]
    )
    assert r.choices[0].message.content == "echo: over tls", r
    chunks = list(
        gpt.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream over tls"}],
            stream=True,
        )
    )
    assert chunks, "no stream chunks"
    # The same client again: its pooled (keep-alive) TLS connection.
    r = gpt.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
    )
    assert r.choices[0].message.content == "echo: again", r

    claude = anthropic.Anthropic(
        base_url=args.base,
        api_key="sk-client-anthropic",
        max_retries=0,
        timeout=10.0,
        http_client=anthropic.DefaultHttpxClient(verify=ctx),
    )
    m = claude.messages.create(
        model="gpt-4o-mini",
        max_tokens=32,
        messages=[{"role": "user", "content": "hello claude"}],
    )
    text = "".join(b.text for b in m.content if b.type == "text")
    assert "hello claude" in text, m

    # Verification is real: the system store does not know the test CA.
    untrusted = openai.OpenAI(
        base_url=args.base + "/v1", api_key="k", max_retries=0, timeout=10.0
    )
    try:
        untrusted.models.list()
    except openai.APIConnectionError as e:
        cause = repr(e.__cause__) + repr(getattr(e.__cause__, "__cause__", None))
        assert "CERTIFICATE_VERIFY_FAILED" in cause or "certificate" in cause.lower(), cause
    else:
        print("an untrusted certificate was accepted", file=sys.stderr)
        sys.exit(1)
    print("tls sdk ok")


if __name__ == "__main__":
    main()
