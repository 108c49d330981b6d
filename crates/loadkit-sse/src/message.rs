//! Error-message helpers shared by the protocol clients: server messages squeezed onto one short
//! line, and `serde_json` errors turned into groupable [`RequestError`]s.
//!
//! Messages are grouped in the report by their exact text, so nothing here adds per-request
//! values (positions, quoted data) that the caller did not ask for.

use loadkit_core::RequestError;

use crate::text_len::StringError;

/// The text used when a server reports an error with an empty message.
pub const NO_MESSAGE: &str = "server reported an error without a message";

/// A server's error message on one line ([`loadkit_core::one_line`]); empty (or
/// all-whitespace) text gives [`NO_MESSAGE`].
///
/// ```
/// use loadkit_sse::message::{server_message, NO_MESSAGE};
///
/// assert_eq!(server_message("model  \"x\"\n not found"), "model \"x\" not found");
/// assert_eq!(server_message(" \n"), NO_MESSAGE);
/// ```
pub fn server_message(text: &str) -> String {
    let line = loadkit_core::one_line(text);
    if line.is_empty() {
        NO_MESSAGE.to_owned()
    } else {
        line
    }
}

/// The message of an error *value*, as servers put it in a body or in a stream: a string, or
/// an object's `message` string. Anything else has none.
pub fn message_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned),
        _ => None,
    }
}

/// The message of an error body, the one extractor every protocol client uses, on one line
/// ([`server_message`]). It understands what AI servers send: OpenAI and vLLM's
/// `{"error": {"message": ...}}`, Ollama's `{"error": "..."}`, a top-level `message`, and
/// FastAPI's `{"detail": ...}` (a string, or its validation list as JSON text); an `error`
/// object without a message is shown as JSON, and anything else as the body's text.
///
/// ```
/// use loadkit_sse::message::error_body_message;
///
/// assert_eq!(error_body_message(br#"{"error":{"message":"bad \"model\"","code":400}}"#), "bad \"model\"");
/// assert_eq!(error_body_message(br#"{"error":"model not found"}"#), "model not found");
/// assert_eq!(error_body_message(br#"{"detail":"Not Found"}"#), "Not Found");
/// assert_eq!(error_body_message(b"Too many\n requests"), "Too many requests");
/// ```
pub fn error_body_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) if v.is_object() => {
            let error = v.get("error").filter(|e| !e.is_null());
            let detail = v.get("detail").filter(|d| !d.is_null());
            error
                .map(|e| message_of(e).unwrap_or_else(|| e.to_string()))
                .or_else(|| v.get("message").and_then(message_of))
                .or_else(|| detail.map(|d| message_of(d).unwrap_or_else(|| d.to_string())))
        }
        _ => None,
    };
    server_message(&text.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()))
}

/// What [`json_error`] says about a type error: JSON that parses but does not have the
/// expected structure (`serde_json`'s `Category::Data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataErrors {
    /// `serde_json`'s own message (without its position), which may quote the data, such as
    /// `invalid type: string "x", expected u64`.
    Quote,
    /// The fixed text `unexpected json structure`, so such errors group whatever the data.
    Fixed,
}

/// `serde_json`'s message without its ` at line L column C` position.
pub fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A protocol error `"{what}: {message}"` for a response that is not the JSON expected, where
/// the message is `serde_json`'s without its position, and for a type error as `data` says.
///
/// A string that [`TextLen`](crate::TextLen) rejects (a lone surrogate such as `"\ud800"`)
/// keeps its message, as serde_json's own syntax errors do, although serde_json can only
/// classify an error raised while deserializing a value as a data error.
///
/// ```
/// use loadkit_sse::message::{json_error, DataErrors};
///
/// let e = serde_json::from_str::<u64>("\"x\"").unwrap_err();
/// let quoted = json_error("malformed line", &e, DataErrors::Quote);
/// assert_eq!(quoted.message, "malformed line: invalid type: string \"x\", expected u64");
/// let fixed = json_error("malformed chunk", &e, DataErrors::Fixed);
/// assert_eq!(fixed.message, "malformed chunk: unexpected json structure");
/// ```
pub fn json_error(what: &str, e: &serde_json::Error, data: DataErrors) -> RequestError {
    let message = without_position(e);
    let message = match (e.classify(), data) {
        (serde_json::error::Category::Data, DataErrors::Fixed)
            if !StringError::is_one(&message) =>
        {
            "unexpected json structure".to_owned()
        }
        _ => message,
    };
    RequestError::protocol(format!("{what}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_squeeze_and_cut() {
        assert_eq!(server_message("a\n\t b  c"), "a b c");
        assert_eq!(server_message(""), NO_MESSAGE);
        let cut = server_message(&"word ".repeat(100));
        assert_eq!(cut.len(), loadkit_core::ONE_LINE_MAX + 3, "{cut}");
    }

    #[test]
    fn error_bodies_of_every_server_kind() {
        let m = |b: &[u8]| error_body_message(b);
        assert_eq!(m(br#"{"error":{"message":"m","type":"x"}}"#), "m");
        assert_eq!(
            m(br#"{"error":"model \"x\" not found"}"#),
            "model \"x\" not found"
        );
        assert_eq!(m(br#"{"error":{"code":7}}"#), r#"{"code":7}"#);
        assert_eq!(m(br#"{"message":"overloaded"}"#), "overloaded");
        assert_eq!(m(br#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            m(br#"{"detail":[{"loc":["body"],"msg":"field required"}]}"#),
            r#"[{"loc":["body"],"msg":"field required"}]"#
        );
        assert_eq!(m(br#"{"error":null,"detail":"d"}"#), "d");
        assert_eq!(m(br#"["not","an","object"]"#), r#"["not","an","object"]"#);
        assert_eq!(m(b"plain\n text"), "plain text");
        assert_eq!(m(b"   "), NO_MESSAGE);
        assert_eq!(message_of(&serde_json::json!(3)), None);
    }

    #[test]
    fn json_errors_have_no_position() {
        let e = serde_json::from_slice::<serde_json::Value>(b"{\"a\":").unwrap_err();
        for data in [DataErrors::Quote, DataErrors::Fixed] {
            let error = json_error("malformed response", &e, data);
            assert_eq!(
                error.message,
                "malformed response: EOF while parsing a value"
            );
        }
        assert_eq!(without_position(&e), "EOF while parsing a value");
    }
}
