//! The simulated server's wire format (chunk JSON copied from real servers) and the paced
//! streaming body that releases token `i` at `start + i * itl`.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::Shared;
use crate::paced::wait_until;
use crate::server::ConnHandle;

/// The texts the simulated model cycles through (one per token), including a newline and a
/// non-ASCII word so clients meet escapes and multi-byte UTF-8.
const WORDS: [&str; 20] = [
    " The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".", "\n",
    " Load", " tests", " measure", " what", " users", " feel", ",", " naïve", " token",
];

/// Zero-paced streams pack events into frames of about this size.
const FRAME_TARGET: usize = 16 * 1024;

/// The JSON-encoded token texts.
pub(super) fn token_texts() -> Vec<String> {
    WORDS
        .iter()
        .map(|w| serde_json::Value::from(*w).to_string())
        .collect()
}

/// Which endpoint a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Chat,
    Completions,
}

/// Pre-rendered pieces of one response's chunks.
#[derive(Debug)]
pub(super) struct Wire {
    kind: Kind,
    /// `data: {"id":...,"object":...,"created":...,"model":...,"choices":[`
    head: Vec<u8>,
}

impl Wire {
    pub(super) fn new(kind: Kind, index: u64, model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (id, object) = match kind {
            Kind::Chat => ("chatcmpl", "chat.completion.chunk"),
            Kind::Completions => ("cmpl", "text_completion"),
        };
        let model = serde_json::Value::from(model).to_string();
        let head = format!(
            r#"data: {{"id":"{id}-sim-{index}","object":"{object}","created":{created},"model":{model},"choices":["#
        );
        Self {
            kind,
            head: head.into_bytes(),
        }
    }

    fn role(&self, out: &mut BytesMut) {
        if self.kind == Kind::Chat {
            out.extend_from_slice(&self.head);
            out.extend_from_slice(
                br#"{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            );
            out.extend_from_slice(b"\n\n");
        }
    }

    fn content(&self, out: &mut BytesMut, text_json: &[u8]) {
        out.extend_from_slice(&self.head);
        match self.kind {
            Kind::Chat => {
                out.extend_from_slice(br#"{"index":0,"delta":{"content":"#);
                out.extend_from_slice(text_json);
                out.extend_from_slice(br#"},"finish_reason":null}]}"#);
            }
            Kind::Completions => {
                out.extend_from_slice(br#"{"index":0,"text":"#);
                out.extend_from_slice(text_json);
                out.extend_from_slice(br#","logprobs":null,"finish_reason":null}]}"#);
            }
        }
        out.extend_from_slice(b"\n\n");
    }

    fn finish(&self, out: &mut BytesMut, reason: &str) {
        out.extend_from_slice(&self.head);
        match self.kind {
            Kind::Chat => out.extend_from_slice(br#"{"index":0,"delta":{},"finish_reason":""#),
            Kind::Completions => {
                out.extend_from_slice(br#"{"index":0,"text":"","logprobs":null,"finish_reason":""#)
            }
        }
        out.extend_from_slice(reason.as_bytes());
        out.extend_from_slice(b"\"}]}\n\n");
    }

    fn usage(&self, out: &mut BytesMut, prompt: u32, completion: u32) {
        out.extend_from_slice(&self.head);
        let total = u64::from(prompt) + u64::from(completion);
        out.extend_from_slice(
            format!(
                r#"],"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},"total_tokens":{total}}}}}"#
            )
            .as_bytes(),
        );
        out.extend_from_slice(b"\n\n");
    }

    fn done(out: &mut BytesMut) {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn error(out: &mut BytesMut, message: &str) {
        let message = serde_json::Value::from(message).to_string();
        out.extend_from_slice(
            format!(
                r#"data: {{"error":{{"message":{message},"type":"server_error","code":500}}}}"#
            )
            .as_bytes(),
        );
        out.extend_from_slice(b"\n\n");
    }

    fn malformed(&self, out: &mut BytesMut) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(br#"{"index":0,"delta":{"content":"oops"#);
        out.extend_from_slice(b"\n\n");
    }
}

/// A fault that happens inside a stream, before token `at`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum StreamFault {
    Truncate,
    Reset,
    Close,
    Malformed,
    InvalidUtf8,
    Error(String),
    Oversized(usize),
    Stall(Duration),
}

/// What one streaming response will send.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) tokens: u32,
    pub(super) finish_reason: &'static str,
    /// `(prompt, completion)` tokens for the usage chunk, if one is sent.
    pub(super) usage: Option<(u32, u32)>,
    pub(super) fault: Option<(u32, StreamFault)>,
    /// Answer with a call of this tool (its JSON-encoded name) instead of text: the tokens are
    /// fragments of its arguments.
    pub(super) tool_call: Option<String>,
    /// Keep the body open this long after `[DONE]`, then send a comment.
    pub(super) linger: Option<Duration>,
}

/// A whole raw response for [`Fault::BadChunking`](super::Fault::BadChunking): a streaming
/// head, the role chunk and `tokens` content chunks in valid chunked framing, then a chunk-size
/// line that is not hexadecimal.
pub(super) fn bad_chunking(wire: &Wire, texts: &[String], tokens: u32) -> Bytes {
    let mut out = BytesMut::from(
        &b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"[..],
    );
    let mut event = BytesMut::new();
    let chunk = |event: &mut BytesMut, out: &mut BytesMut| {
        out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
        out.extend_from_slice(event);
        out.extend_from_slice(b"\r\n");
        event.clear();
    };
    wire.role(&mut event);
    if !event.is_empty() {
        chunk(&mut event, &mut out);
    }
    for i in 0..tokens as usize {
        wire.content(&mut event, texts[i % texts.len()].as_bytes());
        chunk(&mut event, &mut out);
    }
    out.extend_from_slice(b"zz\r\nnot a chunk size\r\n");
    out.freeze()
}

/// The arguments of a simulated tool call, streamed one fragment per token.
pub(super) const TOOL_ARGS: [&str; 4] = ["{\"query\"", ": \"load", "kit\", ", "\"n\": 3}"];

impl Wire {
    fn tool_call(&self, out: &mut BytesMut, i: u32, name_json: &str, round: u64) {
        out.extend_from_slice(&self.head);
        out.extend_from_slice(br#"{"index":0,"delta":{"tool_calls":[{"index":0,"#);
        if i == 0 {
            out.extend_from_slice(
                format!(r#""id":"call_{round}","type":"function","function":{{"name":{name_json},"arguments":"#)
                    .as_bytes(),
            );
        } else {
            out.extend_from_slice(br#""function":{"arguments":"#);
        }
        let fragment = serde_json::Value::from(TOOL_ARGS[i as usize % TOOL_ARGS.len()]);
        out.extend_from_slice(fragment.to_string().as_bytes());
        out.extend_from_slice(br#"}}]},"finish_reason":null}]}"#);
        out.extend_from_slice(b"\n\n");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Role,
    Tokens,
    Tail,
    /// After an in-stream error: only `[DONE]` is left.
    DoneOnly,
    /// After `[DONE]`: the body stays open until this instant ([`Plan::linger`]).
    Linger(Instant),
    End,
}

/// Decrements the in-flight gauge when a response ends (or is dropped), and frees its slot.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Shared>, Option<tokio::sync::OwnedSemaphorePermit>);

impl InFlight {
    /// Enters the gauge, or `None` when the concurrency limit is reached.
    pub(super) fn enter(shared: &Arc<Shared>) -> Option<Self> {
        let gauge = &shared.counters.in_flight;
        let n = gauge.fetch_add(1, Ordering::AcqRel);
        if shared.config.max_concurrency.is_some_and(|max| n >= max) {
            gauge.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(shared.clone(), None))
    }

    /// Takes a slot ([`SimConfig::slots`](super::SimConfig::slots)), waiting in arrival order
    /// for one to be free. `true`: it had to wait.
    pub(super) async fn take_slot(&mut self) -> bool {
        let Some(slots) = self.0.slots.clone() else {
            return false;
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            self.1 = Some(permit);
            return false;
        }
        let waiting = &self.0.counters.waiting;
        waiting.fetch_add(1, Ordering::AcqRel);
        // The semaphore is never closed; a dropped request leaves the queue with its future.
        let _leave = Leave(waiting);
        self.1 = slots.acquire_owned().await.ok();
        true
    }
}

/// Leaves the waiting gauge when the wait ends, or when the request is dropped while waiting.
struct Leave<'a>(&'a std::sync::atomic::AtomicU32);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A streaming response body, paced or not.
#[derive(Debug)]
pub(super) struct StreamBody {
    guard: InFlight,
    wire: Wire,
    plan: Plan,
    conn: ConnHandle,
    /// Release instant of token 0.
    start: Instant,
    itl: Duration,
    paced: bool,
    ping: Option<Duration>,
    next: u32,
    phase: Phase,
    sleep: Option<Pin<Box<Sleep>>>,
    last_write: Instant,
    /// A connection-killing fault already yielded once so that earlier output was flushed.
    fault_flushed: bool,
    /// Per-token flushing: yield once before the next frame, so hyper writes this one alone.
    yield_next: bool,
    /// Which tool round of the conversation this answer is (for tool-call ids).
    pub(super) wire_round: u64,
}

impl StreamBody {
    pub(super) fn new(
        guard: InFlight,
        wire: Wire,
        plan: Plan,
        conn: ConnHandle,
        start: Instant,
        itl: Duration,
        ping: Option<Duration>,
    ) -> Self {
        let paced = start > Instant::now() || !itl.is_zero();
        Self {
            guard,
            wire,
            plan,
            conn,
            start,
            itl,
            paced,
            ping,
            next: 0,
            phase: Phase::Role,
            sleep: None,
            last_write: Instant::now(),
            fault_flushed: false,
            yield_next: false,
            wire_round: 0,
        }
    }

    fn shared(&self) -> &Shared {
        &self.guard.0
    }

    /// Waits until `at` (or the next ping), registering a wake-up. `Ready(true)`: a ping is due.
    /// See [`wait_until`].
    fn wait(&mut self, cx: &mut Context<'_>, at: Instant) -> Poll<bool> {
        wait_until(cx, at, self.ping, self.last_write, &mut self.sleep)
    }

    /// Appends due events to `out`. `Ready(Ok(true))`: hand `out` over (it may be empty at the
    /// end); `Ready(Ok(false))`: the body is over; `Pending`: nothing is due yet.
    fn fill(&mut self, cx: &mut Context<'_>, out: &mut BytesMut) -> Poll<io::Result<bool>> {
        loop {
            match self.phase {
                Phase::Role => {
                    self.wire.role(out);
                    self.phase = Phase::Tokens;
                    if (self.paced || self.conn.frame_per_event()) && !out.is_empty() {
                        return Poll::Ready(Ok(true));
                    }
                }
                Phase::Tokens => {
                    if let Some((at, fault)) = &self.plan.fault {
                        if *at == self.next {
                            // What was produced before the fault goes out first, and a fault that
                            // kills the connection waits one turn so hyper flushes it.
                            if !out.is_empty() {
                                return Poll::Ready(Ok(true));
                            }
                            if matches!(fault, StreamFault::Reset | StreamFault::Close)
                                && !self.fault_flushed
                            {
                                self.fault_flushed = true;
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                            let (_, fault) = self.plan.fault.take().expect("checked above");
                            match self.inject(fault, out) {
                                Some(result) => return Poll::Ready(result),
                                None if self.paced && !out.is_empty() => {
                                    return Poll::Ready(Ok(true))
                                }
                                None => continue,
                            }
                        }
                    }
                    if self.next >= self.plan.tokens {
                        self.phase = Phase::Tail;
                        continue;
                    }
                    if self.paced {
                        let due = self.start + self.itl * self.next;
                        match self.wait(cx, due) {
                            Poll::Pending if out.is_empty() => return Poll::Pending,
                            Poll::Pending => return Poll::Ready(Ok(true)),
                            Poll::Ready(true) => {
                                out.extend_from_slice(b": ping\n\n");
                                return Poll::Ready(Ok(true));
                            }
                            Poll::Ready(false) => {}
                        }
                    }
                    if let Some(tool) = &self.plan.tool_call {
                        self.wire.tool_call(out, self.next, tool, self.wire_round);
                    } else {
                        let texts = &self.shared().tokens;
                        let text = &texts[self.next as usize % texts.len()];
                        self.wire.content(out, text.as_bytes());
                    }
                    self.next += 1;
                    if self.paced || self.conn.frame_per_event() || out.len() >= FRAME_TARGET {
                        return Poll::Ready(Ok(true));
                    }
                }
                Phase::Tail => {
                    self.wire.finish(out, self.plan.finish_reason);
                    if let Some((prompt, completion)) = self.plan.usage {
                        self.wire.usage(out, prompt, completion);
                    }
                    Wire::done(out);
                    self.phase = match self.plan.linger {
                        Some(linger) => Phase::Linger(Instant::now() + linger),
                        None => Phase::End,
                    };
                    self.shared()
                        .counters
                        .completed
                        .fetch_add(1, Ordering::Relaxed);
                    return Poll::Ready(Ok(true));
                }
                Phase::Linger(until) => match self.wait(cx, until) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(true) => {
                        out.extend_from_slice(b": ping\n\n");
                        return Poll::Ready(Ok(true));
                    }
                    Poll::Ready(false) => {
                        out.extend_from_slice(b": lingered past [DONE]\n\n");
                        self.phase = Phase::End;
                        return Poll::Ready(Ok(true));
                    }
                },
                Phase::DoneOnly => {
                    Wire::done(out);
                    self.phase = Phase::End;
                    return Poll::Ready(Ok(true));
                }
                Phase::End => return Poll::Ready(Ok(!out.is_empty())),
            }
        }
    }

    /// Applies a stream fault; `Some` ends this poll with that result.
    fn inject(&mut self, fault: StreamFault, out: &mut BytesMut) -> Option<io::Result<bool>> {
        match fault {
            StreamFault::Truncate => {
                self.phase = Phase::End;
                Some(Ok(!out.is_empty()))
            }
            StreamFault::Reset => {
                self.conn.reset_on_close();
                Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )))
            }
            StreamFault::Close => Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "simulated close",
            ))),
            StreamFault::Malformed => {
                self.wire.malformed(out);
                None
            }
            StreamFault::InvalidUtf8 => {
                self.wire.content(out, b"\"bad \xFF\xFE bytes\"");
                None
            }
            StreamFault::Error(message) => {
                Wire::error(out, &message);
                self.phase = Phase::DoneOnly;
                Some(Ok(true))
            }
            StreamFault::Oversized(bytes) => {
                let filler = vec![b'x'; bytes];
                let mut text = Vec::with_capacity(bytes + 2);
                text.push(b'"');
                text.extend_from_slice(&filler);
                text.push(b'"');
                self.wire.content(out, &text);
                None
            }
            StreamFault::Stall(duration) => {
                // Every later release moves back by the stall.
                self.start += duration;
                self.paced = true;
                None
            }
        }
    }
}

impl Body for StreamBody {
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
        let before = this.next;
        let result = this.fill(cx, &mut out);
        let sent = this.next - before;
        if sent > 0 {
            this.shared()
                .counters
                .tokens
                .fetch_add(u64::from(sent), Ordering::Relaxed);
        }
        match result {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(_)) if out.is_empty() => {
                if this.phase == Phase::End {
                    Poll::Ready(None)
                } else {
                    // Nothing was written but the body goes on: ask to be polled again.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
            Poll::Ready(Ok(_)) => {
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

/// The response body: a complete buffer or a stream.
#[derive(Debug)]
pub(crate) enum SimBody {
    /// A complete body, sent with `Content-Length`.
    Full(Option<Bytes>),
    /// A streamed body, sent chunked.
    Stream(Box<StreamBody>),
}

impl SimBody {
    pub(super) fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody::Full(Some(bytes.into()))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream(stream) => Pin::new(stream.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(bytes) => bytes.is_none(),
            SimBody::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            SimBody::Stream(stream) => stream.size_hint(),
        }
    }
}
