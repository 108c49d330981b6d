//! A simulated Ollama server: `POST /api/chat` and `/api/generate` (NDJSON streaming, or one
//! JSON body with `"stream": false`), `GET /api/tags`, with scripted pacing, realistic final
//! statistics and a cold-load delay the first time each model is used.
//!
//! On the wire it copies the real samples (`testdata/wire-samples/ollama-api-proxy_*`): one JSON
//! object per line, `Content-Type: application/x-ndjson`, chunked; a last line with
//! `"done": true`, `done_reason`, and `total_duration`, `load_duration`, `prompt_eval_count`,
//! `prompt_eval_duration`, `eval_count`, `eval_duration` in nanoseconds, as the server measured
//! them. As in Ollama, `stream` defaults to `true`, `options.num_predict` caps the output, and an
//! unknown model is `404 {"error":"model \"x\" not found, try pulling it first"}`.
//!
//! Token `i` is released at `arrival + cold_load + ttft + i * itl`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::openai::Trigger;
use crate::paced::{self, AnyBody, PacedBody, Script, Step};
use crate::server::{self, ConnHandle, Running};

const WORDS: [&str; 12] = [
    "Hello",
    "!",
    " Welcome",
    " to",
    " our",
    " \"simulated\"",
    " model",
    ",",
    " naïve",
    "\n",
    " token",
    ".",
];

/// The simulated Ollama's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct OllamaSimConfig {
    /// Time to first token once the model is loaded (prompt evaluation). Default 50 ms.
    pub ttft: Duration,
    /// Time between tokens. Default 10 ms.
    pub itl: Duration,
    /// Tokens before the model stops by itself (capped by `options.num_predict`). Default 32.
    pub output_tokens: u32,
    /// The models that are "pulled" (listed by `/api/tags`; others are 404). Default
    /// `["loadkit-sim"]`.
    pub models: Vec<String>,
    /// Extra delay the first time each model is used (reported as `load_duration`).
    pub cold_load: Duration,
    /// Faults to inject; the first rule that selects a request applies to it.
    pub faults: Vec<(Trigger, OllamaFault)>,
    /// Connection behaviour and linger after the end of a body. Default keep-alive, no linger.
    pub transport: crate::Transport,
}

impl Default for OllamaSimConfig {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            output_tokens: 32,
            models: vec!["loadkit-sim".to_owned()],
            cold_load: Duration::ZERO,
            faults: Vec::new(),
            transport: crate::Transport::default(),
        }
    }
}

/// Something going wrong with an Ollama response.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OllamaFault {
    /// Answer with this status and `{"error": message}`.
    Status(u16, String),
    /// After `after_tokens` tokens, send `{"error": message}` as a line and end the body.
    StreamError {
        /// Tokens sent first.
        after_tokens: u32,
        /// The message.
        message: String,
    },
    /// End the body cleanly after `after_tokens` tokens, without the `done: true` line.
    Truncate {
        /// Tokens sent first.
        after_tokens: u32,
    },
    /// Send a line that is not JSON after `after_tokens` tokens, then go on.
    Malformed {
        /// Tokens sent first.
        after_tokens: u32,
    },
}

/// What the server has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OllamaStats {
    /// Generation requests (chat and generate).
    pub requests: u64,
    /// Requests that paid a cold load.
    pub cold_loads: u64,
    /// Tag listings.
    pub tags: u64,
}

#[derive(Debug, Default)]
struct Shared {
    config: OllamaSimConfig,
    loaded: Mutex<HashSet<String>>,
    requests: AtomicU64,
    cold_loads: AtomicU64,
    tags: AtomicU64,
}

/// A running simulated Ollama server.
#[derive(Debug)]
pub struct OllamaServer {
    running: Running,
    shared: Arc<Shared>,
}

impl OllamaServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    /// The base URL as Ollama clients take it: `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The counters so far.
    pub fn stats(&self) -> OllamaStats {
        OllamaStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            cold_loads: self.shared.cold_loads.load(Ordering::Relaxed),
            tags: self.shared.tags.load(Ordering::Relaxed),
        }
    }

    /// Stops gracefully.
    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}

/// Starts a simulated Ollama server on `127.0.0.1:0`.
pub async fn serve(config: OllamaSimConfig) -> std::io::Result<OllamaServer> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    Ok(serve_on(listener, config))
}

/// Starts a simulated Ollama server on a listener the caller bound (inside a tokio runtime).
pub fn serve_on(listener: TcpListener, config: OllamaSimConfig) -> OllamaServer {
    let transport = config.transport;
    let shared = Arc::new(Shared {
        config,
        ..Shared::default()
    });
    let for_handler = shared.clone();
    let running = server::spawn(
        listener,
        move |request, conn| handle(for_handler.clone(), request, conn),
        || {},
        transport,
    );
    OllamaServer { running, shared }
}

fn error(status: u16, message: &str) -> Response<AnyBody> {
    let body = serde_json::json!({ "error": message }).to_string();
    paced::response(
        status,
        "application/json; charset=utf-8",
        AnyBody::full(body),
    )
}

fn known(models: &[String], name: &str) -> bool {
    let base = name.strip_suffix(":latest").unwrap_or(name);
    models
        .iter()
        .any(|m| m == name || m.strip_suffix(":latest").unwrap_or(m) == base)
}

fn tag_name(model: &str) -> String {
    if model.contains(':') {
        model.to_owned()
    } else {
        format!("{model}:latest")
    }
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    conn: ConnHandle,
) -> Response<AnyBody> {
    let arrival = Instant::now();
    let chat = match (request.method(), request.uri().path()) {
        (&Method::POST, "/api/chat") => true,
        (&Method::POST, "/api/generate") => false,
        (&Method::GET, "/api/tags") => {
            shared.tags.fetch_add(1, Ordering::Relaxed);
            let models: Vec<Value> = shared
                .config
                .models
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "name": tag_name(m), "model": tag_name(m),
                        "modified_at": "2026-11-22T04:58:00Z", "size": 270_000_000u64,
                        "digest": "0123456789abcdef",
                        "details": {"format": "gguf", "family": "llama", "parameter_size": "135M", "quantization_level": "Q8_0"}
                    })
                })
                .collect();
            let body = serde_json::json!({ "models": models }).to_string();
            return paced::response(200, "application/json; charset=utf-8", AnyBody::full(body));
        }
        (&Method::GET | &Method::HEAD, "/") => {
            return paced::response(
                200,
                "text/plain; charset=utf-8",
                AnyBody::full("Ollama is running"),
            )
        }
        _ => {
            return paced::response(
                404,
                "text/plain; charset=utf-8",
                AnyBody::full("404 page not found"),
            )
        }
    };
    let index = shared.requests.fetch_add(1, Ordering::Relaxed);
    let Some(body) = paced::read_body(request.into_body()).await else {
        return error(400, "could not read the request body");
    };
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid character in request body");
    };
    let Some(model) = req.get("model").and_then(Value::as_str).map(str::to_owned) else {
        return error(400, "model is required");
    };
    let config = &shared.config;
    if !known(&config.models, &model) {
        return error(
            404,
            &format!("model \"{model}\" not found, try pulling it first"),
        );
    }
    let fault = config
        .faults
        .iter()
        .find(|(when, _)| when.selects(index))
        .map(|(_, f)| f.clone());
    if let Some(OllamaFault::Status(status, message)) = &fault {
        return error(*status, message);
    }
    let prompt_tokens = if chat {
        req.get("messages")
            .and_then(Value::as_array)
            .map_or(0, |ms| {
                ms.iter()
                    .filter_map(|m| m.get("content").and_then(Value::as_str))
                    .map(|s| s.split_whitespace().count())
                    .sum::<usize>()
            })
    } else {
        req.get("prompt")
            .and_then(Value::as_str)
            .map_or(0, |s| s.split_whitespace().count())
    } as u64;
    let num_predict = req
        .get("options")
        .and_then(|o| o.get("num_predict"))
        .and_then(Value::as_i64)
        .filter(|n| *n >= 0);
    let (tokens, reason) = match num_predict {
        Some(n) if (n as u64) < u64::from(config.output_tokens) => (n as u32, "length"),
        _ => (config.output_tokens, "stop"),
    };
    let cold = {
        let mut loaded = shared.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.insert(tag_name(&model))
    } && !config.cold_load.is_zero();
    let load = if cold {
        shared.cold_loads.fetch_add(1, Ordering::Relaxed);
        config.cold_load
    } else {
        Duration::ZERO
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let start = arrival + load + config.ttft;
    let script = Ndjson {
        chat,
        model: serde_json::Value::from(model).to_string(),
        arrival,
        load,
        ttft: config.ttft,
        prompt_tokens,
        tokens,
        reason,
        fault,
        text: String::new(),
    };
    if !stream {
        let last = start + config.itl * tokens.saturating_sub(1);
        crate::precise::sleep_until(last).await;
        let mut script = script;
        let mut out = BytesMut::new();
        script.whole(&mut out);
        return paced::response(
            200,
            "application/json; charset=utf-8",
            AnyBody::full(out.freeze()),
        );
    }
    let body = PacedBody::new(script, conn, tokens, start, config.itl, None);
    paced::response(200, "application/x-ndjson", AnyBody::paced(body))
}

struct Ndjson {
    chat: bool,
    /// JSON-encoded model name.
    model: String,
    arrival: Instant,
    load: Duration,
    ttft: Duration,
    prompt_tokens: u64,
    tokens: u32,
    reason: &'static str,
    fault: Option<OllamaFault>,
    /// The whole text, for non-streaming answers.
    text: String,
}

impl Ndjson {
    fn line_head(&self, out: &mut BytesMut) {
        out.extend_from_slice(br#"{"model": "#);
        out.extend_from_slice(self.model.as_bytes());
        out.extend_from_slice(br#", "created_at": "2026-11-22T04:58:07Z", "#);
    }

    fn content(&self, out: &mut BytesMut, text_json: &str) {
        if self.chat {
            out.extend_from_slice(br#""message": {"role": "assistant", "content": "#);
            out.extend_from_slice(text_json.as_bytes());
            out.extend_from_slice(b"}, ");
        } else {
            out.extend_from_slice(br#""response": "#);
            out.extend_from_slice(text_json.as_bytes());
            out.extend_from_slice(b", ");
        }
    }

    fn stats(&self, out: &mut BytesMut) {
        let ns = |d: Duration| d.as_nanos() as u64;
        let total = ns(Instant::now() - self.arrival);
        let eval = total
            .saturating_sub(ns(self.load))
            .saturating_sub(ns(self.ttft));
        let context = if self.chat {
            ""
        } else {
            r#""context": [1, 2, 3], "#
        };
        out.extend_from_slice(
            format!(
                r#""done": true, "done_reason": "{}", {context}"total_duration": {total}, "load_duration": {}, "prompt_eval_count": {}, "prompt_eval_duration": {}, "eval_count": {}, "eval_duration": {eval}}}"#,
                self.reason,
                ns(self.load),
                self.prompt_tokens,
                ns(self.ttft),
                self.tokens,
            )
            .as_bytes(),
        );
        out.extend_from_slice(b"\n");
    }

    fn whole(&mut self, out: &mut BytesMut) {
        let text: String = (0..self.tokens as usize)
            .map(|i| WORDS[i % WORDS.len()])
            .collect();
        self.text = serde_json::Value::from(text).to_string();
        self.line_head(out);
        let text = std::mem::take(&mut self.text);
        self.content(out, &text);
        self.stats(out);
    }
}

impl Script for Ndjson {
    fn item(&mut self, i: u32, out: &mut BytesMut) {
        self.line_head(out);
        let word = serde_json::Value::from(WORDS[i as usize % WORDS.len()]).to_string();
        self.content(out, &word);
        out.extend_from_slice(b"\"done\": false}\n");
    }

    fn tail(&mut self, out: &mut BytesMut) {
        self.line_head(out);
        self.content(out, "\"\"");
        self.stats(out);
    }

    fn before(&mut self, i: u32, out: &mut BytesMut) -> Step {
        let at = match &self.fault {
            Some(
                OllamaFault::StreamError { after_tokens, .. }
                | OllamaFault::Truncate { after_tokens }
                | OllamaFault::Malformed { after_tokens },
            ) => *after_tokens,
            _ => return Step::Go,
        };
        if at != i {
            return Step::Go;
        }
        match self.fault.take() {
            Some(OllamaFault::StreamError { message, .. }) => {
                out.extend_from_slice(
                    serde_json::json!({ "error": message })
                        .to_string()
                        .as_bytes(),
                );
                out.extend_from_slice(b"\n");
                Step::End
            }
            Some(OllamaFault::Truncate { .. }) => Step::End,
            Some(OllamaFault::Malformed { .. }) => {
                out.extend_from_slice(b"{\"model\": \"x\", \"message\": {\"content\": \"oops\n");
                Step::Go
            }
            _ => Step::Go,
        }
    }
}
