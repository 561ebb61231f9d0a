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
print("ok")
