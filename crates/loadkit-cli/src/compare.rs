//! `loadkit compare`: reads reports, pools each side, prints the comparison and applies the
//! `--fail-if` rules (exit 1 when one trips).

use std::path::{Path, PathBuf};

use loadkit_report::{CompareOptions, FailRule, Report, Side};

use crate::args::{CompareArgs, CompareFormat};
use crate::{exit, Fatal};

pub(crate) fn compare(args: &CompareArgs) -> Result<u8, Fatal> {
    let rules = args
        .fail_if
        .iter()
        .map(|r| r.parse::<FailRule>().map_err(Fatal::usage))
        .collect::<Result<Vec<_>, _>>()?;
    let (base, new) = sides(args)?;
    let comparison = loadkit_report::compare(
        &base,
        &new,
        CompareOptions {
            min_change: args.min_change,
        },
    );
    let tripped = loadkit_report::check_rules(&comparison, &rules).map_err(Fatal::usage)?;
    let text = match args.format {
        CompareFormat::Text => loadkit_report::compare_text(&comparison),
        CompareFormat::Md => loadkit_report::compare_markdown(&comparison),
        CompareFormat::Html => loadkit_report::compare_html(&comparison),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text).map_err(|e| {
                Fatal::new(
                    exit::USAGE,
                    anyhow::anyhow!("cannot write {}: {e}", path.display()),
                )
            })?;
            println!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    for t in &tripped {
        eprintln!("fail-if '{}' tripped on {}: {}", t.rule, t.side, t.observed);
    }
    Ok(if tripped.is_empty() {
        exit::OK
    } else {
        exit::THRESHOLD
    })
}

/// The baseline and the new sides: `--base`/`--new` pooled, or the positional reports (the
/// first the baseline, each further one its own side).
fn sides(args: &CompareArgs) -> Result<(Side, Vec<Side>), Fatal> {
    let pooled = !args.base.is_empty() || !args.new.is_empty();
    if pooled {
        if !args.reports.is_empty() {
            return Err(Fatal::usage(
                "give reports either as BASE NEW... or with --base/--new, not both",
            ));
        }
        if args.base.is_empty() || args.new.is_empty() {
            return Err(Fatal::usage(
                "--base and --new each need at least one report",
            ));
        }
        return Ok((side(&args.base)?, vec![side(&args.new)?]));
    }
    if args.reports.len() < 2 {
        return Err(Fatal::usage(
            "compare needs a baseline and at least one new report (loadkit compare BASE.json NEW.json)",
        ));
    }
    let base = side(&args.reports[..1])?;
    let new = args
        .reports
        .iter()
        .skip(1)
        .map(|p| side(std::slice::from_ref(p)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((base, new))
}

fn side(paths: &[PathBuf]) -> Result<Side, Fatal> {
    let mut reports = Vec::new();
    for path in paths {
        reports.extend(expand(path, read(path)?)?);
    }
    let label = match paths {
        [one] => one.display().to_string(),
        [first, rest @ ..] => format!("{} + {} more", first.display(), rest.len()),
        [] => String::new(),
    };
    Ok(Side { label, reports })
}

/// A report of `run --repeat N` stands for its N runs: their reports, found beside it
/// (`repeat.runs`, relative to its directory). Any other report stands for itself.
fn expand(path: &Path, report: Report) -> Result<Vec<Report>, Fatal> {
    let Some(runs) = report
        .sections
        .get("repeat")
        .and_then(|r| r.get("runs"))
        .and_then(serde_json::Value::as_array)
    else {
        return Ok(vec![report]);
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    runs.iter()
        .map(|run| {
            let relative = run.as_str().ok_or_else(|| {
                Fatal::usage(format!("{}: repeat.runs holds a non-path", path.display()))
            })?;
            let file = dir.join(relative);
            read(&file).map_err(|e| {
                Fatal::usage(format!(
                    "{} is a report of repeated runs, and one of them is unreadable: {}",
                    path.display(),
                    e.error
                ))
            })
        })
        .collect()
}

fn read(path: &Path) -> Result<Report, Fatal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal::usage(format!("cannot read {}: {e}", path.display())))?;
    Report::from_json(&text).map_err(|e| Fatal::usage(format!("{}: {e}", path.display())))
}
