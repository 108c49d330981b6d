//! The `server_metrics` section: what the server's own `/metrics` said during the run (scraped
//! by loadkit-scrape, laid on the timeline by the CLI), and its lines for the terminal summary
//! and the Markdown report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The `server_metrics` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// The server kind read from its metric names (`vllm`, `llama-server`, `tgi`, `sglang`,
    /// `other`).
    pub kind: String,
    /// The URL scraped.
    pub url: String,
    /// Seconds between scrapes.
    pub interval_s: f64,
    /// Scrapes answered during the run (good or failed).
    pub scrapes: u64,
    /// Scrapes that failed, and the first failure's message.
    pub failures: ScrapeFailures,
    /// Lines of the server's text rejected as malformed, over all scrapes.
    pub rejected_lines: u64,
    /// The first rejected line's number and reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_rejected: Option<String>,
    /// Series of the kind's table (or named by the user) that no scrape had.
    pub missing: Vec<String>,
    /// Every series kept, by key (its metric name, or what the user wrote).
    pub series: BTreeMap<String, ServerSeries>,
}

/// The `server_metrics.failures` field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScrapeFailures {
    /// Failed scrapes.
    pub count: u64,
    /// The first failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// One series' summary over the run's scrapes (warm-up included, as the timeline is).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSeries {
    /// What it means across kinds: `running`, `waiting`, `kv_cache`, `prompt_tokens`,
    /// `generation_tokens`, `queue_time`, or `user`.
    pub role: String,
    /// The metric name found on the server.
    pub source: String,
    /// How its value was read: `gauge` (sum over label sets), `mean` (mean over label sets),
    /// `rate` (a counter's rise per second), `window_mean` (a histogram's mean over each
    /// interval).
    pub read: String,
    /// The unit (`requests`, `ratio`, `tokens/s`, `ms`, ...).
    pub unit: String,
    /// Scrapes within the run that gave it a value (a rate needs the scrape before, a
    /// histogram's mean an interval in which something was observed).
    pub samples: u64,
    /// The smallest value (none without samples).
    #[serde(default)]
    pub min: Option<f64>,
    /// The mean of the values.
    #[serde(default)]
    pub mean: Option<f64>,
    /// The largest value.
    #[serde(default)]
    pub max: Option<f64>,
}

impl ServerMetrics {
    /// The series with `role`, if one was kept and had values.
    pub fn by_role(&self, role: &str) -> Option<(&str, &ServerSeries)> {
        self.series
            .iter()
            .find(|(_, s)| s.role == role)
            .map(|(k, s)| (k.as_str(), s))
    }

    /// The section's lines for the terminal summary: where, how often, what failed, then one
    /// line per series with min, mean and max.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "{} at {} every {} s: {} scrapes, {} failed{}{}",
            self.kind,
            self.url,
            self.interval_s,
            self.scrapes,
            self.failures.count,
            self.failures
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            if self.rejected_lines > 0 {
                format!(", {} malformed lines skipped", self.rejected_lines)
            } else {
                String::new()
            }
        )];
        for (key, s) in &self.series {
            lines.push(match (s.min, s.mean, s.max) {
                (Some(min), Some(mean), Some(max)) => format!(
                    "{key:<36} min {} · mean {} · max {} {}",
                    short(min),
                    short(mean),
                    short(max),
                    s.unit
                ),
                _ => format!("{key:<36} no values during the run"),
            });
        }
        if !self.missing.is_empty() {
            lines.push(format!("not exposed: {}", self.missing.join(", ")));
        }
        lines
    }
}

/// A figure in about four significant places; empty for none.
pub(crate) fn short_opt(x: Option<f64>) -> String {
    x.map(short).unwrap_or_default()
}

/// A figure in about four significant places.
pub(crate) fn short(x: f64) -> String {
    if x.fract() == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 4) as usize;
    format!("{x:.digits$}")
}
