//! `--service asr|tts|both`: a voice stack's ASR and TTS load-tested side by side, because they
//! are deployed together: each service is its own run (its protocol, URL, model and options)
//! under the same load pattern, both built and checked before either starts, run at once, and
//! reported one summary and one report each (`--out/asr`, `--out/tts`).

use crate::args::{RunArgs, Service};
use crate::run::{prepare, Done};
use crate::{exit, registry, Fatal};

/// One service's run, before it is prepared.
struct Part {
    label: &'static str,
    args: RunArgs,
}

pub(crate) async fn run(args: RunArgs, service: Service) -> Result<u8, Fatal> {
    if args.target.target_given {
        return Err(Fatal::usage(
            "--service chooses the protocols and their targets: give --asr-url and --tts-url, \
             not --protocol and --url",
        ));
    }
    if args.dry_run {
        return Err(Fatal::usage(
            "--dry-run draws one plan: run it without --service",
        ));
    }
    let mut wanted: Vec<(&'static str, String, Option<String>, Option<String>)> = Vec::new();
    if matches!(service, Service::Asr | Service::Both) {
        wanted.push((
            "asr",
            "asr".to_owned(),
            args.asr_url.clone(),
            args.asr_model.clone(),
        ));
    } else if args.asr_url.is_some() || args.asr_model.is_some() {
        return Err(Fatal::usage(
            "--asr-url and --asr-model need --service asr or both",
        ));
    }
    if matches!(service, Service::Tts | Service::Both) {
        wanted.push((
            "tts",
            args.tts_protocol.clone(),
            args.tts_url.clone(),
            args.tts_model.clone(),
        ));
    } else if args.tts_url.is_some() || args.tts_model.is_some() {
        return Err(Fatal::usage(
            "--tts-url and --tts-model need --service tts or both",
        ));
    }
    let given = &args.target.protocol_options;
    for (long, _) in given {
        if !wanted.iter().any(|(_, p, _, _)| registry::accepts(p, long)) {
            let names: Vec<&str> = wanted.iter().map(|(_, p, _, _)| p.as_str()).collect();
            return Err(Fatal::usage(format!(
                "--{long} applies to none of the services' protocols ({})",
                names.join(", ")
            )));
        }
    }
    let base = args
        .target
        .out
        .clone()
        .unwrap_or_else(crate::run::default_out_dir);
    let side_by_side = wanted.len() > 1;
    let parts: Vec<Part> = wanted
        .into_iter()
        .map(|(label, protocol, url, model)| {
            let mut a = args.clone();
            a.service = None;
            a.target.protocol_options = given
                .iter()
                .filter(|(long, _)| registry::accepts(&protocol, long))
                .cloned()
                .collect();
            a.target.protocol = protocol;
            a.target.url = url;
            if model.is_some() {
                a.target.model = model;
            }
            a.target.out = Some(base.join(label));
            // Two live lines would overwrite each other.
            a.target.quiet |= side_by_side;
            Part { label, args: a }
        })
        .collect();
    // Every service is built and checked before any load: a bad flag or an unreachable
    // service stops the whole command, as for one run.
    let mut ready = Vec::new();
    for part in parts {
        let label = part.label;
        let prepared = prepare(part.args)
            .await
            .map_err(|e| Fatal::new(e.code, e.error.context(format!("{label} service"))))?;
        if let Some(r) = prepared {
            ready.push((label, r));
        }
    }
    if side_by_side && !args.target.quiet {
        let names: Vec<String> = ready
            .iter()
            .map(|(label, r)| format!("{label} at {}", crate::secret::redact(r.target())))
            .collect();
        eprintln!(
            "load-testing {} side by side (no live line; each summary when both have ended)",
            names.join(" and ")
        );
    }
    let done: Vec<(&'static str, Result<Done, Fatal>)> = futures::future::join_all(
        ready
            .into_iter()
            .map(|(label, r)| async move { (label, r.execute().await) }),
    )
    .await;
    let mut code = exit::OK;
    for (label, result) in done {
        println!("\n== {label} service ==");
        match result {
            Ok(d) => code = code.max(d.print()),
            Err(e) => {
                eprintln!("error: {label} service: {:#}", e.error);
                code = code.max(e.code);
            }
        }
    }
    Ok(code)
}
