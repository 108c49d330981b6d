//! `JsonPointer`: finds one field (RFC 6901 pointer) in a JSON document while deserializing
//! it, without building a tree or allocating, and notices a top-level `"error"` on the way.
//!
//! The target value is measured from its raw text like [`TextLen`](crate::TextLen) measures,
//! so escaped content allocates nothing either. What still allocates: a top-level `"error"`
//! (read into a tree for its message), an ignored value nested two deep (serde_json keeps a
//! stack while skipping), and escaped object keys or strings where the pointer expected an
//! object or array (serde_json unescapes those).
//!
//! [`JsonPointer::find_raw_all`] looks several pointers up in one pass and hands back each
//! value's raw JSON text, borrowed from the input, for clients whose rules read more than one
//! field of a message (the WebSocket chat client: type, text, token counts).

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

    /// The raw JSON text of the value at the pointer in `json` (borrowed, not unescaped;
    /// `None` when nothing is there), after checking that the whole document is valid JSON.
    ///
    /// ```
    /// use loadkit_sse::JsonPointer;
    ///
    /// let p = JsonPointer::parse("/usage/tokens").unwrap();
    /// let found = p.find_raw(br#"{"text":"a\nb","usage":{"tokens":12}}"#).unwrap();
    /// assert_eq!(found.map(|v| v.get()), Some("12"));
    /// assert_eq!(p.find_raw(br#"{"usage":{"tokens":null}}"#).unwrap().map(|v| v.get()), Some("null"));
    /// assert!(p.find_raw(br#"{"usage":null}"#).unwrap().is_none());
    /// assert!(p.find_raw(br#"{"usage":{"tokens":1}"#).is_err()); // malformed
    /// ```
    pub fn find_raw<'a>(&self, json: &'a [u8]) -> Result<Option<&'a RawValue>, serde_json::Error> {
        let mut found = [None];
        Self::find_raw_all(std::slice::from_ref(self), json, &mut found)?;
        Ok(found[0])
    }

    /// Looks every pointer of `pointers` up in `json` in one pass, putting the raw JSON text of
    /// the value at `pointers[i]` (borrowed from `json`) in `found[i]`, or `None` when nothing
    /// is there. The whole document is checked to be valid JSON.
    ///
    /// Allocates nothing for a flat message (an object of scalars) whose keys have no escapes:
    /// values are borrowed, not unescaped. A pointer two or more levels deep parses the value
    /// at each level again from its raw text, and skipping an object or array inside the
    /// document makes serde_json take a few bytes of scratch (once per document). A key
    /// repeated in one object takes its last value, as `serde_json::Value` does. A `null` is
    /// found as the text `null`.
    ///
    /// # Panics
    ///
    /// When `found` is shorter than `pointers`, or there are more than 64 pointers.
    ///
    /// ```
    /// use loadkit_sse::JsonPointer;
    ///
    /// let pointers = ["/type", "/text", "/usage/out", "/missing"].map(|p| JsonPointer::parse(p).unwrap());
    /// let mut found = [None; 4];
    /// let msg = br#"{"type":"token","text":"caf\u00e9","usage":{"out":3}}"#;
    /// JsonPointer::find_raw_all(&pointers, msg, &mut found).unwrap();
    /// let texts: Vec<_> = found.iter().map(|f| f.map(|v| v.get())).collect();
    /// assert_eq!(texts, [Some(r#""token""#), Some(r#""caf\u00e9""#), Some("3"), None]);
    /// ```
    pub fn find_raw_all<'a>(
        pointers: &[JsonPointer],
        json: &'a [u8],
        found: &mut [Option<&'a RawValue>],
    ) -> Result<(), serde_json::Error> {
        assert!(pointers.len() <= 64, "at most 64 pointers at once");
        assert!(found.len() >= pointers.len(), "one slot per pointer");
        found.iter_mut().for_each(|f| *f = None);
        let all = match pointers.len() {
            64 => u64::MAX,
            n => (1u64 << n) - 1,
        };
        let mut de = serde_json::Deserializer::from_slice(json);
        let whole = <&RawValue>::deserialize(&mut de)?;
        de.end()?;
        descend(pointers, 0, all, whole, found)
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

/// Fills `found` for the pointers of `mask`, `depth` tokens of which led to `value`.
fn descend<'a>(
    pointers: &[JsonPointer],
    depth: usize,
    mask: u64,
    value: &'a RawValue,
    found: &mut [Option<&'a RawValue>],
) -> Result<(), serde_json::Error> {
    let mut deeper = 0u64;
    for i in bits(mask) {
        if pointers[i].tokens.len() == depth {
            found[i] = Some(value);
        } else {
            deeper |= 1 << i;
        }
    }
    let text = value.get().as_bytes();
    if deeper == 0 || !matches!(text.first(), Some(b'{' | b'[')) {
        return Ok(());
    }
    // A fixed stack of the children to descend into: at most one per pointer.
    let mut children: [(u64, Option<&'a RawValue>); 64] = [(0, None); 64];
    let mut n = 0;
    let mut de = serde_json::Deserializer::from_slice(text);
    de.deserialize_any(Level {
        pointers,
        depth,
        mask: deeper,
        children: &mut children,
        n: &mut n,
    })?;
    for (sub, child) in &children[..n] {
        if let Some(child) = child {
            descend(pointers, depth + 1, *sub, child, found)?;
        }
    }
    Ok(())
}

/// The indexes of the bits set in `mask`.
fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            i
        })
    })
}

/// One object or array on the way down: records the raw text of each child that the next
/// token of some pointer names, with the set of those pointers.
struct Level<'p, 'c, 'a> {
    pointers: &'p [JsonPointer],
    depth: usize,
    mask: u64,
    children: &'c mut [(u64, Option<&'a RawValue>); 64],
    n: &'c mut usize,
}

impl Level<'_, '_, '_> {
    fn matching(&self, key: &str, index: Option<usize>) -> u64 {
        let mut sub = 0;
        for i in bits(self.mask) {
            let token = &self.pointers[i].tokens[self.depth];
            let hit = match index {
                Some(index) => token.index == Some(index),
                None => token.key == key,
            };
            if hit {
                sub |= 1 << i;
            }
        }
        sub
    }
}

impl<'de> Visitor<'de> for Level<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("json")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(sub) = map.next_key_seed(LevelKey { level: &self })? {
            if sub == 0 {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let child = map.next_value::<&'de RawValue>()?;
            // A repeated key: its last value wins.
            match self.children[..*self.n].iter_mut().find(|(s, _)| *s == sub) {
                Some(slot) => slot.1 = Some(child),
                None => {
                    self.children[*self.n] = (sub, Some(child));
                    *self.n += 1;
                }
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let sub = self.matching("", Some(i));
            if sub == 0 {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
            } else {
                match seq.next_element::<&'de RawValue>()? {
                    Some(child) => {
                        self.children[*self.n] = (sub, Some(child));
                        *self.n += 1;
                    }
                    None => break,
                }
            }
            i += 1;
        }
        Ok(())
    }
}

/// An object key of a [`Level`]: which pointers it continues.
struct LevelKey<'l, 'p, 'c, 'a> {
    level: &'l Level<'p, 'c, 'a>,
}

impl<'de> DeserializeSeed<'de> for LevelKey<'_, '_, '_, '_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for LevelKey<'_, '_, '_, '_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<u64, E> {
        Ok(self.level.matching(s, None))
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

    fn raw_all(pointers: &[&str], json: &str) -> Result<Vec<Option<String>>, String> {
        let pointers: Vec<JsonPointer> = pointers
            .iter()
            .map(|p| JsonPointer::parse(p).unwrap())
            .collect();
        let mut found = vec![None; pointers.len()];
        JsonPointer::find_raw_all(&pointers, json.as_bytes(), &mut found)
            .map_err(|e| crate::message::without_position(&e))?;
        Ok(found
            .into_iter()
            .map(|f| f.map(|v| v.get().to_owned()))
            .collect())
    }

    #[test]
    fn raw_lookups_of_several_pointers_in_one_pass() {
        let some = |s: &str| Some(s.to_owned());
        let msg = r#"{"type":"token","text":"a\"b","n":[10,{"x":true}],"u":{"in":3,"out":null}}"#;
        assert_eq!(
            raw_all(
                &[
                    "/type", "/text", "/n/0", "/n/1/x", "/u/in", "/u/out", "/u", "/nope",
                    "/type/x", "/type"
                ],
                msg
            ),
            Ok(vec![
                some(r#""token""#),
                some(r#""a\"b""#),
                some("10"),
                some("true"),
                some("3"),
                some("null"),
                some(r#"{"in":3,"out":null}"#),
                None,
                None,
                some(r#""token""#),
            ])
        );
        assert_eq!(raw_all(&[""], " [1, 2] "), Ok(vec![some("[1, 2]")]));
        assert_eq!(raw_all(&["/0", "/2"], "[1,2]"), Ok(vec![some("1"), None]));
        // A repeated key takes its last value; an escaped key matches its unescaped text.
        assert_eq!(
            raw_all(
                &["/a", "/b/c"],
                r#"{"a":1,"b":{"c":1},"a":2,"\u0062":{"c":"two"}}"#
            ),
            Ok(vec![some("2"), some(r#""two""#)])
        );
        assert_eq!(raw_all(&[], "{}"), Ok(vec![]));
    }

    #[test]
    fn raw_lookups_check_the_whole_document() {
        for bad in [
            r#"{"type":"token""#,
            r#"{"type":"x"} {}"#,
            r#"{"t":[1,}"#,
            "",
            "{\"a\":tru}",
        ] {
            assert!(raw_all(&["/type"], bad).is_err(), "{bad}");
            assert!(raw_all(&[], bad).is_err(), "{bad}");
        }
        assert_eq!(
            raw_all(&["/type"], r#"{"type":"token","text":"oops"#),
            Err("EOF while parsing a string".to_owned())
        );
        let p = JsonPointer::parse("/a").unwrap();
        assert_eq!(
            p.find_raw(br#"{"a":{"b":[]}}"#).unwrap().map(|v| v.get()),
            Some(r#"{"b":[]}"#)
        );
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
