//! Speech to text by multipart upload for loadkit: OpenAI-compatible
//! `POST /v1/audio/transcriptions` (fields `file`, `model`, optional `language` and
//! `response_format`) and any plain form-upload endpoint (its own fields, file field and
//! transcript pointer).
//!
//! - [`AsrClient`]: one request uploads one audio file and reads its transcript; measures the
//!   upload (`upload`), the latency, the real-time factor (`rtf`, from the WAV's real duration)
//!   and, when the words said are known, the word error rate (`wer`).
//! - [`normalize`], [`word_edits`], [`wer`]: the word error rate as defined in
//!   docs/protocols.md (case, punctuation and hyphens do not count; numbers are words as
//!   written).
//! - [`load`]: audio from a file or a directory, with a `.txt` beside each file as its
//!   expected transcript.
//! - [`protocol::ASR`]: `--protocol asr` for front ends.
//!
//! # Example
//!
//! ```
//! use loadkit_asr_multipart::{AsrClient, AsrConfig, AudioFile};
//! use loadkit_core::audio::{wav_bytes, PcmFormat};
//!
//! let mut config = AsrConfig::new("http://127.0.0.1:9000/v1");
//! let clip = wav_bytes(PcmFormat::mono16(16_000), &vec![0; 32_000]);
//! config.audio = vec![AudioFile::new("clip.wav", clip).expecting("Hello, world.")];
//! let client = AsrClient::new(config).unwrap();
//! assert_eq!(client.uri().path(), "/v1/audio/transcriptions");
//! assert!(AsrClient::new(AsrConfig::new("http://127.0.0.1:9000/v1")).is_err()); // no audio
//! ```
//!
//! # Invariants
//!
//! - Each file's multipart body is built once; a request sends a reference to it.
//! - Audio durations come from the WAV header, never from byte counts.
//! - Depends on loadkit-core, loadkit-http (requests, the health check) and loadkit-sse (the
//!   transcript pointer).

mod client;
pub mod protocol;
mod upload;
mod wer;

pub use client::{
    metric, AsrClient, AsrConfig, AsrConfigError, AsrRequest, MAX_RESPONSE, TRANSCRIPTIONS_PATH,
};
pub use upload::{load, AudioFile, AudioSetError};
pub use wer::{normalize, wer, word_edits};
