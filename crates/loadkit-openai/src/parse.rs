//! Parsing OpenAI-compatible responses: streamed chunks (one SSE event each) and whole
//! non-streaming bodies, into content marks, usage and errors, as docs/metrics.md defines them.
//!
//! Only the fields loadkit needs are deserialized, straight from the event's bytes: generated
//! text is never copied or unescaped, only measured ([`TextLen`] counts the bytes its raw JSON
//! text stands for, escapes included), `choices` is read without building a `Vec`, and unknown
//! fields are skipped. Parsing a chunk allocates nothing, content full of `\n` and `\uXXXX`
//! included, except in two cases: a chunk that carries an error (or is malformed) allocates its
//! message, and a chunk with an ignored field nested two deep, such as a `logprobs` object,
//! allocates once for the nesting stack serde_json keeps while skipping it.

use std::borrow::Cow;
use std::fmt;

use loadkit_core::{Probe, RequestError};
use loadkit_sse::message::{error_body_message, json_error, server_message, DataErrors};
use loadkit_sse::{SseEvent, TextLen};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Where parsed milestones go: the request's [`Probe`], or a recorder in tests.
pub(crate) trait Sink {
    fn content(&mut self, units: u32, bytes: usize);
    fn reasoning(&mut self, units: u32, bytes: usize);
    fn usage(&mut self, input: Option<u64>, output: Option<u64>);
}

impl Sink for Probe {
    #[inline]
    fn content(&mut self, units: u32, bytes: usize) {
        Probe::content(self, units, bytes);
    }

    #[inline]
    fn reasoning(&mut self, units: u32, bytes: usize) {
        Probe::reasoning(self, units, bytes);
    }

    fn usage(&mut self, input: Option<u64>, output: Option<u64>) {
        Probe::usage(self, input, output);
    }
}

/// `delta` (streaming) or `message` (non-streaming) of a choice. Absent and `null` fields are 0.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
struct Message {
    content: TextLen,
    reasoning_content: TextLen,
    reasoning: TextLen,
    tool_calls: ToolCallsLen,
}

impl Message {
    /// (generated text, reasoning) bytes.
    fn lens(&self) -> (usize, usize) {
        (
            self.content.get() + self.tool_calls.0.get(),
            self.reasoning_content.get() + self.reasoning.get(),
        )
    }
}

/// Total bytes of tool-call names and argument fragments, summed without collecting.
#[derive(Debug, Clone, Copy, Default)]
struct ToolCallsLen(TextLen);

#[derive(Deserialize)]
struct ToolCall {
    function: Option<Function>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Function {
    name: TextLen,
    arguments: TextLen,
}

impl<'de> Deserialize<'de> for ToolCallsLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolCallsLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of tool calls")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ToolCallsLen, A::Error> {
                let mut total = 0usize;
                while let Some(call) = seq.next_element::<ToolCall>()? {
                    if let Some(f) = call.function {
                        total = total
                            .saturating_add(f.name.get())
                            .saturating_add(f.arguments.get());
                    }
                }
                Ok(ToolCallsLen(TextLen::new(total)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ToolCallsLen, E> {
                Ok(ToolCallsLen::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A choice: `delta` when streaming, `message` otherwise (one field: they never come together).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Choice {
    #[serde(alias = "message")]
    delta: Option<Message>,
    text: TextLen,
    finish_reason: Option<IgnoredAny>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

/// `{"error": ...}`: an object with a `message`, or a bare string.
#[derive(Debug)]
struct ErrorField<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for ErrorField<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object<'a> {
            #[serde(borrow)]
            message: Option<Cow<'a, str>>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ErrorField<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error object or message")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(ErrorField(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(ErrorField(Some(Cow::Owned(s.to_owned()))))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let o = Object::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ErrorField(o.message))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ErrorField(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// One streamed chunk or a whole non-streaming response: the fields loadkit reads.
#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(default, deserialize_with = "first_choice")]
    choices: Option<Choice>,
    usage: Option<Usage>,
    #[serde(borrow)]
    error: Option<ErrorField<'a>>,
}

/// The first element of `choices` (`None` for `[]` or `null`); the rest are skipped.
fn first_choice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Choice>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Choice>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of choices")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Choice>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Marks the content of one choice; `true` if it carried a `finish_reason`.
fn mark_choice<S: Sink>(choice: &Choice, sink: &mut S) -> bool {
    let (text, reasoning) = choice.delta.map_or((0, 0), |m| m.lens());
    let text = text + choice.text.get();
    if reasoning > 0 {
        sink.reasoning(1, text + reasoning);
    } else if text > 0 {
        sink.content(1, text);
    }
    choice.finish_reason.is_some()
}

fn mark_usage<S: Sink>(usage: Option<Usage>, sink: &mut S) {
    if let Some(u) = usage {
        if u.prompt_tokens.is_some() || u.completion_tokens.is_some() {
            sink.usage(u.prompt_tokens, u.completion_tokens);
        }
    }
}

/// The state of one streamed response.
///
/// A stream succeeds when it ends after `data: [DONE]`, *or* after a chunk with a
/// `finish_reason`: some servers omit `[DONE]`, and a stream that said why it finished is
/// complete. A stream that ends with neither is `truncated`.
#[derive(Debug, Default)]
pub(crate) struct StreamParser {
    done: bool,
    finished: bool,
}

impl StreamParser {
    /// `data: [DONE]` was seen: the rest of the body carries nothing.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Handles one SSE event.
    pub(crate) fn event<S: Sink>(
        &mut self,
        event: &SseEvent<'_>,
        sink: &mut S,
    ) -> Result<(), RequestError> {
        if self.done {
            return Ok(());
        }
        match event.event {
            None | Some(b"message") => {}
            Some(b"error") => {
                return Err(RequestError::server(error_body_message(event.data)));
            }
            // Named keepalive events carry nothing.
            Some(b"ping" | b"keepalive" | b"heartbeat") => return Ok(()),
            Some(_) => {}
        }
        let data = event.data.trim_ascii();
        if data.is_empty() {
            return Ok(());
        }
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_slice(data)
            .map_err(|e| json_error("malformed chunk", &e, DataErrors::Fixed))?;
        if let Some(error) = chunk.error {
            return Err(RequestError::server(server_message(
                error.0.as_deref().unwrap_or(""),
            )));
        }
        if let Some(choice) = &chunk.choices {
            self.finished |= mark_choice(choice, sink);
        }
        mark_usage(chunk.usage, sink);
        Ok(())
    }

    /// The body ended: was the stream complete?
    pub(crate) fn end(&self) -> Result<(), RequestError> {
        if self.done || self.finished {
            Ok(())
        } else {
            Err(RequestError::truncated("stream ended before [DONE]"))
        }
    }
}

/// Parses the SSE events of one streamed chat or completions response into a [`Probe`],
/// exactly as [`OpenAiClient`](crate::OpenAiClient) does, for callers that bring their own
/// transport (and for the `parse_cpu` benchmark).
///
/// ```
/// use loadkit_core::Probe;
/// use loadkit_openai::ChunkParser;
/// use loadkit_sse::SseDecoder;
///
/// let mut sse = SseDecoder::new(1 << 20);
/// let mut parser = ChunkParser::default();
/// let mut probe = Probe::standalone();
/// sse.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n");
/// while let Some(event) = sse.next_event()? {
///     parser.event(&event, &mut probe)?;
/// }
/// assert!(parser.is_done());
/// assert_eq!(probe.content_chunks(), 1);
/// # Ok::<(), loadkit_core::RequestError>(())
/// ```
#[derive(Debug, Default)]
pub struct ChunkParser(StreamParser);

impl ChunkParser {
    /// Handles one SSE event: marks its content and usage on `probe`, or returns the stream's
    /// error (a malformed chunk, an in-stream error).
    pub fn event(&mut self, event: &SseEvent<'_>, probe: &mut Probe) -> Result<(), RequestError> {
        self.0.event(event, probe)
    }

    /// `data: [DONE]` was seen: the rest of the body carries nothing.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// The body ended: `Ok` if the stream was complete (`[DONE]` or a `finish_reason`), else
    /// a `truncated` error.
    pub fn end(&self) -> Result<(), RequestError> {
        self.0.end()
    }
}

/// Parses a whole non-streaming response body: the content is one chunk of `completion_tokens`
/// units (1 when the server reports no usage).
pub(crate) fn full_response<S: Sink>(body: &[u8], sink: &mut S) -> Result<(), RequestError> {
    let chunk: Chunk<'_> = serde_json::from_slice(body)
        .map_err(|e| json_error("malformed response", &e, DataErrors::Fixed))?;
    if let Some(error) = chunk.error {
        return Err(RequestError::server(server_message(
            error.0.as_deref().unwrap_or(""),
        )));
    }
    let Some(choice) = chunk.choices else {
        return Err(RequestError::protocol("malformed response: no choices"));
    };
    let (text, reasoning) = choice.delta.map_or((0, 0), |m| m.lens());
    let bytes = text + reasoning + choice.text.get();
    let units = chunk
        .usage
        .and_then(|u| u.completion_tokens)
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX));
    if reasoning > 0 {
        sink.reasoning(units, bytes);
    } else {
        sink.content(units, bytes);
    }
    mark_usage(chunk.usage, sink);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use loadkit_core::metrics::ErrorKind;
    use loadkit_sse::SseDecoder;

    use super::*;

    /// Everything a parser marked.
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Marks {
        pub(crate) chunks: u32,
        pub(crate) units: u64,
        pub(crate) bytes: usize,
        pub(crate) reasoning: bool,
        pub(crate) usage: Option<(Option<u64>, Option<u64>)>,
    }

    impl Sink for Marks {
        fn content(&mut self, units: u32, bytes: usize) {
            self.chunks += 1;
            self.units += u64::from(units);
            self.bytes += bytes;
        }
        fn reasoning(&mut self, units: u32, bytes: usize) {
            self.reasoning = true;
            self.content(units, bytes);
        }
        fn usage(&mut self, input: Option<u64>, output: Option<u64>) {
            self.usage = Some((input, output));
        }
    }

    /// Runs an SSE body through the framer and the parser, as the client does.
    pub(crate) fn parse_stream(body: &[u8]) -> (Marks, Result<(), RequestError>, bool) {
        let mut sse = SseDecoder::new(1 << 20);
        let mut parser = StreamParser::default();
        let mut marks = Marks::default();
        sse.push(body);
        let result = (|| {
            while let Some(event) = sse.next_event()? {
                parser.event(&event, &mut marks)?;
            }
            if let Some(event) = sse.finish() {
                parser.event(&event, &mut marks)?;
            }
            parser.end()
        })();
        (marks, result, parser.is_done())
    }

    fn events(chunks: &[&str]) -> String {
        chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
    }

    /// Parses `chunks` (each an SSE data payload) and returns (content chunks, bytes, outcome).
    fn check(chunks: &[&str]) -> (u32, usize, Result<(), RequestError>) {
        let (marks, result, _) = parse_stream(events(chunks).as_bytes());
        (marks.chunks, marks.bytes, result)
    }

    #[test]
    fn only_generated_content_counts() {
        let (chunks, bytes, result) = check(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":" \"there\"\n"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
            "[DONE]",
        ]);
        assert_eq!((chunks, bytes), (2, 2 + 9));
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn completions_reasoning_and_tool_calls() {
        let (marks, result, _) = parse_stream(
            events(&[
                r#"{"choices":[{"text":"a","index":0,"finish_reason":null}]}"#,
                r#"{"choices":[{"text":"","index":0,"finish_reason":"length"}]}"#,
            ])
            .as_bytes(),
        );
        assert_eq!((marks.chunks, marks.reasoning, result), (1, false, Ok(())));
        let (marks, _, _) = parse_stream(
            events(&[
                r#"{"choices":[{"delta":{"reasoning_content":"hmm"}}]}"#,
                r#"{"choices":[{"delta":{"reasoning":"so"}}]}"#,
                r#"{"choices":[{"delta":{"content":"ok"}}]}"#,
                "[DONE]",
            ])
            .as_bytes(),
        );
        assert_eq!((marks.chunks, marks.bytes, marks.reasoning), (3, 7, true));
        let (marks, _, _) = parse_stream(
            events(&[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#,
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
                r#"{"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
                "[DONE]",
            ])
            .as_bytes(),
        );
        assert_eq!(
            (marks.chunks, marks.bytes, marks.reasoning),
            (3, 3 + 5 + 2, false)
        );
    }

    #[test]
    fn end_of_stream_rules() {
        let content = r#"{"choices":[{"delta":{"content":"x"}}]}"#;
        let finish = r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
        assert_eq!(check(&[content, "[DONE]"]).2, Ok(()));
        // A finish_reason without [DONE] is a complete stream (some servers omit [DONE]).
        assert_eq!(check(&[content, finish]).2, Ok(()));
        let null_delta = r#"{"choices":[{"index":0,"delta":null,"finish_reason":"stop"}]}"#;
        assert_eq!(check(&[content, null_delta]), (1, 1, Ok(())));
        let truncated = check(&[content]).2.unwrap_err();
        assert_eq!(
            (truncated.kind, truncated.message.as_str()),
            (ErrorKind::Truncated, "stream ended before [DONE]")
        );
        assert_eq!(check(&[]).2.unwrap_err().kind, ErrorKind::Truncated);
        // Nothing after [DONE] is read.
        assert_eq!(check(&[content, "[DONE]", "not json"]), (1, 1, Ok(())));
    }

    #[test]
    fn malformed_and_error_chunks() {
        let content = r#"{"choices":[{"delta":{"content":"x"}}]}"#;
        for (bad, message) in [
            (
                r#"{"choices":[{"delta":{"content":"x"#,
                "malformed chunk: EOF while parsing a string",
            ),
            ("nope", "malformed chunk: expected ident"),
            (
                r#"{"choices":"x"}"#,
                "malformed chunk: unexpected json structure",
            ),
            (
                r#"{"usage":{"prompt_tokens":"seven"}}"#,
                "malformed chunk: unexpected json structure",
            ),
            // Lone surrogates keep serde_json's own messages.
            (
                r#"{"choices":[{"delta":{"content":"a\ud800"}}]}"#,
                "malformed chunk: unexpected end of hex escape",
            ),
            (
                r#"{"choices":[{"delta":{"content":"\udc00"}}]}"#,
                "malformed chunk: lone leading surrogate in hex escape",
            ),
            (
                r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"\ud800\u0041"}}]}}]}"#,
                "malformed chunk: lone leading surrogate in hex escape",
            ),
        ] {
            let e = check(&[content, bad, "[DONE]"]).2.unwrap_err();
            assert_eq!(
                (e.kind, e.message.as_str()),
                (ErrorKind::Protocol, message),
                "{bad}"
            );
        }
        let e = check(&[
            content,
            r#"{"error":{"message":"CUDA out of\nmemory","type":"server_error","code":500}}"#,
        ])
        .2
        .unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Server, "CUDA out of memory")
        );
        let e = check(&[r#"{"error":"overloaded"}"#]).2.unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Server, "overloaded")
        );
        let (_, result, _) = parse_stream(b"event: error\ndata: {\"message\":\"boom\"}\n\n");
        assert_eq!(result.unwrap_err(), RequestError::server("boom"));
        // Invalid UTF-8 inside a chunk is a protocol error.
        let mut bad = b"data: {\"choices\":[{\"delta\":{\"content\":\"\xFF\xFE\"}}]}\n\n".to_vec();
        bad.extend_from_slice(b"data: [DONE]\n\n");
        let e = parse_stream(&bad).1.unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::Protocol,
                "malformed chunk: invalid unicode code point"
            )
        );
    }

    #[test]
    fn garbage_never_panics() {
        let seeds: [&[u8]; 7] = [
            b"data: {\"choices\":[{\"delta\":{\"content\":\"\\ud800\"}}]}\n\n",
            b"data: {\"choices\":[null,{}],\"usage\":null,\"error\":null}\n\n",
            b"data: [1,2,3]\n\n",
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":{}}}]}\n\n",
            b"event: error\ndata: \xFF\n\n",
            b"data: {\"choices\":[{\"message\":[],\"text\":{}}]}\n\n",
            b"data: {\"choices\":[{\"delta\":null,\"text\":null}]}\n\n",
        ];
        for seed in seeds {
            for cut in 0..seed.len() {
                let _ = parse_stream(&seed[..cut]);
            }
        }
    }

    #[test]
    fn non_streaming_bodies() {
        let mut marks = Marks::default();
        full_response(
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}],"usage":{"prompt_tokens":4,"completion_tokens":2}}"#,
            &mut marks,
        )
        .unwrap();
        assert_eq!(
            (marks.chunks, marks.units, marks.bytes, marks.usage),
            (1, 2, 5, Some((Some(4), Some(2))))
        );
        let mut marks = Marks::default();
        full_response(br#"{"choices":[{"text":"abc"}]}"#, &mut marks).unwrap();
        assert_eq!(
            (marks.chunks, marks.units, marks.bytes, marks.usage),
            (1, 1, 3, None)
        );
        let e =
            full_response(br#"{"error":{"message":"bad"}}"#, &mut Marks::default()).unwrap_err();
        assert_eq!(e, RequestError::server("bad"));
        assert_eq!(
            full_response(b"{}", &mut Marks::default())
                .unwrap_err()
                .kind,
            ErrorKind::Protocol
        );
        assert_eq!(
            full_response(b"<html>", &mut Marks::default())
                .unwrap_err()
                .kind,
            ErrorKind::Protocol
        );
    }

    /// The body of a captured HTTP response (after the blank line ending the head).
    fn sample_body(sample: &[u8]) -> &[u8] {
        let at = sample.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        &sample[at..]
    }

    #[test]
    fn real_wire_samples() {
        for (name, sample, chunks, bytes, usage) in [
            (
                "llama-server chat",
                &include_bytes!(
                    "../../loadkit-sse/testdata/wire-samples/llama-server_chat_stream.txt"
                )[..],
                6,
                "Hello there! I'm here".len(),
                Some((Some(33), Some(6))),
            ),
            (
                "llama-server completions",
                &include_bytes!(
                    "../../loadkit-sse/testdata/wire-samples/llama-server_completions_stream.txt"
                )[..],
                5,
                ", the ancient ruins of".len(),
                Some((Some(4), Some(5))),
            ),
            (
                "llama-cpp-python chat (never sends usage)",
                &include_bytes!(
                    "../../loadkit-sse/testdata/wire-samples/llama-cpp-python_chat_stream.txt"
                )[..],
                6,
                "Hello there, welcome to my".len(),
                None,
            ),
        ] {
            let (marks, result, done) = parse_stream(sample_body(sample));
            assert_eq!(result, Ok(()), "{name}");
            assert!(done, "{name}: [DONE] seen");
            assert_eq!(
                (marks.chunks, marks.bytes, marks.usage, marks.reasoning),
                (chunks, bytes, usage, false),
                "{name}"
            );
        }
        let mut marks = Marks::default();
        let sample = include_bytes!(
            "../../loadkit-sse/testdata/wire-samples/llama-server_chat_nonstream.txt"
        );
        full_response(sample_body(sample), &mut marks).unwrap();
        assert_eq!(
            (marks.chunks, marks.units, marks.bytes, marks.usage),
            (
                1,
                6,
                "I'm glad to meet you".len(),
                Some((Some(33), Some(6)))
            )
        );
    }

    #[test]
    fn error_bodies() {
        let sample =
            include_bytes!("../../loadkit-sse/testdata/wire-samples/llama-server_error_400.txt");
        let at = sample.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(
            error_body_message(&sample[at..]),
            "Expected 'messages' to be an array"
        );
        assert_eq!(error_body_message(br#"{"error":"nope"}"#), "nope");
        assert_eq!(
            error_body_message(br#"{"detail":"Not Found"}"#),
            "Not Found"
        );
        assert_eq!(
            error_body_message(b"Too many concurrent requests"),
            "Too many concurrent requests"
        );
    }
}
