"""The response cache through the official SDKs (OpenAI and Anthropic).

Arguments: base URL (no /v1), then the secrets of two keys in different
teams (red, blue). Checks, printing one line each:
- the same prompt, its keys reordered (in the messages and in the call),
  is a hit, and so is the same JSON sent re-spaced by hand;
- another tenant's identical prompt is a miss;
- a streamed hit replays the recorded stream chunk by chunk (the same
  deltas, the usage chunk when asked), and a whole request is answered
  from it;
- Cache-Control max-age is in seconds; no-cache goes upstream;
- the Anthropic SDK's streamed hit replays its events.
Exits non-zero on the first failure."""

import sys
import time
import urllib.request

import anthropic
import openai

base, red, blue = sys.argv[1:4]


def oa(key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def check(name, ok, detail=""):
    if not ok:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


def chat_raw(client, **kw):
    r = client.chat.completions.with_raw_response.create(**kw)
    return r.headers.get("x-shardgate-cache"), r.parse()


client = oa(red)

# Keys reordered: in the message objects and in the call's arguments.
first_h, first = chat_raw(
    client,
    model="gpt-4o-mini",
    temperature=0,
    messages=[{"role": "user", "content": "Name a prime number."}],
)
check("first request is a miss", first_h == "miss", first_h)
again_h, again = chat_raw(
    client,
    messages=[{"content": "Name a prime number.", "role": "user"}],
    temperature=0,
    model="gpt-4o-mini",
)
check("keys reordered is a hit", again_h == "hit", again_h)
check(
    "the hit is the same answer",
    again.choices[0].message.content == first.choices[0].message.content
    and again.id == first.id,
)

# The same JSON, spaced by hand, outside the SDK.
spaced = '{ "temperature" : 0 ,\n  "model":"gpt-4o-mini", "messages" : [ { "content" : "Name a prime number." , "role" : "user" } ] }'
req = urllib.request.Request(
    base + "/v1/chat/completions",
    data=spaced.encode(),
    headers={"content-type": "application/json", "authorization": f"Bearer {red}"},
)
with urllib.request.urlopen(req, timeout=10) as r:
    check("re-spaced JSON is a hit", r.headers.get("x-shardgate-cache") == "hit")

# Another tenant: a miss, never red's answer.
blue_h, _ = chat_raw(
    oa(blue),
    model="gpt-4o-mini",
    temperature=0,
    messages=[{"role": "user", "content": "Name a prime number."}],
)
check("another tenant's identical prompt is a miss", blue_h == "miss", blue_h)

# Streams: recorded, then replayed chunk by chunk.
def stream(usage):
    kw = dict(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a greeting."}],
        stream=True,
    )
    if usage:
        kw["stream_options"] = {"include_usage": True}
    r = client.chat.completions.with_raw_response.create(**kw)
    chunks = list(r.parse())
    return r.headers.get("x-shardgate-cache"), chunks


def deltas(chunks):
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


miss_h, recorded = stream(True)
check("a first stream is a miss", miss_h == "miss", miss_h)
hit_h, replayed = stream(True)
check("a repeated stream is a hit", hit_h == "hit", hit_h)
check(
    "the hit replays the stream token by token",
    len(deltas(replayed)) >= 2 and deltas(replayed) == deltas(recorded),
    f"{deltas(recorded)} vs {deltas(replayed)}",
)
check(
    "the usage chunk is replayed when asked",
    replayed[-1].usage is not None and replayed[-1].usage.total_tokens == recorded[-1].usage.total_tokens,
)
bare_h, bare = stream(False)
check("without include_usage: no usage chunk", bare_h == "hit" and all(c.usage is None for c in bare), bare_h)
whole_h, whole = chat_raw(
    client, model="gpt-4o-mini", messages=[{"role": "user", "content": "Stream a greeting."}]
)
check(
    "a whole request answered from the recorded stream",
    whole_h == "hit" and whole.choices[0].message.content == "".join(deltas(recorded)),
    f"{whole_h} {whole.choices[0].message.content!r}",
)

# max-age in seconds: an entry over a second old is too old for max-age=0.
def prime_with(cache_control):
    h, _ = chat_raw(
        client,
        model="gpt-4o-mini",
        temperature=0,
        messages=[{"role": "user", "content": "Name a prime number."}],
        extra_headers={"cache-control": cache_control},
    )
    return h


time.sleep(1.1)
aged_h = prime_with("max-age=60")
check("max-age=60 accepts a second-old entry", aged_h == "hit", aged_h)
fresh_h = prime_with("max-age=0")
check("max-age=0 refuses it", fresh_h == "miss", fresh_h)
nc_h = prime_with("no-cache")
check("no-cache goes upstream", nc_h == "miss", nc_h)

# Anthropic's SDK: a streamed hit replays its events.
an = anthropic.Anthropic(base_url=base, api_key=red, max_retries=0)


def an_stream():
    r = an.messages.with_raw_response.create(
        model="claude-x",
        max_tokens=32,
        stream=True,
        messages=[{"role": "user", "content": "Stream a greeting."}],
    )
    events = list(r.parse())
    texts = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    return r.headers.get("x-shardgate-cache"), texts


an_miss, texts = an_stream()
an_hit, texts2 = an_stream()
check(
    "an Anthropic streamed hit replays its text deltas",
    (an_miss, an_hit) == ("miss", "hit") and len(texts2) >= 2 and texts2 == texts,
    f"{an_miss} {an_hit} {texts} vs {texts2}",
)
print("all cache SDK checks passed")
