//! Request handling of the simulated OpenAI server: routing, request parsing, limits, faults,
//! and the non-streaming answers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::Value;
use tokio::time::Instant;

use super::stream::{InFlight, Kind, Plan, SimBody, StreamBody, StreamFault, Wire};
use super::{Fault, Shared};
use crate::server::ConnHandle;

/// Largest request body read.
const MAX_REQUEST: usize = 16 << 20;

/// [`Fault::GarbageStatus`]'s answer: a status line with no valid status code.
const GARBAGE_STATUS: &[u8] = b"HTTP/1.1 2x0 garbage\r\ncontent-length: 0\r\n\r\n";

/// Answers one request.
pub(super) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
    conn: ConnHandle,
) -> Response<SimBody> {
    let arrival = Instant::now();
    let counters = &shared.counters;
    let path = request.uri().path();
    let path = path
        .strip_prefix("/v1")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    let kind = match (request.method(), path) {
        (&Method::POST, "/chat/completions") => Kind::Chat,
        (&Method::POST, "/completions") => Kind::Completions,
        (&Method::GET, "/models") => return models(&shared),
        (&Method::GET, "/health" | "/") => return plain(StatusCode::OK, "ok"),
        (&Method::GET, "/metrics") => return metrics(&shared),
        (_, "/chat/completions" | "/completions") => {
            return error_json(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => {
            counters.not_found.fetch_add(1, Ordering::Relaxed);
            return error_json(StatusCode::NOT_FOUND, "not found");
        }
    };
    let index = counters.requests.fetch_add(1, Ordering::Relaxed);
    let body = match http_body_util::Limited::new(request.into_body(), MAX_REQUEST)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            return error_json(StatusCode::BAD_REQUEST, "could not read the request body");
        }
    };
    let parsed = match ParsedRequest::parse(kind, &body) {
        Ok(p) => p,
        Err(message) => {
            counters.rejected.fetch_add(1, Ordering::Relaxed);
            return error_json(StatusCode::BAD_REQUEST, message);
        }
    };
    let config = &shared.config;
    let fault = config
        .faults
        .iter()
        .find(|rule| rule.when.selects(index))
        .map(|rule| &rule.fault);
    if fault.is_some() {
        counters.faults.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(Fault::Status {
        status,
        body,
        retry_after,
    }) = fault
    {
        return status_response(*status, body, *retry_after);
    }
    match fault {
        Some(Fault::Refuse { duration }) => {
            // The listener closes first, so the client's retry of this request is refused.
            conn.refuse_connections(*duration).await;
            conn.answer_raw(Bytes::new());
            return plain(StatusCode::OK, "");
        }
        Some(Fault::GarbageStatus) => {
            conn.answer_raw(Bytes::from_static(GARBAGE_STATUS));
            return plain(StatusCode::OK, "");
        }
        _ => {}
    }
    if config
        .max_prompt_tokens
        .is_some_and(|max| parsed.prompt_tokens > max)
    {
        counters.rejected.fetch_add(1, Ordering::Relaxed);
        let max = config.max_prompt_tokens.unwrap_or_default();
        return error_json(
            StatusCode::BAD_REQUEST,
            &format!("the prompt exceeds the context size of {max} tokens"),
        );
    }
    let Some(mut guard) = InFlight::enter(&shared) else {
        counters.rejected.fetch_add(1, Ordering::Relaxed);
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many concurrent requests",
        );
    };
    // With slots, a request that finds none free waits; its model time starts when it gets one.
    let begin = if guard.take_slot().await {
        Instant::now()
    } else {
        arrival
    };
    counters
        .prompt_tokens
        .fetch_add(u64::from(parsed.prompt_tokens), Ordering::Relaxed);
    let queued = begin.saturating_duration_since(arrival).as_nanos();
    counters
        .queued_ns
        .fetch_add(u64::try_from(queued).unwrap_or(u64::MAX), Ordering::Relaxed);
    counters.admitted.fetch_add(1, Ordering::Relaxed);
    if let Some(Fault::SlowHeaders(delay)) = fault {
        crate::precise::sleep_until(arrival + *delay).await;
    }
    let (tokens, finish_reason) = parsed.output(config.output_tokens);
    let ttft = config.ttft + config.prefill_per_token * parsed.prompt_tokens;
    let arrival = begin;
    let stream = parsed.stream && !matches!(fault, Some(Fault::IgnoreStream));
    if !stream {
        let last = arrival + ttft + config.itl * tokens.saturating_sub(1);
        crate::precise::sleep_until(last).await;
        let usage = config.usage.then_some((parsed.prompt_tokens, tokens));
        let body = full_json(&shared, kind, index, tokens, finish_reason, usage);
        counters
            .tokens
            .fetch_add(u64::from(tokens), Ordering::Relaxed);
        counters.completed.fetch_add(1, Ordering::Relaxed);
        drop(guard);
        return json(StatusCode::OK, body);
    }
    counters.streams.fetch_add(1, Ordering::Relaxed);
    // With tools offered, the model calls the first one until the conversation holds
    // `tool_rounds` results, then answers with text.
    let tool_call = parsed
        .tool
        .clone()
        .filter(|_| kind == Kind::Chat && parsed.tool_results < config.tool_rounds);
    let (tokens, finish_reason) = match tool_call {
        Some(_) => (super::stream::TOOL_ARGS.len() as u32, "tool_calls"),
        None => (tokens, finish_reason),
    };
    if let Some(Fault::BadChunking { after_tokens }) = fault {
        crate::precise::sleep_until(arrival + ttft).await;
        let wire = Wire::new(kind, index, &config.model);
        let sent = (*after_tokens).min(tokens);
        conn.answer_raw(super::stream::bad_chunking(&wire, &shared.tokens, sent));
        counters
            .tokens
            .fetch_add(u64::from(sent), Ordering::Relaxed);
        drop(guard);
        return plain(StatusCode::OK, "");
    }
    let plan = Plan {
        linger: match fault {
            Some(Fault::Linger(d)) => Some(*d),
            _ => None,
        },
        tokens,
        finish_reason,
        usage: (config.usage && parsed.include_usage).then_some((parsed.prompt_tokens, tokens)),
        fault: fault.and_then(stream_fault),
        tool_call,
    };
    let wire = Wire::new(kind, index, &config.model);
    let mut body = StreamBody::new(
        guard,
        wire,
        plan,
        conn,
        arrival + ttft,
        config.itl,
        config.ping,
    );
    body.wire_round = u64::from(parsed.tool_results);
    let mut response = Response::new(SimBody::Stream(Box::new(body)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn stream_fault(fault: &Fault) -> Option<(u32, StreamFault)> {
    Some(match fault {
        Fault::Truncate { after_tokens } => (*after_tokens, StreamFault::Truncate),
        Fault::Reset { after_tokens } => (*after_tokens, StreamFault::Reset),
        Fault::Close { after_tokens } => (*after_tokens, StreamFault::Close),
        Fault::MalformedChunk { after_tokens } => (*after_tokens, StreamFault::Malformed),
        Fault::InvalidUtf8 { after_tokens } => (*after_tokens, StreamFault::InvalidUtf8),
        Fault::StreamError {
            after_tokens,
            message,
        } => (*after_tokens, StreamFault::Error(message.clone())),
        Fault::Oversized {
            after_tokens,
            bytes,
        } => (*after_tokens, StreamFault::Oversized(*bytes)),
        Fault::Stall {
            after_tokens,
            duration,
        } => (*after_tokens, StreamFault::Stall(*duration)),
        Fault::Status { .. }
        | Fault::SlowHeaders(_)
        | Fault::IgnoreStream
        | Fault::Refuse { .. }
        | Fault::GarbageStatus
        | Fault::BadChunking { .. }
        | Fault::Linger(_) => return None,
    })
}

/// The parts of a completion request the simulator reads.
#[derive(Debug, Default, PartialEq)]
struct ParsedRequest {
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u32>,
    min_tokens: Option<u32>,
    ignore_eos: bool,
    /// Words of the prompt (system and user messages included).
    prompt_tokens: u32,
    /// The JSON-encoded name of the first tool offered, if any.
    tool: Option<String>,
    /// Tool results already in the conversation (`role: "tool"` messages).
    tool_results: u32,
}

impl ParsedRequest {
    fn parse(kind: Kind, body: &[u8]) -> Result<Self, &'static str> {
        let value: Value = serde_json::from_slice(body).map_err(|_| "invalid JSON body")?;
        let Value::Object(map) = value else {
            return Err("the request body must be a JSON object");
        };
        let prompt_tokens = match kind {
            Kind::Chat => {
                let Some(Value::Array(messages)) = map.get("messages") else {
                    return Err("Expected 'messages' to be an array");
                };
                messages
                    .iter()
                    .map(|m| words_of_content(m.get("content")))
                    .sum()
            }
            Kind::Completions => match map.get("prompt") {
                Some(Value::String(s)) => words(s),
                Some(Value::Array(parts)) => {
                    parts.iter().filter_map(Value::as_str).map(words).sum()
                }
                _ => return Err("\"prompt\" must be a string or an array of strings"),
            },
        };
        let uint = |key: &str| {
            map.get(key)
                .and_then(Value::as_u64)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        };
        let tool = map
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|tools| tools.first())
            .and_then(|t| t.pointer("/function/name"))
            .and_then(Value::as_str)
            .map(|name| Value::from(name).to_string());
        let tool_results = match map.get("messages") {
            Some(Value::Array(messages)) => messages
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
                .count() as u32,
            _ => 0,
        };
        Ok(Self {
            tool,
            tool_results,
            stream: map.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: map
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_tokens: uint("max_tokens").or_else(|| uint("max_completion_tokens")),
            min_tokens: uint("min_tokens"),
            ignore_eos: map
                .get("ignore_eos")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            prompt_tokens,
        })
    }

    /// Output length and finish reason when the model stops by itself after `natural` tokens.
    fn output(&self, natural: u32) -> (u32, &'static str) {
        let natural = natural.max(self.min_tokens.unwrap_or(0));
        match self.max_tokens {
            Some(max) if self.ignore_eos || max < natural => (max, "length"),
            _ => (natural, "stop"),
        }
    }
}

fn words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Words of a message's `content`: a string or an array of `{"type":"text","text":...}` parts.
fn words_of_content(content: Option<&Value>) -> u32 {
    match content {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(words)
            .sum(),
        _ => 0,
    }
}

/// A non-streaming completion body.
fn full_json(
    shared: &Shared,
    kind: Kind,
    index: u64,
    tokens: u32,
    finish_reason: &str,
    usage: Option<(u32, u32)>,
) -> String {
    // The token texts are JSON strings: their insides concatenate into one JSON string.
    let mut text = String::from("\"");
    for i in 0..tokens as usize {
        let t = &shared.tokens[i % shared.tokens.len()];
        text.push_str(&t[1..t.len() - 1]);
    }
    text.push('"');
    let model = Value::from(shared.config.model.as_str());
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let choice = match kind {
        Kind::Chat => format!(
            r#"{{"index":0,"message":{{"role":"assistant","content":{text}}},"finish_reason":"{finish_reason}"}}"#
        ),
        Kind::Completions => format!(
            r#"{{"index":0,"text":{text},"logprobs":null,"finish_reason":"{finish_reason}"}}"#
        ),
    };
    let (id, object) = match kind {
        Kind::Chat => ("chatcmpl", "chat.completion"),
        Kind::Completions => ("cmpl", "text_completion"),
    };
    let usage = match usage {
        Some((p, c)) => format!(
            r#","usage":{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{}}}"#,
            u64::from(p) + u64::from(c)
        ),
        None => String::new(),
    };
    format!(
        r#"{{"id":"{id}-sim-{index}","object":"{object}","created":{created},"model":{model},"choices":[{choice}]{usage}}}"#
    )
}

fn models(shared: &Shared) -> Response<SimBody> {
    let model = Value::from(shared.config.model.as_str());
    json(
        StatusCode::OK,
        format!(
            r#"{{"object":"list","data":[{{"id":{model},"object":"model","created":0,"owned_by":"loadkit"}}]}}"#
        ),
    )
}

/// `GET /metrics`: the server's own view in vLLM's Prometheus names, so `--server-metrics`
/// has something to read from the built-in simulator. Running requests hold a slot, waiting
/// ones queue for one; the KV-cache usage is running over slots (0 without slots).
fn metrics(shared: &Shared) -> Response<SimBody> {
    use std::fmt::Write as _;
    let c = &shared.counters;
    let in_flight = c.in_flight.load(Ordering::Acquire);
    let waiting = c.waiting.load(Ordering::Acquire).min(in_flight);
    let running = in_flight - waiting;
    let cache = shared
        .config
        .slots
        .map_or(0.0, |n| f64::from(running) / f64::from(n.max(1)));
    let model = shared.config.model.replace(['\\', '"', '\n'], "_");
    let mut text = String::with_capacity(1024);
    let mut put = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{model_name=\"{model}\"}} {value:?}\n"
        );
    };
    put(
        "vllm:num_requests_running",
        "gauge",
        "Number of requests in model execution batches.",
        f64::from(running),
    );
    put(
        "vllm:num_requests_waiting",
        "gauge",
        "Number of requests waiting to be processed.",
        f64::from(waiting),
    );
    put(
        "vllm:gpu_cache_usage_perc",
        "gauge",
        "GPU KV-cache usage. 1 means 100 percent usage.",
        cache,
    );
    put(
        "vllm:prompt_tokens_total",
        "counter",
        "Number of prefill tokens processed.",
        c.prompt_tokens.load(Ordering::Relaxed) as f64,
    );
    put(
        "vllm:generation_tokens_total",
        "counter",
        "Number of generation tokens processed.",
        c.tokens.load(Ordering::Relaxed) as f64,
    );
    // The time requests waited for a slot, as vLLM's histogram (one bucket: +Inf).
    let admitted = c.admitted.load(Ordering::Relaxed);
    let queued = c.queued_ns.load(Ordering::Relaxed) as f64 / 1e9;
    let name = "vllm:request_queue_time_seconds";
    let _ = write!(
        text,
        "# HELP {name} Histogram of time spent in WAITING phase for request.\n\
         # TYPE {name} histogram\n\
         {name}_bucket{{le=\"+Inf\",model_name=\"{model}\"}} {admitted:?}\n\
         {name}_count{{model_name=\"{model}\"}} {admitted:?}\n\
         {name}_sum{{model_name=\"{model}\"}} {queued:?}\n"
    );
    let mut response = Response::new(SimBody::full(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn status_response(status: u16, body: &str, retry_after: Option<u32>) -> Response<SimBody> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if body.trim_start().starts_with('{') {
        json(status, body.to_owned())
    } else {
        plain(status, body)
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn json(status: StatusCode, body: String) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn plain(status: StatusCode, body: &str) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An error body shaped like llama-server's and OpenAI's.
fn error_json(status: StatusCode, message: &str) -> Response<SimBody> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    let message = Value::from(message);
    json(
        status,
        format!(
            r#"{{"error":{{"code":{},"message":{message},"type":"{kind}"}}}}"#,
            status.as_u16()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: Kind, body: &str) -> Result<ParsedRequest, &'static str> {
        ParsedRequest::parse(kind, body.as_bytes())
    }

    #[test]
    fn requests_are_parsed() {
        let chat = parse(
            Kind::Chat,
            r#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi there you"}]}],
                "stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":5}"#,
        )
        .unwrap();
        assert_eq!(
            chat,
            ParsedRequest {
                stream: true,
                include_usage: true,
                max_tokens: Some(5),
                prompt_tokens: 5,
                ..Default::default()
            }
        );
        let completions =
            parse(Kind::Completions, r#"{"prompt":"one two","max_tokens":3}"#).unwrap();
        assert_eq!((completions.prompt_tokens, completions.stream), (2, false));
        assert_eq!(
            parse(Kind::Chat, r#"{"messages":"x"}"#),
            Err("Expected 'messages' to be an array")
        );
        assert_eq!(parse(Kind::Chat, "{"), Err("invalid JSON body"));
        assert!(parse(Kind::Completions, r#"{"messages":[]}"#).is_err());
    }

    #[test]
    fn output_length_follows_vllm_semantics() {
        let req = |max: Option<u32>, min: Option<u32>, ignore_eos: bool| ParsedRequest {
            max_tokens: max,
            min_tokens: min,
            ignore_eos,
            ..Default::default()
        };
        assert_eq!(req(None, None, false).output(32), (32, "stop"));
        assert_eq!(req(Some(8), None, false).output(32), (8, "length"));
        assert_eq!(req(Some(64), None, false).output(32), (32, "stop"));
        assert_eq!(req(Some(64), None, true).output(32), (64, "length"));
        assert_eq!(req(Some(64), Some(48), false).output(32), (48, "stop"));
        assert_eq!(req(None, None, true).output(32), (32, "stop"));
    }
}
