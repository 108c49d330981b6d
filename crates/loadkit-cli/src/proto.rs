//! Per-protocol setup for `loadkit run`: each function turns the flags into a client, a source
//! of requests, and the endpoint URL to preflight and report.

use std::sync::Arc;

use loadkit_core::prompt::{Preset, PromptSource};
use loadkit_core::{RequestCtx, Source};
use loadkit_openai::{Endpoint, OpenAiClient, OpenAiConfig, OpenAiRequest};
use loadkit_sse::HttpConfig;

use crate::args::{PromptPreset, Protocol, RunArgs};
use crate::Fatal;

/// OpenAI-compatible chat or completions.
pub(crate) fn openai(
    args: &RunArgs,
    base_url: &str,
) -> Result<(OpenAiClient, impl Source<Item = OpenAiRequest>, String), Fatal> {
    let config = client_config(args, base_url)?;
    let target = config
        .endpoint_url()
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let client = OpenAiClient::new(config).map_err(|e| Fatal::usage(e.to_string()))?;
    let prompts = prompt_source(args);
    let system: Option<Arc<str>> = args.system_prompt.as_deref().map(Arc::from);
    let source = move |ctx: &RequestCtx| OpenAiRequest {
        system: system.clone(),
        prompt: prompts.prompt(ctx.seq),
    };
    Ok((client, source, target))
}

/// The HTTP settings every HTTP-based protocol shares.
pub(crate) fn http_config(args: &RunArgs) -> HttpConfig {
    HttpConfig {
        connect_timeout: args.connect_timeout,
        first_byte_timeout: args.timeout,
        idle_timeout: args.idle_timeout,
        ..HttpConfig::default()
    }
}

fn client_config(args: &RunArgs, base_url: &str) -> Result<OpenAiConfig, Fatal> {
    let api_key = std::env::var(&args.api_key_env)
        .ok()
        .filter(|k| !k.trim().is_empty());
    let endpoint = match args.protocol {
        Protocol::OpenaiChat => Endpoint::Chat,
        Protocol::OpenaiCompletions => Endpoint::Completions,
    };
    let model = args
        .model
        .clone()
        .or_else(|| args.url.is_none().then(|| "loadkit-sim".to_owned()));
    Ok(OpenAiConfig {
        url: base_url.to_owned(),
        endpoint,
        model,
        max_tokens: Some(args.max_tokens),
        temperature: args.temperature,
        seed: Some(args.seed),
        stream: !args.no_stream,
        include_usage: !args.no_usage_request,
        api_key,
        headers: args.headers.clone(),
        http: http_config(args),
    })
}

pub(crate) fn prompt_source(args: &RunArgs) -> PromptSource {
    if let Some(text) = &args.prompt {
        return PromptSource::Fixed(Arc::from(text.as_str()));
    }
    if let Some(words) = args.prompt_words {
        return PromptSource::Words {
            words,
            seed: args.seed,
        };
    }
    let preset = match args.prompt_preset.unwrap_or(PromptPreset::Short) {
        PromptPreset::Short => Preset::Short,
        PromptPreset::Medium => Preset::Medium,
        PromptPreset::Long => Preset::Long,
    };
    PromptSource::Fixed(Arc::from(preset.text()))
}
