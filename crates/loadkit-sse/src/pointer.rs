//! `JsonPointer`: finds one field (RFC 6901 pointer) in a JSON document while deserializing
//! it, without building a tree or allocating, and notices a top-level `"error"` on the way.
//!
//! The target value is measured from its raw text like [`TextLen`](crate::TextLen) measures,
//! so escaped content allocates nothing either. What still allocates: a top-level `"error"`
//! (read into a tree for its message), an ignored value nested two deep (serde_json keeps a
//! stack while skipping), and escaped object keys or strings where the pointer expected an
//! object or array (serde_json unescapes those).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as _;
use serde_json::value::RawValue;

use crate::text_len::unescaped_len;

/// One step of a pointer: an object key, which is also an array index when it is a number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    key: String,
    index: Option<usize>,
}

/// A JSON pointer such as `/choices/0/delta/content` (`~1` is `/`, `~0` is `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPointer {
    text: String,
    tokens: Vec<Token>,
}

/// A JSON pointer does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid json pointer {0:?}: it must be empty or start with '/' (e.g. /choices/0/delta/content)")]
pub struct PointerError(pub String);

impl JsonPointer {
    /// Parses `text` (empty means the whole document).
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError(text.to_owned()));
        };
        let tokens = rest
            .split('/')
            .map(|t| {
                let key = t.replace("~1", "/").replace("~0", "~");
                let index = (!key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_digit())
                    && (key == "0" || !key.starts_with('0')))
                .then(|| key.parse().ok())
                .flatten();
                Token { key, index }
            })
            .collect();
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pointer as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Looks the pointer up in `json`.
    pub(crate) fn find(&self, json: &[u8]) -> Result<Found, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_slice(json);
        let found = Seek {
            path: &self.tokens,
            top: true,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing at the pointer (or a `null`).
    Nothing,
    /// A string of this many bytes.
    Text(usize),
    /// A number, boolean, object or array.
    Other,
    /// The document has a non-null top-level `"error"`: its message, if any.
    Error(Option<String>),
}

struct Seek<'p> {
    path: &'p [Token],
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Found;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        if self.path.is_empty() && !self.top {
            // The target: measured from its raw text, so an escaped string is not unescaped
            // into serde_json's scratch buffer (which allocates).
            let raw = <&RawValue>::deserialize(d)?.get().as_bytes();
            return match raw.first() {
                Some(b'"') => unescaped_len(&raw[1..raw.len() - 1])
                    .map(Found::Text)
                    .map_err(de::Error::custom),
                Some(b'n') => Ok(Found::Nothing),
                _ => Ok(Found::Other),
            };
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Found;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("json")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Found, E> {
        Ok(if self.path.is_empty() {
            Found::Text(s.len())
        } else {
            Found::Nothing
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::Nothing)
    }

    fn visit_none<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::Nothing)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Found, E> {
        Ok(self.leaf())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Ok(self.leaf())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Ok(self.leaf())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Ok(self.leaf())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        let want = self.path.first().and_then(|t| t.index);
        let mut found = if self.path.is_empty() {
            Found::Other
        } else {
            Found::Nothing
        };
        let mut i = 0;
        loop {
            if Some(i) == want {
                let seek = Seek {
                    path: &self.path[1..],
                    top: false,
                };
                match seq.next_element_seed(seek)? {
                    Some(f) => found = f,
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        let mut found = if self.path.is_empty() {
            Found::Other
        } else {
            Found::Nothing
        };
        let want = self.path.first().map(|t| t.key.as_str());
        let mut error = None;
        while let Some(key) = map.next_key_seed(KeySeed {
            want,
            top: self.top,
        })? {
            match key {
                Key::Target => {
                    found = map.next_value_seed(Seek {
                        path: &self.path[1..],
                        top: false,
                    })?;
                }
                Key::Error => {
                    let value: serde_json::Value = map.next_value()?;
                    if !value.is_null() {
                        error = Some(crate::message::message_of(&value));
                    }
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match error {
            Some(message) => Found::Error(message),
            None => found,
        })
    }
}

impl Seek<'_> {
    fn leaf(&self) -> Found {
        if self.path.is_empty() {
            Found::Other
        } else {
            Found::Nothing
        }
    }
}

enum Key {
    Target,
    Error,
    Other,
}

struct KeySeed<'p> {
    want: Option<&'p str>,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(if Some(s) == self.want {
            Key::Target
        } else if self.top && s == "error" {
            Key::Error
        } else {
            Key::Other
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(pointer: &str, json: &str) -> Found {
        JsonPointer::parse(pointer)
            .unwrap()
            .find(json.as_bytes())
            .unwrap()
    }

    #[test]
    fn lookups() {
        let chunk =
            r#"{"id":"x","choices":[{"delta":{"role":"assistant"}},{"delta":{"content":"no"}}]}"#;
        assert_eq!(find("/choices/0/delta/content", chunk), Found::Nothing);
        assert_eq!(find("/choices/1/delta/content", chunk), Found::Text(2));
        assert_eq!(find("/choices/1/delta", chunk), Found::Other);
        assert_eq!(find("", chunk), Found::Other);
        assert_eq!(
            find("/token", r#"{"token":"h\u00e9\"","n":1}"#),
            Found::Text(4)
        );
        assert_eq!(find("/token", r#"{"token":null}"#), Found::Nothing);
        assert_eq!(find("/a~1b/c~0", r#"{"a/b":{"c~":7}}"#), Found::Other);
        assert_eq!(find("/x", "[1,2]"), Found::Nothing);
        assert_eq!(find("/x", r#""text""#), Found::Nothing);
        assert_eq!(find("", r#""text""#), Found::Text(4));
        assert_eq!(
            find("/t", r#"{"t":"\ud83d\ude00\n\u4f60"}"#),
            Found::Text(4 + 1 + 3)
        );
        assert_eq!(find("/t", r#"{"t":[1,{"a":2}]}"#), Found::Other);
        let e = JsonPointer::parse("/t")
            .unwrap()
            .find(br#"{"t":"\udc00"}"#)
            .unwrap_err();
        assert_eq!(
            crate::message::without_position(&e),
            "lone leading surrogate in hex escape"
        );
    }

    #[test]
    fn top_level_errors_are_noticed() {
        assert_eq!(
            find(
                "/token",
                r#"{"error":{"message":"boom","code":1},"token":"a"}"#
            ),
            Found::Error(Some("boom".into()))
        );
        assert_eq!(
            find("", r#"{"error":"bad"}"#),
            Found::Error(Some("bad".into()))
        );
        assert_eq!(
            find("/token", r#"{"error":null,"token":"a"}"#),
            Found::Text(1)
        );
        assert_eq!(find("/a", r#"{"a":{"error":"inner"}}"#), Found::Other);
    }

    #[test]
    fn malformed_json_and_bad_pointers() {
        let p = JsonPointer::parse("/a").unwrap();
        assert!(p.find(br#"{"a":"#).is_err());
        assert!(p.find(br#"{"a":1} x"#).is_err());
        assert!(JsonPointer::parse("a/b").is_err());
        assert_eq!(JsonPointer::parse("/01").unwrap().tokens[0].index, None);
    }
}
