//! A tolerant parser of the Prometheus text exposition format (0.0.4, and the OpenMetrics text
//! that servers emit in its place): good lines are kept, each bad line is counted and skipped.
//!
//! Hand-written rather than the `prometheus-parse` crate because a scrape must survive a server
//! that writes one broken line: that crate gives no account of what it skipped, and loadkit
//! reports every rejected line (`server_metrics.rejected_lines`). The grammar is small: one
//! sample per line, `name{label="value",...} value [timestamp]`, comments starting with `#`.

use std::collections::HashMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written (`vllm:num_requests_running`, `x_bucket`).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value (`NaN` and `±Inf` included).
    pub value: f64,
}

impl Sample {
    /// The label's value, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family's declared type (`# TYPE name counter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A value that only rises (reset to zero on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
    /// Quantiles, `_sum` and `_count`.
    Summary,
    /// `untyped`, `unknown`, `info`, `stateset`, ...
    Other,
}

/// A line the parser skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong (`no value`, `bad value "abc"`, ...).
    pub reason: String,
}

/// One parsed exposition body.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every good sample line, in order.
    pub samples: Vec<Sample>,
    /// Declared types by family name.
    pub types: HashMap<String, MetricType>,
    /// Every line skipped as malformed.
    pub rejected: Vec<Rejected>,
}

impl Exposition {
    /// The declared type of the family `name` belongs to (`x_sum` → `x`'s), if declared.
    pub fn type_of(&self, name: &str) -> Option<MetricType> {
        if let Some(t) = self.types.get(name) {
            return Some(*t);
        }
        ["_sum", "_count", "_bucket", "_total", "_created"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .and_then(|family| self.types.get(family).copied())
    }

    /// The samples named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

/// Parses a whole body; never fails (bad lines land in [`Exposition::rejected`]).
pub fn parse(text: &str) -> Exposition {
    let mut out = Exposition::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        let result = if let Some(comment) = line.strip_prefix('#') {
            type_line(comment, &mut out.types)
        } else {
            sample_line(line).map(|s| out.samples.push(s))
        };
        if let Err(reason) = result {
            out.rejected.push(Rejected {
                line: i + 1,
                reason,
            });
        }
    }
    out
}

/// `# TYPE name kind` records the type; a second TYPE for one family is rejected (the format
/// allows one), the first stays. Other comments (`# HELP`, `# EOF`, free text) are skipped.
fn type_line(comment: &str, types: &mut HashMap<String, MetricType>) -> Result<(), String> {
    let mut words = comment.split_whitespace();
    if words.next() != Some("TYPE") {
        return Ok(());
    }
    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
        return Err("TYPE line without a name and a type".into());
    };
    if !valid_name(name) {
        return Err(format!("TYPE line with a bad metric name {name:?}"));
    }
    let kind = match kind {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" | "gaugehistogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        _ => MetricType::Other,
    };
    if types.contains_key(name) {
        return Err(format!("a second TYPE line for {name}"));
    }
    types.insert(name.to_owned(), kind);
    Ok(())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("a sample without a metric name".into());
    }
    if !valid_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let Some(value) = fields.next() else {
        return Err(format!("{name}: no value"));
    };
    let value = parse_value(value).ok_or_else(|| format!("{name}: bad value {value:?}"))?;
    if let Some(ts) = fields.next() {
        // A timestamp (ms since the epoch; OpenMetrics writes seconds with a fraction).
        if ts.parse::<f64>().is_err() {
            return Err(format!("{name}: bad timestamp {ts:?}"));
        }
    }
    if fields.next().is_some() && !rest.contains('#') {
        return Err(format!("{name}: text after the timestamp"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses `k="v",k2="v2"}` (the text after `{`) into `labels`; the rest of the line after `}`.
fn parse_labels<'a>(mut s: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = s.find('=').ok_or("a label without a value")?;
        let key = s[..eq].trim();
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || key.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("bad label name {key:?}"));
        }
        s = s[eq + 1..].trim_start();
        let Some(body) = s.strip_prefix('"') else {
            return Err(format!("label {key}: value not quoted"));
        };
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label {key}: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => return Err(format!("label {key}: bad escape \\{c}")),
                    None => return Err(format!("label {key}: unterminated value")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = body[end + 1..].trim_start();
        if let Some(rest) = s.strip_prefix(',') {
            s = rest;
        } else if !s.starts_with('}') {
            return Err(format!("label {key}: expected `,` or `}}`"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_labels_types_and_special_values() {
        let text = "# HELP a Requests.\n# TYPE a gauge\na{model_name=\"m\",x=\"q\\\"\\\\\\n\"} 3\n\
                    b_total 1.5e3 1700000000000\nc NaN\nd +Inf\ne{} -Inf\n# EOF\n";
        let e = parse(text);
        assert!(e.rejected.is_empty(), "{:?}", e.rejected);
        assert_eq!(e.samples.len(), 5);
        assert_eq!(e.samples[0].label("model_name"), Some("m"));
        assert_eq!(e.samples[0].label("x"), Some("q\"\\\n"));
        assert_eq!(e.samples[1].value, 1500.0);
        assert!(e.samples[2].value.is_nan());
        assert_eq!(e.samples[3].value, f64::INFINITY);
        assert_eq!(e.samples[4].value, f64::NEG_INFINITY);
        assert_eq!(e.type_of("a"), Some(MetricType::Gauge));
    }

    #[test]
    fn each_bad_line_is_rejected_and_the_rest_kept() {
        let text = "good 1\nnovalue\nbad abc\nopen{a=\"b\" 1\nesc{a=\"\\q\"} 1\n{a=\"b\"} 2\n\
                    # TYPE good gauge\n# TYPE good counter\nlast{b=\"2\",a=\"1\"} 4\n";
        let e = parse(text);
        let lines: Vec<usize> = e.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 8], "{:?}", e.rejected);
        let names: Vec<&str> = e.samples.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["good", "last"]);
        assert_eq!(
            e.type_of("good"),
            Some(MetricType::Gauge),
            "the first TYPE stays"
        );
        assert_eq!(e.samples[1].label("a"), Some("1"));
    }

    #[test]
    fn family_types_cover_their_suffixes() {
        let e = parse("# TYPE q histogram\nq_sum 2\nq_count 4\nq_bucket{le=\"+Inf\"} 4\n");
        assert_eq!(e.type_of("q_sum"), Some(MetricType::Histogram));
        assert_eq!(e.type_of("q_bucket"), Some(MetricType::Histogram));
        assert_eq!(e.named("q_count").next().map(|s| s.value), Some(4.0));
    }
}
