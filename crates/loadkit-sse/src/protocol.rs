//! The `sse` and `http` protocols as a front end registers them ([`GENERIC`]): their options,
//! how they are built from the shared settings, their pre-flight check and their simulators.

use std::sync::Arc;

use loadkit_core::prompt::PromptSource;
use loadkit_core::protocol::{
    Launch, OptionSpec, Options, Prepared, Protocol, ProtocolName, Settings, SetupError, Value,
};
use loadkit_core::{RequestCtx, Source};

use loadkit_http::protocol::{http_config, tcp_preflight};

use crate::{
    BodyTemplate, EndMarker, Expect, PlainClient, PlainOptions, RequestSpec, SseClient, SseOptions,
    TemplateRequest, TemplateValues,
};

/// `--protocol sse` and `--protocol http`.
pub static GENERIC: Generic = Generic;

/// The schema-free protocols: any SSE endpoint, and plain request/response.
#[derive(Debug)]
pub struct Generic;

const SSE: &str = "sse";
const HTTP: &str = "http";

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "body",
        "TEXT",
        "The request body template; {{prompt}}, {{max_tokens}}, {{uuid}}, {{user}}, {{seq}} and \
         {{model}} are filled in (JSON-escaped when the template is JSON) [default: \
         {\"prompt\": \"{{prompt}}\", \"max_tokens\": {{max_tokens}}}, and no body for GET, HEAD, \
         DELETE and OPTIONS]",
    ),
    OptionSpec::value("body-file", "FILE", "Read the body template from a file"),
    OptionSpec::value("method", "METHOD", "The HTTP method").default("POST"),
    OptionSpec::value(
        "success-status",
        "RULE",
        "Statuses that count as success (e.g. 2xx, 200, 2xx,304)",
    )
    .default("2xx"),
    OptionSpec::value(
        "content-pointer",
        "POINTER",
        "JSON pointer of the content field (e.g. /choices/0/delta/content); an event is a chunk \
         when it is non-empty [default: every data: event is a chunk]",
    )
    .only(&[SSE]),
    OptionSpec::value(
        "end-marker",
        "MARKER",
        "Where the stream ends: a data payload such as [DONE], event:NAME, or close [default: \
         close; [DONE] against the built-in simulator]",
    )
    .only(&[SSE]),
    OptionSpec::value(
        "min-chunks",
        "N",
        "A success needs at least N chunks (3 means \"more than 2\")",
    )
    .default("1")
    .only(&[SSE]),
    OptionSpec::switch(
        "count-only",
        "Count data: events without parsing them (no JSON at all: the cheapest client)",
    )
    .only(&[SSE]),
    OptionSpec::value(
        "expect-pointer",
        "POINTER",
        "A JSON pointer that must exist in a successful body",
    )
    .only(&[HTTP]),
    OptionSpec::value(
        "expect-value",
        "VALUE",
        "The value --expect-pointer must equal (JSON, or else a string)",
    )
    .only(&[HTTP]),
];

const DEFAULT_BODY: &str = r#"{"prompt": "{{prompt}}", "max_tokens": {{max_tokens}}}"#;

impl Protocol for Generic {
    fn names(&self) -> &'static [ProtocolName] {
        &[
            ProtocolName {
                name: SSE,
                about:
                    "Any Server-Sent Events endpoint (--body, --content-pointer, --end-marker, ...)",
            },
            ProtocolName {
                name: HTTP,
                about: "Plain non-streaming HTTP request/response (batch traffic)",
            },
        ]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let spec = request_spec(s, o)?;
        let http = http_config(s);
        let source = template_source(s.prompts.clone());
        let mut settings = vec![
            ("method", Value::from(spec.method.clone())),
            ("success_status", Value::from(o.get("success-status"))),
        ];
        if s.protocol == SSE {
            if o.is_given("content-pointer") && o.flag("count-only") {
                return Err(SetupError::new(
                    "--content-pointer and --count-only exclude each other",
                ));
            }
            let mut options = SseOptions::new(spec);
            options.content_pointer = o.get("content-pointer").map(str::to_owned);
            options.end = match o.get("end-marker") {
                Some(marker) => EndMarker::parse(marker),
                None if s.simulated => EndMarker::Data("[DONE]".to_owned()),
                None => EndMarker::Close,
            };
            options.min_chunks = o.parse::<u64>("min-chunks")?.unwrap_or(1).max(1);
            options.count_only = o.flag("count-only");
            options.http = http;
            settings.extend([
                (
                    "mode",
                    Value::from(if options.count_only {
                        "count-only"
                    } else {
                        "parse"
                    }),
                ),
                (
                    "content_pointer",
                    Value::from(options.content_pointer.clone()),
                ),
                ("end_marker", Value::from(o.get("end-marker"))),
                ("min_chunks", Value::from(options.min_chunks)),
            ]);
            let client =
                SseClient::new(options).map_err(|e| SetupError::caused("--protocol sse", e))?;
            let target = client.uri().to_string();
            Ok(Box::new(
                Prepared::new(client, source, target.clone())
                    .with_settings(settings)
                    .with_preflight(tcp_preflight(target, http_config(s))),
            ))
        } else {
            if o.is_given("expect-value") && !o.is_given("expect-pointer") {
                return Err(SetupError::new("--expect-value needs --expect-pointer"));
            }
            let mut options = PlainOptions::new(spec);
            options.expect = o.get("expect-pointer").map(|pointer| Expect {
                pointer: pointer.to_owned(),
                value: o.get("expect-value").map(|v| {
                    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::from(v))
                }),
            });
            options.http = http;
            settings.push(("expect_pointer", Value::from(o.get("expect-pointer"))));
            let client =
                PlainClient::new(options).map_err(|e| SetupError::caused("--protocol http", e))?;
            let target = client.uri().to_string();
            Ok(Box::new(
                Prepared::new(client, source, target.clone())
                    .with_settings(settings)
                    .with_preflight(tcp_preflight(target, http_config(s))),
            ))
        }
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        protocol: &str,
        listener: std::net::TcpListener,
        script: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_testbed::json::JsonConfig;
        use loadkit_testbed::sse_app::SseAppConfig;
        let listener = tokio::net::TcpListener::from_std(listener).ok()?;
        if protocol == SSE {
            let server = loadkit_testbed::sse_app::serve_on(
                listener,
                SseAppConfig {
                    ttft: script.ttft,
                    itl: script.itl,
                    chunks: script.tokens,
                    transport: loadkit_http::protocol::sim::transport(script),
                    ..SseAppConfig::default()
                },
            );
            Some(Box::new(loadkit_http::protocol::sim::Running {
                url: server.url(),
                stop: Box::new(move || Box::pin(server.shutdown())),
            }))
        } else {
            let server = loadkit_testbed::json::serve_on(
                listener,
                JsonConfig {
                    latency: script.ttft,
                    ..JsonConfig::default()
                },
            );
            Some(Box::new(loadkit_http::protocol::sim::Running {
                url: server.url(),
                stop: Box::new(move || Box::pin(server.shutdown())),
            }))
        }
    }
}

/// Methods whose requests carry no body by convention.
fn bodyless(method: &str) -> bool {
    ["GET", "HEAD", "DELETE", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method.trim()))
}

/// What --method, --body / --body-file, the headers and --success-status describe.
fn request_spec(s: &Settings, o: &Options) -> Result<RequestSpec, SetupError> {
    let method = o.get("method").unwrap_or("POST").to_owned();
    let text = match (o.get("body"), o.get("body-file")) {
        (Some(_), Some(_)) => {
            return Err(SetupError::new("--body and --body-file exclude each other"))
        }
        (Some(text), None) => text.to_owned(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| SetupError::caused(format!("cannot read --body-file {path}"), e))?,
        // GET and the other body-less methods send no body unless one is given: many servers
        // reject a GET with a body, and a load test must not send what the user did not ask for.
        (None, None) if bodyless(&method) => String::new(),
        (None, None) => DEFAULT_BODY.to_owned(),
    };
    let template =
        BodyTemplate::new(&text).map_err(|e| SetupError::caused("invalid body template", e))?;
    let model = s.model.clone().unwrap_or_default();
    // The real first prompt too, so a bad template fails before any load is sent.
    let first = s.prompts.prompt(0);
    template
        .check(&TemplateValues {
            prompt: &first,
            max_tokens: s.max_tokens,
            model: &model,
            seq: 0,
            user: Some(0),
            seed: s.seed,
        })
        .map_err(|e| SetupError::caused("invalid body template", e))?;
    let mut spec = RequestSpec::new(&s.url);
    spec.method = method;
    spec.headers = s.headers.clone();
    spec.body = (!text.trim().is_empty()).then_some(template);
    spec.model = model;
    spec.max_tokens = s.max_tokens;
    spec.seed = s.seed;
    let rule = o.get("success-status").unwrap_or("2xx");
    spec.success_status = rule
        .parse()
        .map_err(|e| SetupError::caused(format!("invalid --success-status '{rule}'"), e))?;
    Ok(spec)
}

fn template_source(prompts: PromptSource) -> impl Source<Item = TemplateRequest> {
    let prompts = Arc::new(prompts);
    move |ctx: &RequestCtx| TemplateRequest {
        prompt: prompts.prompt(ctx.seq),
        seq: ctx.seq,
        user: ctx.user,
    }
}
