//! `TtsWsConfig`: what a TTS-over-WebSocket session sends and how its player behaves;
//! `TtsConfigError` when a setting cannot work; the built-in model → voice table.

use std::sync::Arc;
use std::time::Duration;

use loadkit_core::audio::PcmFormat;
use loadkit_core::prompt::PromptSource;

/// A model's default voice, for the models whose voice slugs people do not remember.
pub const DEFAULT_VOICES: &[(&str, &str)] = &[
    ("kokoro", "af_heart"),
    ("piper", "en_US-lessac-medium"),
    ("espeak-ng", "en"),
    ("tts-1", "alloy"),
    ("tts-1-hd", "alloy"),
    ("gpt-4o-mini-tts", "alloy"),
    ("xtts-v2", "Claribel Dervla"),
];

/// The default voice of `model`, from [`DEFAULT_VOICES`].
pub fn default_voice(model: &str) -> Option<&'static str> {
    DEFAULT_VOICES
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(model))
        .map(|(_, v)| *v)
}

/// How a block's audio arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// A binary frame right after the block's `done` message. The default.
    #[default]
    Binary,
    /// Base64 text in the `done` message (at `audio_at`).
    Base64,
}

/// The audio container, which says how long a block plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    /// A WAV file per block: its header gives the format and the samples' length.
    Wav,
    /// Raw samples in this format.
    Pcm(PcmFormat),
}

/// Where blocks' text comes from.
#[derive(Debug, Clone)]
pub enum TextSource {
    /// Block `i` of session `s` is line `(s × blocks + i) mod lines` (a `--text-file`).
    Lines(Arc<[String]>),
    /// Block `i` of session `s` is prompt number `s × blocks + i` (synthetic words by
    /// default: every block different, so a text cache cannot flatter the server).
    Prompts(PromptSource),
}

/// Everything the TTS WebSocket client needs; [`TtsWsConfig::new`] gives the defaults, which
/// speak the common document-reader protocol.
#[derive(Debug, Clone)]
pub struct TtsWsConfig {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// Extra upgrade headers.
    pub headers: Vec<(String, String)>,
    /// How a `wss://` server's certificate is checked. Default: against the Mozilla roots.
    pub tls: loadkit_http::tls::TlsOptions,
    /// The model.
    pub model: String,
    /// The voice.
    pub voice: String,
    /// Blocks per document (session).
    pub blocks: usize,
    /// Blocks requested per batch.
    pub prefetch: usize,
    /// The next batch is requested when less audio than this is left to play.
    pub refill_below: Duration,
    /// The batch message template (`None`: [`DEFAULT_MESSAGE`](crate::DEFAULT_MESSAGE)).
    pub message: Option<String>,
    /// One block inside the batch's `{{blocks}}` (`None`:
    /// [`DEFAULT_BLOCK`](crate::DEFAULT_BLOCK)).
    pub block: Option<String>,
    /// A status message (rule). Default `/type=status`.
    pub status_when: String,
    /// A status message that says its block is done (rule). Default `/status=done`.
    pub done_when: String,
    /// An error message (rule). Default `/type=error`.
    pub error_when: String,
    /// Where an error message's text is. Default `/message`.
    pub error_text: String,
    /// Where a message's document id is. Default `/document_id`.
    pub document_at: String,
    /// Where a status message's block index is. Default `/index`.
    pub index_at: String,
    /// Where a done message states its audio's duration in ms (checked against the samples).
    /// Default `/audio_duration_ms`.
    pub duration_at: String,
    /// Binary frames or base64.
    pub delivery: Delivery,
    /// Where base64 audio is in a done message. Default `/audio`.
    pub audio_at: String,
    /// WAV or raw PCM.
    pub format: AudioFormat,
    /// Blocks' text.
    pub text: TextSource,
    /// Seed of the document ids.
    pub seed: u64,
    /// Deadline for opening the connection.
    pub connect_timeout: Duration,
    /// Deadline for the first message after a batch is requested.
    pub first_byte_timeout: Duration,
    /// Deadline between two messages while a batch is in flight.
    pub idle_timeout: Duration,
    /// The largest message accepted (a block's audio is one message).
    pub max_message_size: usize,
}

/// The default largest message: 16 MiB, a few minutes of 24 kHz audio in one block.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

impl TtsWsConfig {
    /// The defaults for `url`: model `kokoro` with voice `af_heart`, 10 blocks of 12 synthetic
    /// words, batches of 8, refill below 10 s, binary WAV.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            headers: Vec::new(),
            tls: loadkit_http::tls::TlsOptions::default(),
            model: "kokoro".to_owned(),
            voice: "af_heart".to_owned(),
            blocks: 10,
            prefetch: 8,
            refill_below: Duration::from_secs(10),
            message: None,
            block: None,
            status_when: "/type=status".to_owned(),
            done_when: "/status=done".to_owned(),
            error_when: "/type=error".to_owned(),
            error_text: "/message".to_owned(),
            document_at: "/document_id".to_owned(),
            index_at: "/index".to_owned(),
            duration_at: "/audio_duration_ms".to_owned(),
            delivery: Delivery::Binary,
            audio_at: "/audio".to_owned(),
            format: AudioFormat::Wav,
            text: TextSource::Prompts(PromptSource::Words {
                words: 12,
                seed: 42,
            }),
            seed: 42,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TtsConfigError {
    /// The URL or a header (from loadkit-ws's checks).
    #[error(transparent)]
    Ws(#[from] loadkit_ws::WsConfigError),
    /// A template does not parse or does not render JSON.
    #[error("{setting}: {reason}")]
    Template {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A rule or pointer does not parse.
    #[error("{setting}: {reason}")]
    Rule {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A count or duration that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// No text to read.
    #[error("the text file has no non-empty line")]
    NoText,
}
