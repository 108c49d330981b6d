#!/usr/bin/env python3
"""A chat endpoint on FastAPI's WebSocket (served by uvicorn), for checking loadkit-ws by hand.

Same default shape as websockets_chat_server.py, written the way FastAPI apps write it:

    -> {"type":"chat","prompt":"...","max_tokens":N,"min_tokens":M?}
    <- {"type":"token","text":"..."}  every ITL seconds, the first TTFT after the prefill
    <- {"type":"done","tokens_in":W,"tokens_out":K}
    <- {"type":"error","message":"context length exceeded: W words > MAX"}  over MAX_WORDS

The prefill is a blocking time.sleep(PREFILL_PER_WORD * W) inside the async handler (a model
called synchronously), which holds uvicorn's event loop. uvicorn's own keepalive pings every
--ws-ping-interval seconds (default 20).

Run (`pip install fastapi uvicorn`):

    MAX_WORDS=1500 PREFILL_PER_WORD=0.002 uvicorn --app-dir crates/loadkit-ws/testdata \
        fastapi_chat_server:app --port 8770

then: loadkit run --protocol ws-chat --url ws://127.0.0.1:8770/ws/chat/v2 ...
"""

import asyncio
import os
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

TTFT = float(os.environ.get("TTFT", "0.05"))
ITL = float(os.environ.get("ITL", "0.01"))
NATURAL = int(os.environ.get("NATURAL_TOKENS", "64"))
PREFILL_PER_WORD = float(os.environ.get("PREFILL_PER_WORD", "0"))
MAX_WORDS = int(os.environ.get("MAX_WORDS", "0"))

app = FastAPI()


@app.websocket("/ws/chat/v2")
async def chat(ws: WebSocket):
    await ws.accept()
    try:
        while True:
            msg = await ws.receive_json()
            if msg.get("type") != "chat":
                await ws.send_json({"type": "error", "message": "unknown message type"})
                continue
            words = len(str(msg.get("prompt", "")).split())
            if MAX_WORDS and words > MAX_WORDS:
                await ws.send_json(
                    {"type": "error", "message": f"context length exceeded: {words} words > {MAX_WORDS}"}
                )
                continue
            time.sleep(PREFILL_PER_WORD * words)  # blocking, on purpose
            max_tokens = int(msg.get("max_tokens", 128))
            natural = max(NATURAL, int(msg.get("min_tokens") or 0))
            tokens = min(max_tokens, natural)
            await asyncio.sleep(TTFT)
            for i in range(tokens):
                if i:
                    await asyncio.sleep(ITL)
                await ws.send_json({"type": "token", "text": f" tok{i}"})
            await ws.send_json({"type": "done", "tokens_in": words, "tokens_out": tokens})
    except WebSocketDisconnect:
        pass
