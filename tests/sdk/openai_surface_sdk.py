"""The official OpenAI SDK on the routes beyond chat, through the gateway.

Usage: openai_surface_sdk.py BASE_URL (the gateway's, ending in /v1).
"""
import sys

import openai

c = openai.OpenAI(base_url=sys.argv[1], api_key="sk-client", max_retries=0)
img = c.images.generate(model="gpt-image-1", prompt="a gate")
assert img.data[0].b64_json == "aW1hZ2U=", img
assert img.usage.output_tokens == 272, img
mod = c.moderations.create(input="hello")
assert mod.results[0].flagged is False, mod
got = c.responses.retrieve("resp_abc123")
assert got.id == "resp_abc123", got
c.responses.delete("resp_abc123")

# Uploads: the SDK writes multipart bodies, the gateway routes them by
# their model field and renames it.
audio = bytes(range(256)) * 64
t = c.audio.transcriptions.create(model="openai/whisper-1", file=("a.wav", audio, "audio/wav"))
assert t.text == "mock transcript of 16384 bytes by whisper-1", t
t = c.audio.translations.create(model="whisper-1", file=("a.wav", audio, "audio/wav"))
assert t.text == "mock transcript of 16384 bytes by whisper-1", t
png = b"\x89PNG\r\n\x1a\n" + bytes(1000)
e = c.images.edit(model="gpt-image-1", image=("a.png", png, "image/png"), prompt="add a gate")
assert e.data[0].b64_json == "aW1hZ2U=", e
v = c.images.create_variation(image=("a.png", png, "image/png"))
assert v.data[0].b64_json == "aW1hZ2U=", v
print("ok")
