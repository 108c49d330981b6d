//! `loadkit serve-sim`: a built-in simulated server as a standalone process.

use loadkit_core::protocol::SimScript;

use crate::args::{FlushMode, ServeArgs};
use crate::{exit, registry, run, Fatal};

pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Fatal> {
    let (protocol, name) = registry::find(&args.protocol)?;
    let script = SimScript {
        ttft: args.ttft,
        itl: args.itl,
        tokens: args.tokens,
        usage: !args.no_usage,
        per_token_writes: args.flush == FlushMode::PerToken,
    };
    let server = run::start_simulator(protocol, name, &args.addr.to_string(), &script)?;
    // The address line is machine-read by `cargo xtask bench-stream`: keep its shape.
    println!("listening on {}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(exit::OK)
}
