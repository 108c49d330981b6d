//! `Client`, `Source` and `RequestError`: how one request is sent, what is sent, and how it fails.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use loadkit_metrics::{ErrorKind, TimeoutPhase};

use crate::Probe;

/// What the engine knows about a request before it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestCtx {
    /// Sequence number, unique within the run, counting from zero in dispatch order.
    pub seq: u64,
    /// The closed-loop user that sends it (`None` in open loop).
    pub user: Option<u32>,
    /// The intended start, as an offset from the run start.
    pub scheduled: Duration,
}

/// The workload: makes the request to send for each [`RequestCtx`].
///
/// It takes `&self` so that open-loop dispatch and every closed-loop user can call it without a
/// lock; make it deterministic in `ctx.seq` (and a seed) for reproducible runs. Any
/// `Fn(&RequestCtx) -> T` closure is a `Source`.
pub trait Source: Send + Sync + 'static {
    /// The request type a [`Client`] takes.
    type Item: Send + 'static;

    /// The request for this context.
    fn make(&self, ctx: &RequestCtx) -> Self::Item;
}

impl<F, T> Source for F
where
    F: Fn(&RequestCtx) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    type Item = T;

    fn make(&self, ctx: &RequestCtx) -> T {
        self(ctx)
    }
}

/// A protocol client: sends one request and marks its milestones on the [`Probe`].
///
/// The engine marks `sent` just before it first polls `call`, and the end when `call` returns; the
/// client marks the first byte, every content chunk and any usage the server reports. A client
/// never measures time itself. Return `Err` with the right [`ErrorKind`] when the request fails.
///
/// **Sessions.** Each closed-loop user owns one [`Client::Session`] for its whole life, made with
/// `Default` before its first request (so make it cheap: an empty `Option`) and dropped with the
/// user; the client fills it lazily, e.g. connects a WebSocket on the first call and reuses it
/// for the user's later requests. In open loop there are no users: every request gets a fresh
/// session. When a call does not end by itself (the engine's total timeout, cancellation, a
/// panic) the engine replaces the session with a new default one, because the connection in it
/// may still carry the abandoned response. A client that keeps no state uses `()`.
pub trait Client: Send + Sync + 'static {
    /// The request this client sends, as the [`Source`] makes it.
    type Request: Send + 'static;

    /// What one user keeps between its requests (`()` for nothing).
    type Session: Default + Send + 'static;

    /// Sends `request` (on `session`'s connection, when the client keeps one), marking
    /// milestones on `probe`, and resolves when the response is complete.
    fn call(
        &self,
        session: &mut Self::Session,
        request: Self::Request,
        probe: &mut Probe,
    ) -> impl Future<Output = Result<(), RequestError>> + Send;
}

/// Why one request failed: its class and a short human-readable message.
///
/// Messages should not contain per-request values (ids, timestamps) where avoidable, because the
/// report groups identical messages: `[12x] HTTP 503: Too many concurrent requests`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The error class.
    pub kind: ErrorKind,
    /// What went wrong, in one line.
    pub message: String,
    /// How long the server asked clients to wait before trying again (`Retry-After` of a 429
    /// or 503), when it said.
    pub retry_after: Option<Duration>,
}

impl RequestError {
    /// An error of class `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, carrying the server's `Retry-After`.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// An HTTP status error; `body` is cut to a short single-line snippet.
    pub fn http_status(status: u16, body: &str) -> Self {
        let snippet = one_line(body);
        let message = if snippet.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {snippet}")
        };
        Self::new(ErrorKind::HttpStatus(status), message)
    }

    /// A deadline passed.
    pub fn timeout(phase: TimeoutPhase, after: Duration) -> Self {
        Self::new(
            ErrorKind::Timeout(phase),
            format!(
                "{} timeout after {}",
                phase.as_str().replace('_', " "),
                fmt_duration(after)
            ),
        )
    }

    /// The response broke the protocol (malformed frame or JSON, oversized event, ...).
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Protocol, message)
    }

    /// The stream ended before its end marker.
    pub fn truncated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Truncated, message)
    }

    /// The server reported an error inside a valid response.
    pub fn server(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Server, message)
    }

    /// The response failed the success rule.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Validation, message)
    }

    /// The run stopped while the request was in flight.
    pub fn cancelled() -> Self {
        Self::new(
            ErrorKind::Cancelled,
            "cancelled: the run stopped while the request was in flight",
        )
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// Most bytes [`one_line`] keeps before cutting.
pub const ONE_LINE_MAX: usize = 200;

/// `text` on one short line, as error messages are shown and grouped: runs of whitespace become
/// one space, and past [`ONE_LINE_MAX`] bytes it is cut (on a char boundary) and ends in `...`.
/// The one squeezer every client's message goes through.
///
/// ```
/// use loadkit_core::one_line;
///
/// assert_eq!(one_line("model  \"x\"\n not found"), "model \"x\" not found");
/// assert_eq!(one_line(&"abc ".repeat(100)).len(), 203); // 200 bytes, then "..."
/// ```
pub fn one_line(text: &str) -> String {
    let max = ONE_LINE_MAX;
    let mut out = String::with_capacity(text.len().min(max + 3));
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() >= max {
            break;
        }
    }
    if out.len() > max {
        let mut end = max;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("...");
    }
    out
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A [`Client`] made from an async closure; see [`client_fn`].
pub struct FnClient<F, R> {
    f: F,
    _request: PhantomData<fn(R)>,
}

impl<F, R> fmt::Debug for FnClient<F, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnClient")
    }
}

/// Turns any `async fn(request) -> Result<(), RequestError>` into a [`Client`].
///
/// The whole call counts as one content unit arriving when it returns, so TTFT equals the
/// end-to-end latency; write a [`Client`] implementation to mark streaming milestones.
pub fn client_fn<F, R, Fut>(f: F) -> FnClient<F, R>
where
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RequestError>> + Send,
    R: Send + 'static,
{
    FnClient {
        f,
        _request: PhantomData,
    }
}

impl<F, R, Fut> Client for FnClient<F, R>
where
    F: Fn(R) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), RequestError>> + Send,
    R: Send + 'static,
{
    type Request = R;
    type Session = ();

    async fn call(&self, _: &mut (), request: R, probe: &mut Probe) -> Result<(), RequestError> {
        (self.f)(request).await?;
        probe.content(1, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_messages_are_short_single_lines() {
        let e = RequestError::http_status(503, "Too many\n  concurrent   requests");
        assert_eq!(e.message, "HTTP 503: Too many concurrent requests");
        assert_eq!(e.kind, ErrorKind::HttpStatus(503));
        let long = RequestError::http_status(500, &"x ".repeat(500));
        assert!(long.message.len() <= "HTTP 500: ".len() + ONE_LINE_MAX + 3);
        assert!(long.message.ends_with("..."), "{}", long.message);
        assert_eq!(RequestError::http_status(404, "").message, "HTTP 404");
    }

    #[test]
    fn timeouts_name_their_phase() {
        let e = RequestError::timeout(TimeoutPhase::FirstByte, Duration::from_secs(30));
        assert_eq!(e.message, "first byte timeout after 30s");
    }
}
