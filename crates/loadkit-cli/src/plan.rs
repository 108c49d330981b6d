//! `loadkit plan`, `loadkit scenarios list`, and the expansion of `--scenario NAME` into flags.

use std::path::PathBuf;
use std::time::Duration;

use crate::args::{PlanArgs, ScenariosArgs, ScenariosCommand};
use loadkit_core::schedule::Schedule;

use crate::pattern;
use crate::{exit, Fatal};
use loadkit_cli::scenario;

/// Columns and rows of the plan chart.
const CHART: (usize, usize) = (100, 12);

/// Longest plan drawn (one value per second is kept in memory).
const MAX_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);

/// Horizon of a plan with no --duration, for patterns that do not end by themselves.
const DEFAULT_HORIZON: Duration = Duration::from_secs(60);

pub(crate) fn plan(args: &PlanArgs) -> Result<u8, Fatal> {
    let horizon = args
        .duration
        .or_else(|| pattern::natural_length(&args.load))
        .unwrap_or(DEFAULT_HORIZON);
    let mut load = pattern::build(&args.load, args.seed).map_err(Fatal::usage)?;
    print_plan(&mut load, horizon, args.csv.as_deref())?;
    Ok(exit::OK)
}

/// Prints the chart (and writes the CSV) of `load` over `horizon`.
pub(crate) fn print_plan(
    load: &mut Schedule,
    horizon: Duration,
    csv: Option<&str>,
) -> Result<(), Fatal> {
    if horizon > MAX_HORIZON {
        return Err(Fatal::usage(format!(
            "cannot plan {} s: at most {} s (7 days) per plan",
            horizon.as_secs(),
            MAX_HORIZON.as_secs()
        )));
    }
    let pattern = match load {
        Schedule::Open(s) => s.pattern(),
        Schedule::Closed(s) => s.pattern(),
    };
    let (values, unit) = pattern::plan(load, horizon);
    let table = loadkit_report::plan_csv(&values, "planned");
    if csv == Some("-") {
        print!("{table}");
        return Ok(());
    }
    let params: Vec<String> = pattern
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!(
        "plan: {} ({} loop) {} over {} s",
        pattern.kind,
        if pattern.open_loop { "open" } else { "closed" },
        params.join(" "),
        values.len()
    );
    let total: u64 = values.iter().sum();
    print!(
        "{}",
        loadkit_report::plan_chart(&values, unit, CHART.0, CHART.1)
    );
    if pattern.open_loop {
        println!(
            "total {total} requests, peak {} /s",
            values.iter().max().unwrap_or(&0)
        );
    } else {
        println!("peak {} users", values.iter().max().unwrap_or(&0));
    }
    if let Some(path) = csv {
        std::fs::write(path, table)
            .map_err(|e| Fatal::usage(format!("cannot write {path}: {e}")))?;
        println!("csv: {path}");
    }
    Ok(())
}

pub(crate) fn scenarios(args: &ScenariosArgs) -> Result<u8, Fatal> {
    let ScenariosCommand::List { file } = &args.command;
    let (known, boolean, repeatable) = run_flags();
    let list =
        scenario::load(file.as_deref(), &known, &boolean, &repeatable).map_err(Fatal::usage)?;
    let origin = file.as_ref().map_or_else(
        || "built-in presets".to_owned(),
        |f| f.display().to_string(),
    );
    println!("{origin}:");
    for s in list.values() {
        println!(
            "  {:<14} {}",
            s.name,
            s.description.as_deref().unwrap_or("")
        );
        println!("  {:<14} {}", "", s.flags.join(" "));
    }
    Ok(exit::OK)
}

/// The long flags of `loadkit run`, which of them take no value, and which may repeat.
fn run_flags() -> (Vec<String>, Vec<String>, Vec<String>) {
    subcommand_flags("run")
}

fn subcommand_flags(name: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let cmd = crate::args::command();
    let sub = cmd.find_subcommand(name).expect("the subcommand exists");
    let mut known = Vec::new();
    let mut boolean = Vec::new();
    let mut repeatable = Vec::new();
    for arg in sub.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        known.push(long.to_owned());
        if matches!(arg.get_action(), clap::ArgAction::Append) {
            repeatable.push(long.to_owned());
        }
        if matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::Count
        ) {
            boolean.push(long.to_owned());
        }
    }
    (known, boolean, repeatable)
}

/// Flags that exclude each other: when the command line gives one, the scenario's are dropped.
const GROUPS: [&[&str]; 3] = [
    &["rps", "users"],
    &["prompt", "prompt-preset", "prompt-words"],
    &["duration", "requests"],
];

/// Rewrites `loadkit run|plan ... --scenario NAME [-f FILE] ...` so the scenario's flags come
/// right after the subcommand, where the command line's own flags override them.
pub(crate) fn expand_scenario(argv: Vec<String>) -> Result<Vec<String>, Fatal> {
    let Some(sub_at) = argv.iter().position(|a| a == "run" || a == "plan") else {
        return Ok(argv);
    };
    let rest = &argv[sub_at + 1..];
    let value_of = |long: &str, short: Option<&str>| -> Option<String> {
        let mut it = rest.iter();
        let mut found = None;
        while let Some(a) = it.next() {
            if a == "--" {
                break;
            }
            if a == long || Some(a.as_str()) == short {
                found = it.next().cloned();
            } else if let Some(v) = a.strip_prefix(&format!("{long}=")) {
                found = Some(v.to_owned());
            }
        }
        found
    };
    let Some(name) = value_of("--scenario", None) else {
        return Ok(argv);
    };
    let file = value_of("--file", Some("-f")).map(PathBuf::from);
    let (known, boolean, repeatable) = run_flags();
    let list =
        scenario::load(file.as_deref(), &known, &boolean, &repeatable).map_err(Fatal::usage)?;
    let chosen = list.get(&name).ok_or_else(|| {
        let names: Vec<&str> = list.keys().map(String::as_str).collect();
        Fatal::usage(format!(
            "unknown scenario '{name}' (known: {})",
            names.join(", ")
        ))
    })?;
    let given: Vec<&str> = rest
        .iter()
        .filter_map(|a| a.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a))
        .collect();
    let target_known = subcommand_flags(&argv[sub_at]).0;
    let mut inserted = Vec::new();
    let resolved = scenario::resolve(chosen).map_err(Fatal::usage)?;
    let mut flags = resolved.iter().peekable();
    while let Some(flag) = flags.next() {
        let long = flag.trim_start_matches("--");
        let takes_value = !boolean.iter().any(|b| b == long);
        let value = if takes_value {
            flags.next().cloned()
        } else {
            None
        };
        let overridden = GROUPS
            .iter()
            .any(|g| g.contains(&long) && g.iter().any(|m| given.contains(m)));
        if overridden || !target_known.iter().any(|k| k == long) {
            continue;
        }
        inserted.push(flag.clone());
        inserted.extend(value);
    }
    let mut out = argv[..=sub_at].to_vec();
    out.extend(inserted);
    out.extend(rest.iter().cloned());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(args: &str) -> String {
        let argv = std::iter::once("loadkit")
            .chain(args.split_whitespace())
            .map(str::to_owned)
            .collect();
        expand_scenario(argv)
            .map(|v| v[1..].join(" "))
            .unwrap_or_else(|e| format!("error: {}", e.error))
    }

    #[test]
    fn presets_expand_before_the_command_line_flags() {
        assert_eq!(
            expand("run --scenario quick --duration 5s"),
            "run --max-in-flight 60 --rps 40 --scenario quick --duration 5s"
        );
        let users = expand("run --scenario quick --users 3");
        assert_eq!(
            users,
            "run --duration 2m --max-in-flight 60 --scenario quick --users 3"
        );
        assert!(expand("run --scenario nope").contains(
            "unknown scenario 'nope' (known: burst, chaos, queue-stress, quick, ramp, spike)"
        ));
        assert_eq!(expand("run --rps 3"), "run --rps 3");
    }

    #[test]
    fn every_preset_is_valid_for_run_and_plan() {
        let (known, boolean, repeatable) = run_flags();
        for name in scenario::load(None, &known, &boolean, &repeatable)
            .unwrap()
            .keys()
        {
            for sub in ["run", "plan"] {
                let argv = expand_scenario(vec![
                    "loadkit".into(),
                    sub.into(),
                    "--scenario".into(),
                    name.clone(),
                ])
                .unwrap();
                let cli =
                    crate::args::parse(argv).unwrap_or_else(|e| panic!("{name} ({sub}): {e}"));
                let load = match cli.command {
                    crate::args::Command::Run(a) => a.load,
                    crate::args::Command::Plan(a) => a.load,
                    _ => unreachable!(),
                };
                pattern::build(&load, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}
