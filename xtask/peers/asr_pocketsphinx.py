"""A real speech-to-text server, not written with loadkit: PocketSphinx behind a FastAPI
multipart endpoint shaped like OpenAI's POST /v1/audio/transcriptions, with a fixed number of
workers and a bounded queue, for checking `--protocol asr` against a real recogniser.

    pip install pocketsphinx fastapi uvicorn python-multipart
    python3 xtask/peers/asr_pocketsphinx.py --port 0 --workers 2 --queue 8

Prints `listening on http://127.0.0.1:PORT/v1`. Takes 16 kHz mono 16-bit WAV in the `file`
field (anything else: 400), answers {"text": ...} (or text/plain with response_format=text).
`--workers` decodes run at once in threads and `--queue` more wait; beyond that the request is
refused at once with 503 {"detail": "Too many concurrent requests"}. Bodies over --max-mb get
413. GET /health answers 200.
"""

import argparse
import asyncio
import io
import socket
import wave

import uvicorn
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pocketsphinx import Decoder

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--queue", type=int, default=8)
ap.add_argument("--max-mb", type=float, default=25)
args = ap.parse_args()

app = FastAPI()
workers = asyncio.Semaphore(args.workers)
admitted = 0
decoders = [Decoder(samprate=16000) for _ in range(args.workers)]
free = list(range(args.workers))


@app.middleware("http")
async def limits(request: Request, call_next):
    # Refuse before the body is read, as a server with a bounded queue does.
    global admitted
    if request.url.path != "/v1/audio/transcriptions":
        return await call_next(request)
    length = int(request.headers.get("content-length") or 0)
    if length > args.max_mb * 1024 * 1024:
        return PlainTextResponse('{"detail":"File too large"}', status_code=413, media_type="application/json")
    if admitted >= args.workers + args.queue:
        return PlainTextResponse('{"detail":"Too many concurrent requests"}', status_code=503,
                                 media_type="application/json")
    admitted += 1
    try:
        return await call_next(request)
    finally:
        admitted -= 1


@app.get("/health")
async def health():
    return {"status": "ok"}


def decode(index, pcm):
    d = decoders[index]
    d.start_utt()
    d.process_raw(pcm, full_utt=True)
    d.end_utt()
    return d.hyp().hypstr if d.hyp() else ""


@app.post("/v1/audio/transcriptions")
async def transcribe(file: UploadFile = File(...), model: str = Form("pocketsphinx"),
                     language: str = Form("en"), response_format: str = Form("json")):
    data = await file.read()
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
                raise HTTPException(400, "Invalid audio: 16 kHz mono 16-bit WAV only")
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        raise HTTPException(400, "Invalid audio: not a wav file")
    async with workers:
        index = free.pop()
        try:
            text = await asyncio.to_thread(decode, index, pcm)
        finally:
            free.append(index)
    if response_format == "text":
        return PlainTextResponse(text)
    return {"text": text}


sock = socket.socket()
sock.bind(("127.0.0.1", args.port))
print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
