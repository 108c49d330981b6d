//! `BodyTemplate`: a request body with `{{placeholder}}`s filled in per request, JSON-escaped
//! when the template is JSON, and checked to stay valid JSON before any load is sent.

use std::fmt::Write as _;

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placeholder {
    /// `{{prompt}}`: the request's prompt.
    Prompt,
    /// `{{max_tokens}}`: the configured output length.
    MaxTokens,
    /// `{{uuid}}`: a random-looking version-4 UUID, reproducible from the seed and `seq`.
    Uuid,
    /// `{{user}}`: the closed-loop user number (`0` in open loop).
    User,
    /// `{{seq}}`: the request's sequence number.
    Seq,
    /// `{{model}}`: the configured model name.
    Model,
}

impl Placeholder {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "prompt" => Placeholder::Prompt,
            "max_tokens" => Placeholder::MaxTokens,
            "uuid" => Placeholder::Uuid,
            "user" => Placeholder::User,
            "seq" => Placeholder::Seq,
            "model" => Placeholder::Model,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Placeholder),
}

/// The values of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemplateValues<'a> {
    /// `{{prompt}}`.
    pub prompt: &'a str,
    /// `{{max_tokens}}`.
    pub max_tokens: u32,
    /// `{{model}}`.
    pub model: &'a str,
    /// `{{seq}}`, and with `seed` the `{{uuid}}`.
    pub seq: u64,
    /// `{{user}}` (`None` is written as `0`).
    pub user: Option<u32>,
    /// Seed of `{{uuid}}`.
    pub seed: u64,
}

/// A template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `{{name}}` names no known placeholder.
    #[error("unknown placeholder {{{{{0}}}}} in the body template (known: prompt, max_tokens, uuid, user, seq, model)")]
    UnknownPlaceholder(String),
    /// `{{` without a closing `}}`.
    #[error("unclosed {{{{ in the body template")]
    Unclosed,
    /// A JSON template is not valid JSON once its placeholders are filled in.
    #[error("the body template is not valid json after substitution: {0}")]
    InvalidJson(String),
}

/// A request body template such as `{"q": "{{prompt}}", "n": {{max_tokens}}}`.
///
/// A template whose text starts with `{` or `[` is JSON: inserted values are escaped as the
/// inside of a JSON string (so `"{{prompt}}"` stays valid whatever the prompt holds) and the
/// template is checked, when built, to be valid JSON once filled in with awkward sample values.
/// Any other template is inserted into verbatim.
///
/// ```
/// use loadkit_sse::{BodyTemplate, TemplateValues};
///
/// let t = BodyTemplate::new(r#"{"q": "{{prompt}}", "n": {{max_tokens}}, "id": "{{seq}}"}"#).unwrap();
/// let values = TemplateValues { prompt: "say \"hi\"", max_tokens: 8, model: "m", seq: 3, user: None, seed: 1 };
/// assert_eq!(t.render(&values), br#"{"q": "say \"hi\"", "n": 8, "id": "3"}"#);
/// assert!(BodyTemplate::new(r#"{"q": {{prompt}}}"#).is_err()); // unquoted text is not JSON
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyTemplate {
    parts: Vec<Part>,
    json: bool,
    /// Rendered size without values, to size the output buffer.
    literal_len: usize,
}

impl BodyTemplate {
    /// Parses `text`; a JSON template (starting with `{` or `[`) must stay valid JSON when filled.
    pub fn new(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let name = after[..close].trim();
            let value = Placeholder::from_name(name)
                .ok_or_else(|| TemplateError::UnknownPlaceholder(name.to_owned()))?;
            parts.push(Part::Value(value));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let json = text.trim_start().starts_with(['{', '[']);
        let literal_len = parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.len(),
                Part::Value(_) => 0,
            })
            .sum();
        let template = Self {
            parts,
            json,
            literal_len,
        };
        if json {
            template.check(&TemplateValues {
                prompt: "a \"quoted\"\n\\ prompt\t\u{1} é",
                max_tokens: 16,
                model: "model \"x\"",
                seq: 7,
                user: Some(2),
                seed: 1,
            })?;
        }
        Ok(template)
    }

    /// `true` when the template is JSON (values are escaped).
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Renders with `values` and, for a JSON template, checks the result parses.
    pub fn check(&self, values: &TemplateValues<'_>) -> Result<(), TemplateError> {
        if !self.json {
            return Ok(());
        }
        let body = self.render(values);
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map(|_| ())
            .map_err(|e| TemplateError::InvalidJson(crate::message::without_position(&e)))
    }

    /// The body for `values`.
    pub fn render(&self, values: &TemplateValues<'_>) -> Vec<u8> {
        let mut out = String::with_capacity(self.literal_len + values.prompt.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(p) => self.value(&mut out, *p, values),
            }
        }
        out.into_bytes()
    }

    fn value(&self, out: &mut String, p: Placeholder, v: &TemplateValues<'_>) {
        // Numbers and UUIDs need no escaping.
        let _ = match p {
            Placeholder::Prompt => {
                self.text(out, v.prompt);
                Ok(())
            }
            Placeholder::Model => {
                self.text(out, v.model);
                Ok(())
            }
            Placeholder::MaxTokens => write!(out, "{}", v.max_tokens),
            Placeholder::Seq => write!(out, "{}", v.seq),
            Placeholder::User => write!(out, "{}", v.user.unwrap_or(0)),
            Placeholder::Uuid => {
                let hi = splitmix64(v.seed ^ splitmix64(v.seq));
                let lo = splitmix64(hi ^ 0x5851_F42D_4C95_7F2D);
                write!(
                    out,
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    hi >> 32,
                    (hi >> 16) & 0xffff,
                    hi & 0xfff,
                    0x8000 | (lo >> 48 & 0x3fff),
                    lo & 0xffff_ffff_ffff
                )
            }
        };
    }

    fn text(&self, out: &mut String, text: &str) {
        if !self.json {
            out.push_str(text);
            return;
        }
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(prompt: &str) -> TemplateValues<'_> {
        TemplateValues {
            prompt,
            max_tokens: 32,
            model: "m1",
            seq: 41,
            user: Some(3),
            seed: 9,
        }
    }

    #[test]
    fn placeholders_are_filled_and_escaped_in_json() {
        let t = BodyTemplate::new(
            r#"{"prompt": "{{ prompt }}", "max": {{max_tokens}}, "model": "{{model}}", "user": {{user}}, "seq": {{seq}}, "id": "{{uuid}}"}"#,
        )
        .unwrap();
        assert!(t.is_json());
        let body = t.render(&values("line\n\"two\"\t\\"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["prompt"], "line\n\"two\"\t\\");
        assert_eq!((v["max"].as_u64(), v["user"].as_u64()), (Some(32), Some(3)));
        assert_eq!(
            (v["model"].as_str(), v["seq"].as_u64()),
            (Some("m1"), Some(41))
        );
        let id = v["id"].as_str().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_eq!(
            t.render(&values("x")),
            t.render(&values("x")),
            "reproducible"
        );
        let other = TemplateValues {
            seq: 42,
            ..values("x")
        };
        assert_ne!(
            serde_json::from_slice::<serde_json::Value>(&t.render(&other)).unwrap()["id"],
            v["id"]
        );
    }

    #[test]
    fn text_templates_are_verbatim() {
        let t = BodyTemplate::new("q={{prompt}}&n={{max_tokens}}").unwrap();
        assert!(!t.is_json());
        assert_eq!(t.render(&values("a \"b\"")), b"q=a \"b\"&n=32");
    }

    #[test]
    fn bad_templates_are_config_errors() {
        assert_eq!(
            BodyTemplate::new("{{nope}}"),
            Err(TemplateError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(
            BodyTemplate::new("x {{prompt"),
            Err(TemplateError::Unclosed)
        );
        let e = BodyTemplate::new(r#"{"q": {{prompt}}}"#).unwrap_err();
        assert!(matches!(e, TemplateError::InvalidJson(_)), "{e}");
        assert!(e
            .to_string()
            .starts_with("the body template is not valid json"));
        assert!(BodyTemplate::new(r#"{"q": "{{prompt}}",}"#).is_err());
    }
}
