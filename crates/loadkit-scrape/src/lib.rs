//! The server's own view of a run: scrapes an LLM server's Prometheus `/metrics` while loadkit
//! loads it, and keeps a stated set of series per server kind (running and waiting requests,
//! KV-cache usage, prompt and generation tokens per second, queue time) plus any the user names.
//!
//! - [`text`]: a tolerant parser of the exposition text (bad lines counted, never fatal).
//! - [`Kind`]: vLLM, llama.cpp's `llama-server`, TGI and SGLang, told apart by their names'
//!   prefix, each with its table of [`Series`].
//! - [`Series`] and [`Read`]: a gauge's sum or mean, a counter's rate, a histogram's mean over
//!   the interval.
//! - [`Scraper`]: its own thread, one scrape per interval, every failure recorded in the
//!   [`Log`], never fatal; [`Fetcher`] for one scrape (the CLI's auto-detection).
//!
//! Nothing here prints or knows about runs: the CLI lays the [`Log`]'s points on the run's
//! per-second timeline by wall-clock time.
//!
//! ```
//! use loadkit_scrape::{text, Kind};
//!
//! let body = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 2\n";
//! let scrape = text::parse(body);
//! assert_eq!(Kind::detect(&scrape), Kind::LlamaServer);
//! let mut series = Kind::LlamaServer.series();
//! assert_eq!(series[0].key, "llamacpp:requests_processing");
//! assert_eq!(series[0].read(&scrape, 0.0), Some(2.0));
//! ```

mod kind;
mod scraper;
mod select;
pub mod text;

pub use kind::{Kind, Role};
pub use scraper::{Config, Fetcher, Log, Point, ScrapeError, Scraper};
pub use select::{Read, Selector, Series};
