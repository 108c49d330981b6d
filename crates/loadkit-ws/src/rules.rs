//! Message rules: a JSON pointer with an optional expected value (`/type=token`), and
//! [`MessageRules`], which reads one received message with every rule in one pass and marks
//! what it finds on the probe.

use std::fmt;
use std::str::FromStr;

use loadkit_core::{Probe, RequestError};
use loadkit_sse::message::{
    error_body_message, json_error, message_of, server_message, DataErrors,
};
use loadkit_sse::{JsonPointer, PointerError, TextLen};
use serde_json::value::RawValue;

use crate::{WsChatConfig, WsConfigError};

/// What a [`Rule`]'s pointer must find.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    /// Any value but `null` (a rule written without `=`).
    Exists,
    /// A JSON string with exactly this text (a value that is not JSON, such as `token`).
    Text(String),
    /// A JSON value equal to this one (a value that parses as JSON: `true`, `3`, `"3"` is a
    /// [`Text`](Expect::Text)). Numbers compare by value, so `1` matches `1.0`.
    Json(serde_json::Value),
}

/// A rule on a received message: a JSON pointer and what must be there, written
/// `POINTER=VALUE` or just `POINTER`.
///
/// The value after the first `=` is compared as JSON when it parses as JSON (`/done=true`,
/// `/code=1`, `/type="token"`) and as a string otherwise (`/type=token`); without `=` the rule
/// holds when the pointer finds any non-null value (`/error`).
///
/// ```
/// use loadkit_ws::{Expect, Rule};
///
/// let rule: Rule = "/type=token".parse().unwrap();
/// assert_eq!((rule.pointer().as_str(), rule.expect()), ("/type", &Expect::Text("token".into())));
/// let done: Rule = "/done=true".parse().unwrap();
/// assert_eq!(done.expect(), &Expect::Json(serde_json::json!(true)));
/// assert_eq!("/error".parse::<Rule>().unwrap().expect(), &Expect::Exists);
/// assert_eq!(done.to_string(), "/done=true");
/// assert!("type=token".parse::<Rule>().is_err()); // a pointer starts with '/'
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pointer: JsonPointer,
    expect: Expect,
    text: String,
}

impl Rule {
    /// Parses `POINTER=VALUE` or `POINTER`.
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let text = text.trim();
        let (pointer, value) = match text.split_once('=') {
            Some((pointer, value)) => (pointer.trim(), Some(value.trim())),
            None => (text, None),
        };
        let expect = match value {
            None => Expect::Exists,
            Some(value) => match serde_json::from_str::<serde_json::Value>(value) {
                Ok(serde_json::Value::String(s)) => Expect::Text(s),
                Ok(json) => Expect::Json(json),
                Err(_) => Expect::Text(value.to_owned()),
            },
        };
        Ok(Self {
            pointer: JsonPointer::parse(pointer)?,
            expect,
            text: text.to_owned(),
        })
    }

    /// The pointer.
    pub fn pointer(&self) -> &JsonPointer {
        &self.pointer
    }

    /// What must be found there.
    pub fn expect(&self) -> &Expect {
        &self.expect
    }

    /// Whether the raw JSON value the pointer found (`None`: nothing there) satisfies the
    /// rule. Allocates nothing unless the value is a string with escapes or an object or array.
    pub fn holds(&self, found: Option<&RawValue>) -> bool {
        let Some(raw) = found.map(RawValue::get) else {
            return false;
        };
        match &self.expect {
            Expect::Exists => raw != "null",
            Expect::Text(want) => text_eq(raw, want),
            Expect::Json(want) => json_eq(raw, want),
        }
    }
}

impl FromStr for Rule {
    type Err = PointerError;

    fn from_str(text: &str) -> Result<Self, PointerError> {
        Rule::parse(text)
    }
}

impl fmt::Display for Rule {
    /// The rule as it was written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn text_eq(raw: &str, want: &str) -> bool {
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return false;
    };
    if !inner.contains('\\') {
        return inner == want;
    }
    serde_json::from_str::<String>(raw).is_ok_and(|s| s == want)
}

fn json_eq(raw: &str, want: &serde_json::Value) -> bool {
    use serde_json::Value;
    match want {
        Value::Null => raw == "null",
        Value::Bool(true) => raw == "true",
        Value::Bool(false) => raw == "false",
        Value::Number(want) => match serde_json::from_str::<serde_json::Number>(raw) {
            Ok(got) => match (got.as_i64(), want.as_i64(), got.as_u64(), want.as_u64()) {
                (Some(a), Some(b), _, _) => a == b,
                (_, _, Some(a), Some(b)) => a == b,
                _ => got.as_f64() == want.as_f64(),
            },
            Err(_) => false,
        },
        Value::String(want) => text_eq(raw, want),
        other => serde_json::from_str::<Value>(raw).is_ok_and(|v| &v == other),
    }
}

/// What a message meant for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    Continue,
    /// The end rule matched: the response is complete.
    End,
}

/// Most distinct pointers the rules use (seven settings).
const SLOTS: usize = 7;

/// Every rule of a [`WsChatConfig`], ready to read messages: `token_when` / `token_text`,
/// `end_when`, `error_when` / `error_text`, `tokens_in` / `tokens_out`.
///
/// [`message`](Self::message) looks every pointer up in one pass over the message
/// ([`JsonPointer::find_raw_all`]), without building a `serde_json::Value`; for a flat message
/// whose keys and compared strings have no escapes (the usual `{"type":"token","text":"..."}`)
/// it allocates nothing, escaped token text included. What allocates: the error path, a rule
/// comparing an object or array or an escaped string, and an object or array inside the
/// message (serde_json takes a few bytes of scratch once per message to skip it).
#[derive(Debug, Clone)]
pub struct MessageRules {
    pointers: Vec<JsonPointer>,
    token_when: (Rule, usize),
    token_text: usize,
    end_when: (Rule, usize),
    error_when: Option<(Rule, usize)>,
    error_text: usize,
    tokens_in: Option<usize>,
    tokens_out: Option<usize>,
}

impl MessageRules {
    /// The rules of `config`; fails on a pointer that does not parse, naming the setting.
    pub fn new(config: &WsChatConfig) -> Result<Self, WsConfigError> {
        let mut pointers = Vec::with_capacity(SLOTS);
        let mut slot = |pointer: &JsonPointer| match pointers.iter().position(|p| p == pointer) {
            Some(i) => i,
            None => {
                pointers.push(pointer.clone());
                pointers.len() - 1
            }
        };
        let rule = |setting: &'static str, text: &str| {
            Rule::parse(text).map_err(|error| WsConfigError::Rule { setting, error })
        };
        let pointer = |setting: &'static str, text: &str| {
            JsonPointer::parse(text.trim()).map_err(|error| WsConfigError::Rule { setting, error })
        };
        let token_when = rule("token_when", &config.token_when)?;
        let end_when = rule("end_when", &config.end_when)?;
        let error_when = config
            .error_when
            .as_deref()
            .map(|t| rule("error_when", t))
            .transpose()?;
        let token_text = pointer("token_text", &config.token_text)?;
        let error_text = pointer("error_text", &config.error_text)?;
        let tokens_in = config
            .tokens_in
            .as_deref()
            .map(|t| pointer("tokens_in", t))
            .transpose()?;
        let tokens_out = config
            .tokens_out
            .as_deref()
            .map(|t| pointer("tokens_out", t))
            .transpose()?;
        let token_when_slot = slot(token_when.pointer());
        let end_when_slot = slot(end_when.pointer());
        let error_when = error_when.map(|r| {
            let s = slot(r.pointer());
            (r, s)
        });
        let token_text = slot(&token_text);
        let error_text = slot(&error_text);
        let tokens_in = tokens_in.as_ref().map(&mut slot);
        let tokens_out = tokens_out.as_ref().map(&mut slot);
        Ok(Self {
            pointers,
            token_when: (token_when, token_when_slot),
            token_text,
            end_when: (end_when, end_when_slot),
            error_when,
            error_text,
            tokens_in,
            tokens_out,
        })
    }

    /// The rule that ends a response.
    pub fn end_rule(&self) -> &Rule {
        &self.end_when.0
    }

    /// Reads one message (its JSON text or bytes) and marks it on `probe`:
    ///
    /// 1. `error_when` holds → a `server_error` with the text at `error_text` (a string, or an
    ///    object's `message`; else the message's own `message` / `error` / `detail`, else its
    ///    text), on one line;
    /// 2. `token_when` holds → one content unit of the UTF-8 length of the string at
    ///    `token_text` (escapes counted as what they stand for), when that is not empty; a
    ///    non-string value counts its JSON text's length, a missing or `null` one is no content;
    /// 3. `tokens_in` / `tokens_out` found (in any message) → [`Probe::usage`];
    /// 4. `end_when` holds → [`Step::End`].
    ///
    /// Malformed JSON, a lone surrogate in the token text, or a token count that is not a
    /// non-negative integer is a `protocol` error.
    pub fn message(&self, json: &[u8], probe: &mut Probe) -> Result<Step, RequestError> {
        let mut found: [Option<&RawValue>; SLOTS] = [None; SLOTS];
        JsonPointer::find_raw_all(&self.pointers, json, &mut found).map_err(malformed)?;
        if let Some((rule, slot)) = &self.error_when {
            if rule.holds(found[*slot]) {
                return Err(RequestError::server(error_text(
                    found[self.error_text],
                    json,
                )));
            }
        }
        if self.token_when.0.holds(found[self.token_when.1]) {
            let len = match found[self.token_text] {
                Some(raw) => text_len(raw)?,
                None => 0,
            };
            if len > 0 {
                probe.content(1, len);
            }
        }
        let tokens_in = self.count(self.tokens_in, &found)?;
        let tokens_out = self.count(self.tokens_out, &found)?;
        if tokens_in.is_some() || tokens_out.is_some() {
            probe.usage(tokens_in, tokens_out);
        }
        Ok(if self.end_when.0.holds(found[self.end_when.1]) {
            Step::End
        } else {
            Step::Continue
        })
    }

    fn count(
        &self,
        slot: Option<usize>,
        found: &[Option<&RawValue>; SLOTS],
    ) -> Result<Option<u64>, RequestError> {
        let Some(slot) = slot else { return Ok(None) };
        match found[slot].map(RawValue::get) {
            None | Some("null") => Ok(None),
            Some(raw) => serde_json::from_str::<u64>(raw).map(Some).map_err(|_| {
                RequestError::protocol(format!(
                    "malformed message: the token count at {} is not a non-negative integer",
                    self.pointers[slot].as_str()
                ))
            }),
        }
    }
}

fn malformed(e: serde_json::Error) -> RequestError {
    json_error("malformed message", &e, DataErrors::Fixed)
}

/// The content length of the token text's raw value.
fn text_len(raw: &RawValue) -> Result<usize, RequestError> {
    match raw.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str::<TextLen>(raw.get())
            .map(TextLen::get)
            .map_err(malformed),
        Some(b'n') => Ok(0),
        _ => Ok(raw.get().len()),
    }
}

/// The message of an error message: the text at its error-text pointer (`found`), else what
/// the whole message says, as one line.
pub fn error_text(found: Option<&RawValue>, json: &[u8]) -> String {
    let text = found
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
        .and_then(|value| match value {
            serde_json::Value::Null => None,
            value => Some(message_of(&value).unwrap_or_else(|| value.to_string())),
        });
    match text {
        Some(text) => server_message(&text),
        None => error_body_message(json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(rule: &str, json: &str) -> bool {
        let rule = Rule::parse(rule).unwrap();
        let found = rule.pointer().find_raw(json.as_bytes()).unwrap();
        rule.holds(found)
    }

    #[test]
    fn rules_compare_strings_json_values_and_existence() {
        assert!(holds("/type=token", r#"{"type":"token"}"#));
        assert!(!holds("/type=token", r#"{"type":"tokens"}"#));
        assert!(!holds("/type=token", r#"{"kind":"token"}"#));
        assert!(holds("/type=token", r#"{"type":"tok\u0065n"}"#), "escaped");
        assert!(holds(r#"/type="token""#, r#"{"type":"token"}"#));
        assert!(holds("/type = done ", r#"{"type":"done"}"#), "trimmed");
        assert!(holds("/done=true", r#"{"done":true}"#));
        assert!(
            !holds("/done=true", r#"{"done":"true"}"#),
            "a string is not true"
        );
        assert!(holds(r#"/done="true""#, r#"{"done":"true"}"#));
        assert!(holds("/code=1", r#"{"code":1.0}"#));
        assert!(!holds("/code=1", r#"{"code":2}"#));
        assert!(holds("/x=null", r#"{"x":null}"#));
        assert!(holds(r#"/x={"a":[1]}"#, r#"{"x":{ "a" : [1] }}"#));
        assert!(holds("/error", r#"{"error":{"message":"m"}}"#));
        assert!(!holds("/error", r#"{"error":null}"#));
        assert!(!holds("/error", r#"{"type":"token"}"#));
        assert!(holds("/a/0/b=x", r#"{"a":[{"b":"x"}]}"#));
        assert!(
            holds("/s=", r#"{"s":""}"#),
            "an empty value is the empty string"
        );
        assert!(holds("/k=a=b", r#"{"k":"a=b"}"#), "the first = splits");
        assert_eq!(
            Rule::parse("type").unwrap_err(),
            PointerError("type".into())
        );
    }

    fn rules() -> MessageRules {
        MessageRules::new(&WsChatConfig::new("ws://127.0.0.1:9/ws")).unwrap()
    }

    #[test]
    fn the_default_rules_share_one_pointer_for_the_type() {
        let r = rules();
        let names: Vec<&str> = r.pointers.iter().map(JsonPointer::as_str).collect();
        assert_eq!(
            names,
            ["/type", "/text", "/message", "/tokens_in", "/tokens_out"]
        );
        assert_eq!(r.end_rule().to_string(), "/type=done");
    }

    #[test]
    fn messages_of_the_default_shape() {
        let r = rules();
        let mut probe = Probe::standalone();
        let step = |json: &str, probe: &mut Probe| r.message(json.as_bytes(), probe);
        assert_eq!(
            step(r#"{"type":"token","text":"hé\n"}"#, &mut probe),
            Ok(Step::Continue)
        );
        assert_eq!(
            step(r#"{"type":"token","text":""}"#, &mut probe),
            Ok(Step::Continue)
        );
        assert_eq!(step(r#"{"type":"token"}"#, &mut probe), Ok(Step::Continue));
        assert_eq!(
            step(r#"{"type":"status","text":"queued"}"#, &mut probe),
            Ok(Step::Continue)
        );
        assert_eq!((probe.content_chunks(), probe.content_units()), (1, 1));
        assert_eq!(
            step(
                r#"{"type":"done","tokens_in":5,"tokens_out":1}"#,
                &mut probe
            ),
            Ok(Step::End)
        );
        let e = step(
            r#"{"type":"error","message":"context\n length exceeded"}"#,
            &mut probe,
        )
        .unwrap_err();
        assert_eq!(e, RequestError::server("context length exceeded"));
        let e = step(r#"{"type":"error","detail":"busy"}"#, &mut probe).unwrap_err();
        assert_eq!(
            e.message, "busy",
            "no text at /message: the message's own words"
        );
        let e = step(
            r#"{"type":"error","message":{"message":"deep"}}"#,
            &mut probe,
        )
        .unwrap_err();
        assert_eq!(e.message, "deep");
        let e = step(r#"{"type":"token","text":"oops"#, &mut probe).unwrap_err();
        assert_eq!(
            e,
            RequestError::protocol("malformed message: EOF while parsing a string")
        );
        let e = step(r#"{"type":"token","text":"\udc00"}"#, &mut probe).unwrap_err();
        assert_eq!(e.kind, loadkit_core::metrics::ErrorKind::Protocol);
        let e = step(r#"{"type":"done","tokens_out":-1}"#, &mut probe).unwrap_err();
        assert_eq!(
            e.message,
            "malformed message: the token count at /tokens_out is not a non-negative integer"
        );
    }

    #[test]
    fn custom_rules_and_bad_pointers() {
        let mut c = WsChatConfig::new("ws://127.0.0.1:9/ws");
        c.token_when = "/event=delta".into();
        c.token_text = "/data/content".into();
        c.end_when = "/done=true".into();
        c.error_when = Some("/error".into());
        c.error_text = "/error".into();
        c.tokens_in = None;
        c.tokens_out = Some("/usage/completion_tokens".into());
        let r = MessageRules::new(&c).unwrap();
        let mut probe = Probe::standalone();
        let msg = br#"{"event":"delta","data":{"content":12345},"done":true,"usage":{"completion_tokens":9}}"#;
        assert_eq!(
            r.message(msg, &mut probe),
            Ok(Step::End),
            "content then end"
        );
        assert_eq!(probe.content_chunks(), 1, "a number counts its text");
        let e = r
            .message(br#"{"error":"overloaded"}"#, &mut probe)
            .unwrap_err();
        assert_eq!(e.message, "overloaded");
        c.end_when = "done".into();
        assert_eq!(
            MessageRules::new(&c).unwrap_err().to_string(),
            "end_when: invalid json pointer \"done\": it must be empty or start with '/' (e.g. /choices/0/delta/content)"
        );
    }
}
