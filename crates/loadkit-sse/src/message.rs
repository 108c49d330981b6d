//! Error-message helpers shared by the protocol clients: server messages squeezed onto one short
//! line, and `serde_json` errors turned into groupable [`RequestError`]s.
//!
//! Messages are grouped in the report by their exact text, so nothing here adds per-request
//! values (positions, quoted data) that the caller did not ask for.

use loadkit_core::RequestError;

use crate::text_len::StringError;

pub use loadkit_http::message::{error_body_message, message_of, server_message, NO_MESSAGE};

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
