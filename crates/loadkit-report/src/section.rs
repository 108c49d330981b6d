//! Protocol sections and settings: the typed [`Value`] trees protocol crates produce, in their
//! JSON form (only this crate knows it).

use loadkit_core::protocol::{Section, Value};
use serde_json::{Map, Number};

use crate::Report;

/// `value` as JSON (a non-finite number becomes `null`).
pub fn json_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::U64(n) => serde_json::Value::from(*n),
        Value::F64(x) => {
            Number::from_f64(*x).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Value::Str(s) => serde_json::Value::String(s.clone()),
        Value::List(items) => items.iter().map(json_value).collect(),
        Value::Map(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        ),
    }
}

impl Report {
    /// Adds each protocol section under its name, beside the standard sections.
    pub fn add_sections(&mut self, sections: &[Section]) {
        for section in sections {
            let fields: Map<String, serde_json::Value> = section
                .fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), json_value(v)))
                .collect();
            self.sections
                .insert(section.name.to_owned(), serde_json::Value::Object(fields));
            if !section.summary.is_empty() {
                self.section_summaries
                    .insert(section.name.to_owned(), section.summary.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_types_and_order() {
        let v = Value::Map(vec![
            ("b".into(), Value::U64(2)),
            (
                "a".into(),
                Value::List(vec![Value::F64(0.5), Value::Null, "x".into()]),
            ),
            ("nan".into(), Value::F64(f64::NAN)),
        ]);
        assert_eq!(
            json_value(&v),
            serde_json::json!({"b": 2, "a": [0.5, null, "x"], "nan": null})
        );
    }
}
