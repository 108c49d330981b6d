//! The built-in simulated servers, one per protocol family, behind one handle: started by
//! `loadkit run` when no --url is given, and by `loadkit serve-sim`.

use std::time::Duration;

use loadkit_testbed::json::{JsonConfig, JsonServer};
use loadkit_testbed::ollama::{OllamaConfig, OllamaServer};
use loadkit_testbed::openai::{SimConfig, SimServer};
use loadkit_testbed::sse_app::{SseAppConfig, SseAppServer};
use loadkit_testbed::{Flush, Transport};
use tokio::net::TcpListener;

use crate::args::Protocol;

/// Which simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SimKind {
    /// OpenAI-compatible /v1/chat/completions and /v1/completions (with tool calling).
    Openai,
    /// Ollama /api/chat, /api/generate and /api/tags.
    Ollama,
    /// A generic SSE app framed like FastAPI + sse-starlette.
    Sse,
    /// A plain JSON request/response server.
    Http,
}

impl SimKind {
    pub(crate) fn for_protocol(protocol: Protocol) -> Self {
        match protocol {
            Protocol::OpenaiChat | Protocol::OpenaiCompletions => SimKind::Openai,
            Protocol::OllamaChat | Protocol::OllamaGenerate => SimKind::Ollama,
            Protocol::Sse => SimKind::Sse,
            Protocol::Http => SimKind::Http,
        }
    }
}

/// How an unpaced stream is written (`loadkit_testbed::Flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FlushMode {
    /// Each token's event in its own write.
    PerToken,
    /// Many events per write.
    Packed,
}

/// Pacing shared by every simulator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    pub(crate) ttft: Duration,
    pub(crate) itl: Duration,
    pub(crate) tokens: u32,
    pub(crate) usage: bool,
    pub(crate) flush: FlushMode,
}

impl Pacing {
    fn transport(&self) -> Transport {
        Transport {
            flush: match self.flush {
                FlushMode::PerToken => Flush::PerToken,
                FlushMode::Packed => Flush::Packed,
            },
            ..Transport::default()
        }
    }
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            ttft: Duration::from_millis(50),
            itl: Duration::from_millis(10),
            tokens: 32,
            usage: true,
            flush: FlushMode::PerToken,
        }
    }
}

/// A running simulator.
#[derive(Debug)]
pub(crate) enum Sim {
    OpenAi(SimServer),
    Ollama(OllamaServer),
    Sse(SseAppServer),
    Json(JsonServer),
}

impl Sim {
    pub(crate) fn start(kind: SimKind, listener: TcpListener, p: Pacing) -> Self {
        match kind {
            SimKind::Openai => Sim::OpenAi(loadkit_testbed::openai::serve_on(
                listener,
                SimConfig {
                    ttft: p.ttft,
                    itl: p.itl,
                    output_tokens: p.tokens,
                    usage: p.usage,
                    transport: p.transport(),
                    ..SimConfig::default()
                },
            )),
            SimKind::Ollama => Sim::Ollama(loadkit_testbed::ollama::serve_on(
                listener,
                OllamaConfig {
                    ttft: p.ttft,
                    itl: p.itl,
                    output_tokens: p.tokens,
                    transport: p.transport(),
                    ..OllamaConfig::default()
                },
            )),
            SimKind::Sse => Sim::Sse(loadkit_testbed::sse_app::serve_on(
                listener,
                SseAppConfig {
                    ttft: p.ttft,
                    itl: p.itl,
                    chunks: p.tokens,
                    transport: p.transport(),
                    ..SseAppConfig::default()
                },
            )),
            SimKind::Http => Sim::Json(loadkit_testbed::json::serve_on(
                listener,
                JsonConfig {
                    latency: p.ttft,
                    ..JsonConfig::default()
                },
            )),
        }
    }

    /// The URL a client is pointed at.
    pub(crate) fn url(&self) -> String {
        match self {
            Sim::OpenAi(s) => s.base_url(),
            Sim::Ollama(s) => s.base_url(),
            Sim::Sse(s) => s.url(),
            Sim::Json(s) => s.url(),
        }
    }

    pub(crate) async fn shutdown(self) {
        match self {
            Sim::OpenAi(s) => s.shutdown().await,
            Sim::Ollama(s) => s.shutdown().await,
            Sim::Sse(s) => s.shutdown().await,
            Sim::Json(s) => s.shutdown().await,
        }
    }
}
