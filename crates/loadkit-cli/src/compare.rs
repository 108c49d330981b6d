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
    let reports = paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let label = match paths {
        [one] => one.display().to_string(),
        [first, rest @ ..] => format!("{} + {} more", first.display(), rest.len()),
        [] => String::new(),
    };
    Ok(Side { label, reports })
}

fn read(path: &Path) -> Result<Report, Fatal> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Fatal::usage(format!("cannot read {}: {e}", path.display())))?;
    Report::from_json(&text).map_err(|e| Fatal::usage(format!("{}: {e}", path.display())))
}
