//! `SpeechClient`: OpenAI-compatible text to speech (`POST /v1/audio/speech`), streamed or
//! whole: time to the first audio byte, the audio's duration counted from its samples (WAV
//! header, or raw PCM at the server's `x-sample-rate` or the configured rate), and the
//! real-time factor.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use loadkit_core::audio::{PcmFormat, WavHeader};
use loadkit_core::{Client, Probe, RequestError};
use loadkit_http::{HttpClient, HttpConfig};
use serde::Serialize;
use tokio::time::Instant;

use crate::OpenAiConfigError;

/// The path appended to a base URL.
pub const SPEECH_PATH: &str = "/audio/speech";

/// The names under which a speech request's values are recorded.
pub mod metric {
    /// `sent` → the first byte of audio (a span).
    pub const TTFA: &str = loadkit_core::TTFA;
    /// Total time / audio duration (a ratio sample).
    pub const RTF: &str = "rtf";
    /// Audio received in milliseconds (a tally).
    pub const AUDIO_MS: &str = "tts_audio_ms";
}

/// The audio format asked for (`response_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpeechFormat {
    /// A WAV file (or stream): its header says how to count the samples. The default.
    #[default]
    Wav,
    /// Raw 16-bit little-endian mono samples at the server's `x-sample-rate`, else the
    /// configured rate.
    Pcm,
}

impl SpeechFormat {
    /// The `response_format` value.
    pub fn name(self) -> &'static str {
        match self {
            SpeechFormat::Wav => "wav",
            SpeechFormat::Pcm => "pcm",
        }
    }
}

/// Everything a [`SpeechClient`] needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpeechConfig {
    /// A base URL (`http://host:8880/v1`, to which `/audio/speech` is appended) or the full
    /// endpoint URL (ending in `/audio/speech`).
    pub url: String,
    /// `model`.
    pub model: String,
    /// `voice`.
    pub voice: String,
    /// `response_format`.
    pub format: SpeechFormat,
    /// `speed` (omitted when `None`).
    pub speed: Option<f64>,
    /// The PCM rate when the server sends no `x-sample-rate` (OpenAI's `pcm` is 24 kHz).
    pub sample_rate: u32,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// HTTP settings.
    pub http: HttpConfig,
}

impl SpeechConfig {
    /// WAV from `kokoro` with voice `af_heart` at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: "kokoro".to_owned(),
            voice: "af_heart".to_owned(),
            format: SpeechFormat::Wav,
            speed: None,
            sample_rate: 24_000,
            api_key: None,
            headers: Vec::new(),
            http: HttpConfig::default(),
        }
    }

    /// The endpoint URL requests go to.
    ///
    /// ```
    /// use loadkit_openai::SpeechConfig;
    ///
    /// assert_eq!(
    ///     SpeechConfig::new("http://127.0.0.1:8880/v1").endpoint_url().unwrap(),
    ///     "http://127.0.0.1:8880/v1/audio/speech"
    /// );
    /// let full = "https://tts.example.com/v1/audio/speech?key=1";
    /// assert_eq!(SpeechConfig::new(full).endpoint_url().unwrap(), full);
    /// ```
    ///
    /// # Errors
    ///
    /// The URL is not an absolute `http(s)` URL.
    pub fn endpoint_url(&self) -> Result<String, OpenAiConfigError> {
        let uri = loadkit_http::parse_url(&self.url).map_err(|e| match e {
            loadkit_http::HttpConfigError::InvalidUrl { url, reason } => {
                OpenAiConfigError::InvalidUrl { url, reason }
            }
            other => OpenAiConfigError::Http(other),
        })?;
        let path = uri.path().trim_end_matches('/');
        let path = if path.ends_with(SPEECH_PATH) {
            path.to_owned()
        } else {
            format!("{path}{SPEECH_PATH}")
        };
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", |a| a.as_str());
        Ok(match uri.query() {
            Some(query) => format!("{scheme}://{authority}{path}?{query}"),
            None => format!("{scheme}://{authority}{path}"),
        })
    }
}

/// One request: the text to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechRequest {
    /// `input`.
    pub input: Arc<str>,
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f64>,
}

/// Bytes of a WAV stream's beginning kept to read its header (other chunks, such as `LIST`,
/// may come before `data`).
const WAV_HEAD: usize = 4096;

/// An OpenAI-compatible text-to-speech client (OpenAI, Kokoro-FastAPI, openedai-speech,
/// LocalAI, ...).
///
/// Milestones: the first byte at the response head; [`metric::TTFA`] at the first byte of
/// audio; the end at the body's last byte. The audio's duration is counted from its samples:
/// the WAV header's format and the data that arrived (a streamed WAV declares sizes it did not
/// know), or raw PCM frames at the rate the server states in `x-sample-rate` (else the
/// configured one). [`metric::RTF`] is the request's total time over that duration.
///
/// **Failures.** A refused status → `http_status` with the server's message; a JSON body
/// where audio was expected, audio that is not WAV, a WAV cut inside its header, or no audio
/// at all → `protocol`; transport failures are loadkit-http's.
pub struct SpeechClient {
    http: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    model: String,
    voice: String,
    format: SpeechFormat,
    speed: Option<f64>,
    sample_rate: u32,
}

impl fmt::Debug for SpeechClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpeechClient")
            .field("uri", &self.uri)
            .field("model", &self.model)
            .field("voice", &self.voice)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl SpeechClient {
    /// A client for `config`.
    ///
    /// # Errors
    ///
    /// An invalid URL, header, API key, speed or HTTP setting.
    pub fn new(config: SpeechConfig) -> Result<Self, OpenAiConfigError> {
        let url = config.endpoint_url()?;
        let uri: Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| OpenAiConfigError::InvalidUrl {
                    url,
                    reason: e.to_string(),
                })?;
        if let Some(speed) = config.speed {
            if !(speed.is_finite() && speed > 0.0) {
                return Err(OpenAiConfigError::InvalidSpeech("speed must be positive"));
            }
        }
        if config.sample_rate == 0 {
            return Err(OpenAiConfigError::InvalidSpeech(
                "sample rate must be positive",
            ));
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("audio/*"));
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                .map_err(|_| OpenAiConfigError::InvalidApiKey)?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        loadkit_http::insert_headers(&config.headers, &mut headers)?;
        Ok(Self {
            http: HttpClient::new(config.http)?,
            uri,
            headers,
            model: config.model,
            voice: config.voice,
            format: config.format,
            speed: config.speed,
            sample_rate: config.sample_rate,
        })
    }

    /// The endpoint URL.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The JSON body of `request`.
    pub fn body(&self, request: &SpeechRequest) -> Vec<u8> {
        serde_json::to_vec(&Body {
            model: &self.model,
            input: &request.input,
            voice: &self.voice,
            response_format: self.format.name(),
            speed: self.speed,
        })
        .unwrap_or_default()
    }
}

/// The audio's duration from its `head` (up to [`WAV_HEAD`] bytes) and its total size.
fn wav_duration(head: &[u8], total: u64) -> Result<Duration, RequestError> {
    match WavHeader::parse(head) {
        Ok(Some(h)) => {
            let present = total.saturating_sub(h.data_offset as u64);
            Ok(h.format
                .duration(h.data_len.map_or(present, |n| n.min(present))))
        }
        Ok(None) => Err(RequestError::protocol(
            "malformed audio: the wav stream ended inside its header",
        )),
        Err(e) => Err(RequestError::protocol(format!("malformed audio: {e}"))),
    }
}

impl Client for SpeechClient {
    type Request = SpeechRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: SpeechRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let started = Instant::now();
        let mut http_request = http::Request::new(Bytes::from(self.body(&request)));
        *http_request.method_mut() = Method::POST;
        *http_request.uri_mut() = self.uri.clone();
        *http_request.headers_mut() = self.headers.clone();
        let response = self.http.send(http_request, probe).await?;
        if !response.status.is_success() {
            return Err(response.error(probe).await);
        }
        if response
            .media_type()
            .is_some_and(|m| m.eq_ignore_ascii_case("application/json"))
        {
            let text = response.body.collect_prefix(4096, probe).await;
            return Err(RequestError::protocol(format!(
                "expected audio, got application/json: {}",
                loadkit_http::message::error_body_message(&text)
            )));
        }
        let rate = response
            .headers
            .get("x-sample-rate")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|&r| r > 0)
            .unwrap_or(self.sample_rate);
        let mut body = response.body;
        let mut head = Vec::new();
        let mut total = 0u64;
        while let Some(chunk) = body.chunk(probe).await? {
            if total == 0 {
                probe.span(metric::TTFA, probe.sent_stamp(), Duration::ZERO);
            }
            total += chunk.len() as u64;
            if self.format == SpeechFormat::Wav && head.len() < WAV_HEAD {
                let take = chunk.len().min(WAV_HEAD - head.len());
                head.extend_from_slice(&chunk[..take]);
            }
        }
        probe.mark_end();
        let duration = match self.format {
            SpeechFormat::Wav => wav_duration(&head, total)?,
            SpeechFormat::Pcm => PcmFormat::mono16(rate).duration(total),
        };
        if duration.is_zero() {
            return Err(RequestError::protocol("the response has no audio"));
        }
        probe.tally(
            metric::AUDIO_MS,
            u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        );
        probe.sample_ratio(
            metric::RTF,
            started.elapsed().as_secs_f64() / duration.as_secs_f64(),
        );
        Ok(())
    }
}
