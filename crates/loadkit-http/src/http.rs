//! `HttpClient`: pooled HTTP/1.1 (and HTTPS) requests with connect, first-byte and idle
//! timeouts, whose failures are classified into loadkit's error taxonomy; a request that a
//! server's idle close made fail on a reused connection is retried once on a new one.
//!
//! The end of a response is one mechanism for every protocol client: [`ResponseBody::finish`]
//! once the protocol's end marker arrived (the rest is drained off the clock so the connection
//! is reused), [`Response::error`] for a non-success status (a bounded prefix of the body read
//! into a one-line message).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use hyper::body::{Body as _, Frame, Incoming};
use loadkit_core::metrics::TimeoutPhase;
use loadkit_core::{Probe, RequestError};
use tokio::time::{Instant, Sleep};
use tower_service::Service as _;

use crate::body::RequestBody;
use crate::classify;
use crate::connect::{connector, Connector};
use crate::message::error_body_message;
use crate::pool::{Conn, Pool};
use crate::tls::TlsOptions;

/// The largest stream event (an SSE event, an NDJSON line) a client accepts by default: 1 MiB.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1 << 20;

/// Most bytes of an error response's body read for its message ([`Response::error`]).
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Longest time [`ResponseBody::finish`] keeps reading the rest of a finished response so its
/// connection can be reused; past it the connection is dropped.
pub const DRAIN_GRACE: Duration = Duration::from_millis(100);

/// How long [`ResponseBody::finish`] waits for the rest of a body before leaving it to the
/// background. Servers end the body in the same write as the end marker, so this is normally
/// microseconds; a lingering server costs the user at most this much per request.
pub const FINISH_INLINE: Duration = Duration::from_millis(10);

/// The smallest fixed read buffer [`HttpConfig::read_buffer`] takes (a response head must
/// parse from reads of this size without a read per header).
pub const MIN_READ_BUFFER: usize = 512;

/// Timeouts, pooling and size limits of an [`HttpClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Deadline to open a TCP connection (`timeout (connect)` when passed). Default 10 s.
    pub connect_timeout: Duration,
    /// Deadline from sending a request to receiving its response head, connecting included
    /// (`timeout (first_byte)`). Default 60 s.
    pub first_byte_timeout: Duration,
    /// Longest wait for the next piece of a response body, counted from the head and then from
    /// each body frame (`timeout (idle)`). A server that prefills a long prompt after sending its
    /// head must answer within it. Default 30 s.
    pub idle_timeout: Duration,
    /// How long an idle pooled connection is kept for reuse. Default 90 s.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per host. Default: unlimited, so a closed-loop run of N users keeps
    /// N warm connections.
    pub pool_max_idle_per_host: usize,
    /// Largest SSE event or NDJSON line a protocol client accepts (`protocol` error past it).
    /// Default 1 MiB.
    pub max_event_size: usize,
    /// Largest body [`ResponseBody::collect`] reads (non-streaming responses). Default 64 MiB.
    pub max_body_size: usize,
    /// `User-Agent` sent when the request sets none (`None`: send none).
    pub user_agent: Option<String>,
    /// How `https` servers' certificates are checked. Default: against the Mozilla roots.
    pub tls: TlsOptions,
    /// Each connection reads into a buffer of exactly this many bytes. `None` (the default):
    /// hyper's adaptive buffer, 8 KiB growing to about 400 KiB for fast bodies. Measured at
    /// 10,000 open streams of one token per second, 2 KiB holds 25.2 KiB of client RSS per
    /// stream where the adaptive buffer holds 30.4 KiB (a connection briefly has two read
    /// buffers while the last chunk of a response is still referenced), at the cost of more
    /// reads for fast bodies (-14 % events per CPU-second with packed 16 KiB writes).
    pub read_buffer: Option<usize>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(90),
            pool_max_idle_per_host: usize::MAX,
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
            max_body_size: 64 << 20,
            user_agent: Some(concat!("loadkit/", env!("CARGO_PKG_VERSION")).to_owned()),
            tls: TlsOptions::default(),
            read_buffer: None,
        }
    }
}

/// An HTTP client or URL setting is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// The URL does not parse, or is not an absolute `http` / `https` URL with a host.
    #[error("invalid url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A timeout is zero.
    #[error("{0} must be positive")]
    ZeroTimeout(&'static str),
    /// The user agent is not a valid header value.
    #[error("invalid user agent {0:?}")]
    InvalidUserAgent(String),
    /// The TLS configuration could not be built.
    #[error("tls setup failed: {0}")]
    Tls(String),
}

/// Parses an absolute `http://` or `https://` URL with a host.
pub fn parse_url(url: &str) -> Result<Uri, HttpConfigError> {
    let invalid = |reason: &str| HttpConfigError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(invalid("the scheme must be http or https")),
        None => {
            return Err(invalid(
                "expected an absolute url such as http://host:port/v1",
            ))
        }
    }
    match uri.host() {
        Some(host) if !host.is_empty() => {}
        _ => return Err(invalid("the url has no host")),
    }
    // `Uri` keeps an out-of-range port as text (and `port()` is then `None`): check it here.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let after_host = host_port
        .rfind(']')
        .map_or(host_port, |i| &host_port[i + 1..]);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(invalid("the port is not a number from 0 to 65535"));
        }
    }
    Ok(uri)
}

/// A pooled HTTP/1.1 client (keep-alive, `TCP_NODELAY`, rustls with the `ring` provider and the
/// Mozilla root certificates for `https`). Cheap to clone: clones share the pool. Each request
/// drives its connection in its own task (the `pool` module doc says why and what it measured).
///
/// Every failure is a classified [`RequestError`]: connection refused or DNS → `connect`, TLS
/// handshake → `tls`, each deadline → `timeout (connect|first_byte|idle)`, a reset or close in
/// the middle of a body → `truncated`.
#[derive(Clone)]
pub struct HttpClient {
    pool: Pool,
    connector: Connector,
    config: HttpConfig,
    user_agent: Option<HeaderValue>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with `config`.
    pub fn new(config: HttpConfig) -> Result<Self, HttpConfigError> {
        for (name, t) in [
            ("connect timeout", config.connect_timeout),
            ("first byte timeout", config.first_byte_timeout),
            ("idle timeout", config.idle_timeout),
        ] {
            if t.is_zero() {
                return Err(HttpConfigError::ZeroTimeout(name));
            }
        }
        let user_agent = match &config.user_agent {
            None => None,
            Some(ua) => Some(
                HeaderValue::from_str(ua)
                    .map_err(|_| HttpConfigError::InvalidUserAgent(ua.clone()))?,
            ),
        };
        let connector = connector(&config)?;
        let pool = Pool::new(config.pool_max_idle_per_host, config.pool_idle_timeout);
        Ok(Self {
            pool,
            connector,
            config,
            user_agent,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Sends `request` and waits for the response head, within the first-byte timeout.
    ///
    /// Marks the first byte on `probe` when the head arrives; the returned body marks the bytes
    /// it reads. A non-success status is *not* an error here: the caller reads the error body.
    ///
    /// HTTP/1.1 lets a server close an idle keep-alive connection at any time, and one that
    /// does so right after a response (as llama.cpp's `llama-server` does) races the pool: the
    /// next request goes out on a connection the server is closing. A request that fails on a
    /// *reused* connection before any byte of its response arrived is therefore sent once more
    /// on a new connection, within the same first-byte deadline, and counted with
    /// [`Probe::stale_connection_retry`]; its timings still run from its original intended and
    /// send times. The same failure on a new connection is the server's and is returned.
    pub async fn send(
        &self,
        request: http::Request<Bytes>,
        probe: &mut Probe,
    ) -> Result<Response, RequestError> {
        self.send_with(request, probe, None).await
    }

    /// [`send`](Self::send) for a large body (an audio file), handed to the connection in
    /// chunks of [`UPLOAD_CHUNK`](crate::UPLOAD_CHUNK): the span `upload` (from `sent`) is
    /// recorded on `probe` under `upload` when the connection took the body's last chunk
    /// (hyper's write buffer holds up to about 400 KB, so the span ends when all but that much
    /// has gone into the socket), unless the response head came first.
    pub async fn send_upload(
        &self,
        request: http::Request<Bytes>,
        upload: &'static str,
        probe: &mut Probe,
    ) -> Result<Response, RequestError> {
        self.send_with(request, probe, Some(upload)).await
    }

    async fn send_with(
        &self,
        request: http::Request<Bytes>,
        probe: &mut Probe,
        upload: Option<&'static str>,
    ) -> Result<Response, RequestError> {
        let (mut parts, body) = request.into_parts();
        if let Some(ua) = &self.user_agent {
            parts
                .headers
                .entry(USER_AGENT)
                .or_insert_with(|| ua.clone());
        }
        let timeout = self.config.first_byte_timeout;
        let deadline = Instant::now() + timeout;
        let (first_body, uploaded) = match upload {
            None => (RequestBody::full(body.clone()), None),
            Some(_) => {
                let (b, rx) = RequestBody::upload(body.clone());
                (b, Some(rx))
            }
        };
        let uri = parts.uri.clone();
        let first = http::Request::from_parts(origin_form(parts.clone()), first_body);
        let attempt = async {
            let mut conn = match self.pool.take(&uri).await {
                Some(conn) => conn,
                // Boxed: once per connection, and the handshake's future is large.
                None => Box::pin(self.connect(&uri, true)).await?,
            };
            let sent = match (uploaded, upload) {
                (Some(uploaded), Some(name)) => {
                    // Boxed: only uploads pay for watching their body go out.
                    Box::pin(send_watching_upload(
                        &mut conn, first, uploaded, name, probe,
                    ))
                    .await
                }
                _ => conn.send(first).await,
            };
            Ok::<_, RequestError>((sent, conn))
        };
        // Boxed (one allocation per request, as hyper-util's client boxed its request future):
        // the exchange's state would otherwise sit in every user's task while its stream is
        // read, which is per-stream memory.
        let outcome = tokio::time::timeout_at(deadline, Box::pin(attempt)).await;
        let (response, mut conn) = match outcome {
            Err(_) => return Err(RequestError::timeout(TimeoutPhase::FirstByte, timeout)),
            Ok(Err(e)) => return Err(e),
            Ok(Ok((Ok(response), conn))) => (response, conn),
            Ok(Ok((Err(e), conn))) if conn.reused() && classify::is_stale_connection(&e) => {
                drop(conn);
                probe.stale_connection_retry();
                // Boxed: the rare path must not grow every request's future (and so every
                // user's task) by the size of a connection handshake.
                let fresh = Box::pin(self.send_fresh(parts, body));
                match tokio::time::timeout_at(deadline, fresh).await {
                    Err(_) => return Err(RequestError::timeout(TimeoutPhase::FirstByte, timeout)),
                    Ok(result) => result?,
                }
            }
            Ok(Ok((Err(e), _))) => return Err(classify::head_error(&e)),
        };
        conn.served();
        probe.mark_first_byte();
        let (parts, incoming) = response.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body: ResponseBody::new(incoming, conn, self.config.idle_timeout),
        })
    }

    /// Opens a connection to `uri`'s host (TCP, and TLS for `https`), ready for a request;
    /// `pooled`: it goes back to the pool after a response that ended cleanly.
    async fn connect(&self, uri: &Uri, pooled: bool) -> Result<Box<Conn>, RequestError> {
        let connect_error = |e: Box<dyn std::error::Error + Send + Sync>| {
            classify::connect_error(&*e, &self.config)
        };
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(connect_error)?;
        let io = connector.call(uri.clone()).await.map_err(connect_error)?;
        let read_buffer = self.config.read_buffer.map(|n| n.max(MIN_READ_BUFFER));
        let home = pooled.then_some((&self.pool, uri));
        let mut conn = Conn::handshake(io, read_buffer, home)
            .await
            .map_err(|e| classify::head_error(&e))?;
        conn.ready().await.map_err(|e| classify::head_error(&e))?;
        Ok(conn)
    }

    /// Sends a request on a connection of its own, opened for it and closed after its
    /// response (never taken from or given to the pool).
    async fn send_fresh(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<(hyper::Response<Incoming>, Box<Conn>), RequestError> {
        let uri = parts.uri.clone();
        let mut conn = self.connect(&uri, false).await?;
        let request = http::Request::from_parts(origin_form(parts), RequestBody::full(body));
        let response = conn
            .send(request)
            .await
            .map_err(|e| classify::head_error(&e))?;
        Ok((response, conn))
    }

    /// Opens (and closes) one connection to `uri`'s host: TCP, plus the TLS handshake for
    /// `https`. Bounded by the connect timeout for each phase.
    pub async fn preflight(&self, uri: &Uri) -> Result<(), RequestError> {
        let mut connector = self.connector.clone();
        let timeout = self.config.connect_timeout;
        let connect = async {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(uri.clone()).await
        };
        // TCP is bounded by the connector itself; this bounds the TLS handshake too.
        match tokio::time::timeout(timeout * 2, connect).await {
            Err(_) => Err(RequestError::timeout(TimeoutPhase::Connect, timeout)),
            Ok(Err(e)) => Err(classify::connect_error(&*e, &self.config)),
            Ok(Ok(_connection)) => Ok(()),
        }
    }
}

/// Sends `request` on `conn` and waits for its response head, recording the span `name` (from
/// `sent`) on `probe` when the connection took the upload's last chunk, unless the head came
/// first.
async fn send_watching_upload(
    conn: &mut Conn,
    request: http::Request<RequestBody>,
    mut uploaded: tokio::sync::oneshot::Receiver<()>,
    name: &'static str,
    probe: &mut Probe,
) -> Result<hyper::Response<Incoming>, hyper::Error> {
    let sending = conn.send(request);
    tokio::pin!(sending);
    let mut watching = true;
    loop {
        tokio::select! {
            biased;
            done = &mut uploaded, if watching => {
                watching = false;
                if done.is_ok() {
                    probe.span(name, probe.sent_stamp(), Duration::ZERO);
                }
            }
            sent = &mut sending => return sent,
        }
    }
}

/// What a pooled client does to a request before it goes out: a `Host` header from the URI's
/// authority (without userinfo) unless one is set, and the target in origin form
/// (`/path?query`).
fn origin_form(mut parts: http::request::Parts) -> http::request::Parts {
    if let Some(authority) = parts.uri.authority() {
        let host = authority.as_str().rsplit('@').next().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_str(host) {
            parts.headers.entry(HOST).or_insert(value);
        }
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    parts.uri = target;
    parts
}

/// Checks that `url`'s host accepts connections (and completes a TLS handshake for `https`)
/// within `timeout`. The CLI runs it before a load test and exits with code 3 when it fails.
///
/// An unparsable URL is reported as a `connect` error.
pub async fn preflight(url: &str, timeout: Duration) -> Result<(), RequestError> {
    preflight_with(
        url,
        HttpConfig {
            connect_timeout: timeout,
            ..HttpConfig::default()
        },
    )
    .await
}

/// [`preflight`] with `config`'s connect timeout and TLS options.
pub async fn preflight_with(url: &str, config: HttpConfig) -> Result<(), RequestError> {
    let uri = parse_url(url)
        .map_err(|e| RequestError::new(loadkit_core::metrics::ErrorKind::Connect, e.to_string()))?;
    let client = HttpClient::new(config)
        .map_err(|e| RequestError::new(loadkit_core::metrics::ErrorKind::Connect, e.to_string()))?;
    client.preflight(&uri).await
}

/// The longest `Retry-After` taken at its word (a server asking for more is capped to it).
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// `Retry-After` as a wait: delay-seconds (`120`, fractions accepted) or an HTTP date, capped
/// at [`RETRY_AFTER_MAX`]; `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(hyper::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Duration::from_secs_f64(secs.min(RETRY_AFTER_MAX.as_secs_f64()))
        }
        Ok(_) => return None,
        Err(_) => httpdate_wait(value)?,
    };
    Some(wait.min(RETRY_AFTER_MAX))
}

/// The time until an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`); zero when it is past.
fn httpdate_wait(value: &str) -> Option<Duration> {
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// A response head and its body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, read frame by frame.
    pub body: ResponseBody,
}

impl Response {
    /// The media type of `Content-Type` without parameters, if any (`text/event-stream`).
    pub fn media_type(&self) -> Option<&str> {
        let value = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        Some(value.split(';').next().unwrap_or("").trim())
    }

    /// `true` when the body is declared as Server-Sent Events.
    pub fn is_event_stream(&self) -> bool {
        self.media_type()
            .is_some_and(|m| m.eq_ignore_ascii_case("text/event-stream"))
    }

    /// The `http_status` error of a response whose status the protocol does not accept, with
    /// the server's message read from at most [`ERROR_BODY_LIMIT`] bytes of the body (see
    /// [`error_body_message`]; an empty body gives just `HTTP {status}`).
    pub async fn error(self, probe: &mut Probe) -> RequestError {
        let status = self.status.as_u16();
        let retry_after = retry_after(&self.headers);
        let text = self.body.collect_prefix(ERROR_BODY_LIMIT, probe).await;
        let message = if text.trim_ascii().is_empty() {
            String::new()
        } else {
            error_body_message(&text)
        };
        RequestError::http_status(status, &message).with_retry_after(retry_after)
    }

    /// A `protocol` error unless the body is declared as Server-Sent Events.
    pub fn expect_event_stream(&self) -> Result<(), RequestError> {
        if self.is_event_stream() {
            return Ok(());
        }
        let got = self
            .media_type()
            .unwrap_or("no content type")
            .to_ascii_lowercase();
        Err(RequestError::protocol(format!(
            "expected text/event-stream, got {got}"
        )))
    }
}

/// A response body, read frame by frame with an idle timeout between frames.
///
/// It holds the response's connection and drives it while reading (see the `pool` module doc); the
/// connection goes back to the pool when the body ended cleanly, and is closed when the body
/// is dropped unfinished.
///
/// The idle deadline is kept lazily: each frame only records its arrival time, and the single
/// timer is re-armed when it fires early, so a fast stream costs no timer work per frame.
pub struct ResponseBody {
    incoming: Incoming,
    conn: Option<Box<Conn>>,
    idle: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
    /// The body reached its end without an error: the connection may be reused.
    ended: bool,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("idle", &self.idle)
            .field("done", &self.done)
            .finish()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.ended {
                conn.release();
            }
        }
    }
}

impl ResponseBody {
    fn new(incoming: Incoming, conn: Box<Conn>, idle: Duration) -> Self {
        Self {
            incoming,
            conn: Some(conn),
            idle,
            last: Instant::now(),
            timer: None,
            done: false,
            ended: false,
        }
    }

    /// The next non-empty data frame, `Ok(None)` at the end of the body. Adds the frame's size
    /// to `probe`'s byte count.
    pub async fn chunk(&mut self, probe: &mut Probe) -> Result<Option<Bytes>, RequestError> {
        loop {
            if self.done {
                return Ok(None);
            }
            match std::future::poll_fn(|cx| self.poll_frame(cx)).await {
                Ok(Some(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    self.last = Instant::now();
                    if data.is_empty() {
                        continue;
                    }
                    probe.bytes(data.len());
                    return Ok(Some(data));
                }
                Ok(None) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    /// The next frame of the body, driving the connection first so what it has read is
    /// handed over. At the end the connection is driven once more, so it is idle (or closed,
    /// if the server said so) before it goes back to the pool.
    fn poll_incoming(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(conn) = self.conn.as_mut() {
            conn.drive(cx);
        }
        let frame = Pin::new(&mut self.incoming).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            self.ended = true;
            if let Some(conn) = self.conn.as_mut() {
                conn.drive(cx);
            }
        }
        frame
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Frame<Bytes>>, RequestError>> {
        match self.poll_incoming(cx) {
            Poll::Ready(Some(Ok(frame))) => return Poll::Ready(Ok(Some(frame))),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(classify::body_error(&e))),
            Poll::Ready(None) => return Poll::Ready(Ok(None)),
            Poll::Pending => {}
        }
        let deadline = self.last + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(timer.as_mut().poll(cx));
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return Poll::Ready(Err(RequestError::timeout(TimeoutPhase::Idle, self.idle)));
            }
            timer.as_mut().reset(deadline);
        }
    }

    /// Ends a response whose message is complete (the protocol's end marker arrived; call
    /// [`Probe::mark_end`] first): the rest of the body, normally just the end of the chunked
    /// encoding, is read off the clock so the connection goes back to the pool before the
    /// user's next request (which would otherwise open a new connection, and keep both). It is
    /// awaited for up to [`FINISH_INLINE`]; a server that lingers longer after its end marker
    /// is left to a background task that reads on for up to [`DRAIN_GRACE`] and then drops the
    /// connection, so the linger holds neither the request nor, past that bound, its user.
    /// Bytes read here are not counted in the request's bytes.
    pub async fn finish(mut self) {
        let ended = tokio::time::timeout(
            FINISH_INLINE,
            std::future::poll_fn(|cx| self.drain_ready(cx)),
        )
        .await
        .is_ok();
        if ended {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(
                    DRAIN_GRACE - FINISH_INLINE,
                    std::future::poll_fn(|cx| self.drain_ready(cx)),
                )
                .await;
            });
        }
    }

    /// Reads every frame already received; `Ready` once the body ended (or failed).
    fn drain_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        loop {
            match self.poll_incoming(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(_) => {
                    self.done = true;
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Reads the whole body (at most `limit` bytes: a `protocol` error past it).
    pub async fn collect(mut self, limit: usize, probe: &mut Probe) -> Result<Bytes, RequestError> {
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(data) = self.chunk(probe).await? {
            let len = first.as_ref().map_or(0, Bytes::len) + buf.len() + data.len();
            if len > limit {
                return Err(RequestError::protocol(format!(
                    "response body exceeds the maximum size of {limit} bytes"
                )));
            }
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                None => buf.extend_from_slice(&data),
                Some(head) => {
                    buf.extend_from_slice(&head);
                    buf.extend_from_slice(&data);
                }
            }
        }
        Ok(first.unwrap_or_else(|| buf.freeze()))
    }

    /// Reads up to `limit` bytes of the body, best effort: stops quietly at the limit, at the end
    /// or at the first error. For error bodies, whose text only goes into a message.
    pub async fn collect_prefix(mut self, limit: usize, probe: &mut Probe) -> Bytes {
        let mut buf = BytesMut::new();
        while buf.len() < limit {
            match self.chunk(probe).await {
                Ok(Some(data)) => {
                    let take = data.len().min(limit - buf.len());
                    buf.extend_from_slice(&data[..take]);
                }
                _ => break,
            }
        }
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::RETRY_AFTER,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        assert_eq!(retry_after(&headers("2")), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after(&headers(" 0.5 ")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after(&headers("86400")), Some(RETRY_AFTER_MAX));
        assert_eq!(retry_after(&headers("-1")), None);
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
        // A date in the past: try again now.
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(60));
        let wait = retry_after(&headers(&later)).unwrap();
        assert!(
            wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
    }
}
