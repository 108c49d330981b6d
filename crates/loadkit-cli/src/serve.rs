//! `loadkit serve-sim`: the built-in simulated OpenAI-compatible server as a standalone process.

use loadkit_testbed::openai::SimConfig;

use crate::args::ServeArgs;
use crate::{exit, Fatal};

pub(crate) async fn serve(args: ServeArgs) -> Result<u8, Fatal> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| Fatal::usage(format!("cannot listen on {}: {e}", args.addr)))?;
    let config = SimConfig {
        ttft: args.ttft,
        itl: args.itl,
        output_tokens: args.tokens,
        usage: !args.no_usage,
        ..SimConfig::default()
    };
    let server = loadkit_testbed::openai::serve_on(listener, config);
    // The address line is machine-read by `cargo xtask bench-stream`: keep its shape.
    println!("listening on {}", server.base_url());
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(exit::OK)
}
