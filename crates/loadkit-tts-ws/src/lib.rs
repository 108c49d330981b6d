//! Text-to-speech over WebSocket for loadkit: each request is one listener's session reading
//! a document, with its audio played in real time by a simulated player.
//!
//! - [`TtsWsClient`]: the common document-reader protocol by default (`synthesize` batches out;
//!   `status` messages `queued` / `processing` / `done` and each block's audio back, as a binary
//!   frame after its `done` or base64 inside it, WAV or raw PCM), other servers through
//!   templates, rules and pointers as in `ws-chat`.
//! - The player requests blocks in batches (`prefetch`), the next when the audio left to play
//!   falls below `refill_below`, and counts an **underrun** whenever the next block was not
//!   there when the audio before it ran out.
//! - [`protocol::TTS_WS`]: `--protocol tts-ws` for front ends.
//!
//! # Example
//!
//! ```
//! use loadkit_tts_ws::{TtsRequest, TtsWsClient, TtsWsConfig};
//!
//! let mut config = TtsWsConfig::new("ws://127.0.0.1:8000/ws/tts");
//! config.blocks = 30;
//! let client = TtsWsClient::new(config).unwrap();
//! let batch = client.render(&TtsRequest { seq: 0, user: None }, "doc-1", 0..2);
//! assert!(batch.starts_with(r#"{"type":"synthesize","document_id":"doc-1","model":"kokoro","voice":"af_heart","blocks":[{"index":0,"text":""#));
//! assert_eq!(client.document_id(3), client.document_id(3));
//! assert_ne!(client.document_id(3), client.document_id(4));
//! ```
//!
//! # Invariants
//!
//! - The player's arithmetic runs on `tokio`'s clock (the engine's), so sessions are timed
//!   the same way as every other request and tests can run on the paused clock.
//! - Audio durations come from the samples (WAV header, PCM format), never from byte guesses.
//! - Depends on loadkit-core, loadkit-http (health check), loadkit-sse (pointers, the uuid)
//!   and loadkit-ws (connections).

mod client;
mod config;
mod message;
mod player;
pub mod protocol;

pub use client::{metric, TtsRequest, TtsWsClient};
pub use config::{
    default_voice, AudioFormat, Delivery, TextSource, TtsConfigError, TtsWsConfig,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_VOICES,
};
pub use message::{DEFAULT_BLOCK, DEFAULT_MESSAGE};
