//! Prompt workloads: fixed text, built-in presets, and synthetic prompts of exactly N words;
//! and [`ChatPrompt`], the system + user prompt pair the chat protocol clients send.

use std::fmt;
use std::sync::Arc;

/// A built-in prompt of a typical size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// One short question (about 10 words).
    Short,
    /// A paragraph-sized request (about 80 words).
    Medium,
    /// A page-sized request (about 400 words).
    Long,
    /// Asks for a long numbered list of lines: pushes a model to write until `max_tokens`.
    Lines,
    /// Asks to count upwards, one number per line: the longest outputs, for output sweeps.
    Numbers,
}

impl Preset {
    /// Every preset, for help texts.
    pub const ALL: [Preset; 5] = [
        Preset::Short,
        Preset::Medium,
        Preset::Long,
        Preset::Lines,
        Preset::Numbers,
    ];

    /// The preset's name as the CLI takes it.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Short => "short",
            Preset::Medium => "medium",
            Preset::Long => "long",
            Preset::Lines => "lines",
            Preset::Numbers => "numbers",
        }
    }

    /// Parses a preset name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The preset's text.
    pub fn text(self) -> String {
        match self {
            Preset::Short => SHORT.to_owned(),
            Preset::Medium => MEDIUM.to_owned(),
            Preset::Long => {
                // A long prompt made of the medium one and synthetic words: deterministic, and
                // close to 400 words.
                let mut text = MEDIUM.to_owned();
                text.push_str("\n\nContext: ");
                text.push_str(&synthetic_words(320, 0x5eed));
                text
            }
            Preset::Lines => LINES.to_owned(),
            Preset::Numbers => NUMBERS.to_owned(),
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const SHORT: &str = "Explain in one paragraph why the sky is blue.";

const LINES: &str = "Write a numbered list of 2000 different lines, each a short sentence about a \
different everyday object. Do not stop early, do not summarize, and do not add anything before \
or after the list.";

const NUMBERS: &str = "Count from 1 to 100000, one number per line, in digits. Do not skip any \
number, do not stop early, and write nothing else.";

const MEDIUM: &str =
    "You are helping a small team plan the migration of a web service from a single \
virtual machine to a managed container platform. The service is written in Python, uses a \
PostgreSQL database, serves about two hundred requests per second at peak, and stores uploaded \
images on local disk. List the main risks of the migration, propose an order of steps that keeps \
the service available, and explain how the team can verify after each step that nothing broke. \
Keep the answer practical and concise.";

/// One chat-style request: an optional system prompt and the user prompt.
///
/// The protocol clients send it in their own way (a chat endpoint as a `system` and a `user`
/// message; a completions endpoint as one prompt). `Arc<str>` lets a workload hand out the same
/// prompt to many requests without copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPrompt {
    /// The system prompt.
    pub system: Option<Arc<str>>,
    /// The user prompt.
    pub prompt: Arc<str>,
}

impl ChatPrompt {
    /// A request with only a user prompt.
    pub fn new(prompt: impl Into<Arc<str>>) -> Self {
        Self {
            system: None,
            prompt: prompt.into(),
        }
    }
}

/// Where each request's prompt comes from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    /// The same text for every request.
    Fixed(Arc<str>),
    /// A synthetic prompt of exactly `words` whitespace-separated words, different for each
    /// request but fully determined by `seed` and the request's sequence number, so prefix
    /// caches cannot flatter the server and a run is reproducible.
    Words {
        /// Words per prompt.
        words: usize,
        /// The run's seed.
        seed: u64,
    },
}

impl PromptSource {
    /// The prompt of request `seq`.
    pub fn prompt(&self, seq: u64) -> Arc<str> {
        match self {
            PromptSource::Fixed(text) => Arc::clone(text),
            PromptSource::Words { words, seed } => synthetic_words(
                *words,
                splitmix(seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            )
            .into(),
        }
    }

    /// Approximate words per prompt (for reports).
    pub fn words(&self) -> usize {
        match self {
            PromptSource::Fixed(text) => text.split_whitespace().count(),
            PromptSource::Words { words, .. } => *words,
        }
    }
}

/// Common English words, all single tokens for typical tokenizers.
const VOCABULARY: &[&str] = &[
    "the",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "small",
    "large",
    "good",
    "new",
    "first",
    "last",
    "long",
    "great",
    "little",
    "own",
    "other",
    "old",
    "big",
    "high",
    "different",
    "early",
    "young",
    "important",
    "public",
    "bad",
    "same",
    "able",
    "make",
    "know",
    "take",
    "see",
    "come",
    "think",
    "look",
    "want",
    "give",
    "use",
    "find",
    "tell",
    "ask",
    "seem",
    "feel",
    "try",
    "leave",
    "call",
    "keep",
    "begin",
    "help",
    "show",
    "hear",
    "play",
    "run",
    "move",
    "live",
    "believe",
    "bring",
    "write",
    "provide",
    "sit",
    "stand",
    "lose",
    "pay",
    "meet",
    "include",
    "continue",
    "set",
    "learn",
    "lead",
    "understand",
    "watch",
    "follow",
    "stop",
    "create",
    "speak",
    "read",
    "spend",
    "grow",
    "open",
    "walk",
    "win",
    "offer",
    "remember",
    "love",
    "consider",
    "appear",
    "buy",
    "wait",
    "serve",
    "die",
    "send",
    "expect",
    "build",
    "stay",
    "fall",
    "cut",
    "reach",
    "kill",
    "remain",
];

/// Exactly `n` whitespace-separated words drawn from a fixed vocabulary, determined by `seed`.
pub fn synthetic_words(n: usize, seed: u64) -> String {
    let mut state = seed;
    let mut out = String::with_capacity(n * 7);
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        state = splitmix(state);
        out.push_str(VOCABULARY[(state % VOCABULARY.len() as u64) as usize]);
    }
    out
}

/// One SplitMix64 step: a fast, well-mixed, stable pseudo-random function.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_prompts_have_exactly_n_words_and_are_deterministic() {
        for n in [0, 1, 2, 128, 4096] {
            let a = synthetic_words(n, 7);
            assert_eq!(a.split_whitespace().count(), n);
            assert_eq!(a, synthetic_words(n, 7));
        }
        assert_ne!(synthetic_words(64, 7), synthetic_words(64, 8));
    }

    #[test]
    fn word_prompts_differ_per_request_but_repeat_per_seed() {
        let s = PromptSource::Words { words: 32, seed: 1 };
        assert_ne!(s.prompt(0), s.prompt(1));
        assert_eq!(
            s.prompt(5),
            PromptSource::Words { words: 32, seed: 1 }.prompt(5)
        );
        assert_eq!(s.prompt(3).split_whitespace().count(), 32);
    }

    #[test]
    fn presets_have_their_sizes() {
        let words = |p: Preset| p.text().split_whitespace().count();
        assert!(words(Preset::Short) < 20);
        assert!((60..120).contains(&words(Preset::Medium)));
        assert!((350..450).contains(&words(Preset::Long)));
        assert_eq!(Preset::from_name("long"), Some(Preset::Long));
        assert_eq!(Preset::from_name("huge"), None);
    }
}
