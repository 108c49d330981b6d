//! A simulated speech-to-text server: OpenAI-compatible `POST /v1/audio/transcriptions`
//! (multipart `file`, `model`, optional `language` and `response_format`), shaped like a FastAPI
//! service in front of a model with a fixed number of workers and a bounded queue.
//!
//! - `workers` requests are transcribed at once and `queue` more wait; beyond that a request is
//!   refused at once with 503 `{"detail":"Too many concurrent requests"}`.
//! - A body over `max_upload` bytes (by its `Content-Length`) gets 413; a file that is not a
//!   WAV, or a body without a `file` part, 400 `{"detail":"Invalid audio: ..."}`.
//! - Transcribing takes `overhead + audio duration × rtf` of a worker; the answer is the
//!   configured `transcript` as `{"text": ...}`, or plain text with `response_format=text`.
//! - `GET /health` answers 200.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::paced::{self, AnyBody};
use crate::server::{self, ConnHandle, Counted};

/// The simulated ASR server's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrSimConfig {
    /// Requests transcribed at once. Default 2.
    pub workers: usize,
    /// Requests waiting for a worker; more are refused with 503. Default 8.
    pub queue: usize,
    /// The largest body accepted, in bytes; larger gets 413. Default 25 MiB (OpenAI's limit).
    pub max_upload: u64,
    /// Worker time per second of audio. Default 0.1.
    pub rtf: f64,
    /// Worker time per request besides the audio. Default 20 ms.
    pub overhead: Duration,
    /// What every file is transcribed as. Default `the quick brown fox jumps over the lazy
    /// dog`.
    pub transcript: String,
}

impl Default for AsrSimConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            queue: 8,
            max_upload: 25 << 20,
            rtf: 0.1,
            overhead: Duration::from_millis(20),
            transcript: "the quick brown fox jumps over the lazy dog".to_owned(),
        }
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AsrStats {
    /// Requests received.
    pub requests: u64,
    /// Transcriptions answered.
    pub transcribed: u64,
    /// Refused with 503 (workers and queue full).
    pub busy: u64,
    /// Refused with 413.
    pub too_large: u64,
    /// Refused with 400.
    pub bad_audio: u64,
}

#[derive(Debug)]
struct State {
    config: AsrSimConfig,
    workers: Semaphore,
    /// Requests holding or waiting for a worker.
    admitted: AtomicU64,
    transcribed: AtomicU64,
    busy: AtomicU64,
    too_large: AtomicU64,
    bad_audio: AtomicU64,
}

/// A running simulated ASR server.
#[derive(Debug)]
pub struct AsrServer {
    inner: Counted,
    state: Arc<State>,
}

impl AsrServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// `http://127.0.0.1:PORT/v1` (the base URL, as OpenAI SDKs take it).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// The counters so far.
    pub fn stats(&self) -> AsrStats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        AsrStats {
            requests: self.inner.requests(),
            transcribed: get(&self.state.transcribed),
            busy: get(&self.state.busy),
            too_large: get(&self.state.too_large),
            bad_audio: get(&self.state.bad_audio),
        }
    }

    /// Stops gracefully.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Starts a simulated ASR server on `127.0.0.1:0`.
pub async fn serve(config: AsrSimConfig) -> std::io::Result<AsrServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts it on a listener the caller bound (inside a tokio runtime).
pub fn serve_on(listener: TcpListener, config: AsrSimConfig) -> AsrServer {
    let state = Arc::new(State {
        workers: Semaphore::new(config.workers.max(1)),
        config,
        admitted: AtomicU64::new(0),
        transcribed: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        too_large: AtomicU64::new(0),
        bad_audio: AtomicU64::new(0),
    });
    let shared = Arc::clone(&state);
    let inner = server::spawn_counted(
        listener,
        (),
        server::Transport::default(),
        move |_: Arc<()>, _requests, request, conn| handle(Arc::clone(&shared), request, conn),
    );
    AsrServer { inner, state }
}

fn detail(status: u16, message: &str) -> Response<AnyBody> {
    paced::response(
        status,
        "application/json",
        AnyBody::full(json!({ "detail": message }).to_string()),
    )
}

/// Releases an admitted request's place when it ends, however it ends.
struct Admitted<'a>(&'a AtomicU64);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    _conn: ConnHandle,
) -> Response<AnyBody> {
    let config = &state.config;
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path == "/health" {
        return paced::response(200, "application/json", AnyBody::full(r#"{"status":"ok"}"#));
    }
    if request.method() != Method::POST || path != "/v1/audio/transcriptions" {
        return detail(404, "Not Found");
    }
    let length = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n > config.max_upload) {
        state.too_large.fetch_add(1, Ordering::Relaxed);
        return detail(
            413,
            &format!("File too large: the limit is {} bytes", config.max_upload),
        );
    }
    let boundary = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
        .map(|b| b.trim_matches('"').to_owned());
    // Admission before the body is read, as a server with a bounded queue refuses at once.
    let capacity = (config.workers.max(1) + config.queue) as u64;
    if state.admitted.fetch_add(1, Ordering::AcqRel) >= capacity {
        state.admitted.fetch_sub(1, Ordering::AcqRel);
        state.busy.fetch_add(1, Ordering::Relaxed);
        return detail(503, "Too many concurrent requests");
    }
    let _place = Admitted(&state.admitted);
    let Some(body) = paced::read_body(request.into_body()).await else {
        state.bad_audio.fetch_add(1, Ordering::Relaxed);
        return detail(400, "Invalid audio: the body could not be read");
    };
    let Some(boundary) = boundary else {
        state.bad_audio.fetch_add(1, Ordering::Relaxed);
        return detail(400, "Invalid audio: not a multipart/form-data body");
    };
    let parts = multipart(&body, &boundary);
    let Some(file) = parts
        .iter()
        .find(|(name, _)| name == "file")
        .map(|(_, v)| v)
    else {
        state.bad_audio.fetch_add(1, Ordering::Relaxed);
        return detail(400, "Invalid audio: no file field");
    };
    let Some(seconds) = wav_seconds(file) else {
        state.bad_audio.fetch_add(1, Ordering::Relaxed);
        return detail(400, "Invalid audio: not a wav file");
    };
    let text_format = parts
        .iter()
        .any(|(name, v)| name == "response_format" && v.as_ref() == b"text");
    let Ok(_worker) = state.workers.acquire().await else {
        return detail(503, "shutting down");
    };
    tokio::time::sleep(config.overhead + Duration::from_secs_f64(seconds * config.rtf)).await;
    state.transcribed.fetch_add(1, Ordering::Relaxed);
    if text_format {
        paced::response(
            200,
            "text/plain; charset=utf-8",
            AnyBody::full(config.transcript.clone()),
        )
    } else {
        let body = json!({ "text": config.transcript }).to_string();
        paced::response(200, "application/json", AnyBody::full(body))
    }
}

/// The parts of a multipart/form-data body: (field name, content).
fn multipart(body: &Bytes, boundary: &str) -> Vec<(String, Bytes)> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut parts = Vec::new();
    let mut at = match find(body, d, 0) {
        Some(i) => i + d.len(),
        None => return parts,
    };
    loop {
        if body[at..].starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(body, b"\r\n\r\n", at) else {
            break;
        };
        let head = String::from_utf8_lossy(&body[at..head_end]).into_owned();
        let start = head_end + 4;
        let Some(next) = find(body, d, start) else {
            break;
        };
        // The content ends with the CRLF before the next delimiter.
        let end = next.saturating_sub(2).max(start);
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| {
                n.split(['\r', '\n'])
                    .next()
                    .unwrap_or(n)
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap_or_default();
        parts.push((name, body.slice(start..end)));
        at = next + d.len();
    }
    parts
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// A WAV file's duration in seconds (the samples present, up to its declared size).
fn wav_seconds(wav: &[u8]) -> Option<f64> {
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let mut rate_and_frame = None;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let size = u32::from_le_bytes(wav[at + 4..at + 8].try_into().ok()?) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 16 <= wav.len() {
            let channels = u16::from_le_bytes([wav[body + 2], wav[body + 3]]);
            let rate = u32::from_le_bytes(wav[body + 4..body + 8].try_into().ok()?);
            let bits = u16::from_le_bytes([wav[body + 14], wav[body + 15]]);
            let frame = u32::from(channels) * u32::from(bits).div_ceil(8);
            rate_and_frame = Some((rate, frame));
        } else if id == b"data" {
            let (rate, frame) = rate_and_frame?;
            if rate == 0 || frame == 0 {
                return None;
            }
            let present = wav.len() - body;
            let bytes = size.min(present);
            return Some((bytes as u32 / frame) as f64 / f64::from(rate));
        }
        at = body.saturating_add(size).saturating_add(size % 2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_parts_and_wav_durations_are_read() {
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
              --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
              Content-Type: audio/wav\r\n\r\nRIFF\r\n--\r\n--XyZ--\r\n",
        );
        let parts = multipart(&body, "XyZ");
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[0],
            ("model".to_owned(), Bytes::from_static(b"whisper-1"))
        );
        assert_eq!(parts[1].0, "file");
        assert_eq!(parts[1].1, Bytes::from_static(b"RIFF\r\n--"));
        let mut wav = Vec::new();
        let mut head = bytes::BytesMut::new();
        crate::wav::header(&mut head, 16_000, Some(32_000));
        wav.extend_from_slice(&head);
        wav.resize(44 + 32_000, 0);
        assert_eq!(wav_seconds(&wav), Some(1.0));
        assert_eq!(wav_seconds(b"not a wav file at all"), None);
    }
}
