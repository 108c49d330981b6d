"""A real text-to-speech server over WebSocket, not written with loadkit: espeak-ng behind the
document-reader protocol, on the `websockets` library (asyncio), for checking `--protocol tts-ws`
against audio that a real engine synthesizes.

    pip install websockets            # Debian: apt-get install espeak-ng
    python3 xtask/peers/tts_espeak_ws.py --port 0 --workers 2 [--base64]

Prints `listening on ws://127.0.0.1:PORT/ws/tts`. Protocol:

    -> {"type":"synthesize","document_id":D,"model":"espeak-ng","voice":"en","blocks":[{"index":0,"text":"..."}]}
    <- {"type":"status","document_id":D,"index":I,"status":"queued"|"processing"}
    <- {"type":"status","document_id":D,"index":I,"status":"done","audio_duration_ms":MS}
    <- the block's WAV (espeak-ng --stdout) as a binary frame   (--base64: "audio" in the done)
    <- {"type":"error","document_id":D,"message":"..."}   unknown model or voice

GET /health answers 200. A pool of --workers espeak-ng processes at a time is shared by all
connections, as a server with N synthesis workers.
"""

import argparse
import asyncio
import base64
import json
import struct
import subprocess
import sys
from http import HTTPStatus

import websockets
from websockets.asyncio.server import serve


def espeak_voices():
    out = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout
    voices = set()
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            voices.add(parts[1])  # the language code, e.g. en, en-us, de
            voices.add(parts[4].split("/")[-1])  # the voice file name
    return voices


MODELS = {"espeak-ng": espeak_voices()}


def wav_ms(wav: bytes) -> int:
    # espeak-ng --stdout writes sizes it did not know yet: count the samples that are there.
    rate = struct.unpack_from("<I", wav, 24)[0]
    frame = struct.unpack_from("<H", wav, 32)[0]
    data = wav.find(b"data") + 8
    return (len(wav) - data) // frame * 1000 // rate


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--base64", action="store_true")
    args = ap.parse_args()
    workers = asyncio.Semaphore(args.workers)

    async def synthesize(ws, lock, doc, index, text, voice):
        async with workers:
            await ws.send(json.dumps({"type": "status", "document_id": doc, "index": index, "status": "processing"}))
            proc = await asyncio.create_subprocess_exec(
                "espeak-ng", "--stdout", "-v", voice, text,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            wav, _ = await proc.communicate()
        done = {"type": "status", "document_id": doc, "index": index, "status": "done",
                "audio_duration_ms": wav_ms(wav)}
        if args.base64:
            done["audio"] = base64.b64encode(wav).decode()
            await ws.send(json.dumps(done))
        else:
            # The done and its audio stay together: another block's messages cannot come
            # between them.
            async with lock:
                await ws.send(json.dumps(done))
                await ws.send(wav)

    async def handler(ws):
        tasks = set()
        lock = asyncio.Lock()
        try:
            async for raw in ws:
                msg = json.loads(raw)
                doc = msg.get("document_id")
                model, voice = msg.get("model"), msg.get("voice")
                if model not in MODELS:
                    await ws.send(json.dumps({"type": "error", "document_id": doc, "message": f"Unknown model '{model}'"}))
                    continue
                if voice not in MODELS[model]:
                    await ws.send(json.dumps({"type": "error", "document_id": doc,
                                              "message": f"Voice '{voice}' is not available for model '{model}'"}))
                    continue
                for block in msg["blocks"]:
                    await ws.send(json.dumps({"type": "status", "document_id": doc, "index": block["index"], "status": "queued"}))
                    t = asyncio.create_task(synthesize(ws, lock, doc, block["index"], block["text"], voice))
                    tasks.add(t)
                    t.add_done_callback(tasks.discard)
        except websockets.ConnectionClosed:
            pass
        finally:
            for t in tasks:
                t.cancel()

    def health(connection, request):
        if request.path == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async with serve(handler, "127.0.0.1", args.port, process_request=health, max_size=2**24) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/ws/tts", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
