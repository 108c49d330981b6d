//! Simulated AI-serving servers for tests, benchmarks and demos: they bind `127.0.0.1:0`, speak
//! the real wire protocols, and follow a script of latencies, output lengths and faults.
//!
//! | module | server |
//! |---|---|
//! | [`asr`] | OpenAI-compatible `POST /v1/audio/transcriptions` (multipart) with workers, a bounded queue (503 beyond), an upload limit (413) and bad-audio 400s |
//! | [`openai`] | OpenAI-compatible `/v1/chat/completions` and `/v1/completions`, streaming and not, with tool calling |
//! | [`ollama`] | Ollama's `/api/chat`, `/api/generate` (NDJSON or one body) and `/api/tags`, with cold loads |
//! | [`sse_app`] | a generic SSE application framed like FastAPI + sse-starlette |
//! | [`json`] | a plain JSON request/response server |
//! | [`replay`] | replays a response captured from a real server (wire samples) |
//! | [`tts_http`] | OpenAI-compatible `POST /v1/audio/speech`: WAV or PCM audio, streamed in chunks or whole |
//! | [`tts_ws`] | a text-to-speech document reader over WebSocket (`synthesize` batches in, `status` messages and WAV/PCM audio out) with a worker pool, cached mode and model/voice errors |
//! | [`ws_chat`] | a WebSocket chat application (`{"type":"chat"}` in, `token` / `done` / `error` out) on its own single-threaded event loop, with blocking prefills, keepalive and faults |
//!
//! With the `harness` feature, `harness` has what the protocol crates' integration tests share;
//! with the `tls` feature, `tls::TlsFront` puts TLS (a self-signed certificate made on the spot)
//! in front of any of them.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use loadkit_testbed::openai::{self, SimConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let server = openai::serve(SimConfig {
//!     ttft: Duration::from_millis(20),
//!     itl: Duration::from_millis(5),
//!     output_tokens: 16,
//!     ..SimConfig::default()
//! })
//! .await?;
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! assert!(server.base_url().ends_with("/v1"));
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Invariants
//!
//! - Servers only ever listen where the caller says (`127.0.0.1:0` by default): no fixed ports.
//! - Pacing is computed from the request's arrival instant, never accumulated write by write.
//! - Every fault is selected deterministically (every Nth request or a seeded fraction), so a
//!   test can assert exact counts.
//! - The library never prints: diagnostics go through `tracing`.

pub mod asr;
#[cfg(feature = "harness")]
pub mod harness;
pub mod json;
pub mod ollama;
pub mod openai;
mod paced;
mod precise;
pub mod replay;
mod server;
pub use server::{Connections, Flush, Transport};
pub mod sse_app;
#[cfg(feature = "tls")]
pub mod tls;
pub mod tts_http;
pub mod tts_ws;
mod wav;
pub mod ws_chat;
