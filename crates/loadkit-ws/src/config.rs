//! `WsChatConfig`: what the WebSocket chat client sends, which messages mean what, how long it
//! waits, and how it keeps its connections; `WsConfigError` when a setting cannot work.

use std::str::FromStr;
use std::time::Duration;

use loadkit_sse::{PointerError, TemplateError};

/// The default message template.
pub const DEFAULT_MESSAGE: &str =
    r#"{"type":"chat","prompt":"{{prompt}}","max_tokens":{{max_tokens}}}"#;

/// The default largest message accepted (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1 << 20;

/// How a user's requests use connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Connection {
    /// One WebSocket per closed-loop user (in its engine session), reused by the user's
    /// requests one after the other, as a chat app's page keeps its socket. The default.
    #[default]
    PerUser,
    /// A new WebSocket for every request, closed when it ends.
    PerRequest,
}

impl Connection {
    /// The name the CLI takes (`per-user`, `per-request`).
    pub fn name(self) -> &'static str {
        match self {
            Connection::PerUser => "per-user",
            Connection::PerRequest => "per-request",
        }
    }
}

impl FromStr for Connection {
    type Err = WsConfigError;

    /// `per-user` or `per-request`.
    fn from_str(text: &str) -> Result<Self, WsConfigError> {
        match text.trim() {
            "per-user" => Ok(Connection::PerUser),
            "per-request" => Ok(Connection::PerRequest),
            other => Err(WsConfigError::InvalidConnection(other.to_owned())),
        }
    }
}

/// Everything the WebSocket chat client needs; [`WsChatConfig::new`] gives the defaults, which
/// speak the common shape with no rule set:
///
/// ```text
/// → {"type":"chat","prompt":"...","max_tokens":128}
/// ← {"type":"token","text":"Hel"}  ...  {"type":"done","tokens_in":12,"tokens_out":64}
/// ← {"type":"error","message":"..."}
/// ```
///
/// Rules are written `POINTER=VALUE` or `POINTER` (see [`Rule`](crate::Rule)); pointers are
/// JSON pointers (`/data/text`, `""` for the whole message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsChatConfig {
    /// `ws://host:port/path?query` or `wss://...`; query parameters are part of it.
    pub url: String,
    /// Headers sent with the upgrade request (`Authorization`, `Cookie`, `Origin`, ...); the
    /// first value of a name replaces a generated header of that name (`Host`).
    pub headers: Vec<(String, String)>,
    /// How a `wss://` server's certificate is checked. Default: against the Mozilla roots.
    pub tls: loadkit_http::tls::TlsOptions,
    /// The message sent for each request: a JSON template with the placeholders of
    /// [`BodyTemplate`](loadkit_sse::BodyTemplate) (`{{prompt}}`, `{{max_tokens}}`, `{{model}}`,
    /// `{{seq}}`, `{{user}}`, `{{uuid}}`). `None`: [`DEFAULT_MESSAGE`], to which
    /// `"min_tokens":N` is added when [`min_tokens`](Self::min_tokens) is set and
    /// `"system_prompt":"..."` when a request has a system prompt. A custom template gets
    /// neither: it writes them itself (`"min_tokens":64` literally; the system prompt is one
    /// text for a run).
    pub message: Option<String>,
    /// `{{model}}`. Default empty.
    pub model: String,
    /// `{{max_tokens}}`. Default 128.
    pub max_tokens: u32,
    /// Sent as `"min_tokens"` in the default message, to force the output length. Default none.
    pub min_tokens: Option<u32>,
    /// Seed of `{{uuid}}`. Default 0.
    pub seed: u64,
    /// A message that is a token. Default `/type=token`.
    pub token_when: String,
    /// Where a token message's text is; its UTF-8 length is the content's bytes, and an empty
    /// text is no content. Default `/text`.
    pub token_text: String,
    /// The message that ends a response (its token counts are read). Default `/type=done`.
    pub end_when: String,
    /// A message that reports an error (`None`: none does). Default `/type=error`.
    pub error_when: Option<String>,
    /// Where an error message's text is. Default `/message`.
    pub error_text: String,
    /// The server-reported input token count, read from any message that has it (`None`: not
    /// read). Default `/tokens_in`.
    pub tokens_in: Option<String>,
    /// The server-reported output token count, likewise. Default `/tokens_out`.
    pub tokens_out: Option<String>,
    /// Per user, or per request. Default per user.
    pub connection: Connection,
    /// While waiting for messages, send a ping this often (`None`: never, `--no-ping`).
    /// Default 20 s, as the Python `websockets` library.
    pub ping_interval: Option<Duration>,
    /// A ping not answered within this long fails the request (`keepalive_timeout`). Default
    /// 20 s.
    pub ping_timeout: Duration,
    /// Largest message accepted; a bigger one is a `protocol` error. Default 1 MiB.
    pub max_message_size: usize,
    /// Deadline to open a connection: TCP, TLS and the upgrade. Default 10 s.
    pub connect_timeout: Duration,
    /// Deadline from sending the message to the first message back. Default 60 s.
    pub first_byte_timeout: Duration,
    /// Longest wait between two messages (pings and pongs do not count). Default 30 s.
    pub idle_timeout: Duration,
}

impl Default for WsChatConfig {
    /// The defaults, with an empty URL (which [`WsChatClient::new`](crate::WsChatClient::new)
    /// refuses): use [`WsChatConfig::new`].
    fn default() -> Self {
        Self {
            url: String::new(),
            headers: Vec::new(),
            tls: loadkit_http::tls::TlsOptions::default(),
            message: None,
            model: String::new(),
            max_tokens: 128,
            min_tokens: None,
            seed: 0,
            token_when: "/type=token".to_owned(),
            token_text: "/text".to_owned(),
            end_when: "/type=done".to_owned(),
            error_when: Some("/type=error".to_owned()),
            error_text: "/message".to_owned(),
            tokens_in: Some("/tokens_in".to_owned()),
            tokens_out: Some("/tokens_out".to_owned()),
            connection: Connection::PerUser,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Duration::from_secs(20),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl WsChatConfig {
    /// The defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// A WebSocket chat setting cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WsConfigError {
    /// The URL does not parse or has no host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL's scheme is not `ws` or `wss`.
    #[error("invalid url {url:?}: the scheme {scheme:?} is not ws or wss (a WebSocket url starts with ws:// or wss://)")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A header name or value is not valid HTTP.
    #[error(transparent)]
    InvalidHeader(#[from] loadkit_http::HeaderError),
    /// The message template is unusable.
    #[error("message template: {0}")]
    Template(#[from] TemplateError),
    /// A rule or pointer does not parse (`setting` names it, e.g. `end_when`).
    #[error("{setting}: {error}")]
    Rule {
        /// The setting.
        setting: &'static str,
        /// Why its pointer does not parse.
        error: PointerError,
    },
    /// A timeout is zero.
    #[error("{0} must be positive")]
    ZeroTimeout(&'static str),
    /// A size is zero.
    #[error("{0} must be positive")]
    ZeroSize(&'static str),
    /// `--ws-connection` is not `per-user` or `per-request`.
    #[error("invalid connection mode {0:?} (use per-user or per-request)")]
    InvalidConnection(String),
    /// The TLS configuration could not be built.
    #[error("tls setup failed: {0}")]
    Tls(String),
}
