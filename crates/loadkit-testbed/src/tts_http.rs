//! A simulated OpenAI-compatible text-to-speech server: `POST /v1/audio/speech` with `model`,
//! `input`, `voice`, `response_format` (`wav` or `pcm`) and `speed`, answering with real audio
//! (silence, 16-bit mono) of `characters × audio_per_char / speed`, streamed in chunks as it is
//! "synthesized" or whole once it is done; `GET /health`.
//!
//! Streamed (the default, as Kokoro-FastAPI and OpenAI do): the first chunk `first_audio` after
//! the request, then one chunk of `chunk` audio every `chunk × rtf`, where
//! `rtf = synthesis_per_char / audio_per_char`; a WAV stream's header declares unknown sizes
//! (`0xFFFFFFFF`), as streaming encoders write it. Whole: the complete file after
//! `first_audio + characters × synthesis_per_char`, with exact sizes and `Content-Length`.
//! Raw PCM carries its rate in `x-sample-rate`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut as _, BytesMut};
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::paced::{self, AnyBody, PacedBody, Script};
use crate::server::{self, ConnHandle, Counted};
use crate::wav;

/// The simulated server's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsHttpSimConfig {
    /// The models and the voices each offers.
    pub voices: Vec<(String, Vec<String>)>,
    /// Audio per character of input (at speed 1). Default 60 ms.
    pub audio_per_char: Duration,
    /// Synthesis time per character. Default 3 ms (real-time factor 0.05).
    pub synthesis_per_char: Duration,
    /// Time to the first audio chunk (streamed) or added to the synthesis (whole). Default
    /// 50 ms.
    pub first_audio: Duration,
    /// Stream the audio in chunks (`Transfer-Encoding: chunked`) as it is made. Default on.
    pub stream: bool,
    /// Audio per streamed chunk. Default 200 ms.
    pub chunk: Duration,
    /// Samples per second. Default 24,000 (OpenAI's `pcm`).
    pub sample_rate: u32,
    /// Send `x-sample-rate` with raw PCM. Default on.
    pub rate_header: bool,
}

impl Default for TtsHttpSimConfig {
    fn default() -> Self {
        Self {
            voices: vec![
                (
                    "kokoro".to_owned(),
                    vec!["af_heart".to_owned(), "am_adam".to_owned()],
                ),
                (
                    "tts-1".to_owned(),
                    vec!["alloy".to_owned(), "echo".to_owned()],
                ),
            ],
            audio_per_char: Duration::from_millis(60),
            synthesis_per_char: Duration::from_millis(3),
            first_audio: Duration::from_millis(50),
            stream: true,
            chunk: Duration::from_millis(200),
            sample_rate: 24_000,
            rate_header: true,
        }
    }
}

/// A running simulated TTS HTTP server.
#[derive(Debug)]
pub struct TtsHttpServer {
    inner: Counted,
}

impl TtsHttpServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// `http://127.0.0.1:PORT/v1` (the base URL, as OpenAI SDKs take it).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr())
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.inner.requests()
    }

    /// Stops gracefully.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Starts a simulated TTS HTTP server on `127.0.0.1:0`.
pub async fn serve(config: TtsHttpSimConfig) -> std::io::Result<TtsHttpServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts it on a listener the caller bound (inside a tokio runtime).
pub fn serve_on(listener: TcpListener, config: TtsHttpSimConfig) -> TtsHttpServer {
    TtsHttpServer {
        inner: server::spawn_counted(listener, config, server::Transport::default(), handle),
    }
}

fn error(status: u16, message: String) -> Response<AnyBody> {
    let body = json!({"error": {"message": message, "type": "invalid_request_error"}}).to_string();
    paced::response(status, "application/json", AnyBody::full(body))
}

async fn handle(
    config: Arc<TtsHttpSimConfig>,
    requests: Arc<AtomicU64>,
    request: Request<Incoming>,
    conn: ConnHandle,
) -> Response<AnyBody> {
    let arrival = Instant::now();
    requests.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && path == "/health" {
        return paced::response(200, "application/json", AnyBody::full(r#"{"status":"ok"}"#));
    }
    if request.method() != Method::POST || path != "/v1/audio/speech" {
        return error(404, format!("no route for {} {path}", request.method()));
    }
    let Some(body) = paced::read_body(request.into_body()).await else {
        return error(400, "unreadable body".to_owned());
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "the body is not json".to_owned());
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    let (model, voice, input) = (text("model"), text("voice"), text("input"));
    let Some((_, voices)) = config.voices.iter().find(|(m, _)| m == model) else {
        return error(404, format!("Model '{model}' not found"));
    };
    if !voices.iter().any(|v| v == voice) {
        return error(
            400,
            format!("Voice '{voice}' is not available for model '{model}'"),
        );
    }
    if input.trim().is_empty() {
        return error(400, "input must not be empty".to_owned());
    }
    let format = body
        .get("response_format")
        .and_then(Value::as_str)
        .unwrap_or("wav");
    let wav = match format {
        "wav" => true,
        "pcm" => false,
        other => {
            return error(
                400,
                format!("unsupported response_format '{other}' (wav, pcm)"),
            )
        }
    };
    let speed = body.get("speed").and_then(Value::as_f64).unwrap_or(1.0);
    if !(0.25..=4.0).contains(&speed) {
        return error(400, "speed must be between 0.25 and 4.0".to_owned());
    }
    let chars = input.chars().count() as u32;
    let audio = (config.audio_per_char * chars).div_f64(speed);
    let rate = u64::from(config.sample_rate);
    let samples = (audio.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
    let content_type = if wav { "audio/wav" } else { "audio/pcm" };
    let mut response = if config.stream {
        let per_chunk = (config.chunk.as_nanos() * u128::from(rate) / 1_000_000_000).max(1) as u64;
        let chunks = samples.div_ceil(per_chunk).max(1);
        let rtf = config.synthesis_per_char.as_secs_f64() / config.audio_per_char.as_secs_f64();
        let script = Audio {
            wav,
            rate: config.sample_rate,
            samples,
            per_chunk,
        };
        let body = PacedBody::new(
            script,
            conn,
            u32::try_from(chunks).unwrap_or(u32::MAX),
            arrival + config.first_audio,
            config.chunk.mul_f64(rtf / speed),
            None,
        );
        paced::response(200, content_type, AnyBody::paced(body))
    } else {
        crate::precise::sleep_until(
            arrival + config.first_audio + config.synthesis_per_char * chars,
        )
        .await;
        let data = usize::try_from(samples * 2).unwrap_or(usize::MAX);
        let mut out = BytesMut::with_capacity(44 + data);
        if wav {
            wav::header(&mut out, config.sample_rate, Some(data as u32));
        }
        out.resize(out.len() + data, 0);
        paced::response(200, content_type, AnyBody::full(out.freeze()))
    };
    if !wav && config.rate_header {
        response
            .headers_mut()
            .insert("x-sample-rate", http::HeaderValue::from(config.sample_rate));
    }
    response
}

/// A streamed audio body: the WAV header (unknown sizes) with the first chunk, then chunks of
/// `per_chunk` samples of silence, the last one shorter.
struct Audio {
    wav: bool,
    rate: u32,
    samples: u64,
    per_chunk: u64,
}

impl Script for Audio {
    fn head(&mut self, out: &mut BytesMut) {
        if self.wav {
            wav::header(out, self.rate, None);
        }
    }

    fn item(&mut self, i: u32, out: &mut BytesMut) {
        let start = u64::from(i) * self.per_chunk;
        let n = self.per_chunk.min(self.samples.saturating_sub(start));
        out.put_bytes(0, usize::try_from(n * 2).unwrap_or(0));
    }

    fn tail(&mut self, _out: &mut BytesMut) {}
}
