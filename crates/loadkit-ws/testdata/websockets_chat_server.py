#!/usr/bin/env python3
"""A chat server on the third-party `websockets` library (asyncio), for checking loadkit-ws by hand.

It speaks loadkit-ws's default shape:

    -> {"type":"chat","prompt":"...","max_tokens":N,"min_tokens":M?,"system_prompt":"..."?}
    <- {"type":"token","text":"..."}  every --itl seconds, the first --ttft after the prefill
    <- {"type":"done","tokens_in":W,"tokens_out":K}     W = prompt words (+ system prompt words)
    <- {"type":"error","message":"..."}                 unknown type, or over --max-words

K = min(max_tokens, --natural-tokens), or with min_tokens max(min_tokens, natural) capped by
max_tokens. The prefill is a *blocking* time.sleep(--prefill-per-word * W): like a model called
synchronously from the handler, it holds the event loop, so while it runs nothing else is
served, pings and pongs included. Keepalive is websockets' own (--ping-interval /
--ping-timeout; 0 turns it off): a ping without a pong within the timeout closes the
connection with 1011 "keepalive ping timeout".

Run (websockets >= 13; `pip install websockets`):

    python3 crates/loadkit-ws/testdata/websockets_chat_server.py --port 8765 \
        --prefill-per-word 0.05 --ping-interval 20 --ping-timeout 20

then point the client at ws://127.0.0.1:8765/ws/chat/v2, e.g.

    cargo run -p loadkit-ws --example against -- ws://127.0.0.1:8765/ws/chat/v2 --prompt-words 40

--transcript FILE appends every message in and out, one JSON line each with the seconds since
the connection opened, so a short raw exchange can be kept beside this script.
"""

import argparse
import asyncio
import json
import time

from websockets.asyncio.server import serve

WORDS = ["Hello", " from", " a", ' "streaming"', " chat", ",", " naïve", "\n"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--path", default="/ws/chat/v2")
    p.add_argument("--ttft", type=float, default=0.05, help="seconds from the prefill's end to the first token")
    p.add_argument("--itl", type=float, default=0.01, help="seconds between tokens")
    p.add_argument("--natural-tokens", type=int, default=64)
    p.add_argument("--prefill-per-word", type=float, default=0.0, help="blocking seconds per prompt word")
    p.add_argument("--max-words", type=int, default=0, help="context limit in words (0: none)")
    p.add_argument("--ping-interval", type=float, default=20.0, help="websockets' ping_interval (0: off)")
    p.add_argument("--ping-timeout", type=float, default=20.0, help="websockets' ping_timeout (0: none)")
    p.add_argument("--transcript", help="append every message to this file (JSON lines)")
    return p.parse_args()


ARGS = parse_args()


def log(opened, direction, text):
    if ARGS.transcript:
        with open(ARGS.transcript, "a", encoding="utf-8") as f:
            line = {"t": round(time.monotonic() - opened, 4), "dir": direction, "msg": text}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


async def handler(ws):
    opened = time.monotonic()
    if ws.request.path.split("?")[0] != ARGS.path:
        await ws.close(1008, "no chat endpoint here")
        return
    loop = asyncio.get_running_loop()

    async def send(obj):
        text = json.dumps(obj)
        log(opened, "out", text)
        await ws.send(text)

    async for raw in ws:
        log(opened, "in", raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        try:
            request = json.loads(raw)
        except ValueError:
            await send({"type": "error", "message": "malformed request: not json"})
            continue
        if request.get("type") != "chat":
            await send({"type": "error", "message": "unknown message type"})
            continue
        prompt = request.get("prompt") or ""
        words = len(prompt.split()) + len((request.get("system_prompt") or "").split())
        if ARGS.max_words and words > ARGS.max_words:
            await send({"type": "error", "message": f"context length exceeded: {words} words > {ARGS.max_words}"})
            continue
        # The point of this server: a prefill that holds the event loop.
        time.sleep(ARGS.prefill_per_word * words)
        natural = ARGS.natural_tokens
        max_tokens = int(request.get("max_tokens", natural))
        min_tokens = request.get("min_tokens")
        if min_tokens is None:
            n = min(natural, max_tokens)
        else:
            n = min(max(int(min_tokens), natural), max_tokens)
        start = loop.time() + ARGS.ttft
        for i in range(n):
            delay = start + i * ARGS.itl - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "token", "text": WORDS[i % len(WORDS)]})
        await send({"type": "done", "tokens_in": words, "tokens_out": n})


async def main():
    async with serve(
        handler,
        ARGS.host,
        ARGS.port,
        ping_interval=ARGS.ping_interval or None,
        ping_timeout=ARGS.ping_timeout or None,
    ) as server:
        print(f"serving ws://{ARGS.host}:{ARGS.port}{ARGS.path}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
