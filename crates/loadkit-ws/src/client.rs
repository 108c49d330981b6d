//! `WsChatClient`: one request is one message sent on a WebSocket and the messages read back
//! until the end rule matches, with pings while waiting, every failure classified, and the
//! connection kept in the user's session between requests (or one per request).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use loadkit_core::metrics::{ErrorKind, TimeoutPhase};
use loadkit_core::{Client, Probe, RequestError};
use loadkit_http::tls::TlsOptions;
use loadkit_sse::{BodyTemplate, TemplateValues};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::connect::{self, Target, Ws};
use crate::rules::{MessageRules, Rule, Step};
use crate::{Connection, WsChatConfig, WsConfigError, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MESSAGE};

/// One request: the values its message template may insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsRequest {
    /// `{{prompt}}`.
    pub prompt: Arc<str>,
    /// The system prompt, sent as `"system_prompt"` by the default message (a custom template
    /// writes its own).
    pub system: Option<Arc<str>>,
    /// `{{seq}}` (and, with the seed, `{{uuid}}`).
    pub seq: u64,
    /// `{{user}}`.
    pub user: Option<u32>,
}

impl WsRequest {
    /// A request with only a prompt (request number 0, no user).
    pub fn new(prompt: impl Into<Arc<str>>) -> Self {
        Self {
            prompt: prompt.into(),
            system: None,
            seq: 0,
            user: None,
        }
    }
}

/// What one closed-loop user keeps between its requests: its open WebSocket, if any
/// ([`Connection::PerUser`]).
///
/// Dropping it (the user ends, or the engine abandons a call and resets it) closes the
/// connection politely in the background: a close frame, then the server's close for up to
/// [`CLOSE_GRACE`](crate::CLOSE_GRACE). `Drop` cannot await, so this needs a tokio runtime
/// that keeps running; when the runtime itself is shutting down the socket is just dropped
/// and the server sees 1006.
#[derive(Debug, Default)]
pub struct WsSession {
    conn: Option<Conn>,
}

impl WsSession {
    /// `true` while the session holds an open connection.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }
}

/// An open WebSocket and how many responses it completed.
#[derive(Debug)]
struct Conn {
    ws: Option<Ws>,
    served: u64,
}

impl Conn {
    fn new(ws: Ws) -> Self {
        Self {
            ws: Some(ws),
            served: 0,
        }
    }

    fn ws(&mut self) -> &mut Ws {
        self.ws
            .as_mut()
            .expect("a connection holds its socket until dropped")
    }

    /// `false` when the server closed (or dropped) the connection while it sat idle in the
    /// session. Reads only what already arrived: pings (answered when the request goes out),
    /// pongs, and messages sent after the previous response ended (discarded: they arrived
    /// before this request was sent, so they are not its answer).
    fn alive(&mut self) -> bool {
        let ws = self.ws();
        loop {
            match ws.next().now_or_never() {
                None => return true,
                Some(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return false,
                Some(Some(Ok(_))) => {}
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            connect::close_in_background(ws);
        }
    }
}

/// The client's keepalive while it waits for messages.
#[derive(Debug, Clone, Copy)]
struct Keepalive {
    interval: Duration,
    timeout: Duration,
    next_ping: Instant,
    /// When the unanswered ping went out.
    waiting: Option<Instant>,
}

impl Keepalive {
    fn wake(&self) -> Instant {
        match self.waiting {
            Some(sent) => sent + self.timeout,
            None => self.next_ping,
        }
    }
}

/// How one exchange failed, and whether it may be sent again on a new connection: the
/// connection was gone (closed normally, or dropped) before any message of the response.
#[derive(Debug)]
struct Failure {
    error: RequestError,
    retry: bool,
}

impl Failure {
    fn fatal(error: RequestError) -> Self {
        Self {
            error,
            retry: false,
        }
    }
}

/// A client for a chat application's own WebSocket protocol: one JSON message out per
/// request, JSON messages back (text or binary frames) read by the [`MessageRules`] until the
/// end rule matches.
///
/// Milestones, as the SSE clients mark them: the first byte at the first message after
/// sending, one content unit per token message with non-empty text (its UTF-8 bytes), usage
/// from `tokens_in` / `tokens_out`, the end when the end rule matches.
///
/// **Connections.** [`Connection::PerUser`] keeps the socket in the user's [`WsSession`] after
/// a clean end and reuses it; after any failure the connection is dropped (politely), so the
/// user's next request reconnects. A kept connection that the server closed while it sat idle
/// is noticed before sending and replaced, and a request whose reused connection turns out
/// closed before any message of its answer (a close 1000 / 1001 / without a code, or a drop)
/// is sent once more on a new connection; both count as
/// [`Probe::stale_connection_retry`]. [`Connection::PerRequest`] opens a connection for
/// each request and closes it (in the background, off the clock) after the end.
///
/// **Failures.** Refused → `connect`; TLS → `tls`; upgrade answered with a status →
/// `http_status` with the body's message; no pong within the ping timeout, or a close 1011 →
/// `keepalive_timeout`; any other close before the end → `ws_close` with the code (1006 when
/// the connection dropped without a close frame); malformed JSON, invalid UTF-8 or a message
/// over the maximum size → `protocol`; the error rule → `server_error` with its text; no
/// message within the first-byte or idle timeout → `timeout`, naming the end rule that never
/// matched.
#[derive(Debug)]
pub struct WsChatClient {
    target: Target,
    template: BodyTemplate,
    /// The default message, to which a request's system prompt is added.
    default_message: bool,
    rules: MessageRules,
    connection: Connection,
    model: String,
    max_tokens: u32,
    seed: u64,
    keepalive: Option<(Duration, Duration)>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    max_message_size: usize,
}

impl WsChatClient {
    /// A client for `config`, every setting checked: the URL (`ws://` or `wss://`), the
    /// headers, the template (rendered with a sample prompt), every rule's pointer, timeouts.
    pub fn new(config: WsChatConfig) -> Result<Self, WsConfigError> {
        for (name, t) in [
            ("connect timeout", config.connect_timeout),
            ("first byte timeout", config.first_byte_timeout),
            ("idle timeout", config.idle_timeout),
            ("ping timeout", config.ping_timeout),
            (
                "ping interval",
                config.ping_interval.unwrap_or(Duration::MAX),
            ),
        ] {
            if t.is_zero() {
                return Err(WsConfigError::ZeroTimeout(name));
            }
        }
        let target = Target::new(
            &config.url,
            &config.headers,
            config.max_message_size,
            &config.tls,
        )?;
        let default_message = config.message.is_none();
        let text = match (&config.message, config.min_tokens) {
            (Some(text), _) => text.clone(),
            (None, None) => DEFAULT_MESSAGE.to_owned(),
            (None, Some(min)) => format!(
                "{},\"min_tokens\":{min}}}",
                DEFAULT_MESSAGE.strip_suffix('}').unwrap_or(DEFAULT_MESSAGE)
            ),
        };
        let template = BodyTemplate::new(&text)?;
        template.check(&TemplateValues {
            prompt: "Say \"hello\"\nto the tester",
            max_tokens: config.max_tokens,
            model: &config.model,
            seq: 0,
            user: Some(0),
            seed: config.seed,
        })?;
        let rules = MessageRules::new(&config)?;
        Ok(Self {
            target,
            template,
            default_message,
            rules,
            connection: config.connection,
            model: config.model,
            max_tokens: config.max_tokens,
            seed: config.seed,
            keepalive: config.ping_interval.map(|i| (i, config.ping_timeout)),
            connect_timeout: config.connect_timeout,
            first_byte_timeout: config.first_byte_timeout,
            idle_timeout: config.idle_timeout,
            max_message_size: config.max_message_size,
        })
    }

    /// The URL connections go to.
    pub fn url(&self) -> &str {
        self.target.url()
    }

    /// The rule that ends a response.
    pub fn end_rule(&self) -> &Rule {
        self.rules.end_rule()
    }

    /// The message `request` sends, as it goes on the wire.
    pub fn render(&self, request: &WsRequest) -> String {
        let values = TemplateValues {
            prompt: &request.prompt,
            max_tokens: self.max_tokens,
            model: &self.model,
            seq: request.seq,
            user: request.user,
            seed: self.seed,
        };
        let mut body = self.template.render(&values);
        if let (true, Some(system)) = (self.default_message, &request.system) {
            // The default template ends with its object's `}`.
            body.pop();
            body.extend_from_slice(b",\"system_prompt\":");
            let _ = serde_json::to_writer(&mut body, &**system);
            body.push(b'}');
        }
        // Rendered from `str`s and JSON escapes: always UTF-8.
        String::from_utf8(body)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    async fn open(&self) -> Result<Conn, RequestError> {
        // Boxed: a handshake is big, and inline it would grow every user's task by its size
        // for the whole run, while it is awaited once per connection.
        let ws = Box::pin(self.target.connect(self.connect_timeout)).await?;
        Ok(Conn::new(ws))
    }

    /// Sends `message` on `ws` and reads the answer until the end rule matches.
    async fn exchange(
        &self,
        ws: &mut Ws,
        message: Utf8Bytes,
        probe: &mut Probe,
    ) -> Result<(), Failure> {
        if let Err(e) = ws.send(Message::Text(message)).await {
            let mut failure = self.stream_error(&e, true);
            failure.retry = true;
            return Err(failure);
        }
        let sent = Instant::now();
        let mut last: Option<Instant> = None;
        let mut keepalive = self.keepalive.map(|(interval, timeout)| Keepalive {
            interval,
            timeout,
            next_ping: sent + interval,
            waiting: None,
        });
        // One timer for the nearest deadline. A message just notes its arrival, so a fast
        // stream costs no timer work per message: the idle deadline only moves later, and the
        // timer, when it fires early, is moved to it then. Only what brings the nearest
        // deadline forward re-arms it at once: the first message (the idle timeout is usually
        // shorter than the first-byte one) and a pong (the next ping may be due before the
        // pong's deadline was).
        let sleep = tokio::time::sleep_until(self.wake(sent, last, keepalive.as_ref()));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                item = ws.next() => {
                    let message = match item {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => return Err(self.stream_error(&e, last.is_none())),
                        None => return Err(self.dropped(last.is_none())),
                    };
                    let first = last.is_none();
                    let step = match message {
                        Message::Text(text) => self.data(text.as_bytes(), &mut last, probe)?,
                        Message::Binary(bytes) => self.data(&bytes, &mut last, probe)?,
                        Message::Pong(_) => {
                            if let Some(k) = keepalive.as_mut() {
                                if let Some(at) = k.waiting.take() {
                                    k.next_ping = at + k.interval;
                                    let wake = self.wake(sent, last, Some(k));
                                    if wake < sleep.deadline() {
                                        sleep.as_mut().reset(wake);
                                    }
                                }
                            }
                            Step::Continue
                        }
                        // tungstenite queues the pong, and sends it before its next read.
                        Message::Ping(_) | Message::Frame(_) => Step::Continue,
                        Message::Close(frame) => return Err(self.closed(frame, last.is_none())),
                    };
                    if step == Step::End {
                        probe.mark_end();
                        return Ok(());
                    }
                    if first && last.is_some() {
                        let wake = self.wake(sent, last, keepalive.as_ref());
                        if wake < sleep.deadline() {
                            sleep.as_mut().reset(wake);
                        }
                    }
                }
                () = &mut sleep => {
                    let now = Instant::now();
                    if let Some(k) = keepalive.as_mut() {
                        match k.waiting {
                            Some(at) if now >= at + k.timeout => {
                                return Err(Failure::fatal(keepalive_timeout(k.timeout)));
                            }
                            None if now >= k.next_ping => {
                                let ping = ws.send(Message::Ping(Bytes::new()));
                                match tokio::time::timeout_at(now + k.timeout, ping).await {
                                    Err(_) => return Err(Failure::fatal(keepalive_timeout(k.timeout))),
                                    Ok(Err(e)) => return Err(self.stream_error(&e, last.is_none())),
                                    Ok(Ok(())) => k.waiting = Some(now),
                                }
                            }
                            _ => {}
                        }
                    }
                    if now >= self.data_deadline(sent, last) {
                        return Err(Failure::fatal(self.data_timeout(last.is_none())));
                    }
                    sleep.as_mut().reset(self.wake(sent, last, keepalive.as_ref()));
                }
            }
        }
    }

    /// A text or binary message: its JSON read by the rules.
    #[inline]
    fn data(
        &self,
        bytes: &[u8],
        last: &mut Option<Instant>,
        probe: &mut Probe,
    ) -> Result<Step, Failure> {
        if last.is_none() {
            probe.mark_first_byte();
        }
        *last = Some(Instant::now());
        probe.bytes(bytes.len());
        self.rules.message(bytes, probe).map_err(Failure::fatal)
    }

    fn data_deadline(&self, sent: Instant, last: Option<Instant>) -> Instant {
        match last {
            None => sent + self.first_byte_timeout,
            Some(at) => at + self.idle_timeout,
        }
    }

    fn wake(&self, sent: Instant, last: Option<Instant>, keepalive: Option<&Keepalive>) -> Instant {
        let data = self.data_deadline(sent, last);
        keepalive.map_or(data, |k| k.wake().min(data))
    }

    fn data_timeout(&self, first: bool) -> RequestError {
        let end = self.rules.end_rule();
        if first {
            let mut e = RequestError::timeout(TimeoutPhase::FirstByte, self.first_byte_timeout);
            e.message.push_str(&format!(
                " waiting for the first message (the end message is {end})"
            ));
            e
        } else {
            let mut e = RequestError::timeout(TimeoutPhase::Idle, self.idle_timeout);
            e.message
                .push_str(&format!(" waiting for the end message ({end})"));
            e
        }
    }

    /// What a failure happened before: the end message, named by its rule.
    fn waiting_for(&self) -> String {
        format!("the end message ({})", self.rules.end_rule())
    }

    /// The server's close frame before the end: 1011 is a keepalive failure, any other code
    /// a `ws_close`.
    fn closed(&self, frame: Option<CloseFrame>, before_any: bool) -> Failure {
        let code = frame.as_ref().map_or(1005, |f| u16::from(f.code));
        Failure {
            error: connect::closed_error(frame.as_ref(), &self.waiting_for()),
            retry: before_any && matches!(code, 1000 | 1001 | 1005),
        }
    }

    /// The connection ended without a close frame (1006).
    fn dropped(&self, before_any: bool) -> Failure {
        Failure {
            error: connect::dropped_error(None, &self.waiting_for()),
            retry: before_any,
        }
    }

    fn stream_error(&self, e: &WsError, before_any: bool) -> Failure {
        let (error, dropped) = connect::read_error(e, self.max_message_size, &self.waiting_for());
        Failure {
            error,
            retry: dropped && before_any,
        }
    }
}

fn keepalive_timeout(timeout: Duration) -> RequestError {
    RequestError::new(
        ErrorKind::KeepaliveTimeout,
        format!(
            "keepalive timeout: no pong within {} of a ping",
            fmt_duration(timeout)
        ),
    )
}

/// A duration as the engine's messages write it (`20s`, `150ms`).
fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl Client for WsChatClient {
    type Request = WsRequest;
    type Session = WsSession;

    async fn call(
        &self,
        session: &mut WsSession,
        request: WsRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let message = Utf8Bytes::from(self.render(&request));
        drop(request);
        let mut conn = match session.conn.take() {
            Some(mut kept) => {
                if kept.alive() {
                    kept
                } else {
                    drop(kept);
                    probe.stale_connection_retry();
                    self.open().await?
                }
            }
            None => self.open().await?,
        };
        let mut outcome = self.exchange(conn.ws(), message.clone(), probe).await;
        if conn.served > 0 && matches!(&outcome, Err(f) if f.retry) {
            drop(conn);
            probe.stale_connection_retry();
            conn = self.open().await?;
            outcome = self.exchange(conn.ws(), message, probe).await;
        }
        match outcome {
            Ok(()) => {
                conn.served += 1;
                if self.connection == Connection::PerUser {
                    session.conn = Some(conn);
                }
                // Per request: dropping `conn` closes it in the background, off the clock.
                Ok(())
            }
            // The connection's state is unknown after any failure: it is dropped (politely)
            // and the user's next request opens a new one.
            Err(failure) => Err(failure.error),
        }
    }
}

/// Checks before a run that `url` accepts a WebSocket: a real upgrade (TCP, TLS for `wss://`,
/// the HTTP upgrade with `headers`), then a clean close, within `connect_timeout` for the
/// opening. The CLI exits with code 3 when it fails.
pub async fn preflight(
    url: &str,
    headers: &[(String, String)],
    connect_timeout: Duration,
    tls: &TlsOptions,
) -> Result<(), PreflightError> {
    if connect_timeout.is_zero() {
        return Err(WsConfigError::ZeroTimeout("connect timeout").into());
    }
    let target = Target::new(url, headers, DEFAULT_MAX_MESSAGE_SIZE, tls)?;
    let ws =
        target
            .connect(connect_timeout)
            .await
            .map_err(|error| PreflightError::Unreachable {
                url: target.url().to_owned(),
                error,
            })?;
    connect::close(ws).await;
    Ok(())
}

/// Why [`preflight`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// The URL or a header is unusable.
    #[error(transparent)]
    Config(#[from] WsConfigError),
    /// No WebSocket could be opened: `error` says why, with its class.
    #[error("cannot open a websocket to {url}: {error}")]
    Unreachable {
        /// The URL.
        url: String,
        /// The classified failure (`connect`, `tls`, `http_status`, `timeout`, ...).
        error: RequestError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(edit: impl FnOnce(&mut WsChatConfig)) -> Result<WsChatClient, WsConfigError> {
        let mut config = WsChatConfig::new("ws://127.0.0.1:9/ws/chat/v2");
        edit(&mut config);
        WsChatClient::new(config)
    }

    #[test]
    fn the_default_message_and_its_additions() {
        let c = client(|_| {}).unwrap();
        let mut request = WsRequest::new("Say \"hi\"\n");
        assert_eq!(
            c.render(&request),
            r#"{"type":"chat","prompt":"Say \"hi\"\n","max_tokens":128}"#
        );
        request.system = Some("Be \"brief\"".into());
        let c = client(|c| {
            c.min_tokens = Some(64);
            c.max_tokens = 100;
        })
        .unwrap();
        assert_eq!(
            c.render(&request),
            r#"{"type":"chat","prompt":"Say \"hi\"\n","max_tokens":100,"min_tokens":64,"system_prompt":"Be \"brief\""}"#
        );
        let custom = client(|c| {
            c.message = Some(
                r#"{"q":"{{prompt}}","n":{{max_tokens}},"id":{{seq}},"m":"{{model}}"}"#.into(),
            );
            c.model = "m1".into();
            c.min_tokens = Some(64);
        })
        .unwrap();
        request.seq = 7;
        assert_eq!(
            custom.render(&request),
            r#"{"q":"Say \"hi\"\n","n":128,"id":7,"m":"m1"}"#,
            "a custom template writes min_tokens and the system prompt itself"
        );
    }

    #[test]
    fn every_setting_is_checked_up_front() {
        let e = |edit: fn(&mut WsChatConfig)| client(edit).unwrap_err().to_string();
        assert_eq!(
            e(|c| c.url = "http://127.0.0.1:9/ws".into()),
            "invalid url \"http://127.0.0.1:9/ws\": the scheme \"http\" is not ws or wss (a WebSocket url starts with ws:// or wss://)"
        );
        assert!(e(|c| c.url = "127.0.0.1:9".into()).starts_with("invalid url"));
        assert!(e(|c| c.url = String::new()).starts_with("invalid url"));
        assert_eq!(
            e(|c| c.url = "ws://127.0.0.1:99999/ws".into()),
            "invalid url \"ws://127.0.0.1:99999/ws\": the port is not a number from 0 to 65535"
        );
        assert_eq!(
            e(|c| c.headers = vec![("bad header".into(), "x".into())]),
            "invalid header \"bad header\": not a valid header name"
        );
        assert!(e(|c| c.message = Some(r#"{"q":{{prompt}}}"#.into()))
            .starts_with("message template: the body template is not valid json"));
        assert!(e(|c| c.message = Some("{{nope}}".into())).contains("unknown placeholder"));
        assert!(e(|c| c.token_text = "text".into()).starts_with("token_text: invalid json pointer"));
        assert!(e(|c| c.error_when = Some("type=error".into())).starts_with("error_when:"));
        assert_eq!(
            e(|c| c.ping_timeout = Duration::ZERO),
            "ping timeout must be positive"
        );
        assert_eq!(
            e(|c| c.ping_interval = Some(Duration::ZERO)),
            "ping interval must be positive"
        );
        assert_eq!(
            e(|c| c.max_message_size = 0),
            "max message size must be positive"
        );
        assert!(client(|c| c.url = "wss://example.invalid/ws?token=1".into()).is_ok());
        assert!(client(|c| c.url = "ws://[::1]:8000".into()).is_ok());
        assert!(client(|c| c.message = Some("plain {{prompt}}".into())).is_ok());
        assert_eq!("per-request".parse(), Ok(Connection::PerRequest));
        assert!("per-session".parse::<Connection>().is_err());
    }

    #[test]
    fn close_codes_are_classified() {
        let c = client(|_| {}).unwrap();
        let close = |code: u16, reason: &'static str| {
            c.closed(
                Some(CloseFrame {
                    code: code.into(),
                    reason: reason.into(),
                }),
                false,
            )
            .error
        };
        let e = close(1011, "keepalive ping timeout");
        assert_eq!(e.kind, ErrorKind::KeepaliveTimeout);
        assert_eq!(
            e.message,
            "websocket closed with 1011 (keepalive ping timeout) before the end message (/type=done)"
        );
        let e = close(1009, "");
        assert_eq!(e.kind, ErrorKind::WsClose(1009));
        assert_eq!(
            e.message,
            "websocket closed with 1009 (message too big) before the end message (/type=done)"
        );
        assert_eq!(close(1008, "policy").kind, ErrorKind::WsClose(1008));
        assert_eq!(c.closed(None, false).error.kind, ErrorKind::WsClose(1005));
        assert!(c.closed(None, true).retry);
        assert!(
            !c.closed(
                Some(CloseFrame {
                    code: 1011.into(),
                    reason: "".into()
                }),
                true
            )
            .retry
        );
        assert_eq!(c.dropped(false).error.kind, ErrorKind::WsClose(1006));
        assert_eq!(
            keepalive_timeout(Duration::from_millis(150)).message,
            "keepalive timeout: no pong within 150ms of a ping"
        );
    }

    #[test]
    fn the_call_future_stays_small() {
        // Every user's task holds one for its whole life; the handshake is boxed out of it.
        let c = client(|_| {}).unwrap();
        let mut session = WsSession::default();
        let mut probe = Probe::standalone();
        let size = std::mem::size_of_val(&c.call(&mut session, WsRequest::new("x"), &mut probe));
        assert!(size < 2048, "{size} bytes");
    }
}
