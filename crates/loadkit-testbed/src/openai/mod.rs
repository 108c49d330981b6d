//! A simulated OpenAI-compatible server: `/v1/chat/completions` and `/v1/completions`,
//! streaming (SSE) and not, with scripted time to first token, inter-token latency, output
//! length, usage reporting and faults.
//!
//! On the wire it copies what real servers send (llama.cpp's `llama-server`, vLLM): a role-only
//! first chunk (`"delta":{"role":"assistant","content":null}`), one chunk per token,
//! `finish_reason` on a chunk with an empty delta, a usage chunk with `"choices":[]` when usage
//! is on and the client asked for `stream_options.include_usage`, then `data: [DONE]`, as
//! `Content-Type: text/event-stream` with chunked transfer encoding. With
//! [`SimConfig::usage`] off it never reports usage, like llama-cpp-python.
//!
//! # Pacing
//!
//! Token `i` (from 0) is released at `arrival + ttft + i * itl`, computed from the instant the
//! request head arrived (never by sleeping `itl` after each write, which drifts), and each paced
//! event is its own body frame, so it is written and flushed on its own. tokio's timer has
//! millisecond granularity: a release happens up to 1 ms after its instant, the same for every
//! token of a request, so gaps stay exact. With zero pacing (`ttft = itl = 0`) events are packed
//! into large frames so the server is never the bottleneck of a throughput benchmark.
//!
//! # Output length
//!
//! The simulated model "stops" after [`SimConfig::output_tokens`] tokens (`finish_reason:
//! "stop"`). A request's `max_tokens` (or `max_completion_tokens`) caps that (`"length"`); its
//! `min_tokens` raises it; `"ignore_eos": true` makes it exactly `max_tokens`, as vLLM does.

mod handler;
mod stream;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::server::{self, Running};
pub use crate::server::{Connections, Flush, Transport};

/// The simulated model's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Time to first token, from the arrival of the request head. Default 50 ms.
    pub ttft: Duration,
    /// Inter-token latency. Default 10 ms.
    pub itl: Duration,
    /// Tokens generated before the model stops by itself. Default 32.
    pub output_tokens: u32,
    /// Report token usage (in streams only when the client asks with
    /// `stream_options.include_usage`). `false` never reports it, like llama-cpp-python.
    /// Default `true`.
    pub usage: bool,
    /// The model name echoed in responses and listed by `/v1/models`. Default `loadkit-sim`.
    pub model: String,
    /// Send a `: ping` SSE comment whenever a stream has been silent this long (`None`: never).
    pub ping: Option<Duration>,
    /// Extra time to first token per prompt token (words of the prompt), to simulate prefill.
    /// Default zero.
    pub prefill_per_token: Duration,
    /// Reject prompts longer than this many tokens (words) with a 400, like a context limit.
    pub max_prompt_tokens: Option<u32>,
    /// Reject requests past this many in flight (waiting or running) with `503 Too many
    /// concurrent requests`.
    pub max_concurrency: Option<u32>,
    /// Serve at most this many requests at once, as vLLM's `--max-num-seqs` or llama-server's
    /// `-np` slots: later ones wait in arrival order for a free slot, and their time to first
    /// token counts from the arrival, so it includes the wait (`None`: no limit).
    pub slots: Option<u32>,
    /// Faults to inject; the first rule that selects a request applies to it.
    pub faults: Vec<FaultRule>,
    /// When a streaming chat request offers `tools`, the model calls the first tool (four
    /// paced argument fragments, `finish_reason: "tool_calls"`) until the conversation holds
    /// this many `role: "tool"` results, then answers with text. Default 2.
    pub tool_rounds: u32,
    /// Connection behaviour and linger after the end of a body; [`Connections::OneResponse`]
    /// is llama-server's close after every response. Default keep-alive, no linger.
    pub transport: Transport,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            output_tokens: 32,
            usage: true,
            model: "loadkit-sim".to_owned(),
            ping: None,
            prefill_per_token: Duration::ZERO,
            max_prompt_tokens: None,
            max_concurrency: None,
            slots: None,
            faults: Vec::new(),
            tool_rounds: 2,
            transport: Transport::default(),
        }
    }
}

impl SimConfig {
    /// Streams as fast as possible: no time to first token, no inter-token latency.
    pub fn unpaced(output_tokens: u32) -> Self {
        Self {
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            output_tokens,
            ..Self::default()
        }
    }

    /// Adds a fault rule.
    pub fn with_fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }
}

/// Something going wrong with a response. "After `k` tokens" faults apply to streaming
/// responses; on a non-streaming request they answer normally.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status and body instead of a completion (JSON if the body starts with
    /// `{`, plain text otherwise), with a `Retry-After` header in seconds if given.
    Status {
        /// The HTTP status code.
        status: u16,
        /// The response body.
        body: String,
        /// `Retry-After`, in seconds.
        retry_after: Option<u32>,
    },
    /// Send the response head only after this delay (from the request's arrival).
    SlowHeaders(Duration),
    /// End the body cleanly after `after_tokens` tokens, with no `finish_reason` and no
    /// `[DONE]`.
    Truncate {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Reset the connection (TCP RST) after `after_tokens` tokens.
    Reset {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Close the connection after `after_tokens` tokens without ending the chunked body.
    Close {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Send a chunk that is not valid JSON after `after_tokens` tokens, then go on.
    MalformedChunk {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Send a chunk with invalid UTF-8 in its content after `after_tokens` tokens, then go on.
    InvalidUtf8 {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Send `data: {"error": {"message": ...}}` after `after_tokens` tokens, then `[DONE]`.
    StreamError {
        /// Tokens sent first.
        after_tokens: u32,
        /// The error message.
        message: String,
    },
    /// Send one content event of about `bytes` bytes after `after_tokens` tokens, then go on.
    Oversized {
        /// Tokens sent first.
        after_tokens: u32,
        /// Size of the event.
        bytes: usize,
    },
    /// Go silent for `duration` after `after_tokens` tokens, then go on.
    Stall {
        /// Tokens sent first.
        after_tokens: u32,
        /// How long nothing is sent.
        duration: Duration,
    },
    /// Answer a streaming request with a non-streaming JSON body, like a server that ignores
    /// `"stream": true`.
    IgnoreStream,
    /// Stop listening for `duration`: this request's connection is closed unanswered and new
    /// connections meet `ECONNREFUSED` until the server listens again on the same address.
    Refuse {
        /// How long nothing listens.
        duration: Duration,
    },
    /// Answer with a status line that is not HTTP (`HTTP/1.1 2x0 garbage`), then close the
    /// connection.
    GarbageStatus,
    /// Stream `after_tokens` tokens in valid chunked framing, then a chunk-size line that is not
    /// hexadecimal (`zz`), then close the connection.
    BadChunking {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Keep the body open for `duration` after `[DONE]`, then send an SSE comment and end: a
    /// server whose body goes on past its end marker, which a client must tolerate.
    Linger(Duration),
}

impl Fault {
    /// `503 Too many concurrent requests`, as a server at its queue limit answers.
    pub fn overloaded() -> Self {
        Fault::Status {
            status: 503,
            body: "Too many concurrent requests".to_owned(),
            retry_after: None,
        }
    }

    /// `429` with an OpenAI-style rate-limit error body and a `Retry-After` header.
    pub fn rate_limited(retry_after_s: u32) -> Self {
        Fault::Status {
            status: 429,
            body: r#"{"error":{"message":"Rate limit exceeded","type":"rate_limit_error","code":429}}"#
                .to_owned(),
            retry_after: Some(retry_after_s),
        }
    }
}

/// Which requests a fault applies to, by arrival index (0, 1, 2, ... over completion requests).
/// Both forms are deterministic: the same indexes are selected on every run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// Every request.
    Always,
    /// Every `n`th request: the `n`th, `2n`th, ... (`n = 0` never).
    EveryNth(u64),
    /// Every `every`th request in turn over `of` faults, this one being number `slot` (from 0):
    /// with `every = 2, of = 3`, slot 0 takes requests 1, 7, 13, ..., slot 1 takes 3, 9, ...
    /// (`every = 0` or `of = 0` never). One rule per slot makes a cycle of faults.
    Cycle {
        /// Every how many requests a fault applies.
        every: u64,
        /// Which of the faults in turn this is.
        slot: u64,
        /// How many faults take turns.
        of: u64,
    },
    /// A seeded pseudo-random fraction `p` (0 to 1) of requests.
    Fraction {
        /// Probability of each request being selected.
        p: f64,
        /// Seed of the selection.
        seed: u64,
    },
}

impl Trigger {
    /// Whether the request with arrival index `index` is selected.
    pub fn selects(&self, index: u64) -> bool {
        match *self {
            Trigger::Always => true,
            Trigger::EveryNth(0) => false,
            Trigger::EveryNth(n) => (index + 1) % n == 0,
            Trigger::Cycle { every, slot, of } => {
                every > 0
                    && of > 0
                    && (index + 1) % every == 0
                    && ((index + 1) / every - 1) % of == slot
            }
            Trigger::Fraction { p, seed } => {
                let x = splitmix64(seed ^ splitmix64(index));
                ((x >> 11) as f64 / (1u64 << 53) as f64) < p
            }
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A fault and the requests it applies to.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// What goes wrong.
    pub fault: Fault,
    /// To which requests.
    pub when: Trigger,
}

impl FaultRule {
    /// `fault` on every request.
    pub fn always(fault: Fault) -> Self {
        Self {
            fault,
            when: Trigger::Always,
        }
    }

    /// `fault` on every `n`th request.
    pub fn every(n: u64, fault: Fault) -> Self {
        Self {
            fault,
            when: Trigger::EveryNth(n),
        }
    }

    /// `fault` on a seeded fraction `p` of requests.
    pub fn fraction(p: f64, seed: u64, fault: Fault) -> Self {
        Self {
            fault,
            when: Trigger::Fraction { p, seed },
        }
    }
}

/// What the server has seen and done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Connections accepted.
    pub connections: u64,
    /// Completion requests received (chat and completions, any outcome).
    pub requests: u64,
    /// Streaming responses started.
    pub streams: u64,
    /// Responses sent in full (through `[DONE]` for streams).
    pub completed: u64,
    /// Requests a fault rule applied to.
    pub faults: u64,
    /// Requests rejected by the concurrency or prompt-length limits, or as invalid.
    pub rejected: u64,
    /// Content tokens sent.
    pub tokens: u64,
    /// Requests to unknown paths.
    pub not_found: u64,
}

/// Counters shared by every connection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    requests: AtomicU64,
    streams: AtomicU64,
    completed: AtomicU64,
    faults: AtomicU64,
    rejected: AtomicU64,
    tokens: AtomicU64,
    not_found: AtomicU64,
    in_flight: AtomicU32,
    /// Requests waiting for a slot ([`SimConfig::slots`]).
    waiting: AtomicU32,
    /// Prompt tokens (words) of the requests admitted to a slot.
    prompt_tokens: AtomicU64,
    /// Requests admitted to a slot, and their total wait for it (ns), for vLLM's queue-time
    /// histogram.
    admitted: AtomicU64,
    queued_ns: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> SimStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        SimStats {
            connections: get(&self.connections),
            requests: get(&self.requests),
            streams: get(&self.streams),
            completed: get(&self.completed),
            faults: get(&self.faults),
            rejected: get(&self.rejected),
            tokens: get(&self.tokens),
            not_found: get(&self.not_found),
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub(crate) struct Shared {
    config: SimConfig,
    counters: Counters,
    /// JSON-encoded token texts, cycled through.
    tokens: Vec<String>,
    /// The slots of [`SimConfig::slots`]: a fair (FIFO) semaphore.
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// A running simulated server. Dropping it stops it at once; [`shutdown`](Self::shutdown) stops
/// it gracefully.
#[derive(Debug)]
pub struct SimServer {
    running: Running,
    shared: Arc<Shared>,
}

impl SimServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// The base URL as OpenAI SDKs take it: `http://127.0.0.1:PORT/v1` (a wildcard listen address
    /// is shown as 127.0.0.1).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}/v1")
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        self.shared.counters.snapshot()
    }

    /// The configuration it serves.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Stops accepting connections, lets in-flight responses finish (for up to 3 s), and
    /// returns when every connection is closed.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Starts a simulated server on `127.0.0.1:0` (a free port); see [`SimServer::base_url`].
pub async fn serve(config: SimConfig) -> std::io::Result<SimServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts a simulated server on a listener the caller bound. Must be called inside a tokio
/// runtime.
pub fn serve_on(listener: TcpListener, config: SimConfig) -> SimServer {
    let transport = config.transport;
    let shared = Arc::new(Shared {
        tokens: stream::token_texts(),
        slots: config
            .slots
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize))),
        config,
        counters: Counters::default(),
    });
    let for_handler = shared.clone();
    let for_count = shared.clone();
    let running = server::spawn(
        listener,
        move |request, conn| handler::handle(for_handler.clone(), request, conn),
        move || {
            for_count
                .counters
                .connections
                .fetch_add(1, Ordering::Relaxed);
        },
        transport,
    );
    SimServer { running, shared }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_are_deterministic() {
        let every = Trigger::EveryNth(3);
        let picked: Vec<u64> = (0..10).filter(|&i| every.selects(i)).collect();
        assert_eq!(picked, [2, 5, 8]);
        assert!(!Trigger::EveryNth(0).selects(0));
        let turn = |slot| {
            let t = Trigger::Cycle {
                every: 2,
                slot,
                of: 3,
            };
            (0..14).filter(|&i| t.selects(i)).collect::<Vec<u64>>()
        };
        assert_eq!(turn(0), [1, 7, 13]);
        assert_eq!(turn(1), [3, 9]);
        assert_eq!(turn(2), [5, 11]);
        let never = Trigger::Cycle {
            every: 0,
            slot: 0,
            of: 1,
        };
        assert!(!(0..10).any(|i| never.selects(i)));
        let frac = Trigger::Fraction { p: 0.25, seed: 7 };
        let n = (0..10_000).filter(|&i| frac.selects(i)).count();
        assert!((2_300..2_700).contains(&n), "{n}");
        let again = (0..10_000).filter(|&i| frac.selects(i)).count();
        assert_eq!(n, again);
        assert_eq!(
            (0..100)
                .filter(|&i| Trigger::Fraction { p: 0.0, seed: 1 }.selects(i))
                .count(),
            0
        );
        assert_eq!(
            (0..100)
                .filter(|&i| Trigger::Fraction { p: 1.0, seed: 1 }.selects(i))
                .count(),
            100
        );
    }
}
