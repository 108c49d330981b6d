//! `PacedBody`: a streaming response body that releases item `i` of a [`Script`] at
//! `start + i * itl` (computed from one instant, never accumulated), with optional keepalive
//! comments while silent, shared by the Ollama and generic SSE simulators.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::precise::{self, COARSE};
use crate::server::ConnHandle;

/// Zero-paced streams pack items into frames of about this size.
const FRAME_TARGET: usize = 16 * 1024;

/// What happens before an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the item as planned.
    Go,
    /// End the body cleanly now, without the tail.
    End,
    /// End the body with a connection reset.
    Reset,
}

/// The content of a paced stream: a head, `items` paced items, and a tail.
pub(crate) trait Script: Send + Unpin + 'static {
    /// Written with the first item.
    fn head(&mut self, _out: &mut BytesMut) {}
    /// Item `i`.
    fn item(&mut self, i: u32, out: &mut BytesMut);
    /// Written right after the last item.
    fn tail(&mut self, out: &mut BytesMut);
    /// Called before item `i` (and before the tail, with `i == items`); may write something
    /// (an error line) and decide how the body goes on.
    fn before(&mut self, _i: u32, _out: &mut BytesMut) -> Step {
        Step::Go
    }
    /// A keepalive written when the stream has been silent for the ping interval.
    fn ping(&mut self, _out: &mut BytesMut) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Items,
    End,
}

/// A paced streaming body.
pub(crate) struct PacedBody<S> {
    script: S,
    conn: ConnHandle,
    items: u32,
    start: Instant,
    itl: Duration,
    paced: bool,
    ping: Option<Duration>,
    next: u32,
    phase: Phase,
    sleep: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
    /// A reset is due: 1 = let hyper flush first, 2 = reset now.
    resetting: u8,
    /// Per-token flushing: yield once before the next frame, so hyper writes this one alone.
    yield_next: bool,
}

/// Waits until `at`, or until a ping is due (`ping` after `last_write`), registering a wake-up
/// in `cx`: `Ready(true)` means a ping is due, `Ready(false)` that `at` has come.
///
/// tokio's millisecond timer (kept in `sleep`, reused between polls) covers all but the last
/// [`COARSE`] of the wait; the precise timer thread covers the rest, so releases are not rounded
/// up to the next millisecond.
pub(crate) fn wait_until(
    cx: &mut Context<'_>,
    at: Instant,
    ping: Option<Duration>,
    last_write: Instant,
    sleep: &mut Option<Pin<Box<Sleep>>>,
) -> Poll<bool> {
    loop {
        let now = Instant::now();
        let ping_at = ping.map(|p| last_write + p);
        if ping_at.is_some_and(|t| t <= now) {
            return Poll::Ready(true);
        }
        if at <= now {
            return Poll::Ready(false);
        }
        let wake = ping_at.map_or(at, |p| p.min(at));
        let remaining = wake - now;
        if remaining <= COARSE {
            precise::wake_at(std::time::Instant::now() + remaining, cx.waker());
            return Poll::Pending;
        }
        let coarse = wake - COARSE;
        let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(coarse)));
        if sleep.deadline() != coarse {
            sleep.as_mut().reset(coarse);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    }
}

impl<S> std::fmt::Debug for PacedBody<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacedBody")
            .field("items", &self.items)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl<S: Script> PacedBody<S> {
    /// Item `i` is released at `start + i * itl`; `ping`: a keepalive after this much silence.
    pub(crate) fn new(
        script: S,
        conn: ConnHandle,
        items: u32,
        start: Instant,
        itl: Duration,
        ping: Option<Duration>,
    ) -> Self {
        let paced = start > Instant::now() || !itl.is_zero();
        Self {
            script,
            conn,
            items,
            start,
            itl,
            paced,
            ping,
            next: 0,
            phase: Phase::Head,
            sleep: None,
            last_write: Instant::now(),
            resetting: 0,
            yield_next: false,
        }
    }

    /// Waits until `at` or a due ping: `Ready(true)` means a ping is due.
    fn wait(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<bool> {
        wait_until(cx, at, self.ping, self.last_write, &mut self.sleep)
    }

    /// `Ready(Ok(()))` with `out` filled (maybe empty at the end), or `Pending`.
    fn fill(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<io::Result<()>> {
        match self.resetting {
            0 => {}
            1 => {
                // Yield once so hyper writes out what came before the reset.
                self.resetting = 2;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            _ => {
                self.conn.reset_on_close();
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )));
            }
        }
        loop {
            match self.phase {
                Phase::Head => {
                    if self.paced {
                        match self.wait(cx, self.start) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(true) => {
                                self.script.ping(out);
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Ready(false) => {}
                        }
                    }
                    self.script.head(out);
                    self.phase = Phase::Items;
                }
                Phase::Items => {
                    let i = self.next;
                    if i > 0 && i < self.items && self.paced {
                        match self.wait(cx, self.start + self.itl * i) {
                            Poll::Pending if out.is_empty() => return Poll::Pending,
                            Poll::Pending => return Poll::Ready(Ok(())),
                            Poll::Ready(true) => {
                                if out.is_empty() {
                                    self.script.ping(out);
                                }
                                return Poll::Ready(Ok(()));
                            }
                            Poll::Ready(false) => {}
                        }
                    }
                    match self.script.before(i, out) {
                        Step::Go => {}
                        Step::End => {
                            self.phase = Phase::End;
                            return Poll::Ready(Ok(()));
                        }
                        Step::Reset => {
                            self.resetting = 1;
                            if out.is_empty() {
                                return self.fill(cx, out);
                            }
                            return Poll::Ready(Ok(()));
                        }
                    }
                    if i >= self.items {
                        self.script.tail(out);
                        self.phase = Phase::End;
                        return Poll::Ready(Ok(()));
                    }
                    self.script.item(i, out);
                    self.next += 1;
                    let per_event = self.conn.frame_per_event();
                    if ((self.paced || per_event) && self.next < self.items)
                        || out.len() >= FRAME_TARGET
                    {
                        return Poll::Ready(Ok(()));
                    }
                }
                Phase::End => return Poll::Ready(Ok(())),
            }
        }
    }
}

impl<S: Script> Body for PacedBody<S> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.yield_next {
            this.yield_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let small = this.paced || this.conn.frame_per_event();
        let mut out = BytesMut::with_capacity(if small { 512 } else { FRAME_TARGET + 1024 });
        match this.fill(cx, &mut out) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if out.is_empty() => {
                if this.phase == Phase::End {
                    Poll::Ready(None)
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
            Poll::Ready(Ok(())) => {
                this.last_write = Instant::now();
                this.yield_next = !this.paced && this.conn.write_per_event();
                Poll::Ready(Some(Ok(Frame::data(out.freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.phase == Phase::End
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A response body: complete, or paced by a script.
pub(crate) enum AnyBody {
    /// A complete body, sent with `Content-Length`.
    Full(Option<Bytes>),
    /// A paced stream.
    Paced(Pin<Box<dyn Body<Data = Bytes, Error = io::Error> + Send>>),
}

impl std::fmt::Debug for AnyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyBody::Full(b) => f.debug_tuple("Full").field(b).finish(),
            AnyBody::Paced(_) => f.write_str("Paced"),
        }
    }
}

impl AnyBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        AnyBody::Full(Some(bytes.into()))
    }

    pub(crate) fn paced<S: Script>(body: PacedBody<S>) -> Self {
        AnyBody::Paced(Box::pin(body))
    }
}

impl Body for AnyBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            AnyBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            AnyBody::Paced(body) => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnyBody::Full(bytes) => bytes.is_none(),
            AnyBody::Paced(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnyBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            AnyBody::Paced(body) => body.size_hint(),
        }
    }
}

/// A response with `status`, `content_type` and `body`.
pub(crate) fn response(
    status: u16,
    content_type: &'static str,
    body: AnyBody,
) -> http::Response<AnyBody> {
    let mut response = http::Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Reads a request body (at most 16 MiB).
pub(crate) async fn read_body(body: hyper::body::Incoming) -> Option<Bytes> {
    use http_body_util::BodyExt as _;
    http_body_util::Limited::new(body, 16 << 20)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}
