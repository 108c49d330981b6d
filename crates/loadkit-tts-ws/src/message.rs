//! The messages of a TTS session: the batch request rendered from its template, and each
//! received message read by rules and pointers in one pass (no tree, no allocation for a flat
//! message).

use loadkit_core::RequestError;
use loadkit_sse::message::{json_error, DataErrors};
use loadkit_sse::JsonPointer;
use loadkit_ws::Rule;
use serde_json::value::RawValue;

use crate::config::TtsConfigError;

/// The default batch message.
pub const DEFAULT_MESSAGE: &str = r#"{"type":"synthesize","document_id":"{{document_id}}","model":"{{model}}","voice":"{{voice}}","blocks":{{blocks}}}"#;

/// The default block, inside the batch's `{{blocks}}` array.
pub const DEFAULT_BLOCK: &str = r#"{"index":{{index}},"text":"{{text}}"}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    DocumentId,
    Model,
    Voice,
    /// The blocks as a JSON array, inserted as they are.
    Blocks,
    Seq,
    User,
    Index,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Slot),
}

/// A message template with `{{name}}` placeholders; string values are JSON-escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// The values of one batch (or, for the block template, one block).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Values<'a> {
    pub(crate) document_id: &'a str,
    pub(crate) model: &'a str,
    pub(crate) voice: &'a str,
    pub(crate) blocks: &'a str,
    pub(crate) seq: u64,
    pub(crate) user: u32,
    pub(crate) index: u64,
    pub(crate) text: &'a str,
}

impl Template {
    /// Parses `text`, allowing the placeholders `allowed`; checks that it renders valid JSON.
    pub(crate) fn new(
        setting: &'static str,
        text: &str,
        block: bool,
    ) -> Result<Self, TtsConfigError> {
        let invalid = |reason: String| TtsConfigError::Template { setting, reason };
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| invalid("unclosed {{".to_owned()))?;
            let name = after[..close].trim();
            let slot = match (name, block) {
                ("document_id", false) => Slot::DocumentId,
                ("model", false) => Slot::Model,
                ("voice", false) => Slot::Voice,
                ("blocks", false) => Slot::Blocks,
                ("seq", false) => Slot::Seq,
                ("user", false) => Slot::User,
                ("index", true) => Slot::Index,
                ("text", true) => Slot::Text,
                _ => {
                    let known = if block {
                        "index, text"
                    } else {
                        "document_id, model, voice, blocks, seq, user"
                    };
                    return Err(invalid(format!(
                        "unknown placeholder {{{{{name}}}}} (known: {known})"
                    )));
                }
            };
            parts.push(Part::Value(slot));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let template = Self { parts };
        let sample = Values {
            document_id: "0f8fad5b-d9cb-469f-a165-70867728950e",
            model: "m\"o",
            voice: "v\\o",
            blocks: r#"[{"index":0,"text":"x"}]"#,
            seq: 1,
            user: 2,
            index: 3,
            text: "a \"quoted\"\nline",
        };
        let mut out = String::new();
        template.render(&sample, &mut out);
        serde_json::from_str::<serde::de::IgnoredAny>(&out)
            .map_err(|e| invalid(format!("not valid json once filled in: {e}")))?;
        Ok(template)
    }

    /// Appends the template filled with `values` to `out`.
    pub(crate) fn render(&self, values: &Values<'_>, out: &mut String) {
        use std::fmt::Write as _;
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value(slot) => match slot {
                    Slot::DocumentId => escape(values.document_id, out),
                    Slot::Model => escape(values.model, out),
                    Slot::Voice => escape(values.voice, out),
                    Slot::Text => escape(values.text, out),
                    Slot::Blocks => out.push_str(values.blocks),
                    Slot::Seq => {
                        let _ = write!(out, "{}", values.seq);
                    }
                    Slot::User => {
                        let _ = write!(out, "{}", values.user);
                    }
                    Slot::Index => {
                        let _ = write!(out, "{}", values.index);
                    }
                },
            }
        }
    }
}

/// `text` as the inside of a JSON string.
fn escape(text: &str, out: &mut String) {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    out.push_str(&quoted[1..quoted.len().saturating_sub(1)]);
}

/// What a received JSON message is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming<'a> {
    /// Another document's message: ignored, counted.
    Foreign {
        /// It is a `done` (its binary audio follows and is skipped too).
        done: bool,
    },
    /// The server's error: every pending block fails.
    Error(String),
    /// A block's status before it is done (`queued`, `processing`).
    Progress,
    /// A block is done; its audio is in `audio` (base64) or the next binary frame.
    Done {
        /// The block's index.
        index: u64,
        /// The raw JSON of the base64 audio (quotes included), when the message carries it.
        audio: Option<&'a str>,
        /// The audio duration the server states, in ms, when it does.
        stated_ms: Option<f64>,
    },
    /// Anything else (a greeting, a heartbeat): ignored.
    Other,
}

/// How received messages are read.
#[derive(Debug)]
pub(crate) struct Reader {
    pointers: Vec<JsonPointer>,
    status_when: Rule,
    done_when: Rule,
    error_when: Rule,
    audio: bool,
}

const STATUS: usize = 0;
const DONE: usize = 1;
const ERROR: usize = 2;
const ERROR_TEXT: usize = 3;
const DOCUMENT: usize = 4;
const INDEX: usize = 5;
const STATED: usize = 6;
const AUDIO: usize = 7;

/// The rules and pointers a [`Reader`] is made of, as written.
#[derive(Debug, Clone)]
pub(crate) struct ReaderSpec<'a> {
    pub(crate) status_when: &'a str,
    pub(crate) done_when: &'a str,
    pub(crate) error_when: &'a str,
    pub(crate) error_text: &'a str,
    pub(crate) document_at: &'a str,
    pub(crate) index_at: &'a str,
    /// The base64 audio's pointer, in base64 mode.
    pub(crate) audio_at: Option<&'a str>,
    /// Where a done message states its audio's duration in ms.
    pub(crate) duration_at: &'a str,
}

impl Reader {
    pub(crate) fn new(spec: &ReaderSpec<'_>) -> Result<Self, TtsConfigError> {
        let rule = |setting: &'static str, text: &str| {
            Rule::parse(text).map_err(|e| TtsConfigError::Rule {
                setting,
                reason: e.to_string(),
            })
        };
        let pointer = |setting: &'static str, text: &str| {
            JsonPointer::parse(text).map_err(|e| TtsConfigError::Rule {
                setting,
                reason: e.to_string(),
            })
        };
        let status_when = rule("status_when", spec.status_when)?;
        let done_when = rule("done_when", spec.done_when)?;
        let error_when = rule("error_when", spec.error_when)?;
        let mut pointers = vec![
            status_when.pointer().clone(),
            done_when.pointer().clone(),
            error_when.pointer().clone(),
            pointer("error_text", spec.error_text)?,
            pointer("document_at", spec.document_at)?,
            pointer("index_at", spec.index_at)?,
            pointer("duration_at", spec.duration_at)?,
        ];
        if let Some(at) = spec.audio_at {
            pointers.push(pointer("audio_at", at)?);
        }
        Ok(Self {
            audio: spec.audio_at.is_some(),
            pointers,
            status_when,
            done_when,
            error_when,
        })
    }

    /// Reads one message; `document` is this session's id as a JSON string (quotes included).
    ///
    /// A message with no document id is taken as this session's (servers that do not echo
    /// it). Malformed JSON, or a done message whose index is not a non-negative integer, is a
    /// `protocol` error.
    pub(crate) fn read<'a>(
        &self,
        json: &'a [u8],
        document: &str,
    ) -> Result<Incoming<'a>, RequestError> {
        let mut found: [Option<&'a RawValue>; 8] = [None; 8];
        JsonPointer::find_raw_all(&self.pointers, json, &mut found)
            .map_err(|e| json_error("malformed message", &e, DataErrors::Fixed))?;
        let status = self.status_when.holds(found[STATUS]);
        let done = status && self.done_when.holds(found[DONE]);
        let error = self.error_when.holds(found[ERROR]);
        let ours = match found[DOCUMENT].map(RawValue::get) {
            None | Some("null") => true,
            Some(raw) => raw == document,
        };
        if !ours && (status || error) {
            return Ok(Incoming::Foreign { done });
        }
        if error {
            return Ok(Incoming::Error(loadkit_ws::error_text(
                found[ERROR_TEXT],
                json,
            )));
        }
        if !status {
            return Ok(Incoming::Other);
        }
        if !done {
            return Ok(Incoming::Progress);
        }
        let index = found[INDEX]
            .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok())
            .ok_or_else(|| {
                RequestError::protocol(format!(
                    "malformed message: a done status without a block index at {}",
                    self.pointers[INDEX].as_str()
                ))
            })?;
        let audio = if self.audio {
            found[AUDIO].map(RawValue::get)
        } else {
            None
        };
        if self.audio && audio.is_none() {
            return Err(RequestError::protocol(format!(
                "malformed message: a done status without audio at {}",
                self.pointers[AUDIO].as_str()
            )));
        }
        let stated_ms = found[STATED].and_then(|raw| serde_json::from_str::<f64>(raw.get()).ok());
        Ok(Incoming::Done {
            index,
            audio,
            stated_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(base64: bool) -> Reader {
        Reader::new(&ReaderSpec {
            status_when: "/type=status",
            done_when: "/status=done",
            error_when: "/type=error",
            error_text: "/message",
            document_at: "/document_id",
            index_at: "/index",
            audio_at: base64.then_some("/audio"),
            duration_at: "/audio_duration_ms",
        })
        .unwrap()
    }

    #[test]
    fn the_default_batch_renders_as_the_document_reader_sends_it() {
        let batch = Template::new("message", DEFAULT_MESSAGE, false).unwrap();
        let block = Template::new("block", DEFAULT_BLOCK, true).unwrap();
        let mut blocks = String::from("[");
        block.render(
            &Values {
                index: 7,
                text: "Say \"hi\".",
                ..Values::default()
            },
            &mut blocks,
        );
        blocks.push(']');
        let mut out = String::new();
        batch.render(
            &Values {
                document_id: "d-1",
                model: "kokoro",
                voice: "af_heart",
                blocks: &blocks,
                ..Values::default()
            },
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"type":"synthesize","document_id":"d-1","model":"kokoro","voice":"af_heart","blocks":[{"index":7,"text":"Say \"hi\"."}]}"#
        );
        assert!(Template::new("message", r#"{"t":"{{text}}"}"#, false).is_err());
        assert!(Template::new("block", r#"{"i":{{index}"#, true).is_err());
        assert!(Template::new("message", r#"{"b":"{{blocks}}"}"#, false).is_err());
    }

    #[test]
    fn messages_are_told_apart_by_rules_and_document() {
        let r = reader(false);
        let doc = r#""d-1""#;
        let read = |m: &'static str| r.read(m.as_bytes(), doc);
        assert_eq!(
            read(r#"{"type":"status","document_id":"d-1","index":3,"status":"queued"}"#),
            Ok(Incoming::Progress)
        );
        assert_eq!(
            read(
                r#"{"type":"status","document_id":"d-1","index":3,"status":"done","audio_duration_ms":1200}"#
            ),
            Ok(Incoming::Done {
                index: 3,
                audio: None,
                stated_ms: Some(1200.0)
            })
        );
        assert_eq!(
            read(r#"{"type":"status","document_id":"other","index":0,"status":"done"}"#),
            Ok(Incoming::Foreign { done: true })
        );
        assert_eq!(
            read(r#"{"type":"error","document_id":"d-1","message":"Unknown   model 'x'"}"#),
            Ok(Incoming::Error("Unknown model 'x'".into()))
        );
        assert_eq!(read(r#"{"type":"hello"}"#), Ok(Incoming::Other));
        assert!(read(r#"{"type":"status","status":"done"}"#).is_err());
        assert!(read(r#"{"type":"status""#).is_err());
        let b = reader(true);
        assert!(b
            .read(br#"{"type":"status","index":1,"status":"done"}"#, doc)
            .is_err());
        let with = b
            .read(
                br#"{"type":"status","index":1,"status":"done","audio":"AAAA"}"#,
                doc,
            )
            .unwrap();
        assert_eq!(
            with,
            Incoming::Done {
                index: 1,
                audio: Some(r#""AAAA""#),
                stated_ms: None
            }
        );
    }
}
