//! Tool-calling conversations: the tools are offered, every `tool_calls` answer gets
//! deterministic fake results and the model is asked again, up to a maximum number of tool
//! rounds. The whole conversation is ONE engine request: TTFT is the first content (text or
//! tool-call fragment) of the first round, E2E the whole conversation, and each round's latency
//! is the named metric `tool_round_K` (K = 1 for the first question).

use std::time::Duration;

use loadkit_core::{Probe, RequestError, RunStats};
use loadkit_sse::SseDecoder;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{OpenAiClient, OpenAiRequest};
use crate::parse::{Sink, StreamParser};

/// The most tool rounds a conversation may have (its requests then fill the probe's eight
/// named-metric slots).
pub const MAX_TOOL_ROUNDS: u32 = 7;

/// The most tool calls one round may carry; a streamed `index` at or past it is a protocol error.
pub const MAX_TOOL_CALLS: usize = 128;

/// The names of the per-round latency metrics: `ROUND_METRICS[k]` is request `k + 1` of a
/// conversation.
pub const ROUND_METRICS: [&str; 8] = [
    "tool_round_1",
    "tool_round_2",
    "tool_round_3",
    "tool_round_4",
    "tool_round_5",
    "tool_round_6",
    "tool_round_7",
    "tool_round_8",
];

/// Tool-calling settings.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) tools: Value,
    pub(crate) max_rounds: u32,
}

/// The probe tallies a conversation leaves (`RunStats::tallies`): counted in the collector,
/// so they merge across runs and shards like every statistic.
pub mod tally {
    /// Conversations that ended (successfully or not).
    pub const CONVERSATIONS: &str = "tool_conversations";
    /// Tool rounds (requests answered with `tool_calls`), over all conversations.
    pub const ROUNDS: &str = "tool_rounds";
    /// Conversations stopped by the maximum while the model still called tools.
    pub const LIMIT_REACHED: &str = "tool_limit_reached";
    /// `BY_ROUNDS[k]`: conversations that had `k` tool rounds.
    pub const BY_ROUNDS: [&str; super::MAX_TOOL_ROUNDS as usize + 1] = [
        "tool_rounds_0",
        "tool_rounds_1",
        "tool_rounds_2",
        "tool_rounds_3",
        "tool_rounds_4",
        "tool_rounds_5",
        "tool_rounds_6",
        "tool_rounds_7",
    ];
}

/// What the tool conversations of a run did, read from its tallies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolReport {
    /// Conversations that ended (successfully or not).
    pub conversations: u64,
    /// Tool rounds over all conversations (requests answered with `tool_calls`).
    pub tool_rounds: u64,
    /// Conversations stopped by the maximum while the model still called tools.
    pub limit_reached: u64,
    /// `(tool rounds, conversations)` for every count seen.
    pub by_tool_rounds: Vec<(u32, u64)>,
}

impl ToolReport {
    /// The tool counts of `stats` (measured requests only, as every statistic).
    pub fn from_stats(stats: &RunStats) -> Self {
        let get = |name: &str| stats.tallies.get(name).copied().unwrap_or(0);
        Self {
            conversations: get(tally::CONVERSATIONS),
            tool_rounds: get(tally::ROUNDS),
            limit_reached: get(tally::LIMIT_REACHED),
            by_tool_rounds: tally::BY_ROUNDS
                .iter()
                .enumerate()
                .map(|(k, name)| (k as u32, get(name)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        }
    }

    /// Tool rounds per conversation (0 when there were none).
    pub fn mean_tool_rounds(&self) -> f64 {
        if self.conversations == 0 {
            0.0
        } else {
            self.tool_rounds as f64 / self.conversations as f64
        }
    }
}

/// Leaves a finished conversation's tallies on its probe.
fn record(probe: &mut Probe, tool_rounds: u32, limited: bool) {
    probe.tally(tally::CONVERSATIONS, 1);
    probe.tally(tally::ROUNDS, u64::from(tool_rounds));
    probe.tally(tally::LIMIT_REACHED, u64::from(limited));
    probe.tally(
        tally::BY_ROUNDS[(tool_rounds as usize).min(MAX_TOOL_ROUNDS as usize)],
        1,
    );
}

/// Marks content on the probe and keeps the round's usage, to be summed over rounds.
struct RoundSink<'a> {
    probe: &'a mut Probe,
    input: Option<u64>,
    output: Option<u64>,
}

impl Sink for RoundSink<'_> {
    fn content(&mut self, units: u32, bytes: usize) {
        self.probe.content(units, bytes);
    }

    fn reasoning(&mut self, units: u32, bytes: usize) {
        self.probe.reasoning(units, bytes);
    }

    fn usage(&mut self, input: Option<u64>, output: Option<u64>) {
        self.input = input.or(self.input);
        self.output = output.or(self.output);
    }
}

#[derive(Deserialize)]
struct ToolChunk {
    #[serde(default)]
    choices: Vec<ToolChoice>,
}

#[derive(Deserialize)]
struct ToolChoice {
    delta: Option<ToolDelta>,
}

#[derive(Deserialize)]
struct ToolDelta {
    tool_calls: Option<Vec<CallDelta>>,
}

#[derive(Deserialize)]
struct CallDelta {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

/// A tool call assembled from its streamed fragments.
#[derive(Debug, Default, Clone)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

/// Adds the tool-call fragments of one chunk (only chunks that mention `tool_calls` are
/// parsed a second time, so plain content chunks pay nothing).
fn collect_calls(data: &[u8], calls: &mut Vec<Call>) -> Result<(), RequestError> {
    if !data.windows(12).any(|w| w == b"\"tool_calls\"") {
        return Ok(());
    }
    let Ok(chunk) = serde_json::from_slice::<ToolChunk>(data) else {
        return Ok(());
    };
    let deltas = chunk
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.delta)
        .and_then(|d| d.tool_calls)
        .unwrap_or_default();
    for delta in deltas {
        let i = delta.index.unwrap_or(calls.len().saturating_sub(1));
        if i >= MAX_TOOL_CALLS {
            // A hostile index would otherwise size the vector to it (terabytes: an abort).
            return Err(RequestError::protocol(format!(
                "tool call index {i} exceeds the limit of {MAX_TOOL_CALLS} calls per round"
            )));
        }
        if calls.len() <= i {
            calls.resize_with(i + 1, Call::default);
        }
        let call = &mut calls[i];
        if let Some(id) = delta.id {
            call.id = id;
        }
        if let Some(f) = delta.function {
            if let Some(name) = f.name {
                call.name.push_str(&name);
            }
            if let Some(arguments) = f.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }
    Ok(())
}

/// The deterministic fake result of call `k` of round `round`.
fn fake_result(call: &Call, round: u32, k: usize) -> String {
    json!({"result": "ok", "tool": call.name, "round": round, "call": k}).to_string()
}

impl OpenAiClient {
    /// Runs one tool-calling conversation for `request`.
    pub(crate) async fn converse(
        &self,
        tools: &Tools,
        request: OpenAiRequest,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        let mut body: Value = serde_json::from_slice(&self.body(&request))
            .map_err(|_| RequestError::protocol("cannot build the request body"))?;
        drop(request);
        body["tools"] = tools.tools.clone();
        let mut tool_rounds = 0u32;
        let (mut input, mut output) = (None::<u64>, None::<u64>);
        let outcome = loop {
            let round = tool_rounds as usize;
            let started = probe.stamp();
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let (calls, usage) = match self.tool_round(bytes, probe).await {
                Ok(r) => r,
                Err(e) => break Err(e),
            };
            probe.span(ROUND_METRICS[round.min(7)], started, Duration::ZERO);
            if let Some(i) = usage.0 {
                input = Some(input.unwrap_or(0) + i);
            }
            if let Some(o) = usage.1 {
                output = Some(output.unwrap_or(0) + o);
            }
            if calls.is_empty() {
                record(probe, tool_rounds, false);
                break Ok(());
            }
            if tool_rounds >= tools.max_rounds {
                record(probe, tool_rounds, true);
                break Ok(());
            }
            tool_rounds += 1;
            let messages = body["messages"].as_array_mut();
            let Some(messages) = messages else {
                break Err(RequestError::protocol("cannot build the request body"));
            };
            let tool_calls: Vec<Value> = calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            messages.push(json!({"role": "assistant", "content": null, "tool_calls": tool_calls}));
            for (k, call) in calls.iter().enumerate() {
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": call.id,
                    "content": fake_result(call, tool_rounds, k),
                }));
            }
        };
        if input.is_some() || output.is_some() {
            probe.usage(input, output);
        }
        if outcome.is_err() {
            record(probe, tool_rounds, false);
        }
        outcome
    }

    /// One request of a conversation: its tool calls and its usage.
    async fn tool_round(
        &self,
        body: Vec<u8>,
        probe: &mut Probe,
    ) -> Result<(Vec<Call>, (Option<u64>, Option<u64>)), RequestError> {
        let response = self.http.send(self.http_request(body), probe).await?;
        if !response.status.is_success() {
            return Err(response.error(probe).await);
        }
        let mut body = response.body;
        let mut sse = SseDecoder::new(self.max_event_size);
        let mut parser = StreamParser::default();
        let mut calls = Vec::new();
        let mut sink = RoundSink {
            probe,
            input: None,
            output: None,
        };
        while let Some(bytes) = body.chunk(sink.probe).await? {
            sse.push(&bytes);
            while let Some(event) = sse.next_event()? {
                parser.event(&event, &mut sink)?;
                collect_calls(event.data, &mut calls)?;
            }
            if parser.is_done() {
                break;
            }
        }
        if parser.is_done() {
            // The round ends at its end marker; draining for reuse is off the clock.
            sink.probe.mark_end();
            body.finish().await;
        } else {
            if let Some(event) = sse.finish() {
                parser.event(&event, &mut sink)?;
                collect_calls(event.data, &mut calls)?;
            }
            parser.end()?;
        }
        Ok((calls, (sink.input, sink.output)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_tool_call_index_is_a_protocol_error_not_an_abort() {
        let mut calls = Vec::new();
        let hostile = r#"{"choices":[{"delta":{"tool_calls":[{"index":999999999999,"function":{"name":"x"}}]}}]}"#;
        let e = collect_calls(hostile.as_bytes(), &mut calls).unwrap_err();
        assert_eq!(e.kind, loadkit_core::metrics::ErrorKind::Protocol);
        assert!(
            e.message
                .contains("index 999999999999 exceeds the limit of 128"),
            "{e}"
        );
        assert!(calls.is_empty());
        let last =
            r#"{"choices":[{"delta":{"tool_calls":[{"index":127,"function":{"name":"x"}}]}}]}"#;
        collect_calls(last.as_bytes(), &mut calls).unwrap();
        assert_eq!(calls.len(), 128);
    }

    #[test]
    fn tool_calls_are_assembled_from_fragments() {
        let mut calls = Vec::new();
        for data in [
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"not a call"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\": 1}"}}]}}]}"#,
            r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
        ] {
            collect_calls(data.as_bytes(), &mut calls).unwrap();
        }
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (
                calls[0].id.as_str(),
                calls[0].name.as_str(),
                calls[0].arguments.as_str()
            ),
            ("call_1", "search", "{\"q\": 1}")
        );
        assert_eq!(
            fake_result(&calls[0], 1, 0),
            r#"{"call":0,"result":"ok","round":1,"tool":"search"}"#
        );
    }
}
