//! A simulated text-to-speech server over WebSocket, shaped like the common document reader:
//! a pool of synthesis workers shared by every connection, each block's synthesis taking time
//! in proportion to its text, and real WAV or PCM audio of the stated duration.
//!
//! The protocol (any number of batches per connection, blocks answered as workers finish them,
//! so out of index order when texts differ in length):
//!
//! ```text
//! → {"type":"synthesize","document_id":D,"model":M,"voice":V,"blocks":[{"index":0,"text":"..."}, ...]}
//! ← {"type":"status","document_id":D,"index":I,"status":"queued"}       per block, at once
//! ← {"type":"status","document_id":D,"index":I,"status":"processing"}   when a worker takes it
//! ← {"type":"status","document_id":D,"index":I,"status":"done","audio_duration_ms":MS}
//! ← <binary frame: the block's audio>          (or, base64 mode, "audio":"..." in the `done`)
//! ← {"type":"error","document_id":D,"message":"..."}   unknown model or voice, bad message
//! ```
//!
//! A block of `c` characters plays `c × audio_per_char` and takes `base + c × synthesis_per_char`
//! of a worker (none in `cached` mode: every block is answered at once, as a server with the
//! audio already cached). The audio is silence, 16-bit mono at `sample_rate`, as a WAV file
//! (44-byte header) or raw PCM.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// How a block's audio travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioDelivery {
    /// A binary frame right after the block's `done` message. The default.
    #[default]
    Binary,
    /// Base64 in the `done` message's `audio` field.
    Base64,
}

/// The audio container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AudioFormat {
    /// A WAV file per block. The default.
    #[default]
    Wav,
    /// Raw 16-bit little-endian mono samples.
    Pcm,
}

/// The simulated TTS server's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct TtsWsSimConfig {
    /// The path that upgrades; any other is refused with 404. Default `/ws/tts`.
    pub path: String,
    /// Synthesis workers shared by all connections. Default 4.
    pub workers: usize,
    /// Worker time per block, before its characters. Default 5 ms.
    pub synthesis_base: Duration,
    /// Worker time per character of a block's text. Default 3 ms (with 60 ms of audio per
    /// character: a real-time factor of about 0.05).
    pub synthesis_per_char: Duration,
    /// Audio per character of text. Default 60 ms (about 16 characters a second, as speech).
    pub audio_per_char: Duration,
    /// Answer every block at once, with no worker (cached audio). Default off.
    pub cached: bool,
    /// Binary frames or base64. Default binary.
    pub delivery: AudioDelivery,
    /// WAV or raw PCM. Default WAV.
    pub format: AudioFormat,
    /// Samples per second. Default 24,000.
    pub sample_rate: u32,
    /// The models and the voices each offers.
    pub voices: Vec<(String, Vec<String>)>,
    /// Upgrades without `token=VALUE` in the query are refused with 401. Default none.
    pub required_token: Option<String>,
    /// Before answering a batch, send a `queued` status for another document (as a server
    /// multiplexing sessions on one connection by mistake would). Default off.
    pub foreign_status: bool,
    /// Added to every `audio_duration_ms` the server states (a server that misreports its
    /// audio). Default zero.
    pub misstated_ms: u64,
}

impl Default for TtsWsSimConfig {
    fn default() -> Self {
        Self {
            path: "/ws/tts".to_owned(),
            workers: 4,
            synthesis_base: Duration::from_millis(5),
            synthesis_per_char: Duration::from_millis(3),
            audio_per_char: Duration::from_millis(60),
            cached: false,
            delivery: AudioDelivery::Binary,
            format: AudioFormat::Wav,
            sample_rate: 24_000,
            voices: vec![
                (
                    "kokoro".to_owned(),
                    vec!["af_heart".to_owned(), "am_adam".to_owned()],
                ),
                ("piper".to_owned(), vec!["en_US-lessac-medium".to_owned()]),
            ],
            required_token: None,
            foreign_status: false,
            misstated_ms: 0,
        }
    }
}

/// What the server has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtsWsStats {
    /// Upgraded connections.
    pub connections: u64,
    /// Upgrades refused (path, token).
    pub rejected: u64,
    /// Batches received.
    pub batches: u64,
    /// Blocks requested.
    pub blocks_requested: u64,
    /// Blocks whose audio was sent.
    pub blocks_done: u64,
    /// Error messages sent.
    pub errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    rejected: AtomicU64,
    batches: AtomicU64,
    blocks_requested: AtomicU64,
    blocks_done: AtomicU64,
    errors: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    config: TtsWsSimConfig,
    workers: Semaphore,
    counters: Counters,
}

/// A running simulated TTS server, on a thread of its own.
#[derive(Debug)]
pub struct TtsWsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TtsWsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT/ws/tts` (the configured path).
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.addr, self.shared.config.path)
    }

    /// The counters so far.
    pub fn stats(&self) -> TtsWsStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TtsWsStats {
            connections: get(&c.connections),
            rejected: get(&c.rejected),
            batches: get(&c.batches),
            blocks_requested: get(&c.blocks_requested),
            blocks_done: get(&c.blocks_done),
            errors: get(&c.errors),
        }
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

impl Drop for TtsWsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts a simulated TTS server on `127.0.0.1:0`, on its own thread with a current-thread
/// runtime (its synthesis is timers, so one thread serves thousands of listeners).
pub async fn serve(config: TtsWsSimConfig) -> std::io::Result<TtsWsServer> {
    serve_on(std::net::TcpListener::bind("127.0.0.1:0")?, config)
}

/// [`serve`] on a listener the caller bound.
pub fn serve_on(
    listener: std::net::TcpListener,
    config: TtsWsSimConfig,
) -> std::io::Result<TtsWsServer> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared {
        workers: Semaphore::new(config.workers.max(1)),
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
        .name("loadkit-testbed-tts-ws".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => accept_loop(listener, serving, stopped).await,
                    Err(e) => tracing::warn!("tts_ws: cannot listen: {e}"),
                }
            });
            drop(runtime);
            let _ = done_tx.send(());
        })?;
    Ok(TtsWsServer {
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
                    tracing::debug!("tts_ws: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
}

// The upgrade callback's `Result<Response, ErrorResponse>` is tungstenite's signature.
#[allow(clippy::result_large_err)]
async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    if health_check(&mut stream).await {
        return;
    }
    let check = shared.clone();
    let callback = move |request: &Request, response: Response| {
        let refuse = |status: u16, body: String| {
            check.counters.rejected.fetch_add(1, Ordering::Relaxed);
            let mut refusal = ErrorResponse::new(Some(body));
            *refusal.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
            Err(refusal)
        };
        let config = &check.config;
        if request.uri().path() != config.path {
            return refuse(404, format!("no tts endpoint at {}", request.uri().path()));
        }
        if let Some(token) = &config.required_token {
            let query = request.uri().query().unwrap_or_default();
            let given = query
                .split('&')
                .any(|pair| pair.strip_prefix("token=") == Some(token.as_str()));
            if !given {
                return refuse(401, "invalid or missing token".to_owned());
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
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut incoming) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = async move {
        while let Some(message) = rx.recv().await {
            if sink.send(message).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut jobs = JoinSet::new();
        loop {
            tokio::select! {
                item = incoming.next() => match item {
                    Some(Ok(Message::Text(text))) => batch(text.as_bytes(), &shared, &tx, &mut jobs),
                    Some(Ok(Message::Binary(bytes))) => batch(&bytes, &shared, &tx, &mut jobs),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
            }
        }
        // Dropping the jobs abandons the blocks of a listener that left.
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
}

/// Answers `GET /health` (plain HTTP on the WebSocket port, as TTS servers built on FastAPI
/// or aiohttp do) with 200 `ok`; `false` (nothing read) for anything else, an upgrade.
async fn health_check(stream: &mut TcpStream) -> bool {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = [0u8; 16];
    let mut seen = 0;
    // Peek until the request line's start is there (a client may send it in pieces).
    for _ in 0..50 {
        match stream.peek(&mut head).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen = n,
        }
        if seen >= 12 || head[..seen].contains(&b'\n') {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if !head[..seen].starts_with(b"GET /health ") {
        return false;
    }
    // Read the request's head, then answer and close.
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream
        .write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"status\":\"ok\"}",
        )
        .await;
    let _ = stream.shutdown().await;
    true
}

/// One message from the client: a batch of blocks, or an error back.
fn batch(
    text: &[u8],
    shared: &Arc<Shared>,
    tx: &mpsc::UnboundedSender<Message>,
    jobs: &mut JoinSet<()>,
) {
    let error = |document: &Value, message: String| {
        shared.counters.errors.fetch_add(1, Ordering::Relaxed);
        let _ = tx.send(text_message(
            &json!({"type": "error", "document_id": document, "message": message}),
        ));
    };
    let Ok(message) = serde_json::from_slice::<Value>(text) else {
        return error(&Value::Null, "invalid json".to_owned());
    };
    let document = message.get("document_id").cloned().unwrap_or(Value::Null);
    if message.get("type").and_then(Value::as_str) != Some("synthesize") {
        return error(&document, "unknown message type".to_owned());
    }
    let model = message.get("model").and_then(Value::as_str).unwrap_or("");
    let voice = message.get("voice").and_then(Value::as_str).unwrap_or("");
    let config = &shared.config;
    let Some((_, voices)) = config.voices.iter().find(|(m, _)| m == model) else {
        return error(&document, format!("Unknown model '{model}'"));
    };
    if !voices.iter().any(|v| v == voice) {
        return error(
            &document,
            format!("Voice '{voice}' is not available for model '{model}'"),
        );
    }
    let Some(blocks) = message.get("blocks").and_then(Value::as_array) else {
        return error(&document, "blocks must be an array".to_owned());
    };
    shared.counters.batches.fetch_add(1, Ordering::Relaxed);
    if config.foreign_status {
        let _ = tx.send(text_message(&json!({
            "type": "status", "document_id": "someone-else", "index": 0, "status": "queued"
        })));
    }
    for block in blocks {
        let (Some(index), Some(text)) = (
            block.get("index").and_then(Value::as_u64),
            block.get("text").and_then(Value::as_str),
        ) else {
            return error(&document, "a block needs an index and a text".to_owned());
        };
        shared
            .counters
            .blocks_requested
            .fetch_add(1, Ordering::Relaxed);
        let status = |state: &str| {
            text_message(
                &json!({"type": "status", "document_id": &document, "index": index, "status": state}),
            )
        };
        let _ = tx.send(status("queued"));
        let chars = text.chars().count() as u32;
        let shared = Arc::clone(shared);
        let tx = tx.clone();
        let document = document.clone();
        let processing = status("processing");
        jobs.spawn(async move {
            let config = &shared.config;
            if !config.cached {
                let Ok(_worker) = shared.workers.acquire().await else {
                    return;
                };
                let _ = tx.send(processing);
                tokio::time::sleep(config.synthesis_base + config.synthesis_per_char * chars).await;
            }
            let audio = audio(config, config.audio_per_char * chars);
            let sample_bytes = match config.format {
                AudioFormat::Wav => audio.len() - 44,
                AudioFormat::Pcm => audio.len(),
            } as u64;
            let ms = sample_bytes / 2 * 1000 / u64::from(config.sample_rate.max(1))
                + config.misstated_ms;
            let mut done = json!({
                "type": "status", "document_id": document, "index": index,
                "status": "done", "audio_duration_ms": ms,
            });
            match config.delivery {
                AudioDelivery::Base64 => {
                    done["audio"] = base64::engine::general_purpose::STANDARD
                        .encode(&audio)
                        .into();
                    let _ = tx.send(text_message(&done));
                }
                AudioDelivery::Binary => {
                    let _ = tx.send(text_message(&done));
                    let _ = tx.send(Message::Binary(audio));
                }
            }
            shared.counters.blocks_done.fetch_add(1, Ordering::Relaxed);
        });
    }
}

fn text_message(value: &Value) -> Message {
    Message::Text(value.to_string().into())
}

/// `duration` of silence, 16-bit mono at the configured rate, as WAV or PCM.
fn audio(config: &TtsWsSimConfig, duration: Duration) -> Bytes {
    let rate = u64::from(config.sample_rate);
    let samples = (duration.as_nanos() * u128::from(rate) / 1_000_000_000) as u64;
    let data = usize::try_from(samples * 2).unwrap_or(usize::MAX);
    match config.format {
        AudioFormat::Pcm => Bytes::from(vec![0u8; data]),
        AudioFormat::Wav => {
            let mut out = bytes::BytesMut::with_capacity(44 + data);
            crate::wav::header(&mut out, config.sample_rate, u32::try_from(data).ok());
            out.resize(44 + data, 0);
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_as_long_as_stated() {
        let config = TtsWsSimConfig::default();
        let wav = audio(&config, Duration::from_millis(1500));
        assert_eq!(wav.len(), 44 + 24_000 * 3);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(wav[40..44].try_into().unwrap()), 72_000);
        let pcm = audio(
            &TtsWsSimConfig {
                format: AudioFormat::Pcm,
                sample_rate: 16_000,
                ..config
            },
            Duration::from_millis(250),
        );
        assert_eq!(pcm.len(), 8_000);
    }
}
