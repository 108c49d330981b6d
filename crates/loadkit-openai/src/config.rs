//! `OpenAiConfig`: the target URL, the endpoint, sampling parameters and HTTP settings, with
//! URL resolution (`http://host/v1` or a full endpoint URL) and typed configuration errors.

use std::fmt;

use loadkit_http::HttpConfig;

/// Which OpenAI-compatible endpoint to call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// `/chat/completions`: `messages` in, `choices[0].delta.content` out.
    #[default]
    Chat,
    /// `/completions`: `prompt` in, `choices[0].text` out.
    Completions,
}

impl Endpoint {
    /// The path appended to a base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
        })
    }
}

/// Everything an [`OpenAiClient`](crate::OpenAiClient) needs to know.
///
/// `url` is either a base URL as the OpenAI SDKs take it (`http://host:8000/v1`, to which the
/// endpoint path is appended) or a full endpoint URL (ending in `/chat/completions` or
/// `/completions`, used as is). A query string is kept.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL or full endpoint URL.
    pub url: String,
    /// Which endpoint (and so which request and response shape).
    pub endpoint: Endpoint,
    /// `model` sent in every request (omitted when `None`; single-model servers accept that).
    pub model: Option<String>,
    /// `max_tokens` sent in every request.
    pub max_tokens: Option<u32>,
    /// `temperature` (default 0, for reproducible output lengths).
    pub temperature: f64,
    /// `seed` sent in every request.
    pub seed: Option<u64>,
    /// Ask for a streamed (SSE) response. Default `true`.
    pub stream: bool,
    /// When streaming, send `"stream_options": {"include_usage": true}` so the server reports
    /// token usage. Default `true`.
    pub include_usage: bool,
    /// Sent as `Authorization: Bearer ...`.
    pub api_key: Option<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Timeouts, pooling and size limits.
    pub http: HttpConfig,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("seed", &self.seed)
            .field("stream", &self.stream)
            .field("include_usage", &self.include_usage)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("http", &self.http)
            .finish()
    }
}

impl OpenAiConfig {
    /// A streaming chat configuration for `url` with every other setting at its default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            endpoint: Endpoint::Chat,
            model: None,
            max_tokens: None,
            temperature: 0.0,
            seed: None,
            stream: true,
            include_usage: true,
            api_key: None,
            headers: Vec::new(),
            http: HttpConfig::default(),
        }
    }

    /// The URL requests go to.
    ///
    /// ```
    /// use loadkit_openai::{Endpoint, OpenAiConfig};
    ///
    /// let mut config = OpenAiConfig::new("http://127.0.0.1:8000/v1");
    /// assert_eq!(config.endpoint_url().unwrap(), "http://127.0.0.1:8000/v1/chat/completions");
    /// config.endpoint = Endpoint::Completions;
    /// assert_eq!(config.endpoint_url().unwrap(), "http://127.0.0.1:8000/v1/completions");
    /// config.url = "https://example.com/openai/v1/completions?api-version=1".into();
    /// assert_eq!(config.endpoint_url().unwrap(), config.url);
    /// ```
    pub fn endpoint_url(&self) -> Result<String, OpenAiConfigError> {
        let uri = loadkit_http::parse_url(&self.url).map_err(|e| match e {
            loadkit_http::HttpConfigError::InvalidUrl { url, reason } => {
                OpenAiConfigError::InvalidUrl { url, reason }
            }
            other => OpenAiConfigError::Http(other),
        })?;
        let path = uri.path().trim_end_matches('/');
        let given = if path.ends_with(Endpoint::Chat.path()) {
            Some(Endpoint::Chat)
        } else if path.ends_with(Endpoint::Completions.path()) {
            Some(Endpoint::Completions)
        } else {
            None
        };
        let path = match given {
            Some(endpoint) if endpoint != self.endpoint => {
                return Err(OpenAiConfigError::EndpointMismatch {
                    url: self.url.clone(),
                    endpoint: self.endpoint,
                })
            }
            Some(_) => path.to_owned(),
            None => format!("{path}{}", self.endpoint.path()),
        };
        let scheme = uri.scheme_str().unwrap_or("http");
        let authority = uri.authority().map_or("", |a| a.as_str());
        Ok(match uri.query() {
            Some(query) => format!("{scheme}://{authority}{path}?{query}"),
            None => format!("{scheme}://{authority}{path}"),
        })
    }
}

/// The configuration cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAiConfigError {
    /// The URL does not parse or is not an absolute `http(s)` URL with a host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A full endpoint URL names the other endpoint than the configured one.
    #[error(
        "the url {url:?} is not a {endpoint} endpoint (use a base url such as http://host:8000/v1)"
    )]
    EndpointMismatch {
        /// The URL as given.
        url: String,
        /// The configured endpoint.
        endpoint: Endpoint,
    },
    /// A header name or value is not valid HTTP.
    #[error(transparent)]
    InvalidHeader(#[from] loadkit_http::HeaderError),
    /// The API key cannot be sent in a header.
    #[error("invalid api key: it contains characters not allowed in a header")]
    InvalidApiKey,
    /// The temperature is negative or not a number.
    #[error("invalid temperature {0}: it must be a finite number >= 0")]
    InvalidTemperature(f64),
    /// An extra body field would override one the client sets itself.
    #[error("extra body field {0:?} is set by the client itself")]
    ReservedField(String),
    /// The tool-calling settings are unusable.
    #[error("invalid tools: {0}")]
    InvalidTools(&'static str),
    /// A text-to-speech setting is unusable.
    #[error("invalid speech setting: {0}")]
    InvalidSpeech(&'static str),
    /// The HTTP settings are unusable.
    #[error(transparent)]
    Http(#[from] loadkit_http::HttpConfigError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: &str, endpoint: Endpoint) -> Result<String, OpenAiConfigError> {
        OpenAiConfig {
            endpoint,
            ..OpenAiConfig::new(url)
        }
        .endpoint_url()
    }

    #[test]
    fn base_and_full_urls() {
        for (given, endpoint, expect) in [
            (
                "http://h:8000/v1",
                Endpoint::Chat,
                "http://h:8000/v1/chat/completions",
            ),
            (
                "http://h:8000/v1/",
                Endpoint::Chat,
                "http://h:8000/v1/chat/completions",
            ),
            (
                "http://h:8000",
                Endpoint::Completions,
                "http://h:8000/completions",
            ),
            (
                "https://h/v1/chat/completions",
                Endpoint::Chat,
                "https://h/v1/chat/completions",
            ),
            (
                "https://h/v1/chat/completions/",
                Endpoint::Chat,
                "https://h/v1/chat/completions",
            ),
            (
                "http://h/v1/completions",
                Endpoint::Completions,
                "http://h/v1/completions",
            ),
            (
                "http://h/x/v1?key=1",
                Endpoint::Chat,
                "http://h/x/v1/chat/completions?key=1",
            ),
            (
                " http://h:1/v1 ",
                Endpoint::Chat,
                "http://h:1/v1/chat/completions",
            ),
        ] {
            assert_eq!(url(given, endpoint).as_deref(), Ok(expect), "{given}");
        }
    }

    #[test]
    fn invalid_urls_are_typed_errors() {
        for bad in [
            "",
            "localhost:8000/v1",
            "ftp://h/v1",
            "http://",
            "/v1",
            "http://h:99999/v1",
            "ht tp://x",
        ] {
            assert!(
                matches!(
                    url(bad, Endpoint::Chat),
                    Err(OpenAiConfigError::InvalidUrl { .. })
                ),
                "{bad}: {:?}",
                url(bad, Endpoint::Chat)
            );
        }
        assert!(matches!(
            url("http://h/v1/chat/completions", Endpoint::Completions),
            Err(OpenAiConfigError::EndpointMismatch { .. })
        ));
        assert!(matches!(
            url("http://h/v1/completions", Endpoint::Chat),
            Err(OpenAiConfigError::EndpointMismatch { .. })
        ));
    }

    #[test]
    fn debug_redacts_the_api_key() {
        let config = OpenAiConfig {
            api_key: Some("sk-secret".into()),
            ..OpenAiConfig::new("http://h/v1")
        };
        assert!(!format!("{config:?}").contains("sk-secret"));
    }
}
