"""The official SDKs against a gateway with virtual keys: each refusal
raises the exception the SDK documents for it, with the gateway's code.

Arguments: base URL (no /v1), then the secrets of: a plain key, a key
limited to `allowed-*` models, a key with rpm = 1, a key whose budget is 0.
Prints one line per check; exits non-zero on the first failure."""

import sys

import anthropic
import openai

base, plain, restricted, one_rpm, broke = sys.argv[1:6]


def oa(key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def an(key):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


def chat(client, model="allowed-model"):
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=7
    )


def message(client, model="allowed-model"):
    return client.messages.create(
        model=model, max_tokens=7, messages=[{"role": "user", "content": "hi"}]
    )


def expect(name, exc, call, code=None):
    try:
        call()
    except exc as e:
        body = getattr(e, "body", None)
        got = None
        if isinstance(body, dict):
            got = body.get("code") or (body.get("error") or {}).get("code")
        if code and got != code and code not in str(e):
            sys.exit(f"FAIL {name}: {exc.__name__} without code {code}: {e!r} body={body!r}")
        print(f"ok {name}: {exc.__name__}")
        return
    except Exception as e:  # noqa: BLE001
        sys.exit(f"FAIL {name}: expected {exc.__name__}, got {e!r}")
    sys.exit(f"FAIL {name}: expected {exc.__name__}, the call succeeded")


r = chat(oa(plain))
assert r.choices[0].message.content.startswith("echo"), r
print("ok openai: a good key is answered")
m = message(an(plain))
assert m.content[0].text.startswith("echo"), m
print("ok anthropic: a good key is answered (x-api-key)")

expect("openai unknown key", openai.AuthenticationError, lambda: chat(oa("sk-sg-nope")), "invalid_api_key")
expect("anthropic unknown key", anthropic.AuthenticationError, lambda: message(an("sk-sg-nope")))
expect("openai model outside the allow-list", openai.PermissionDeniedError,
       lambda: chat(oa(restricted), "other-model"), "model_not_allowed")
expect("anthropic model outside the allow-list", anthropic.PermissionDeniedError,
       lambda: message(an(restricted), "other-model"))
chat(oa(restricted))
print("ok openai: an allowed model passes")

chat(oa(one_rpm))
expect("openai rpm", openai.RateLimitError, lambda: chat(oa(one_rpm)), "rate_limit_exceeded")
expect("anthropic rpm", anthropic.RateLimitError, lambda: message(an(one_rpm)), "rate_limit_exceeded")
expect("openai budget", openai.RateLimitError, lambda: chat(oa(broke)), "budget_exceeded")
expect("anthropic budget", anthropic.RateLimitError, lambda: message(an(broke)), "budget_exceeded")
print("all ok")
