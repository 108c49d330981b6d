//! `loadkit serve-sim`: a built-in simulated server as a standalone process.

use crate::args::ServeArgs;
use crate::sim::{Pacing, Sim};
use crate::{exit, Fatal};

pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Fatal> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Fatal::usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let pacing = Pacing {
        ttft: args.ttft,
        itl: args.itl,
        tokens: args.tokens,
        usage: !args.no_usage,
        flush: args.flush,
    };
    let server = Sim::start(args.protocol, listener, pacing);
    // The address line is machine-read by `cargo xtask bench-stream`: keep its shape.
    println!("listening on {}", server.url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(exit::OK)
}
