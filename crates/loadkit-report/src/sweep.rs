//! The terminal form of sweeps and probes: a header, one row per step as it finishes, and the
//! closing lines (TTFT slope, early stops, the cause of the first failure, a probe's bracket).

use std::fmt::Write as _;

use loadkit_core::sweep::{Bracket, Step};

/// The column header of the step table.
pub fn sweep_header() -> String {
    format!(
        "{:>8} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8}  {}",
        "words", "max_tokens", "tokens_in", "tokens_out", "ttft_ms", "e2e_ms", "tok/s", "result"
    )
}

fn cell<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| v.to_string())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"))
}

/// One row of the step table.
pub fn sweep_row(step: &Step) -> String {
    let result = if step.ok {
        if step.early_stop {
            "ok, early stop".to_owned()
        } else {
            "ok".to_owned()
        }
    } else {
        format!(
            "FAILED {}: {}",
            step.error_class.as_deref().unwrap_or("error"),
            step.error.as_deref().unwrap_or("")
        )
    };
    format!(
        "{:>8} {:>10} {:>9} {:>10} {:>9} {:>10} {:>8}  {result}",
        cell(step.words),
        step.max_tokens,
        cell(step.tokens_in),
        cell(step.tokens_out),
        ms(step.ttft_ms),
        ms(step.e2e_ms),
        ms(step.tokens_per_s),
    )
}

/// The closing lines: what the steps show, in words.
pub fn sweep_summary(
    kind: &str,
    steps: &[Step],
    slope_ms_per_1k: Option<f64>,
    bracket: Option<Bracket>,
) -> String {
    let mut out = String::new();
    let ok = steps.iter().filter(|s| s.ok).count();
    let _ = writeln!(out, "{kind}: {ok} of {} steps succeeded", steps.len());
    if let Some(slope) = slope_ms_per_1k {
        let _ = writeln!(
            out,
            "TTFT grows {slope:.1} ms per 1k input tokens (least squares over the successful steps)"
        );
    }
    let early = steps.iter().filter(|s| s.ok && s.early_stop).count();
    if early > 0 {
        let _ = writeln!(
            out,
            "{early} step(s) stopped early (tokens_out < 90 % of max_tokens): max_tokens is a cap, \
             not a target; force the length with --min-tokens N (sent as min_tokens) or, for \
             OpenAI-compatible servers, --ignore-eos"
        );
    }
    // A probe names its limit by the bracket (and the cause at its upper edge) instead.
    if let Some(first) = steps.iter().find(|s| !s.ok).filter(|_| bracket.is_none()) {
        let size = match first.words {
            Some(w) => format!("{w} words, max_tokens {}", first.max_tokens),
            None => format!("max_tokens {}", first.max_tokens),
        };
        let _ = writeln!(
            out,
            "first failure at {size}: {} ({})",
            first.error.as_deref().unwrap_or("unknown error"),
            first.error_class.as_deref().unwrap_or("error")
        );
    }
    match bracket {
        Some(Bracket::Between { ok, fail }) => {
            let _ = writeln!(
                out,
                "largest prompt that succeeded: {ok} words; smallest that failed: {fail} words ({} attempts)",
                steps.len()
            );
        }
        Some(Bracket::AboveRange) => {
            let _ = writeln!(
                out,
                "every size up to --hi succeeded: the limit is above it"
            );
        }
        Some(Bracket::BelowRange) => {
            let _ = writeln!(
                out,
                "even --lo failed: the limit is below it (or the target fails for another reason)"
            );
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_failures_and_early_stops() {
        let ok = Step {
            words: Some(128),
            max_tokens: 512,
            tokens_out: Some(40),
            early_stop: true,
            ok: true,
            ttft_ms: Some(51.25),
            ..Step::default()
        };
        assert!(
            sweep_row(&ok).ends_with("ok, early stop"),
            "{}",
            sweep_row(&ok)
        );
        let bad = Step {
            words: Some(4096),
            max_tokens: 512,
            error_class: Some("keepalive_timeout".into()),
            error: Some("no pong within 5s".into()),
            ..Step::default()
        };
        let summary = sweep_summary("context", &[ok, bad], Some(12.0), None);
        assert!(summary.contains("1 of 2 steps succeeded"), "{summary}");
        assert!(summary.contains("first failure at 4096 words, max_tokens 512: no pong within 5s (keepalive_timeout)"), "{summary}");
        assert!(summary.contains("--ignore-eos"), "{summary}");
    }
}
