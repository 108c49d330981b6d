//! Extra request headers as the user gives them (`--header 'K: V'`), checked once for every
//! HTTP-based client: one error shape, naming the header and what is wrong.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header name or value is not valid HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid header {name:?}: {reason}")]
pub struct HeaderError {
    /// The header name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Inserts `headers` (trimmed) into `map`, each replacing a header of the same name.
///
/// # Errors
///
/// A name or value that is not valid HTTP.
///
/// ```
/// let mut map = http::HeaderMap::new();
/// loadkit_http::insert_headers(&[("X-Team".into(), " search ".into())], &mut map).unwrap();
/// assert_eq!(map["x-team"], "search");
/// let e = loadkit_http::insert_headers(&[("bad name".into(), "v".into())], &mut map).unwrap_err();
/// assert_eq!(e.to_string(), "invalid header \"bad name\": not a valid header name");
/// ```
pub fn insert_headers(
    headers: &[(String, String)],
    map: &mut HeaderMap,
) -> Result<(), HeaderError> {
    for (name, value) in headers {
        let (name, value) = parse_header(name, value)?;
        map.insert(name, value);
    }
    Ok(())
}

/// One header as the user gave it, trimmed and checked.
///
/// # Errors
///
/// A name or value that is not valid HTTP.
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let invalid = |reason| HeaderError {
        name: name.to_owned(),
        reason,
    };
    let header_name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| invalid("not a valid header name"))?;
    let header_value =
        HeaderValue::from_str(value.trim()).map_err(|_| invalid("not a valid header value"))?;
    Ok((header_name, header_value))
}
