//! A simulated generic SSE application, framed like FastAPI with sse-starlette's
//! `EventSourceResponse`: `id:`, `event:` and `data:` lines ended by `\r\n`, a blank line after
//! each event, and periodic `: ping - <time>` comments while the stream is silent. It answers
//! any method on any path.
//!
//! Each response sends `chunks` events (item `i` at `arrival + ttft + i * itl`), then, if
//! configured, a final event (`data: [DONE]`, or an event named e.g. `end`), and closes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::openai::Trigger;
use crate::paced::{self, AnyBody, PacedBody, Script, Step};
use crate::server::{self, ConnHandle, Counted};

/// The simulated application's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct SseAppConfig {
    /// Time to the first event. Default 50 ms.
    pub ttft: Duration,
    /// Time between events. Default 10 ms.
    pub itl: Duration,
    /// Content events per response. Default 32.
    pub chunks: u32,
    /// `event:` name of the content events (`None`: no `event:` line).
    pub event: Option<String>,
    /// Send `id:` lines.
    pub ids: bool,
    /// Content events carry `{"token": "...", "index": i}` (otherwise plain text).
    pub json: bool,
    /// The final event: `Some(("end", "[DONE]"))` sends `event: end` / `data: [DONE]`; an empty
    /// event name sends only the data. `None`: the stream just closes.
    pub done: Option<(String, String)>,
    /// Send a `: ping` comment whenever the stream has been silent this long.
    pub ping: Option<Duration>,
    /// Faults to inject; the first rule that selects a request applies to it.
    pub faults: Vec<(Trigger, SseFault)>,
    /// Connection behaviour and linger after the end of a body. Default keep-alive, no linger.
    pub transport: crate::Transport,
}

impl Default for SseAppConfig {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            chunks: 32,
            event: None,
            ids: true,
            json: true,
            done: Some((String::new(), "[DONE]".to_owned())),
            ping: None,
            faults: Vec::new(),
            transport: crate::Transport::default(),
        }
    }
}

/// Something going wrong with a generic SSE response.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SseFault {
    /// Answer with this status and a JSON `{"detail": ...}` body (FastAPI's error shape).
    Status(u16, String),
    /// Send `event: error` with `{"error": message}` after `after` events, then close.
    ErrorEvent {
        /// Events sent first.
        after: u32,
        /// The message.
        message: String,
    },
    /// Close cleanly after `after` events (no final event).
    Truncate {
        /// Events sent first.
        after: u32,
    },
    /// Send a data line that is not JSON after `after` events, then go on.
    Malformed {
        /// Events sent first.
        after: u32,
    },
    /// Reset the connection after `after` events.
    Reset {
        /// Events sent first.
        after: u32,
    },
}

/// A running simulated SSE application.
#[derive(Debug)]
pub struct SseAppServer {
    inner: Counted,
}

impl SseAppServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr()
    }

    /// `http://127.0.0.1:PORT/stream` (any path works).
    pub fn url(&self) -> String {
        format!("http://{}/stream", self.addr())
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.inner.requests()
    }

    /// Stops gracefully.
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// Starts a simulated SSE application on `127.0.0.1:0`.
pub async fn serve(config: SseAppConfig) -> std::io::Result<SseAppServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts a simulated SSE application on a listener the caller bound (inside a tokio runtime).
pub fn serve_on(listener: TcpListener, config: SseAppConfig) -> SseAppServer {
    let transport = config.transport;
    SseAppServer {
        inner: server::spawn_counted(listener, config, transport, handle),
    }
}

async fn handle(
    config: Arc<SseAppConfig>,
    requests: Arc<AtomicU64>,
    request: Request<Incoming>,
    conn: ConnHandle,
) -> Response<AnyBody> {
    let arrival = Instant::now();
    let index = requests.fetch_add(1, Ordering::Relaxed);
    let _ = paced::read_body(request.into_body()).await;
    let fault = config
        .faults
        .iter()
        .find(|(when, _)| when.selects(index))
        .map(|(_, f)| f.clone());
    if let Some(SseFault::Status(status, detail)) = &fault {
        let body = serde_json::json!({ "detail": detail }).to_string();
        return paced::response(*status, "application/json", AnyBody::full(body));
    }
    let script = Events {
        config: config.clone(),
        fault,
    };
    let body = PacedBody::new(
        script,
        conn,
        config.chunks,
        arrival + config.ttft,
        config.itl,
        config.ping,
    );
    let mut response = paced::response(
        200,
        "text/event-stream; charset=utf-8",
        AnyBody::paced(body),
    );
    let headers = response.headers_mut();
    headers.insert("cache-control", http::HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", http::HeaderValue::from_static("no"));
    response
}

const WORDS: [&str; 8] = [
    "Hello",
    " from",
    " a",
    " \"streaming\"",
    " app",
    ",",
    " naïve",
    "\n",
];

struct Events {
    config: Arc<SseAppConfig>,
    fault: Option<SseFault>,
}

impl Script for Events {
    fn item(&mut self, i: u32, out: &mut BytesMut) {
        if self.config.ids {
            out.extend_from_slice(format!("id: {i}\r\n").as_bytes());
        }
        if let Some(name) = &self.config.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        let word = WORDS[i as usize % WORDS.len()];
        out.extend_from_slice(b"data: ");
        if self.config.json {
            let token = serde_json::Value::from(word).to_string();
            out.extend_from_slice(format!(r#"{{"token": {token}, "index": {i}}}"#).as_bytes());
        } else {
            // A plain-text event cannot hold a newline in one data line.
            out.extend_from_slice(word.trim_end_matches('\n').as_bytes());
            if word == "\n" {
                out.extend_from_slice(b"\\n");
            }
        }
        out.extend_from_slice(b"\r\n\r\n");
    }

    fn tail(&mut self, out: &mut BytesMut) {
        if let Some((event, data)) = &self.config.done {
            if !event.is_empty() {
                out.extend_from_slice(format!("event: {event}\r\n").as_bytes());
            }
            out.extend_from_slice(format!("data: {data}\r\n\r\n").as_bytes());
        }
    }

    fn before(&mut self, i: u32, out: &mut BytesMut) -> Step {
        let at = match &self.fault {
            Some(
                SseFault::ErrorEvent { after, .. }
                | SseFault::Truncate { after }
                | SseFault::Malformed { after }
                | SseFault::Reset { after },
            ) => *after,
            _ => return Step::Go,
        };
        if at != i {
            return Step::Go;
        }
        match self.fault.take() {
            Some(SseFault::ErrorEvent { message, .. }) => {
                let data = serde_json::json!({ "error": message }).to_string();
                out.extend_from_slice(format!("event: error\r\ndata: {data}\r\n\r\n").as_bytes());
                Step::End
            }
            Some(SseFault::Truncate { .. }) => Step::End,
            Some(SseFault::Malformed { .. }) => {
                out.extend_from_slice(b"data: {\"token\": \"oops\r\n\r\n");
                Step::Go
            }
            Some(SseFault::Reset { .. }) => Step::Reset,
            _ => Step::Go,
        }
    }

    fn ping(&mut self, out: &mut BytesMut) {
        let now = humanish_now();
        out.extend_from_slice(format!(": ping - {now}\r\n\r\n").as_bytes());
    }
}

/// The wall-clock time as sse-starlette prints it in pings (seconds since the epoch here).
fn humanish_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", d.as_secs(), d.subsec_micros())
}
