//! `AsrClient`: one request is one audio file uploaded as multipart/form-data and its
//! transcript read back: the upload time, the latency, the real-time factor and, when the
//! expected words are known, the word error rate.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Uri};
use loadkit_core::{Client, Probe, RequestError};
use loadkit_http::{HttpClient, HttpConfig};
use loadkit_sse::JsonPointer;
use tokio::time::Instant;

use crate::upload::{AudioFile, Form};
use crate::wer::{normalize, word_edits};

/// The path appended to a base URL (`http://host/v1`).
pub const TRANSCRIPTIONS_PATH: &str = "/audio/transcriptions";

/// The largest transcript response read: 1 MiB.
pub const MAX_RESPONSE: usize = 1 << 20;

/// The names under which a request's values are recorded.
pub mod metric {
    /// `sent` → the body's last chunk taken by the connection (a span).
    pub const UPLOAD: &str = "upload";
    /// Latency / audio duration (a ratio sample, WAV files only).
    pub const RTF: &str = "rtf";
    /// One request's word error rate (a ratio sample, when its transcript is expected).
    pub const WER: &str = "wer";
    /// Word edits, summed (tally).
    pub const WER_EDITS: &str = "asr_wer_edits";
    /// Reference words, summed (tally).
    pub const WER_WORDS: &str = "asr_wer_words";
    /// Requests whose transcript was compared (tally).
    pub const WER_REQUESTS: &str = "asr_wer_requests";
    /// Audio uploaded, in milliseconds (tally, WAV files only).
    pub const AUDIO_MS: &str = "asr_audio_ms";
}

/// Everything an [`AsrClient`] needs.
#[derive(Debug, Clone)]
pub struct AsrConfig {
    /// A base URL (`http://host:9000/v1`, or a bare `http://host:9000`), to which
    /// `/audio/transcriptions` is appended, or any other endpoint URL, used as it is.
    pub url: String,
    /// The `model` field (omitted when `None`).
    pub model: Option<String>,
    /// The `language` field (omitted when `None`).
    pub language: Option<String>,
    /// The `response_format` field (omitted when `None`; `json` gives `{"text": ...}`,
    /// `text` a plain-text body).
    pub response_format: Option<String>,
    /// Other form fields, sent before the file.
    pub form_fields: Vec<(String, String)>,
    /// The file's field name. Default `file`.
    pub file_field: String,
    /// Where a JSON response's transcript is. Default `/text`.
    pub transcript_pointer: String,
    /// The files, uploaded in turn (request `n` sends file `n mod len`).
    pub audio: Vec<AudioFile>,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Seed of the multipart boundary.
    pub seed: u64,
}

impl AsrConfig {
    /// OpenAI's shape at `url`: model `whisper-1`, `response_format` `json`, the file in `file`,
    /// the transcript at `/text`; no audio yet.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: Some("whisper-1".to_owned()),
            language: None,
            response_format: Some("json".to_owned()),
            form_fields: Vec::new(),
            file_field: "file".to_owned(),
            transcript_pointer: "/text".to_owned(),
            audio: Vec::new(),
            api_key: None,
            headers: Vec::new(),
            http: HttpConfig::default(),
            seed: 42,
        }
    }

    /// The endpoint URL.
    ///
    /// ```
    /// use loadkit_asr_multipart::AsrConfig;
    ///
    /// let url = |u: &str| AsrConfig::new(u).endpoint_url().unwrap();
    /// assert_eq!(url("http://127.0.0.1:9000/v1"), "http://127.0.0.1:9000/v1/audio/transcriptions");
    /// assert_eq!(url("http://127.0.0.1:9000"), "http://127.0.0.1:9000/audio/transcriptions");
    /// assert_eq!(url("http://127.0.0.1:9000/transcribe?lang=en"), "http://127.0.0.1:9000/transcribe?lang=en");
    /// ```
    ///
    /// # Errors
    ///
    /// Not an absolute `http(s)` URL.
    pub fn endpoint_url(&self) -> Result<String, AsrConfigError> {
        let uri =
            loadkit_http::parse_url(&self.url).map_err(|e| AsrConfigError::Url(e.to_string()))?;
        let path = uri.path().trim_end_matches('/');
        let path = if path.is_empty() || path.ends_with("/v1") {
            format!("{path}{TRANSCRIPTIONS_PATH}")
        } else {
            path.to_owned()
        };
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", |a| a.as_str());
        Ok(match uri.query() {
            Some(query) => format!("{scheme}://{authority}{path}?{query}"),
            None => format!("{scheme}://{authority}{path}"),
        })
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsrConfigError {
    /// The URL.
    #[error("invalid url: {0}")]
    Url(String),
    /// No audio to upload.
    #[error("no audio to upload")]
    NoAudio,
    /// The transcript pointer does not parse.
    #[error("transcript pointer: {0}")]
    Pointer(String),
    /// A header, the API key or an HTTP setting.
    #[error("{0}")]
    Http(String),
}

/// One request: which file to upload (its index in the configured audio, wrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsrRequest {
    /// The file.
    pub file: usize,
}

/// A file ready to send: its body, duration and expected words.
#[derive(Debug)]
struct Upload {
    body: Bytes,
    duration: Option<Duration>,
    expected: Option<Arc<[String]>>,
}

/// A speech-to-text client by multipart upload (OpenAI's `/v1/audio/transcriptions`, faster-
/// whisper servers, FastAPI endpoints).
///
/// Milestones: [`metric::UPLOAD`] when the connection took the body's last chunk (see
/// [`HttpClient::send_upload`]), the first byte at the response head, the end at the body's
/// end. [`metric::RTF`] = the request's latency / the file's duration (WAV files). With an
/// expected transcript, the word error rate after [`normalize`](crate::normalize):
/// [`metric::WER`] per request and the edits and words as tallies, from which the run's WER
/// is total edits / total words.
///
/// **Failures.** A refused status → `http_status` with the server's message (`HTTP 503: Too
/// many concurrent requests`); a JSON answer with no string at the transcript pointer →
/// `protocol`; transport failures are loadkit-http's.
pub struct AsrClient {
    http: HttpClient,
    uri: Uri,
    headers: HeaderMap,
    uploads: Vec<Upload>,
    pointer: JsonPointer,
}

impl fmt::Debug for AsrClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsrClient")
            .field("uri", &self.uri)
            .field("files", &self.uploads.len())
            .finish_non_exhaustive()
    }
}

impl AsrClient {
    /// A client for `config`, every file's body built now.
    ///
    /// # Errors
    ///
    /// An invalid URL, header, API key, pointer or HTTP setting, or no audio.
    pub fn new(config: AsrConfig) -> Result<Self, AsrConfigError> {
        if config.audio.is_empty() {
            return Err(AsrConfigError::NoAudio);
        }
        let url = config.endpoint_url()?;
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| AsrConfigError::Url(e.to_string()))?;
        let pointer = JsonPointer::parse(&config.transcript_pointer)
            .map_err(|e| AsrConfigError::Pointer(e.to_string()))?;
        let mut fields = Vec::new();
        for (name, value) in [
            ("model", &config.model),
            ("language", &config.language),
            ("response_format", &config.response_format),
        ] {
            if let Some(v) = value {
                fields.push((name.to_owned(), v.clone()));
            }
        }
        fields.extend(config.form_fields.iter().cloned());
        let mut seed = config.seed;
        let mut form = Form {
            fields,
            file_field: config.file_field.clone(),
            boundary: boundary(seed),
        };
        // A boundary that occurs in a file would cut it short: pick another.
        while config.audio.iter().any(|a| form.clashes(a)) {
            seed = seed.wrapping_add(1);
            form.boundary = boundary(seed);
        }
        let uploads = config
            .audio
            .iter()
            .map(|audio| Upload {
                body: form.body(audio),
                duration: audio.duration,
                expected: audio.expected.clone(),
            })
            .collect();
        let mut headers = HeaderMap::new();
        let content_type = HeaderValue::from_str(&form.content_type())
            .map_err(|e| AsrConfigError::Http(e.to_string()))?;
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/plain"),
        );
        if let Some(key) = &config.api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.trim())).map_err(|_| {
                    AsrConfigError::Http("invalid api key: not allowed in a header".into())
                })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        loadkit_http::insert_headers(&config.headers, &mut headers)
            .map_err(|e| AsrConfigError::Http(e.to_string()))?;
        let http = HttpClient::new(config.http).map_err(|e| AsrConfigError::Http(e.to_string()))?;
        Ok(Self {
            http,
            uri,
            headers,
            uploads,
            pointer,
        })
    }

    /// The endpoint URL.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// Files uploaded in turn.
    pub fn files(&self) -> usize {
        self.uploads.len()
    }

    /// The transcript in a response `body`.
    fn transcript(&self, body: &[u8], json: bool) -> Result<String, RequestError> {
        if !json {
            return Ok(String::from_utf8_lossy(body).into_owned());
        }
        let found = self.pointer.find_raw(body).map_err(|e| {
            RequestError::protocol(format!(
                "malformed transcript response: {}",
                one_line_json(&e)
            ))
        })?;
        found
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .ok_or_else(|| {
                RequestError::protocol(format!(
                    "no transcript string at {} in the response",
                    self.pointer.as_str()
                ))
            })
    }
}

fn one_line_json(e: &serde_json::Error) -> String {
    loadkit_sse::message::without_position(e)
}

/// A boundary unlikely to occur in audio: `loadkit-` and 24 hex digits from `seed`.
fn boundary(seed: u64) -> String {
    let mut x = seed ^ 0x6c6f_6164_6b69_7421;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    format!("loadkit-{:016x}{:08x}", next(), next() as u32)
}

impl Client for AsrClient {
    type Request = AsrRequest;
    type Session = ();

    async fn call(
        &self,
        _: &mut (),
        request: AsrRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let upload = &self.uploads[request.file % self.uploads.len()];
        let started = Instant::now();
        let mut http_request = http::Request::new(upload.body.clone());
        *http_request.method_mut() = Method::POST;
        *http_request.uri_mut() = self.uri.clone();
        *http_request.headers_mut() = self.headers.clone();
        let response = self
            .http
            .send_upload(http_request, metric::UPLOAD, probe)
            .await?;
        if !response.status.is_success() {
            return Err(response.error(probe).await);
        }
        let json = response
            .media_type()
            .is_some_and(|m| m.eq_ignore_ascii_case("application/json") || m.ends_with("+json"));
        let body = response.body.collect(MAX_RESPONSE, probe).await?;
        probe.mark_end();
        let transcript = self.transcript(&body, json)?;
        if let Some(duration) = upload.duration.filter(|d| !d.is_zero()) {
            probe.tally(
                metric::AUDIO_MS,
                u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            );
            probe.sample_ratio(
                metric::RTF,
                started.elapsed().as_secs_f64() / duration.as_secs_f64(),
            );
        }
        if let Some(expected) = upload.expected.as_deref().filter(|e| !e.is_empty()) {
            let edits = word_edits(expected, &normalize(&transcript));
            probe.tally(metric::WER_EDITS, edits);
            probe.tally(metric::WER_WORDS, expected.len() as u64);
            probe.tally(metric::WER_REQUESTS, 1);
            probe.sample_ratio(metric::WER, edits as f64 / expected.len() as f64);
        }
        Ok(())
    }
}
