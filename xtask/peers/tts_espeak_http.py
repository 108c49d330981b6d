"""A real OpenAI-compatible text-to-speech server, not written with loadkit: espeak-ng behind
FastAPI's POST /v1/audio/speech, for checking `--protocol tts-http` against audio that a real
engine synthesizes.

    pip install fastapi uvicorn        # Debian: apt-get install espeak-ng
    python3 xtask/peers/tts_espeak_http.py --port 0 [--whole] [--workers 2]

Prints `listening on http://127.0.0.1:PORT/v1`. Streams espeak-ng's stdout as it is written
(chunked), or with --whole sends the complete file. response_format wav (what espeak-ng
writes) or pcm (the same samples without the header, rate in x-sample-rate). GET /health.
"""

import argparse
import asyncio
import socket
import subprocess

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--whole", action="store_true")
ap.add_argument("--workers", type=int, default=2)
args = ap.parse_args()

VOICES = set()
for line in subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True).stdout.splitlines()[1:]:
    parts = line.split()
    if len(parts) >= 5:
        VOICES.add(parts[1])  # the language code, e.g. en-us
        VOICES.add(parts[4].split("/")[-1])  # the voice file, e.g. en
app = FastAPI()
workers = asyncio.Semaphore(args.workers)


class Speech(BaseModel):
    model: str
    input: str
    voice: str
    response_format: str = "wav"
    speed: float = 1.0


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/v1/audio/speech")
async def speech(req: Speech):
    if req.model != "espeak-ng":
        raise HTTPException(404, f"Model '{req.model}' not found")
    if req.voice not in VOICES:
        raise HTTPException(400, f"Voice '{req.voice}' is not available for model '{req.model}'")
    if req.response_format not in ("wav", "pcm"):
        raise HTTPException(400, f"unsupported response_format '{req.response_format}'")
    wpm = str(int(175 * req.speed))
    cmd = ["espeak-ng", "--stdout", "-v", req.voice, "-s", wpm, req.input]
    pcm = req.response_format == "pcm"
    headers = {"x-sample-rate": "22050"} if pcm else {}
    media = "audio/pcm" if pcm else "audio/wav"
    if args.whole:
        async with workers:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
            wav, _ = await proc.communicate()
        return Response(wav[44:] if pcm else wav, media_type=media, headers=headers)

    async def stream():
        async with workers:
            proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
            skip = 44 if pcm else 0
            while True:
                chunk = await proc.stdout.read(8192)
                if not chunk:
                    break
                if skip:
                    cut = min(skip, len(chunk))
                    chunk, skip = chunk[cut:], skip - cut
                if chunk:
                    yield chunk
            await proc.wait()

    return StreamingResponse(stream(), media_type=media, headers=headers)


sock = socket.socket()
sock.bind(("127.0.0.1", args.port))
print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1", flush=True)
config = uvicorn.Config(app, log_level="warning")
uvicorn.Server(config).run(sockets=[sock])
