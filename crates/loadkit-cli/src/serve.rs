//! `loadkit serve-sim`: a built-in simulated server as a standalone process, optionally
//! misbehaving on purpose (`--faults`, docs/faults.md).

use loadkit_core::protocol::{FaultPlan, SimScript, SimWrites};

use crate::args::{FlushMode, ServeArgs};
use crate::{exit, registry, run, Fatal};

pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Fatal> {
    let (protocol, name) = registry::find(&args.protocol)?;
    let faults = match &args.faults {
        Some(spec) => FaultPlan::parse(
            spec,
            name,
            protocol.sim_faults(name),
            args.fault_every,
            args.fault_delay,
        )
        .map_err(|e| Fatal::usage(e.to_string()))?,
        None => FaultPlan::default(),
    };
    if args.slots.is_some() && !protocol.sim_slots(name) {
        return Err(Fatal::usage(format!(
            "--slots: the {name} simulator has no slots (the OpenAI-compatible one has)"
        )));
    }
    let script = SimScript {
        ttft: args.ttft,
        itl: args.itl,
        tokens: args.tokens,
        usage: !args.no_usage,
        writes: match args.flush {
            FlushMode::PerToken => SimWrites::PerToken,
            FlushMode::PerChunk => SimWrites::PerChunk,
            FlushMode::Packed => SimWrites::Packed,
        },
        faults,
        slots: args.slots,
    };
    let server = run::start_simulator(protocol, name, &args.addr.to_string(), &script)?;
    // The address line is machine-read by `cargo xtask bench-stream`: keep its shape.
    println!("listening on {}", server.url());
    if let Some(n) = script.slots {
        eprintln!("slots: {n} requests at once, later ones queue (GET /metrics shows them)");
    }
    if !script.faults.names.is_empty() {
        eprintln!(
            "faults: every {} gets the next of: {}",
            nth_request(script.faults.every),
            script.faults.names.join(", ")
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(exit::OK)
}

/// `1` → `request`, `2` → `2nd request`, ... as in "every 2nd request".
fn nth_request(n: u64) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    match n {
        1 => "request".to_owned(),
        n => format!("{n}{suffix} request"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nth_requests() {
        let said: Vec<String> = [1, 2, 3, 4, 11, 12, 21, 22, 101]
            .into_iter()
            .map(super::nth_request)
            .collect();
        assert_eq!(
            said,
            [
                "request",
                "2nd request",
                "3rd request",
                "4th request",
                "11th request",
                "12th request",
                "21st request",
                "22nd request",
                "101st request"
            ]
        );
    }
}
