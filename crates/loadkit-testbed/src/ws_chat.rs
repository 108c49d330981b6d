//! A simulated WebSocket chat application, shaped like a Python asyncio server built on the
//! `websockets` library: one event loop on one thread, so a blocking prefill stalls every
//! connection, pings included.
//!
//! The protocol (any number of requests per connection, answered one after the other):
//!
//! ```text
//! → {"type":"chat","prompt":"...","max_tokens":N,"min_tokens":M,"system_prompt":"..."}
//! ← {"type":"token","text":"..."}   one every `itl`, the first `ttft` after the prefill
//! ← {"type":"done","tokens_in":W,"tokens_out":K}     W = words of the prompt and system prompt
//! ← {"type":"error","message":"..."}                 instead, when something is wrong
//! ```
//!
//! `K` is `min(max_tokens, natural_tokens)` (the model stops early), or with `min_tokens`
//! `max(min_tokens, natural_tokens)` capped by `max_tokens`. Token `i` is released at
//! `prefill end + ttft + i * itl`, computed from that one instant, and `done` right after the
//! last token. The prefill sleeps
//! `prefill_per_word × W` with a *blocking* sleep on the server's only thread. The server's own
//! keepalive (optional) pings every interval and closes with 1011 `keepalive ping timeout` when
//! no pong comes within its timeout, as `websockets` does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::openai::Trigger;
use crate::precise;

/// The simulated chat application's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct WsChatSimConfig {
    /// The path that upgrades; any other is refused with 404. Default `/ws/chat/v2`.
    pub path: String,
    /// Time from the end of the prefill to the first token. Default 50 ms.
    pub ttft: Duration,
    /// Time between tokens. Default 10 ms.
    pub itl: Duration,
    /// How many tokens the model produces before it stops by itself. Default 64.
    pub natural_tokens: u32,
    /// Prefill cost per prompt word, spent in a blocking sleep of the server's only thread
    /// (nothing else is served meanwhile, pings included). Default zero.
    pub prefill_per_word: Duration,
    /// A hard context limit: a longer prompt gets an error message
    /// `context length exceeded: W words > N`. Default none.
    pub max_prompt_words: Option<usize>,
    /// The server's own pings. Default none.
    pub keepalive: Option<SimKeepalive>,
    /// Faults to inject; the first rule that selects a request (by its arrival index over the
    /// whole server) applies to it.
    pub faults: Vec<(Trigger, WsFault)>,
    /// Upgrades without this header (name, value) are refused with 401. Default none.
    pub required_header: Option<(String, String)>,
    /// How the server retires connections after some responses. Default never.
    pub recycle: Option<Recycle>,
    /// Send every message as a binary frame (JSON bytes) instead of a text frame. Default off.
    pub binary: bool,
}

impl Default for WsChatSimConfig {
    fn default() -> Self {
        Self {
            path: "/ws/chat/v2".to_owned(),
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            natural_tokens: 64,
            prefill_per_word: Duration::ZERO,
            max_prompt_words: None,
            keepalive: None,
            faults: Vec::new(),
            required_header: None,
            recycle: None,
            binary: false,
        }
    }
}

/// How a server retires a connection that served `n` responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recycle {
    /// Close it (1000, `connection recycled`) right after the `n`th response's `done`, without
    /// being asked.
    AfterResponses(u32),
    /// Keep it open, and answer the next request on it by closing it (1001, `going away`)
    /// without an answer: the race a client loses when it reuses a connection the server is
    /// retiring, lost every time.
    OnRequestAfter(u32),
}

/// The server's keepalive, as `websockets`' `ping_interval` / `ping_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimKeepalive {
    /// A ping this often.
    pub interval: Duration,
    /// No pong within this long: close 1011.
    pub timeout: Duration,
}

/// Something going wrong with one response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsFault {
    /// `{"type":"error","message":...}` after `after_tokens` tokens, instead of the rest; the
    /// connection stays open.
    ErrorMessage {
        /// Tokens sent first.
        after_tokens: u32,
        /// The message.
        message: String,
    },
    /// A close frame with `code` and `reason` after `after_tokens` tokens (1011 as a keepalive
    /// failure, 1009 as a message too big, 1008 as a policy violation, ...).
    Close {
        /// Tokens sent first.
        after_tokens: u32,
        /// The close code.
        code: u16,
        /// The reason.
        reason: String,
    },
    /// The TCP connection dropped after `after_tokens` tokens, without a close frame (the
    /// client sees 1006).
    Drop {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// A message that is not JSON after `after_tokens` tokens, then the stream goes on.
    Malformed {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// The stream stops after `after_tokens` tokens with no `done`; the connection stays open
    /// and silent.
    NoEnd {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// The server reads nothing while it streams this response, so the client's pings go
    /// unanswered (as a server whose event loop is busy elsewhere).
    IgnorePings,
    /// A token message of about `bytes` bytes after `after_tokens` tokens.
    Oversized {
        /// Tokens sent first.
        after_tokens: u32,
        /// Its size.
        bytes: usize,
    },
}

impl WsFault {
    fn after(&self) -> Option<u32> {
        match self {
            WsFault::ErrorMessage { after_tokens, .. }
            | WsFault::Close { after_tokens, .. }
            | WsFault::Drop { after_tokens }
            | WsFault::Malformed { after_tokens }
            | WsFault::NoEnd { after_tokens }
            | WsFault::Oversized { after_tokens, .. } => Some(*after_tokens),
            WsFault::IgnorePings => None,
        }
    }
}

/// What the server did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsChatStats {
    /// WebSocket connections accepted (upgraded).
    pub connections: u64,
    /// Upgrades refused (wrong path, missing header).
    pub rejected: u64,
    /// Chat requests received and answered (with tokens or an error).
    pub requests: u64,
    /// Requests answered by closing the connection ([`Recycle::OnRequestAfter`]).
    pub refused_requests: u64,
    /// Responses that ended with `done`.
    pub completed: u64,
    /// Token messages sent.
    pub tokens: u64,
    /// Pings the server sent (its keepalive).
    pub pings_sent: u64,
    /// Pongs it received.
    pub pongs_received: u64,
    /// Pings it received (from the client).
    pub pings_received: u64,
    /// Connections it closed with 1011 because its ping went unanswered.
    pub keepalive_closes: u64,
    /// Close frames it received (connections the client closed politely).
    pub closes_received: u64,
}

#[derive(Debug)]
struct Counters {
    /// Bumped after every count, so a test can await a count instead of polling it.
    changed: watch::Sender<u64>,
    connections: AtomicU64,
    rejected: AtomicU64,
    requests: AtomicU64,
    refused_requests: AtomicU64,
    completed: AtomicU64,
    tokens: AtomicU64,
    pings_sent: AtomicU64,
    pongs_received: AtomicU64,
    pings_received: AtomicU64,
    keepalive_closes: AtomicU64,
    closes_received: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            changed: watch::Sender::new(0),
            connections: AtomicU64::default(),
            rejected: AtomicU64::default(),
            requests: AtomicU64::default(),
            refused_requests: AtomicU64::default(),
            completed: AtomicU64::default(),
            tokens: AtomicU64::default(),
            pings_sent: AtomicU64::default(),
            pongs_received: AtomicU64::default(),
            pings_received: AtomicU64::default(),
            keepalive_closes: AtomicU64::default(),
            closes_received: AtomicU64::default(),
        }
    }
}

impl Counters {
    /// Adds one to the counter `pick` chooses, returning its value before.
    fn add(&self, pick: impl FnOnce(&Self) -> &AtomicU64) -> u64 {
        let before = pick(self).fetch_add(1, Ordering::Relaxed);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        before
    }
}

#[derive(Debug)]
struct Shared {
    config: WsChatSimConfig,
    counters: Counters,
}

/// A running simulated chat application, on a thread of its own.
#[derive(Debug)]
pub struct WsChatServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WsChatServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/ws/chat/v2` (the configured path).
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.shared.config.path)
    }

    /// The counters so far.
    pub fn stats(&self) -> WsChatStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WsChatStats {
            connections: get(&c.connections),
            rejected: get(&c.rejected),
            requests: get(&c.requests),
            refused_requests: get(&c.refused_requests),
            completed: get(&c.completed),
            tokens: get(&c.tokens),
            pings_sent: get(&c.pings_sent),
            pongs_received: get(&c.pongs_received),
            pings_received: get(&c.pings_received),
            keepalive_closes: get(&c.keepalive_closes),
            closes_received: get(&c.closes_received),
        }
    }

    /// Resolves once the counters satisfy `done` (checked now and after every count): what
    /// happens in the background, such as a client's polite close, is awaited, not polled.
    pub async fn wait_until(&self, done: impl Fn(&WsChatStats) -> bool) {
        let mut changed = self.shared.counters.changed.subscribe();
        // The sender lives as long as `self`, so this ends only when `done` holds.
        let _ = changed.wait_for(|_| done(&self.stats())).await;
    }

    /// Stops: no new connections, every open one dropped; waits for the server's thread.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for WsChatServer {
    fn drop(&mut self) {
        // The thread ends by itself once told; it is not waited for here.
        let _ = self.stop.send(true);
    }
}

/// Starts a simulated chat application on `127.0.0.1:0`, served by its own thread with a
/// current-thread tokio runtime (so a blocking prefill blocks only it, as in an asyncio
/// server, never the caller's runtime).
pub async fn serve(config: WsChatSimConfig) -> std::io::Result<WsChatServer> {
    serve_on(std::net::TcpListener::bind(("127.0.0.1", 0))?, config)
}

/// Like [`serve`], on a listener the caller bound (e.g. `loadkit serve-sim --addr`).
pub fn serve_on(
    listener: std::net::TcpListener,
    config: WsChatSimConfig,
) -> std::io::Result<WsChatServer> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        config,
        counters: Counters::default(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let (done_tx, done) = oneshot::channel();
    let serving = shared.clone();
    let thread = std::thread::Builder::new()
        .name("loadkit-testbed-ws-chat".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept_loop(listener, serving, stopped).await,
                    Err(e) => tracing::warn!("ws_chat: cannot listen: {e}"),
                }
            });
            drop(runtime);
            let _ = done_tx.send(());
        })?;
    Ok(WsChatServer {
        addr,
        shared,
        stop,
        done: Some(done),
        thread: Some(thread),
    })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(connection(stream, shared.clone()));
                }
                Err(e) => {
                    tracing::debug!("ws_chat: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    // Dropping the set aborts every connection.
}

// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let check = shared.clone();
    let callback = move |request: &Request, response: Response| {
        let refuse = |status: u16, body: String| {
            check.counters.add(|c| &c.rejected);
            let mut refusal = ErrorResponse::new(Some(body));
            *refusal.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
            refusal.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Err(refusal)
        };
        let config = &check.config;
        if request.uri().path() != config.path {
            return refuse(404, format!("no chat endpoint at {}", request.uri().path()));
        }
        if let Some((name, value)) = &config.required_header {
            let sent = request
                .headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok());
            if sent != Some(value.as_str()) {
                return refuse(401, format!("missing or wrong {name} header"));
            }
        }
        Ok(response)
    };
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    shared.counters.add(|c| &c.connections);
    let keepalive = shared.config.keepalive.map(|k| Pinger {
        config: k,
        next: Instant::now() + k.interval,
        waiting: None,
    });
    let mut session = Session {
        ws,
        shared,
        queue: VecDeque::new(),
        stream: None,
        served: 0,
        keepalive,
    };
    let _ = session.run().await;
}

/// The server's keepalive state on one connection.
#[derive(Debug)]
struct Pinger {
    config: SimKeepalive,
    next: Instant,
    waiting: Option<Instant>,
}

impl Pinger {
    fn wake(&self) -> Instant {
        match self.waiting {
            Some(at) => at + self.config.timeout,
            None => self.next,
        }
    }
}

/// The response being streamed.
#[derive(Debug)]
struct Streaming {
    tokens: u32,
    next: u32,
    start: Instant,
    words: u64,
    fault: Option<WsFault>,
}

impl Streaming {
    fn due(&self, itl: Duration) -> Instant {
        self.start + itl * self.next
    }

    fn reading(&self) -> bool {
        self.fault != Some(WsFault::IgnorePings)
    }
}

/// Why a connection ends.
#[derive(Debug)]
struct End;

struct Session {
    ws: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    queue: VecDeque<Bytes>,
    stream: Option<Streaming>,
    served: u32,
    keepalive: Option<Pinger>,
}

const WORDS: [&str; 8] = [
    "Hello",
    " from",
    " a",
    " \"streaming\"",
    " chat",
    ",",
    " naïve",
    "\n",
];

impl Session {
    async fn run(&mut self) -> Result<(), End> {
        let far = Instant::now() + Duration::from_secs(86_400);
        loop {
            let itl = self.shared.config.itl;
            let reading = self.stream.as_ref().is_none_or(Streaming::reading);
            let due = self.stream.as_ref().map(|s| s.due(itl));
            let ping = self.keepalive.as_ref().map(Pinger::wake);
            tokio::select! {
                biased;
                message = self.ws.next(), if reading => match message {
                    Some(Ok(Message::Text(text))) => self.received(Bytes::from(text)).await?,
                    Some(Ok(Message::Binary(bytes))) => self.received(bytes).await?,
                    Some(Ok(Message::Pong(_))) => {
                        self.shared.counters.add(|c| &c.pongs_received);
                        if let Some(k) = self.keepalive.as_mut() {
                            k.waiting = None;
                        }
                    }
                    Some(Ok(Message::Ping(_))) => {
                        // tungstenite answers it before its next read.
                        self.shared.counters.add(|c| &c.pings_received);
                    }
                    Some(Ok(Message::Close(_))) => {
                        self.shared.counters.add(|c| &c.closes_received);
                        // Answer the close and let the client close the TCP connection.
                        let _ = self.ws.flush().await;
                        return Err(End);
                    }
                    Some(Ok(Message::Frame(_))) => {}
                    Some(Err(_)) | None => return Err(End),
                },
                () = precise::sleep_until(due.unwrap_or(far)), if due.is_some() => self.emit().await?,
                () = tokio::time::sleep_until(ping.unwrap_or(far)), if ping.is_some() => self.keepalive().await?,
            }
        }
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        self.ws.send(message).await.map_err(|_| End)
    }

    /// `text` as a text frame, or as a binary one when so configured.
    async fn send_text(&mut self, text: String) -> Result<(), End> {
        let message = if self.shared.config.binary {
            Message::binary(text)
        } else {
            Message::text(text)
        };
        self.send(message).await
    }

    async fn send_json(&mut self, value: serde_json::Value) -> Result<(), End> {
        self.send_text(value.to_string()).await
    }

    async fn error(&mut self, message: &str) -> Result<(), End> {
        self.send_json(serde_json::json!({"type": "error", "message": message}))
            .await
    }

    /// Closes with `code` and `reason`, waits (briefly) for the client's answer, and ends.
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), End> {
        let frame = CloseFrame {
            code: code.into(),
            reason: reason.to_owned().into(),
        };
        let _ = self.ws.close(Some(frame)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
        Err(End)
    }

    async fn received(&mut self, message: Bytes) -> Result<(), End> {
        if self.stream.is_some() {
            self.queue.push_back(message);
            return Ok(());
        }
        self.start(&message).await
    }

    /// Starts answering one request: parse, context limit, prefill, plan.
    async fn start(&mut self, message: &[u8]) -> Result<(), End> {
        if let Some(Recycle::OnRequestAfter(n)) = self.shared.config.recycle {
            if self.served >= n {
                self.shared.counters.add(|c| &c.refused_requests);
                return self.close(1001, "going away").await;
            }
        }
        let index = self.shared.counters.add(|c| &c.requests);
        let config = &self.shared.config;
        let request: serde_json::Value = match serde_json::from_slice(message) {
            Ok(v) => v,
            Err(_) => return self.error("malformed request: not json").await,
        };
        if request["type"] != "chat" {
            return self.error("unknown message type").await;
        }
        let Some(prompt) = request["prompt"].as_str() else {
            return self.error("malformed request: no prompt").await;
        };
        let words = prompt.split_whitespace().count()
            + request["system_prompt"]
                .as_str()
                .map_or(0, |s| s.split_whitespace().count());
        if let Some(max) = config.max_prompt_words {
            if words > max {
                let text = format!("context length exceeded: {words} words > {max}");
                return self.error(&text).await;
            }
        }
        let prefill = config.prefill_per_word * u32::try_from(words).unwrap_or(u32::MAX);
        if !prefill.is_zero() {
            // The point of this simulator: a prefill that holds the event loop, as a Python
            // server calling the model synchronously does. Nothing else runs meanwhile.
            std::thread::sleep(prefill);
        }
        let natural = config.natural_tokens;
        let clamp = |v: Option<u64>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        let max_tokens = clamp(request["max_tokens"].as_u64()).unwrap_or(natural);
        let tokens = match clamp(request["min_tokens"].as_u64()) {
            None => natural.min(max_tokens),
            Some(min) => min.max(natural).min(max_tokens),
        };
        let fault = config
            .faults
            .iter()
            .find(|(when, _)| when.selects(index))
            .map(|(_, f)| f.clone());
        self.stream = Some(Streaming {
            tokens,
            next: 0,
            start: Instant::now() + config.ttft,
            words: words as u64,
            fault,
        });
        Ok(())
    }

    /// Sends what is due: a fault, the next token, and `done` right after the last token.
    async fn emit(&mut self) -> Result<(), End> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            let i = stream.next;
            if stream.fault.as_ref().and_then(WsFault::after) == Some(i) {
                match stream.fault.take() {
                    Some(WsFault::ErrorMessage { message, .. }) => {
                        self.error(&message).await?;
                        return self.finished().await;
                    }
                    Some(WsFault::Close { code, reason, .. }) => {
                        return self.close(code, &reason).await
                    }
                    Some(WsFault::Drop { .. }) => return Err(End),
                    Some(WsFault::Malformed { .. }) => {
                        self.send_text(r#"{"type":"token","text":"oops"#.to_owned())
                            .await?;
                    }
                    Some(WsFault::NoEnd { .. }) => {
                        self.stream = None;
                        return Ok(());
                    }
                    Some(WsFault::Oversized { bytes, .. }) => {
                        let text = "x".repeat(bytes);
                        self.send_json(serde_json::json!({"type": "token", "text": text}))
                            .await?;
                    }
                    _ => {}
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            if i < stream.tokens {
                stream.next += 1;
                let last = stream.next == stream.tokens;
                let text = WORDS[i as usize % WORDS.len()];
                self.shared.counters.add(|c| &c.tokens);
                self.send_json(serde_json::json!({"type": "token", "text": text}))
                    .await?;
                if last {
                    // `done` goes out right after the last token, as servers send it.
                    continue;
                }
                return Ok(());
            }
            let (words, tokens) = (stream.words, stream.tokens);
            self.send_json(
                serde_json::json!({"type": "done", "tokens_in": words, "tokens_out": tokens}),
            )
            .await?;
            self.shared.counters.add(|c| &c.completed);
            self.served += 1;
            if matches!(self.shared.config.recycle, Some(Recycle::AfterResponses(n)) if self.served >= n)
            {
                return self.close(1000, "connection recycled").await;
            }
            return self.finished().await;
        }
    }

    /// The response is over: the next queued request starts.
    async fn finished(&mut self) -> Result<(), End> {
        self.stream = None;
        match self.queue.pop_front() {
            Some(next) => self.start(&next).await,
            None => Ok(()),
        }
    }

    async fn keepalive(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let Some(k) = self.keepalive.as_mut() else {
            return Ok(());
        };
        match k.waiting {
            Some(at) if now >= at + k.config.timeout => {
                self.shared.counters.add(|c| &c.keepalive_closes);
                self.close(1011, "keepalive ping timeout").await
            }
            None if now >= k.next => {
                k.waiting = Some(now);
                k.next = now + k.config.interval;
                self.shared.counters.add(|c| &c.pings_sent);
                self.send(Message::Ping(Bytes::from_static(b"ka"))).await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Client = WebSocketStream<TcpStream>;

    async fn client(server: &WsChatServer) -> Client {
        let tcp = TcpStream::connect(server.addr()).await.unwrap();
        tokio_tungstenite::client_async(server.url(), tcp)
            .await
            .unwrap()
            .0
    }

    async fn next_json(ws: &mut Client) -> serde_json::Value {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Binary(b) => return serde_json::from_slice(&b).unwrap(),
                _ => {}
            }
        }
    }

    async fn chat(ws: &mut Client, request: serde_json::Value) -> (Vec<String>, serde_json::Value) {
        ws.send(Message::text(request.to_string())).await.unwrap();
        let mut tokens = Vec::new();
        loop {
            let m = next_json(ws).await;
            match m["type"].as_str() {
                Some("token") => tokens.push(m["text"].as_str().unwrap().to_owned()),
                _ => return (tokens, m),
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn speaks_the_chat_protocol_with_early_stop_and_min_tokens() {
        let server = serve(WsChatSimConfig {
            ttft: Duration::from_millis(1),
            itl: Duration::ZERO,
            natural_tokens: 10,
            max_prompt_words: Some(4),
            ..WsChatSimConfig::default()
        })
        .await
        .unwrap();
        let mut ws = client(&server).await;
        let request = |max: u32, min: Option<u32>| {
            let mut r = serde_json::json!({"type": "chat", "prompt": "one two", "max_tokens": max, "system_prompt": "three"});
            if let Some(min) = min {
                r["min_tokens"] = min.into();
            }
            r
        };
        let (tokens, done) = chat(&mut ws, request(100, None)).await;
        assert_eq!(tokens.len(), 10);
        assert_eq!(tokens[..3].concat(), "Hello from a");
        assert_eq!(
            done,
            serde_json::json!({"type": "done", "tokens_in": 3, "tokens_out": 10})
        );
        assert_eq!(chat(&mut ws, request(6, None)).await.0.len(), 6);
        assert_eq!(chat(&mut ws, request(100, Some(25))).await.0.len(), 25);
        assert_eq!(chat(&mut ws, request(20, Some(25))).await.0.len(), 20);
        let (tokens, error) = chat(
            &mut ws,
            serde_json::json!({"type": "chat", "prompt": "a b c d e f"}),
        )
        .await;
        assert!(tokens.is_empty());
        assert_eq!(
            error,
            serde_json::json!({"type": "error", "message": "context length exceeded: 6 words > 4"})
        );
        let (_, error) = chat(&mut ws, serde_json::json!({"type": "hello"})).await;
        assert_eq!(error["message"], "unknown message type");
        let stats = server.stats();
        assert_eq!(
            (stats.connections, stats.requests, stats.completed),
            (1, 6, 4)
        );
        server.shutdown().await;
    }

    /// The prefill blocks the server's only thread: another connection's ping is answered only
    /// after it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_prefill_blocks_every_connection() {
        let server = serve(WsChatSimConfig {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            natural_tokens: 1,
            prefill_per_word: Duration::from_millis(100),
            ..WsChatSimConfig::default()
        })
        .await
        .unwrap();
        let mut a = client(&server).await;
        let mut b = client(&server).await;
        let request = serde_json::json!({"type": "chat", "prompt": "two words"});
        a.send(Message::text(request.to_string())).await.unwrap();
        // The server took the request (its count goes up as the prefill starts).
        server.wait_until(|s| s.requests > 0).await;
        let pinged = std::time::Instant::now();
        b.send(Message::Ping(Bytes::from_static(b"b")))
            .await
            .unwrap();
        loop {
            if let Message::Pong(_) = b.next().await.unwrap().unwrap() {
                break;
            }
        }
        let waited = pinged.elapsed();
        // The 200 ms prefill started just before the ping (a millisecond on an idle machine;
        // this leaves room for a busy one). Unblocked, a pong takes well under a millisecond.
        assert!(
            waited >= Duration::from_millis(100),
            "pong after {waited:?}, within a 200 ms prefill"
        );
        assert_eq!(next_json(&mut a).await["type"], "token");
        server.shutdown().await;
    }
}
