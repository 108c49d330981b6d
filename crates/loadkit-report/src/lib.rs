//! The loadkit run report: the versioned JSON model that users' scripts and CI rely on, built
//! from a [`RunResult`](loadkit_core::RunResult), its terminal rendering, and the comparison of
//! runs.
//!
//! The JSON contract is in docs/metrics.md and DESIGN.md section 9: the top level is stable from
//! `schema_version: 1` on; fields may be added, none renamed. This crate is the only one whose
//! types are serde-stable. It never prints: renderers return strings.

mod compare;
mod consistency;
mod model;
mod plan;
mod section;
mod sweep;
mod terminal;

pub use compare::{
    check_rules, compare, render_html as compare_html, render_markdown as compare_markdown,
    render_text as compare_text, Better, Cell, CompareOptions, Comparison, Estimate, FailRule, Row,
    RuleError, Side, Tripped, Verdict,
};
pub use consistency::{Check, Consistency};
pub use model::{
    ErrorRow, FirstRequestRow, Generator, Metric, MissedByReason, Report, RunInfo, RunMeta,
    Throughput, TimelineRow, Tokens, Totals, WarmupOutcomes, SCHEMA_VERSION,
};
pub use plan::{plan_chart, plan_csv};
pub use section::json_value;
pub use sweep::{sweep_header, sweep_row, sweep_summary};
pub use terminal::render_summary;

/// Why a report could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The file is not valid report JSON.
    #[error("not a loadkit report: {0}")]
    Json(#[from] serde_json::Error),
    /// The report's schema is newer than this build understands.
    #[error("report schema_version {0} is newer than this loadkit understands ({SCHEMA_VERSION})")]
    Schema(u32),
}
