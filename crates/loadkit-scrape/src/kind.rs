//! The servers loadkit knows by their metric names, and the series it keeps of each: running and
//! waiting requests, KV-cache usage, prompt and generation tokens per second, queue time.
//!
//! A kind is recognised by its names' prefix (`vllm:`, `llamacpp:`, `tgi_`, `sglang:`). Where a
//! server renamed a metric across versions, a series lists every name it has had and reads the
//! first one present (vLLM's `gpu_cache_usage_perc` became `kv_cache_usage_perc` in its V1
//! engine). The names come from the servers' own sources and from recorded scrapes
//! (`tests/fixtures/SOURCES.md`).

use crate::select::{Read, Series};
use crate::text::Exposition;

/// A server kind, by its metric names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// vLLM (`vllm:` names).
    Vllm,
    /// llama.cpp's `llama-server` started with `--metrics` (`llamacpp:` names).
    LlamaServer,
    /// Hugging Face text-generation-inference (`tgi_` names).
    Tgi,
    /// SGLang (`sglang:` names).
    Sglang,
    /// None of the above: only the series the user names are kept.
    Other,
}

/// What a series means, the same across kinds (the report charts by role).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Requests the server is running (in a batch, on a slot).
    Running,
    /// Requests queued, waiting for a slot.
    Waiting,
    /// KV-cache usage, 0 to 1.
    KvCache,
    /// Prompt tokens processed per second.
    PromptTokens,
    /// Tokens generated per second.
    GenerationTokens,
    /// Mean time a request waited in the server's queue (ms), per interval.
    QueueTime,
    /// A series the user named.
    User,
}

impl Role {
    /// The role's name in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Running => "running",
            Role::Waiting => "waiting",
            Role::KvCache => "kv_cache",
            Role::PromptTokens => "prompt_tokens",
            Role::GenerationTokens => "generation_tokens",
            Role::QueueTime => "queue_time",
            Role::User => "user",
        }
    }
}

impl Kind {
    /// The kind's name in the report (`vllm`, `llama-server`, `tgi`, `sglang`, `other`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vllm => "vllm",
            Kind::LlamaServer => "llama-server",
            Kind::Tgi => "tgi",
            Kind::Sglang => "sglang",
            Kind::Other => "other",
        }
    }

    /// The kind whose prefix most samples carry; [`Kind::Other`] when none is known.
    pub fn detect(exposition: &Exposition) -> Kind {
        let mut counts = [0usize; 4];
        for s in &exposition.samples {
            let i = if s.name.starts_with("vllm:") {
                0
            } else if s.name.starts_with("llamacpp:") {
                1
            } else if s.name.starts_with("tgi_") {
                2
            } else if s.name.starts_with("sglang:") {
                3
            } else {
                continue;
            };
            counts[i] += 1;
        }
        let kinds = [Kind::Vllm, Kind::LlamaServer, Kind::Tgi, Kind::Sglang];
        counts
            .iter()
            .zip(kinds)
            .filter(|(n, _)| **n > 0)
            .max_by_key(|(n, _)| **n)
            .map_or(Kind::Other, |(_, k)| k)
    }

    /// The series loadkit keeps of this kind.
    pub fn series(self) -> Vec<Series> {
        use Read::{Mean, Rate, Sum, WindowMean};
        let s = |role, names: &[&str], read, unit| Series::new(role, names, read, unit);
        match self {
            Kind::Vllm => vec![
                s(
                    Role::Running,
                    &["vllm:num_requests_running"],
                    Sum,
                    "requests",
                ),
                s(
                    Role::Waiting,
                    &["vllm:num_requests_waiting"],
                    Sum,
                    "requests",
                ),
                s(
                    Role::KvCache,
                    &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
                    Mean,
                    "ratio",
                ),
                s(
                    Role::PromptTokens,
                    &["vllm:prompt_tokens_total"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::GenerationTokens,
                    &["vllm:generation_tokens_total"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::QueueTime,
                    &["vllm:request_queue_time_seconds"],
                    WindowMean { scale: 1e3 },
                    "ms",
                ),
            ],
            Kind::LlamaServer => vec![
                s(
                    Role::Running,
                    &["llamacpp:requests_processing"],
                    Sum,
                    "requests",
                ),
                s(
                    Role::Waiting,
                    &["llamacpp:requests_deferred"],
                    Sum,
                    "requests",
                ),
                s(
                    Role::KvCache,
                    &["llamacpp:kv_cache_usage_ratio"],
                    Mean,
                    "ratio",
                ),
                s(
                    Role::PromptTokens,
                    &["llamacpp:prompt_tokens_total"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::GenerationTokens,
                    &["llamacpp:tokens_predicted_total"],
                    Rate,
                    "tokens/s",
                ),
            ],
            Kind::Tgi => vec![
                s(Role::Running, &["tgi_batch_current_size"], Sum, "requests"),
                s(Role::Waiting, &["tgi_queue_size"], Sum, "requests"),
                // TGI counts tokens in histograms only: their `_sum` rises like a counter.
                s(
                    Role::PromptTokens,
                    &["tgi_request_input_length_sum"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::GenerationTokens,
                    &["tgi_request_generated_tokens_sum"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::QueueTime,
                    &["tgi_request_queue_duration"],
                    WindowMean { scale: 1e3 },
                    "ms",
                ),
            ],
            Kind::Sglang => vec![
                s(Role::Running, &["sglang:num_running_reqs"], Sum, "requests"),
                s(Role::Waiting, &["sglang:num_queue_reqs"], Sum, "requests"),
                s(Role::KvCache, &["sglang:token_usage"], Mean, "ratio"),
                s(
                    Role::PromptTokens,
                    &["sglang:prompt_tokens_total"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::GenerationTokens,
                    &["sglang:generation_tokens_total"],
                    Rate,
                    "tokens/s",
                ),
                s(
                    Role::QueueTime,
                    &["sglang:queue_time_seconds"],
                    WindowMean { scale: 1e3 },
                    "ms",
                ),
            ],
            Kind::Other => Vec::new(),
        }
    }
}
