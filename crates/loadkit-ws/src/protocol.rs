//! `ws-chat` as a front end registers it ([`WS_CHAT`]): the message template and rules, the
//! connection mode, keepalive control, the WebSocket pre-flight, and the simulator.

use std::sync::Arc;

use loadkit_core::protocol::{
    Launch, OptionSpec, Options, PreflightError, Prepared, Protocol, ProtocolName, Settings,
    SetupError, Value,
};
use loadkit_core::RequestCtx;

use crate::{Connection, WsChatClient, WsChatConfig, WsRequest};

/// `--protocol ws-chat`.
pub static WS_CHAT: WsChat = WsChat;

/// Chat over a WebSocket, in the common JSON shape or any other through templates and rules.
#[derive(Debug)]
pub struct WsChat;

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "ws-message",
        "TEMPLATE",
        "The JSON message sent per request, with the body template's placeholders \
         [default: {\"type\":\"chat\",\"prompt\":\"{{prompt}}\",\"max_tokens\":{{max_tokens}}}, \
         plus min_tokens and system_prompt when given]",
    ),
    OptionSpec::value(
        "token-when",
        "RULE",
        "A message that is a token (POINTER=VALUE or POINTER)",
    )
    .default("/type=token"),
    OptionSpec::value("token-text", "POINTER", "Where a token message's text is").default("/text"),
    OptionSpec::value("end-when", "RULE", "The message that ends a response").default("/type=done"),
    OptionSpec::value("error-when", "RULE", "A message that reports an error")
        .default("/type=error"),
    OptionSpec::value("error-text", "POINTER", "Where an error message's text is")
        .default("/message"),
    OptionSpec::value(
        "tokens-in",
        "POINTER",
        "Where the server reports input tokens",
    )
    .default("/tokens_in"),
    OptionSpec::value(
        "tokens-out",
        "POINTER",
        "Where the server reports output tokens",
    )
    .default("/tokens_out"),
    OptionSpec::value(
        "ws-connection",
        "MODE",
        "per-user: one WebSocket per closed-loop user, reused across its requests; per-request: \
         one per request (open loop always opens one per request)",
    )
    .default("per-user"),
    OptionSpec::value(
        "ping-interval",
        "DURATION",
        "While waiting for messages, ping the server this often",
    )
    .default("20s"),
    OptionSpec::value(
        "ping-timeout",
        "DURATION",
        "A ping unanswered this long fails the request as keepalive_timeout",
    )
    .default("20s"),
    OptionSpec::switch(
        "no-ping",
        "Send no pings (a blocking prefill then cannot time out a ping)",
    ),
    OptionSpec::value(
        "max-message-size",
        "BYTES",
        "A bigger message is a protocol error",
    )
    .default("1048576"),
];

impl Protocol for WsChat {
    fn names(&self) -> &'static [ProtocolName] {
        &[ProtocolName {
            name: "ws-chat",
            about: "Chat over a WebSocket (ws:// or wss://): JSON message template and rules",
        }]
    }

    fn options(&self) -> &'static [OptionSpec] {
        OPTIONS
    }

    fn build(&self, s: &Settings, o: &Options) -> Result<Box<dyn Launch>, SetupError> {
        let text = |long: &str| o.get(long).unwrap_or_default().to_owned();
        let mut config = WsChatConfig::new(&s.url);
        config.headers = s.headers.clone();
        config.tls = loadkit_http::protocol::tls_options(s);
        config.message = o.get("ws-message").map(str::to_owned);
        config.model = s.model.clone().unwrap_or_default();
        config.max_tokens = s.max_tokens;
        config.min_tokens = s.min_tokens;
        config.seed = s.seed;
        config.token_when = text("token-when");
        config.token_text = text("token-text");
        config.end_when = text("end-when");
        config.error_when = o.get("error-when").map(str::to_owned);
        config.error_text = text("error-text");
        config.tokens_in = o.get("tokens-in").map(str::to_owned);
        config.tokens_out = o.get("tokens-out").map(str::to_owned);
        config.connection = match o.get("ws-connection").unwrap_or("per-user") {
            "per-user" => Connection::PerUser,
            "per-request" => Connection::PerRequest,
            other => {
                return Err(SetupError::new(format!(
                    "invalid value '{other}' for --ws-connection (per-user or per-request)"
                )))
            }
        };
        if o.flag("no-ping") && (o.is_given("ping-interval") || o.is_given("ping-timeout")) {
            return Err(SetupError::new(
                "--no-ping excludes --ping-interval and --ping-timeout",
            ));
        }
        config.ping_interval = if o.flag("no-ping") {
            None
        } else {
            o.duration("ping-interval")?
        };
        if let Some(timeout) = o.duration("ping-timeout")? {
            config.ping_timeout = timeout;
        }
        if let Some(size) = o.parse::<usize>("max-message-size")? {
            config.max_message_size = size;
        }
        config.connect_timeout = s.connect_timeout;
        config.first_byte_timeout = s.first_byte_timeout;
        config.idle_timeout = s.idle_timeout;
        let settings = vec![
            ("ws_connection", Value::from(config.connection.name())),
            (
                "ping_interval_s",
                Value::from(config.ping_interval.map(|d| d.as_secs_f64())),
            ),
            (
                "ping_timeout_s",
                Value::from(config.ping_timeout.as_secs_f64()),
            ),
            ("end_when", Value::from(config.end_when.clone())),
        ];
        let headers = config.headers.clone();
        let tls = config.tls.clone();
        let connect_timeout = config.connect_timeout;
        let client = WsChatClient::new(config).map_err(|e| match e {
            // Name the flag the user wrote, not the library's field.
            crate::WsConfigError::Rule { setting, error } => SetupError::caused(
                format!("--protocol ws-chat: --{}", setting.replace('_', "-")),
                error,
            ),
            e => SetupError::caused("--protocol ws-chat", e),
        })?;
        let target = client.url().to_owned();
        let prompts = Arc::new(s.prompts.clone());
        let system = s.system_prompt.clone();
        let source = move |ctx: &RequestCtx| WsRequest {
            prompt: prompts.prompt(ctx.seq),
            system: system.clone(),
            seq: ctx.seq,
            user: ctx.user,
        };
        let check = target.clone();
        Ok(Box::new(
            Prepared::new(client, source, target)
                .with_settings(settings)
                .with_preflight(move || {
                    let url = check.clone();
                    let headers = headers.clone();
                    let tls = tls.clone();
                    async move {
                        crate::preflight(&url, &headers, connect_timeout, &tls)
                            .await
                            .map_err(|e| PreflightError::new(format!("target unreachable: {e}")))
                    }
                }),
        ))
    }

    #[cfg(feature = "simulator")]
    fn simulate(
        &self,
        _: &str,
        listener: std::net::TcpListener,
        script: &loadkit_core::protocol::SimScript,
    ) -> Option<Box<dyn loadkit_core::protocol::Simulator>> {
        use loadkit_http::protocol::sim::Running;
        use loadkit_testbed::ws_chat::WsChatSimConfig;
        let server = loadkit_testbed::ws_chat::serve_on(
            listener,
            WsChatSimConfig {
                ttft: script.ttft,
                itl: script.itl,
                natural_tokens: script.tokens,
                faults: sim_fault_rules(&script.faults),
                ..WsChatSimConfig::default()
            },
        )
        .ok()?;
        Some(Box::new(Running {
            url: server.url(),
            stop: Box::new(move || Box::pin(server.shutdown())),
        }))
    }

    #[cfg(feature = "simulator")]
    fn sim_faults(&self, _: &str) -> &'static [&'static str] {
        SIM_FAULTS
    }
}

/// The faults the WebSocket chat simulator injects by name (docs/faults.md), in `cycle` order.
#[cfg(feature = "simulator")]
const SIM_FAULTS: &[&str] = &[
    "reset",
    "malformed-json",
    "oversized",
    "stall",
    "stream-error",
    "close-1011",
    "no-pong",
];

/// The testbed's fault rules for a plan of [`SIM_FAULTS`] names.
#[cfg(feature = "simulator")]
fn sim_fault_rules(
    plan: &loadkit_core::protocol::FaultPlan,
) -> Vec<(
    loadkit_testbed::openai::Trigger,
    loadkit_testbed::ws_chat::WsFault,
)> {
    use loadkit_testbed::openai::Trigger;
    use loadkit_testbed::ws_chat::WsFault;
    let after_tokens = 2;
    plan.turns()
        .filter_map(|(slot, of, name)| {
            let fault = match name {
                "reset" => WsFault::Drop { after_tokens },
                "malformed-json" => WsFault::Malformed { after_tokens },
                "oversized" => WsFault::Oversized {
                    after_tokens,
                    bytes: 2 * crate::DEFAULT_MAX_MESSAGE_SIZE,
                },
                "stall" => WsFault::NoEnd { after_tokens },
                "stream-error" => WsFault::ErrorMessage {
                    after_tokens,
                    message: "simulated in-stream error".to_owned(),
                },
                "close-1011" => WsFault::Close {
                    after_tokens,
                    code: 1011,
                    reason: "keepalive ping timeout".to_owned(),
                },
                "no-pong" => WsFault::IgnorePings,
                _ => return None,
            };
            let when = Trigger::Cycle {
                every: plan.every,
                slot,
                of,
            };
            Some((when, fault))
        })
        .collect()
}
