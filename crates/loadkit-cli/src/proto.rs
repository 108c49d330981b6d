//! Per-protocol setup for `loadkit run`: each function turns the flags into a client, a source
//! of requests, and the endpoint URL to preflight and report.

use std::sync::Arc;

use loadkit_core::prompt::{Preset, PromptSource};
use loadkit_core::{RequestCtx, Source};
use loadkit_ollama::{OllamaClient, OllamaConfig, OllamaEndpoint, OllamaRequest};
use loadkit_openai::{Endpoint, OpenAiClient, OpenAiConfig, OpenAiRequest};
use loadkit_sse::{
    BodyTemplate, EndMarker, Expect, HttpConfig, PlainClient, PlainOptions, RequestSpec, SseClient,
    SseOptions, TemplateRequest, TemplateValues,
};

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
    let mut client = OpenAiClient::new(config).map_err(|e| Fatal::usage(e.to_string()))?;
    if let Some(path) = &args.tools {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Fatal::usage(format!("cannot read --tools {}: {e}", path.display())))?;
        let tools: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            Fatal::usage(format!("--tools {} is not valid json: {e}", path.display()))
        })?;
        client = client
            .with_tools(tools, args.max_tool_rounds)
            .map_err(|e| Fatal::usage(format!("--tools {}: {e}", path.display())))?;
    }
    let prompts = prompt_source(args);
    let system: Option<Arc<str>> = args.system_prompt.as_deref().map(Arc::from);
    let source = move |ctx: &RequestCtx| OpenAiRequest {
        system: system.clone(),
        prompt: prompts.prompt(ctx.seq),
    };
    Ok((client, source, target))
}

/// Ollama's /api/chat or /api/generate.
pub(crate) fn ollama(
    args: &RunArgs,
    base_url: &str,
) -> Result<(OllamaClient, impl Source<Item = OllamaRequest>, String), Fatal> {
    let model = match (&args.model, &args.url) {
        (Some(m), _) => m.clone(),
        (None, None) => "loadkit-sim".to_owned(),
        (None, Some(_)) => {
            return Err(Fatal::usage(
                "--protocol ollama-* needs --model (the name of a pulled model, e.g. llama3.2)",
            ))
        }
    };
    let mut config = OllamaConfig::new(base_url, model);
    config.endpoint = match args.protocol {
        Protocol::OllamaGenerate => OllamaEndpoint::Generate,
        _ => OllamaEndpoint::Chat,
    };
    config.stream = !args.no_stream;
    config.num_predict = Some(args.max_tokens);
    config.temperature = Some(args.temperature);
    config.seed = Some(args.seed);
    config.num_ctx = args.num_ctx;
    config.keep_alive = args.keep_alive.clone();
    config.cold_load_threshold = args.cold_load_threshold;
    config.headers = args.headers.clone();
    config.http = http_config(args);
    let target = config.urls().map_err(|e| Fatal::usage(e.to_string()))?.0;
    let client = OllamaClient::new(config).map_err(|e| Fatal::usage(e.to_string()))?;
    let prompts = prompt_source(args);
    let system: Option<Arc<str>> = args.system_prompt.as_deref().map(Arc::from);
    let source = move |ctx: &RequestCtx| OllamaRequest {
        system: system.clone(),
        prompt: prompts.prompt(ctx.seq),
    };
    Ok((client, source, target))
}

const DEFAULT_BODY: &str = r#"{"prompt": "{{prompt}}", "max_tokens": {{max_tokens}}}"#;

/// Methods whose requests carry no body by convention.
fn bodyless(method: &str) -> bool {
    ["GET", "HEAD", "DELETE", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method.trim()))
}

/// What --method, --body / --body-file, --header and --success-status describe.
fn request_spec(args: &RunArgs, url: &str) -> Result<RequestSpec, Fatal> {
    let text = match (&args.body, &args.body_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Fatal::usage(format!("cannot read --body-file {}: {e}", path.display()))
        })?,
        // GET and the other body-less methods send no body unless one is given: many servers
        // reject a GET with a body, and a load test must not send what the user did not ask for.
        (None, None) if bodyless(&args.method) => String::new(),
        (None, None) => DEFAULT_BODY.to_owned(),
    };
    let template = BodyTemplate::new(&text).map_err(|e| Fatal::usage(e.to_string()))?;
    let model = args.model.clone().unwrap_or_default();
    // The real first prompt too, so a bad template fails before any load is sent.
    let first = prompt_source(args).prompt(0);
    template
        .check(&TemplateValues {
            prompt: &first,
            max_tokens: args.max_tokens,
            model: &model,
            seq: 0,
            user: Some(0),
            seed: args.seed,
        })
        .map_err(|e| Fatal::usage(e.to_string()))?;
    let mut spec = RequestSpec::new(url);
    spec.method = args.method.clone();
    spec.headers = args.headers.clone();
    spec.body = (!text.trim().is_empty()).then_some(template);
    spec.model = model;
    spec.max_tokens = args.max_tokens;
    spec.seed = args.seed;
    spec.success_status = args
        .success_status
        .parse()
        .map_err(|e: loadkit_sse::SpecError| Fatal::usage(e.to_string()))?;
    Ok(spec)
}

fn template_source(args: &RunArgs) -> impl Source<Item = TemplateRequest> {
    let prompts = prompt_source(args);
    move |ctx: &RequestCtx| TemplateRequest {
        prompt: prompts.prompt(ctx.seq),
        seq: ctx.seq,
        user: ctx.user,
    }
}

/// Any SSE endpoint.
pub(crate) fn sse(
    args: &RunArgs,
    url: &str,
) -> Result<(SseClient, impl Source<Item = TemplateRequest>, String), Fatal> {
    let mut options = SseOptions::new(request_spec(args, url)?);
    options.content_pointer = args.content_pointer.clone();
    options.end = match (&args.end_marker, &args.url) {
        (Some(marker), _) => EndMarker::parse(marker),
        (None, None) => EndMarker::Data("[DONE]".to_owned()),
        (None, Some(_)) => EndMarker::Close,
    };
    options.min_chunks = args.min_chunks;
    options.count_only = args.count_only;
    options.http = http_config(args);
    let client = SseClient::new(options).map_err(|e| Fatal::usage(e.to_string()))?;
    let target = client.uri().to_string();
    Ok((client, template_source(args), target))
}

/// Plain non-streaming HTTP.
pub(crate) fn http(
    args: &RunArgs,
    url: &str,
) -> Result<(PlainClient, impl Source<Item = TemplateRequest>, String), Fatal> {
    let mut options = PlainOptions::new(request_spec(args, url)?);
    options.expect = args.expect_pointer.as_ref().map(|pointer| Expect {
        pointer: pointer.clone(),
        value: args.expect_value.as_ref().map(|v| {
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::from(v.as_str()))
        }),
    });
    options.http = http_config(args);
    let client = PlainClient::new(options).map_err(|e| Fatal::usage(e.to_string()))?;
    let target = client.uri().to_string();
    Ok((client, template_source(args), target))
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
        Protocol::OpenaiCompletions => Endpoint::Completions,
        _ => Endpoint::Chat,
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
