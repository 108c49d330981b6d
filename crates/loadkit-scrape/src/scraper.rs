//! The scraper: a thread of its own (a one-thread tokio runtime) that fetches the server's
//! `/metrics` at a fixed interval while a run goes on, so scraping never takes time from the
//! load generator's workers and a slow or failing endpoint never delays a request.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::kind::Kind;
use crate::select::Series;
use crate::text::{parse, Exposition};

/// The largest body read (vLLM's with many models and buckets is a few hundred KiB).
const MAX_BODY: usize = 8 << 20;

/// Why one scrape failed (recorded, never fatal to the run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// The URL is not an `http://` URL with a host.
    #[error("not an http:// URL: {0}")]
    Url(String),
    /// No connection or no response.
    #[error("connect: {0}")]
    Connect(String),
    /// No complete response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// A status other than 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body broke off, was too large, or was not text.
    #[error("body: {0}")]
    Body(String),
}

/// One HTTP client for scrapes.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    url: http::Uri,
    timeout: Duration,
}

impl Fetcher {
    /// A client for `url` (`http://` only) that gives up on a scrape after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Fetcher, ScrapeError> {
        let uri: http::Uri = url.parse().map_err(|_| ScrapeError::Url(url.to_owned()))?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(ScrapeError::Url(url.to_owned()));
        }
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        Ok(Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url: uri,
            timeout,
        })
    }

    /// The URL scraped.
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// Fetches and parses one body (needs a tokio runtime with timers and I/O).
    pub async fn fetch(&self) -> Result<Exposition, ScrapeError> {
        let get = async {
            let request = http::Request::get(self.url.clone())
                .header(http::header::ACCEPT, "text/plain")
                .body(Empty::new())
                .map_err(|e| ScrapeError::Url(e.to_string()))?;
            let response = self.client.request(request).await.map_err(|e| {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg = s.to_string();
                    source = s.source();
                }
                ScrapeError::Connect(msg)
            })?;
            if response.status() != http::StatusCode::OK {
                return Err(ScrapeError::Status(response.status().as_u16()));
            }
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| ScrapeError::Body(e.to_string()))?
                .to_bytes();
            let text = std::str::from_utf8(&body)
                .map_err(|_| ScrapeError::Body("not UTF-8 text".into()))?;
            Ok(parse(text))
        };
        tokio::time::timeout(self.timeout, get)
            .await
            .map_err(|_| ScrapeError::Timeout(self.timeout))?
    }
}

/// What to scrape and keep.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `/metrics` URL.
    pub url: String,
    /// Time between scrapes (one second by default in the CLI).
    pub every: Duration,
    /// The server's kind; `None`: detected from the first good scrape.
    pub kind: Option<Kind>,
    /// Series the user named, kept beside the kind's.
    pub extra: Vec<Series>,
}

/// One good scrape's values, in the order of [`Log::series`].
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// When the scrape was sent, since [`Log::started`].
    pub at: Duration,
    /// Each series' value, `None` where it had none.
    pub values: Vec<Option<f64>>,
}

/// Everything a scraper saw.
#[derive(Debug, Clone)]
pub struct Log {
    /// The URL scraped.
    pub url: String,
    /// Time between scrapes.
    pub every: Duration,
    /// The kind read (detected, or [`Kind::Other`] if no scrape succeeded).
    pub kind: Kind,
    /// The wall-clock time the scraper started; [`Point::at`] counts from here.
    pub started: SystemTime,
    /// Scrapes answered (good or failed; one abandoned at the stop is not counted).
    pub scrapes: u64,
    /// Scrapes that failed.
    pub failures: u64,
    /// The first failure's message.
    pub first_error: Option<String>,
    /// Lines rejected as malformed, over all scrapes.
    pub rejected_lines: u64,
    /// The first rejected line's number and reason.
    pub first_rejected: Option<String>,
    /// The series kept (with the name each was found under).
    pub series: Vec<Series>,
    /// One point per good scrape.
    pub points: Vec<Point>,
}

impl Log {
    /// Series that no scrape had.
    pub fn missing(&self) -> Vec<&str> {
        self.series
            .iter()
            .filter(|s| s.source.is_none())
            .map(|s| s.key.as_str())
            .collect()
    }
}

/// A scraper running on its own thread.
#[derive(Debug)]
pub struct Scraper {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Log>>,
}

impl Scraper {
    /// Starts scraping at once, then every `config.every`.
    pub fn start(config: Config) -> Result<Scraper, ScrapeError> {
        let timeout = config
            .every
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let fetcher = Fetcher::new(&config.url, timeout)?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ScrapeError::Connect(format!("could not start the scraper: {e}")))?;
        let thread = std::thread::Builder::new()
            .name("loadkit-scrape".into())
            .spawn(move || runtime.block_on(scrape_loop(fetcher, config, stopped)))
            .map_err(|e| {
                ScrapeError::Connect(format!("could not start the scraper thread: {e}"))
            })?;
        Ok(Scraper {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops scraping (a scrape under way is abandoned) and returns what was seen.
    pub fn finish(mut self) -> Log {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let thread = self.thread.take().expect("finish runs once");
        match thread.join() {
            Ok(log) => log,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

async fn scrape_loop(
    fetcher: Fetcher,
    config: Config,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> Log {
    let origin = Instant::now();
    let mut log = Log {
        url: fetcher.url(),
        every: config.every,
        kind: config.kind.unwrap_or(Kind::Other),
        started: SystemTime::now(),
        scrapes: 0,
        failures: 0,
        first_error: None,
        rejected_lines: 0,
        first_rejected: None,
        series: Vec::new(),
        points: Vec::new(),
    };
    let mut kind = config.kind;
    let mut extra = Some(config.extra);
    if let Some(k) = kind {
        log.series = k.series();
        log.series.extend(extra.take().unwrap_or_default());
    }
    let mut ticks = tokio::time::interval(config.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        let at = origin.elapsed();
        let result = tokio::select! {
            biased;
            _ = &mut stopped => break,
            r = fetcher.fetch() => r,
        };
        // Counted once answered: a scrape abandoned at the stop is neither good nor failed.
        log.scrapes += 1;
        let exposition = match result {
            Ok(e) => e,
            Err(e) => {
                log.failures += 1;
                log.first_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        if kind.is_none() {
            let k = Kind::detect(&exposition);
            kind = Some(k);
            log.kind = k;
            log.series = k.series();
            log.series.extend(extra.take().unwrap_or_default());
        }
        log.rejected_lines += exposition.rejected.len() as u64;
        if let (None, Some(r)) = (&log.first_rejected, exposition.rejected.first()) {
            log.first_rejected = Some(format!("line {}: {}", r.line, r.reason));
        }
        let t = at.as_secs_f64();
        let values = log
            .series
            .iter_mut()
            .map(|s| s.read(&exposition, t))
            .collect();
        log.points.push(Point { at, values });
    }
    log
}
