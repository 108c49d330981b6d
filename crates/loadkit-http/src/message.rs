//! Server error messages on one short line: the one extractor of error bodies every protocol
//! client uses (OpenAI, Ollama, FastAPI and plain-text shapes).
//!
//! Messages are grouped in the report by their exact text, so nothing here adds per-request
//! values that the caller did not ask for.

/// The text used when a server reports an error with an empty message.
pub const NO_MESSAGE: &str = "server reported an error without a message";

/// A server's error message on one line ([`loadkit_core::one_line`]); empty (or
/// all-whitespace) text gives [`NO_MESSAGE`].
///
/// ```
/// use loadkit_http::message::{server_message, NO_MESSAGE};
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
/// use loadkit_http::message::error_body_message;
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
