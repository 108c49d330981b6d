//! Parsing Ollama's NDJSON lines (and whole `"stream": false` bodies) into content marks,
//! token counts, the server's own timings, and errors.
//!
//! Generated text is measured from its raw JSON text ([`TextLen`]), never copied or unescaped,
//! so a line allocates nothing, content full of `\n` and `\uXXXX` included, except: an error
//! line (or a malformed one) allocates its message, and a line with `tool_calls` (an array of
//! objects) or another field nested two deep allocates once for the nesting stack serde_json
//! keeps while skipping it.

use std::time::Duration;

use loadkit_core::{Probe, RequestError};
use loadkit_sse::message::{error_body_message, json_error, DataErrors};
use loadkit_sse::TextLen;
use serde::Deserialize;

/// Names of the metrics an [`OllamaClient`](crate::OllamaClient) records.
pub mod metric {
    /// `load_duration`: loading the model.
    pub const SERVER_LOAD: &str = "server_load";
    /// `prompt_eval_duration`: evaluating the prompt (prefill).
    pub const SERVER_PROMPT_EVAL: &str = "server_prompt_eval";
    /// `eval_duration`: generating the output.
    pub const SERVER_EVAL: &str = "server_eval";
    /// `total_duration`: the server's whole handling of the request.
    pub const SERVER_TOTAL: &str = "server_total";
    /// Client-measured time to the `done` line minus `total_duration`: queueing in front of
    /// the model, network and HTTP overhead.
    pub const CLIENT_OVERHEAD: &str = "client_overhead";
    /// `load_duration` of the requests whose load exceeded the cold-load threshold (the
    /// histogram's count is the number of cold loads).
    pub const COLD_LOAD: &str = "cold_load";
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Message {
    content: TextLen,
    thinking: TextLen,
    tool_calls: TextLen,
}

/// One NDJSON line, or a whole non-streaming body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Line {
    message: Option<Message>,
    response: TextLen,
    thinking: TextLen,
    done: bool,
    error: Option<serde_json::Value>,
    total_duration: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_count: Option<u64>,
    eval_duration: Option<u64>,
}

impl Line {
    /// (text, thinking) bytes.
    fn lens(&self) -> (usize, usize) {
        let (content, thinking) = self.message.as_ref().map_or((0, 0), |m| {
            (m.content.get() + m.tool_calls.get(), m.thinking.get())
        });
        (
            content + self.response.get(),
            thinking + self.thinking.get(),
        )
    }
}

/// What the stream parser does with the server's final statistics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Finals {
    pub(crate) cold_load_threshold: Duration,
}

impl Finals {
    fn record(&self, line: &Line, probe: &mut Probe) {
        let ns = |v: Option<u64>| v.map(Duration::from_nanos);
        probe.usage(line.prompt_eval_count, line.eval_count);
        for (name, value) in [
            (metric::SERVER_LOAD, ns(line.load_duration)),
            (metric::SERVER_PROMPT_EVAL, ns(line.prompt_eval_duration)),
            (metric::SERVER_EVAL, ns(line.eval_duration)),
            (metric::SERVER_TOTAL, ns(line.total_duration)),
        ] {
            if let Some(v) = value {
                probe.server_timing(name, v);
            }
        }
        if let Some(total) = ns(line.total_duration) {
            probe.span(metric::CLIENT_OVERHEAD, probe.sent_stamp(), total);
        }
        if let Some(load) = ns(line.load_duration) {
            if load > self.cold_load_threshold {
                probe.server_timing(metric::COLD_LOAD, load);
            }
        }
    }
}

/// Handles one streamed line: `Ok(true)` when it was the `done: true` line.
pub(crate) fn line(line: &[u8], finals: Finals, probe: &mut Probe) -> Result<bool, RequestError> {
    let parsed: Line = serde_json::from_slice(line)
        .map_err(|e| json_error("malformed line", &e, DataErrors::Fixed))?;
    if parsed.error.as_ref().is_some_and(|e| !e.is_null()) {
        return Err(RequestError::server(error_body_message(line)));
    }
    let (text, thinking) = parsed.lens();
    if thinking > 0 {
        probe.reasoning(1, text + thinking);
    } else if text > 0 {
        probe.content(1, text);
    }
    if parsed.done {
        finals.record(&parsed, probe);
    }
    Ok(parsed.done)
}

/// Reads one streamed NDJSON line as [`OllamaClient`](crate::OllamaClient) does (content and
/// reasoning marks, the `done: true` line's counts and timings, an error line), marking
/// `probe`: `Ok(true)` when it was the `done: true` line. Any bytes are a line or a classified
/// error, never a panic (the fuzz targets and property tests call it with arbitrary input).
///
/// # Errors
///
/// A malformed line (`protocol`) or an error line (`server`).
pub fn parse_line(
    bytes: &[u8],
    cold_load_threshold: Duration,
    probe: &mut Probe,
) -> Result<bool, RequestError> {
    line(
        bytes,
        Finals {
            cold_load_threshold,
        },
        probe,
    )
}

/// Handles a whole `"stream": false` body: one content chunk of `eval_count` units.
pub(crate) fn whole(body: &[u8], finals: Finals, probe: &mut Probe) -> Result<(), RequestError> {
    let parsed: Line = serde_json::from_slice(body)
        .map_err(|e| json_error("malformed response", &e, DataErrors::Fixed))?;
    if parsed.error.as_ref().is_some_and(|e| !e.is_null()) {
        return Err(RequestError::server(error_body_message(body)));
    }
    let (text, thinking) = parsed.lens();
    let units = parsed
        .eval_count
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
    if thinking > 0 {
        probe.reasoning(units, text + thinking);
    } else {
        probe.content(units, text);
    }
    finals.record(&parsed, probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        assert_eq!(
            error_body_message(br#"{"error":"model \"x\" not found, try pulling it first"}"#),
            "model \"x\" not found, try pulling it first"
        );
        assert_eq!(error_body_message(b"plain\n text"), "plain text");
        assert_eq!(error_body_message(br#"{"error":{"message":"m"}}"#), "m");
        assert_eq!(
            error_body_message(br#"{"detail":"Not Found"}"#),
            "Not Found"
        );
    }

    #[test]
    fn parsing_escaped_lines_allocates_nothing_after_warm_up() {
        // Content as a Python proxy sends it (`json.dumps`, `ensure_ascii=True`).
        let contents = [
            r"\n\n",
            r"line\nline\n",
            r"\u4f60\u597d\u4e16\u754c",
            r"\ud83d\ude00 ok\n",
            r#"caf\u00e9 \"q\" \\ \/ \t\r"#,
        ];
        let lines: Vec<Vec<u8>> = (0..1_100)
            .map(|i| {
                format!(
                    "{{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"message\":\
                     {{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
                    contents[i % contents.len()]
                )
                .into_bytes()
            })
            .collect();
        // On the paused clock every inter-chunk gap is 0, so the probe's gap histogram (which
        // allocates when a new bucket appears) stays at one bucket: what is counted is framing
        // and parsing alone.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _clock = runtime.enter();
        let finals = Finals {
            cold_load_threshold: Duration::from_secs(1),
        };
        let mut decoder = loadkit_sse::NdjsonDecoder::new(1 << 20);
        let mut probe = Probe::standalone();
        let mut feed = |lines: &[Vec<u8>], probe: &mut Probe| {
            for bytes in lines {
                decoder.push(bytes);
                while let Some(l) = decoder.next_line().unwrap() {
                    assert!(!line(l, finals, probe).unwrap());
                }
            }
        };
        feed(&lines[..100], &mut probe);
        let counted = allocation_counter::measure(|| feed(&lines[100..], &mut probe));
        assert_eq!(probe.content_chunks(), 1_100);
        assert_eq!(counted.count_total, 0, "{counted:?}");
        // The counter is live: a Box counts.
        let boxed = allocation_counter::measure(|| drop(std::hint::black_box(Box::new(1u64))));
        assert_eq!(boxed.count_total, 1);
    }

    #[test]
    fn lines_are_measured() {
        let l: Line = serde_json::from_slice(
            br#"{"model":"m","message":{"role":"assistant","content":"h\u00e9","thinking":""},"done":false}"#,
        )
        .unwrap();
        assert_eq!(l.lens(), (3, 0));
        let l: Line = serde_json::from_slice(
            br#"{"response":"","done":true,"context":[1,2],"total_duration":5,"eval_count":2}"#,
        )
        .unwrap();
        assert_eq!((l.lens(), l.done, l.eval_count), ((0, 0), true, Some(2)));
    }
}
