//! Stop rules, goodput, Retry-After and checkpoints on tokio's paused clock: each stops, counts
//! or snapshots at the moment the rule says, and the result holds the data up to there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadkit_core::metrics::ErrorKind;
use loadkit_core::schedule::{ConstantRate, FixedUsers};
use loadkit_core::slo::{Goodput, LiveSlo, Target};
use loadkit_core::{
    Client, ErrorRate, Probe, RequestCtx, RequestError, RunResult, Runner, StopReason,
};
use tokio::time::Instant;

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// Answers after `latency`, one content chunk; from `fail_from` on (time since its creation)
/// every request fails with `kind`, carrying `retry_after` when given.
#[derive(Clone)]
struct Server {
    born: Instant,
    latency: Duration,
    fail_from: Option<Duration>,
    kind: ErrorKind,
    retry_after: Option<Duration>,
    /// When each request was sent, since `born`.
    sends: Arc<Mutex<Vec<Duration>>>,
    /// Request `n` takes this long instead (for goodput).
    slow_every: Option<(u64, Duration)>,
}

impl Server {
    fn new(latency: Duration) -> Self {
        Self {
            born: Instant::now(),
            latency,
            fail_from: None,
            kind: ErrorKind::HttpStatus(503),
            retry_after: None,
            sends: Arc::default(),
            slow_every: None,
        }
    }

    fn sends(&self) -> Vec<Duration> {
        self.sends.lock().unwrap().clone()
    }
}

impl Client for Server {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        let now = self.born.elapsed();
        self.sends.lock().unwrap().push(now);
        if self.fail_from.is_some_and(|t| now >= t) {
            if self.kind == ErrorKind::Connect {
                return Err(RequestError::new(ErrorKind::Connect, "connection refused"));
            }
            tokio::time::sleep(self.latency).await;
            return Err(
                RequestError::http_status(429, "slow down").with_retry_after(self.retry_after)
            );
        }
        let latency = match self.slow_every {
            Some((n, slow)) if seq % n == 0 => slow,
            _ => self.latency,
        };
        tokio::time::sleep(latency).await;
        probe.mark_first_byte();
        probe.content(1, 4);
        Ok(())
    }
}

fn seq(ctx: &RequestCtx) -> u64 {
    ctx.seq
}

#[tokio::test(start_paused = true)]
async fn the_error_rate_rule_stops_within_a_second_of_the_breach_and_keeps_the_data_before_it() {
    let server = Server {
        fail_from: Some(S(10)),
        ..Server::new(MS(50))
    };
    let r = Runner::builder(server, seq)
        .open_loop(ConstantRate::new(20.0).unwrap())
        .duration(S(60))
        .max_error_rate(ErrorRate {
            rate: 0.5,
            window: S(5),
        })
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::MaxErrorRate);
    let c = r.stats.counters;
    // 200 good requests in the first 10 s. Failures from 10 s: over a 5 s window, half of the
    // ~100 ended requests are failures by about 12.5 s; the check runs each second.
    assert_eq!(c.succeeded, 200, "{c:?}");
    assert!((40..=80).contains(&c.failed), "{c:?}");
    assert!(r.elapsed >= S(12) && r.elapsed <= S(14), "{:?}", r.elapsed);
}

#[tokio::test(start_paused = true)]
async fn the_error_rate_rule_needs_its_minimum_sample() {
    // One request per second, all failing: 5 in the window never reach the 20 needed.
    let server = Server {
        fail_from: Some(Duration::ZERO),
        ..Server::new(MS(10))
    };
    let r = Runner::builder(server, seq)
        .open_loop(ConstantRate::new(1.0).unwrap())
        .duration(S(10))
        .max_error_rate(ErrorRate {
            rate: 0.1,
            window: S(5),
        })
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Duration);
    assert_eq!(r.stats.counters.failed, 10);
}

#[tokio::test(start_paused = true)]
async fn a_closed_loop_user_waits_the_servers_retry_after_when_asked() {
    for respect in [false, true] {
        let server = Server {
            fail_from: Some(Duration::ZERO),
            retry_after: Some(S(2)),
            ..Server::new(MS(100))
        };
        let r = Runner::builder(server.clone(), seq)
            .closed_loop(FixedUsers::new(1).unwrap())
            .duration(S(7))
            .respect_retry_after(respect)
            .build()
            .unwrap()
            .run()
            .await;
        let c = r.stats.counters;
        let sends = server.sends();
        if respect {
            // Sent at 0, 2.1, 4.2, 6.3 s: each after the 100 ms answer and a 2 s wait.
            assert_eq!(sends.len(), 4, "{sends:?}");
            assert!(sends[1] >= MS(2100) && sends[1] < MS(2110), "{sends:?}");
            assert_eq!((c.retry_after_waits, c.retry_after_wait_ms), (4, 8000));
        } else {
            assert_eq!(sends.len(), 70, "back to back, 100 ms each");
            assert_eq!(c.retry_after_waits, 0);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_closed_loop_user_backs_off_from_a_refused_port_and_recovers_at_once() {
    let server = Server {
        fail_from: Some(Duration::ZERO),
        kind: ErrorKind::Connect,
        ..Server::new(MS(10))
    };
    let r = Runner::builder(server.clone(), seq)
        .closed_loop(FixedUsers::new(1).unwrap())
        .duration(S(5))
        .build()
        .unwrap()
        .run()
        .await;
    let sends = server.sends();
    // 0, then waits of 10, 20, 40, ... ms up to 1 s: about 10 attempts in 5 s, not millions.
    assert!((8..=12).contains(&sends.len()), "{} attempts", sends.len());
    assert_eq!(r.stats.counters.failed, sends.len() as u64);
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps[0], MS(10));
    assert_eq!(gaps[1], MS(20));
    assert!(gaps.iter().all(|g| *g <= S(1)), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn goodput_counts_the_successes_that_meet_every_per_request_target() {
    let server = Server {
        // Every 4th request takes 600 ms: its TTFT misses the 500 ms target.
        slow_every: Some((4, MS(600))),
        ..Server::new(MS(100))
    };
    let r = Runner::builder(server, seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .requests(100)
        .goodput(Goodput::parse("ttft<500ms,e2e<1s").unwrap())
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!((c.succeeded, c.goodput), (100, 75));
}

#[tokio::test(start_paused = true)]
async fn a_live_slo_stops_the_run_once_its_sample_shows_the_breach() {
    // TTFT 300 ms against a 200 ms target: 200 requests (20 s at 10/s) are needed for a p95.
    let targets = Target::parse_list("ttft.p95<200ms").unwrap();
    let (live, breach) = LiveSlo::new(&targets);
    let r = Runner::builder(Server::new(MS(300)), seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(120))
        .observer(live)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Slo);
    assert!(r.elapsed >= S(20) && r.elapsed <= S(22), "{:?}", r.elapsed);
    let b = breach.get().expect("the breach is recorded");
    assert_eq!(b.target, "ttft.p95<200ms");
    assert!((b.observed - 300.0).abs() < 3.0, "{b:?}");
}

#[tokio::test(start_paused = true)]
async fn checkpoints_arrive_on_time_marked_running_and_grow() {
    let snapshots: Arc<Mutex<Vec<RunResult>>> = Arc::default();
    let sink = Arc::clone(&snapshots);
    let r = Runner::builder(Server::new(MS(50)), seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(10))
        .warmup(S(1))
        .checkpoint(S(3), move |snapshot: RunResult| {
            sink.lock().unwrap().push(snapshot);
        })
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Duration);
    assert!(!r.checkpoint && !r.interrupted());
    let snapshots = snapshots.lock().unwrap();
    // At 3, 6 and 9 s (the run lasts 11 s, warm-up included).
    assert_eq!(snapshots.len(), 3);
    for (i, s) in snapshots.iter().enumerate() {
        let at = S(3 * (i as u64 + 1));
        assert!(s.checkpoint && s.interrupted());
        assert_eq!(s.stop_reason, StopReason::Running);
        assert!(
            s.elapsed >= at && s.elapsed < at + MS(50),
            "{:?}",
            s.elapsed
        );
        assert_eq!(s.measured, s.elapsed - S(1));
        // 10 per second after the 1 s warm-up, the last in flight.
        let done = s.stats.counters.succeeded;
        let expected = (at.as_secs() - 1) * 10;
        assert!(done + 1 >= expected && done <= expected, "{done} at {at:?}");
    }
    assert_eq!(r.stats.counters.succeeded, 100);
}
