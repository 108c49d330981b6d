//! `TextLen`: the byte length of a JSON text field, measured while deserializing without
//! copying it, shared by the protocol parsers on the per-chunk path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The byte length of a JSON string, measured without copying it. `null`, numbers, booleans and
/// objects measure 0; an array measures its number of elements, so a non-empty array (such as
/// Ollama's `tool_calls`) counts as content.
///
/// Kept to 4 bytes: serde moves the values it builds, and large per-chunk structs turn into
/// `memcpy` calls on the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextLen(u32);

impl TextLen {
    /// A length of `len` bytes (saturating at `u32::MAX`).
    pub fn new(len: usize) -> Self {
        TextLen(u32::try_from(len).unwrap_or(u32::MAX))
    }

    /// The length in bytes.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<TextLen, E> {
                Ok(TextLen::new(s.len()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_none<E: de::Error>(self) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<TextLen, D::Error> {
                TextLen::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextLen, E> {
                Ok(TextLen(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextLen, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(TextLen::new(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextLen, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TextLen(0))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_strings_and_counts_arrays() {
        let len = |json: &str| serde_json::from_str::<TextLen>(json).unwrap().get();
        assert_eq!(len(r#""héllo""#), 6);
        assert_eq!(len(r#""a\nb""#), 3);
        assert_eq!(len("null"), 0);
        assert_eq!(len("12"), 0);
        assert_eq!(len(r#"{"a": "b"}"#), 0);
        assert_eq!(len(r#"[{"id": 1}, {"id": 2}]"#), 2);
    }
}
