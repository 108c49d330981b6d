//! Engine behaviour on tokio's paused clock: schedules, caps, stop conditions, classification.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadkit_core::metrics::ErrorKind;
use loadkit_core::schedule::{ConstantRate, FixedInterval, FixedUsers};
use loadkit_core::{
    CancellationToken, Client, Control, Event, Observer, Probe, RequestCtx, RequestError,
    RequestRecord, RunResult, Runner, Saturation, StopReason,
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// A fake streaming server: waits `ttft`, then emits `tokens` chunks `itl` apart.
#[derive(Clone)]
struct Fake {
    ttft: Duration,
    itl: Duration,
    tokens: u32,
    fail: Option<ErrorKind>,
    calls: Arc<AtomicU64>,
}

impl Fake {
    fn new(ttft: Duration) -> Self {
        Self {
            ttft,
            itl: Duration::ZERO,
            tokens: 1,
            fail: None,
            calls: Arc::default(),
        }
    }
}

impl Client for Fake {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), _seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.ttft).await;
        if let Some(kind) = self.fail {
            return Err(RequestError::new(kind, "HTTP 503: overloaded"));
        }
        probe.mark_first_byte();
        for i in 0..self.tokens {
            if i > 0 {
                tokio::time::sleep(self.itl).await;
            }
            probe.content(1, 4);
        }
        Ok(())
    }
}

fn seq(ctx: &RequestCtx) -> u64 {
    ctx.seq
}

fn near(actual: Duration, expected: Duration, tolerance: Duration) -> bool {
    actual.abs_diff(expected) <= tolerance
}

#[tokio::test(start_paused = true)]
async fn open_loop_constant_rate_measures_ttft_itl_and_tpot() {
    let fake = Fake {
        itl: MS(10),
        tokens: 11,
        ..Fake::new(MS(50))
    };
    let r = Runner::builder(fake, seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(5))
        .build()
        .unwrap()
        .run()
        .await;
    let s = &r.stats;
    assert_eq!(r.stop_reason, StopReason::Duration);
    assert_eq!(s.counters.started, 50);
    assert_eq!(s.counters.succeeded, 50);
    assert_eq!(s.counters.output_tokens, 550);
    assert_eq!(s.counters.tokens_counted, 50);
    assert!(near(s.ttft.quantile(0.5), MS(50), MS(2)), "{:?}", s.ttft);
    assert!(near(s.itl.quantile(0.5), MS(10), MS(1)), "{:?}", s.itl);
    assert_eq!(s.itl.count(), 500);
    assert!(near(s.tpot.quantile(0.5), MS(10), MS(1)), "{:?}", s.tpot);
    assert!(near(s.e2e.quantile(0.5), MS(150), MS(3)), "{:?}", s.e2e);
    assert!(s.schedule_lag.max() < MS(2), "{:?}", s.schedule_lag);
    // The timeline shows the realized load second by second.
    assert!(s.timeline.len() >= 5);
    for entry in &s.timeline[..5] {
        assert_eq!(entry.intended, 10, "{entry:?}");
        assert_eq!(entry.started, 10, "{entry:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn saturation_drop_counts_missed_arrivals() {
    let r = Runner::builder(Fake::new(S(1)), seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .duration(S(2))
        .max_in_flight(10)
        .on_saturation(Saturation::Drop)
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(c.started + c.missed, 200, "{c:?}");
    assert!(c.missed >= 160, "{c:?}");
    assert_eq!(c.queued_late, 0);
}

#[tokio::test(start_paused = true)]
async fn saturation_queue_starts_late_and_records_the_lag() {
    let r = Runner::builder(Fake::new(S(1)), seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .requests(30)
        .max_in_flight(10)
        .build()
        .unwrap()
        .run()
        .await;
    let s = &r.stats;
    assert_eq!(r.stop_reason, StopReason::Requests);
    assert_eq!(s.counters.succeeded, 30);
    assert_eq!(s.counters.queued_late, 20);
    assert_eq!(s.counters.missed, 0);
    // The last queued request was meant for 0.29 s and started at 2 s.
    assert!(s.schedule_lag.max() > MS(1600), "{:?}", s.schedule_lag);
    assert!(s.e2e_corrected.quantile(0.99) > s.e2e.quantile(0.99) + MS(1000));
}

#[tokio::test(start_paused = true)]
async fn closed_loop_sends_exactly_the_requested_count() {
    let fake = Fake::new(MS(30));
    let calls = Arc::clone(&fake.calls);
    let r = Runner::builder(fake, seq)
        .closed_loop(FixedUsers::new(4).unwrap())
        .requests(101)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Requests);
    assert_eq!(r.stats.counters.started, 101);
    assert_eq!(r.stats.counters.succeeded, 101);
    assert_eq!(calls.load(Ordering::Relaxed), 101);
    assert!(r.stats.schedule_lag.max() < MS(1));
}

async fn fixed_interval_run(service: Duration) -> RunResult {
    Runner::builder(Fake::new(service), seq)
        .closed_loop(FixedInterval::new(200, S(20)).unwrap())
        .duration(S(100))
        .build()
        .unwrap()
        .run()
        .await
}

#[tokio::test(start_paused = true)]
async fn fixed_interval_keeps_the_request_count_whatever_the_server_speed() {
    let slow = fixed_interval_run(S(3)).await;
    let fast = fixed_interval_run(MS(500)).await;
    assert_eq!(slow.stats.counters.started, 1000);
    assert_eq!(fast.stats.counters.started, 1000);
    assert_eq!(slow.stats.counters.overruns, 0);
    // Each user starts exactly one request per interval: 200 per 20 s window.
    let per_window = |r: &RunResult, w: usize| -> u64 {
        r.stats.timeline[w * 20..(w + 1) * 20]
            .iter()
            .map(|e| e.started)
            .sum()
    };
    for w in 0..5 {
        assert_eq!(per_window(&slow, w), 200);
        assert_eq!(per_window(&fast, w), 200);
    }
}

#[tokio::test(start_paused = true)]
async fn fixed_interval_overruns_start_at_once_and_are_counted() {
    let r = Runner::builder(Fake::new(S(25)), seq)
        .closed_loop(FixedInterval::new(2, S(20)).unwrap())
        .duration(S(100))
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    // Back to back every 25 s: starts at 0, 25, 50, 75 per user.
    assert_eq!(c.started, 8, "{c:?}");
    assert_eq!(c.overruns, 6, "{c:?}");
    assert!(r.stats.schedule_lag.max() >= S(5));
}

#[tokio::test(start_paused = true)]
async fn warmup_requests_are_excluded_from_statistics() {
    let r = Runner::builder(Fake::new(MS(10)), seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .warmup(S(2))
        .duration(S(3))
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(c.warmup, 20);
    assert_eq!(c.started, 30);
    assert_eq!(r.stats.e2e.count(), 30);
    assert!(near(r.measured, S(3), MS(50)), "{:?}", r.measured);
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_classified() {
    let r = Runner::builder(Fake::new(S(5)), seq)
        .open_loop(ConstantRate::new(1.0).unwrap())
        .requests(3)
        .timeout(Some(S(1)))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.failed, 3);
    let rows = r.stats.errors.top(5);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].class, "timeout");
    assert_eq!(rows[0].count, 3);
    assert_eq!(rows[0].message, "total timeout after 1s");
    // The timeline counts them by class in the second each ended.
    let by_class: u64 = r
        .stats
        .timeline
        .iter()
        .flat_map(|e| &e.failed_by_class)
        .map(|&(class, n)| {
            assert_eq!(class, "timeout");
            n
        })
        .sum();
    assert_eq!(by_class, 3);
    for e in &r.stats.timeline {
        let n: u64 = e.failed_by_class.iter().map(|&(_, n)| n).sum();
        assert_eq!(n, e.failed, "second {}", e.t_s);
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_scheduling_and_lets_in_flight_requests_finish_within_the_grace() {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(MS(2250)).await;
        cancel.cancel();
    });
    let r = Runner::builder(Fake::new(S(10)), seq)
        .open_loop(ConstantRate::new(2.0).unwrap())
        .duration(S(60))
        .cancel_token(token)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Signal);
    assert!(r.interrupted());
    let c = r.stats.counters;
    // Sent at 0, 0.5, ..., 2.0 s; each takes 10 s and finishes inside the 30 s grace.
    assert_eq!(
        (c.started, c.succeeded, c.cancelled, c.failed),
        (5, 5, 0, 0)
    );
    assert!(r.elapsed >= S(12) && r.elapsed < S(13), "{:?}", r.elapsed);
}

#[tokio::test(start_paused = true)]
async fn the_abort_token_cancels_in_flight_requests_at_once_and_still_returns_the_result() {
    let (cancel, abort) = (CancellationToken::new(), CancellationToken::new());
    let (first, second) = (cancel.clone(), abort.clone());
    tokio::spawn(async move {
        tokio::time::sleep(MS(2250)).await;
        first.cancel();
        tokio::time::sleep(S(1)).await;
        second.cancel();
    });
    let r = Runner::builder(Fake::new(S(10)), seq)
        .open_loop(ConstantRate::new(2.0).unwrap())
        .duration(S(60))
        .cancel_token(cancel)
        .abort_token(abort)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Signal);
    let c = r.stats.counters;
    assert_eq!((c.started, c.cancelled, c.failed), (5, 5, 0), "{c:?}");
    assert!(r.elapsed < MS(3300), "{:?}", r.elapsed);
}

#[tokio::test(start_paused = true)]
async fn the_abort_token_alone_stops_the_run_at_once() {
    let abort = CancellationToken::new();
    let fire = abort.clone();
    tokio::spawn(async move {
        tokio::time::sleep(MS(1250)).await;
        fire.cancel();
    });
    let r = Runner::builder(Fake::new(S(10)), seq)
        .open_loop(ConstantRate::new(2.0).unwrap())
        .duration(S(60))
        .abort_token(abort)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Signal);
    assert_eq!(r.stats.counters.cancelled, 3);
    assert!(r.elapsed < S(2));
}

#[tokio::test(start_paused = true)]
async fn max_failures_stops_the_run() {
    let fake = Fake {
        fail: Some(ErrorKind::HttpStatus(503)),
        ..Fake::new(MS(10))
    };
    let r = Runner::builder(fake, seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(60))
        .max_failures(5)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::MaxFailures);
    assert!(
        (5..=7).contains(&r.stats.counters.failed),
        "{:?}",
        r.stats.counters
    );
    let rows = r.stats.errors.top(5);
    assert_eq!(rows[0].message, "HTTP 503: overloaded");
}

#[derive(Default)]
struct Seen {
    ticks: u64,
    finished: Vec<RequestRecord>,
}

struct Recorder(Arc<Mutex<Seen>>, u64);

impl Observer for Recorder {
    fn on_event(&mut self, event: &Event<'_>) -> Control {
        let mut seen = self.0.lock().unwrap();
        match event {
            Event::Tick(live) => {
                seen.ticks += 1;
                assert!(live.elapsed >= S(seen.ticks));
            }
            Event::RequestFinished(r) => seen.finished.push((*r).clone()),
            _ => {}
        }
        if seen.finished.len() as u64 >= self.1 {
            Control::Stop(StopReason::Slo)
        } else {
            Control::Continue
        }
    }
}

#[tokio::test(start_paused = true)]
async fn observers_see_every_request_and_ticks_and_can_stop_the_run() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let r = Runner::builder(Fake::new(MS(100)), seq)
        .closed_loop(FixedUsers::new(3).unwrap().with_stagger(S(1)))
        .duration(S(600))
        .observer(Recorder(Arc::clone(&seen), 60))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Slo);
    let seen = seen.lock().unwrap();
    assert!(seen.ticks >= 2);
    // Staggered users: user i first sends at i seconds.
    for user in 0..3u32 {
        let first = seen
            .finished
            .iter()
            .filter(|r| r.user == Some(user))
            .map(|r| r.sent)
            .min();
        assert_eq!(first, Some(S(u64::from(user))), "user {user}");
    }
}

struct Panics;

impl Client for Panics {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), seq: u64, _probe: &mut Probe) -> Result<(), RequestError> {
        if seq % 2 == 0 {
            panic!("bad client");
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_panicking_client_is_a_classified_error_not_a_crash() {
    let r = Runner::builder(Panics, seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .requests(10)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.failed, 5);
    assert_eq!(r.stats.counters.succeeded, 5);
    assert_eq!(
        r.stats.errors.top(1)[0].message,
        "client panicked: bad client"
    );
}

#[test]
fn invalid_configurations_are_rejected() {
    use loadkit_core::RunConfigError;
    let b = || Runner::builder(Fake::new(MS(1)), seq);
    assert_eq!(
        b().requests(1).build().unwrap_err(),
        RunConfigError::NoSchedule
    );
    let rate = || ConstantRate::new(1.0).unwrap();
    assert_eq!(
        b().open_loop(rate()).build().unwrap_err(),
        RunConfigError::Unbounded
    );
    assert!(b().open_loop(rate()).requests(0).build().is_err());
    assert!(b()
        .open_loop(rate())
        .requests(1)
        .max_in_flight(0)
        .build()
        .is_err());
    assert!(b()
        .open_loop(rate())
        .duration(Duration::ZERO)
        .build()
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn a_finite_user_schedule_ends_the_run_by_itself() {
    use loadkit_core::schedule::StagesUsers;
    let stages = StagesUsers::parse("2s:4,3s:4,1s:0").unwrap();
    let r = Runner::builder(Fake::new(MS(100)), seq)
        .closed_loop(stages)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Duration);
    assert!(near(r.elapsed, S(6), MS(150)), "{:?}", r.elapsed);
    // Users 1..4 ramp up over 2 s, 4 hold for 3 s: about 2 s × 2 users + 3 s × 4 users at 10/s.
    let started = r.stats.counters.started;
    assert!((150..=190).contains(&started), "{started}");
}

/// Runs `schedule` for `secs` seconds against a 1 ms server and returns actual starts per second.
async fn realized<A>(schedule: A, secs: u64) -> Vec<u64>
where
    A: loadkit_core::schedule::ArrivalSchedule + 'static,
{
    let r = Runner::builder(Fake::new(MS(1)), seq)
        .open_loop(schedule)
        .duration(S(secs))
        .max_in_flight(10_000)
        .build()
        .unwrap()
        .run()
        .await;
    r.stats
        .timeline
        .iter()
        .take(secs as usize)
        .map(|e| e.started)
        .collect()
}

/// Makes a fresh schedule for each run of a case.
type MakeSchedule = Box<dyn Fn() -> Box<dyn loadkit_core::schedule::ArrivalSchedule>>;

#[tokio::test(start_paused = true)]
async fn every_open_loop_pattern_is_realized_second_by_second_as_planned() {
    use loadkit_core::schedule::*;
    let cases: Vec<(&str, MakeSchedule)> = vec![
        (
            "constant",
            Box::new(|| Box::new(ConstantRate::new(50.0).unwrap())),
        ),
        (
            "poisson",
            Box::new(|| Box::new(PoissonRate::new(40.0, 3).unwrap())),
        ),
        (
            "burst",
            Box::new(|| {
                Box::new(
                    BurstRate::new(25, S(3))
                        .unwrap()
                        .with_base_rate(2.0)
                        .unwrap(),
                )
            }),
        ),
        (
            "ramp",
            Box::new(|| Box::new(RampRate::new(0.0, 30.0, S(10)).unwrap())),
        ),
        (
            "spike",
            Box::new(|| Box::new(SpikeRate::new(5.0, 50.0, S(2), S(6)).unwrap())),
        ),
        (
            "chaos",
            Box::new(|| Box::new(ChaosRate::new(1.0, 40.0, 9).unwrap())),
        ),
        (
            "stages",
            Box::new(|| Box::new(StagesRate::parse("3s:10,4s:40,3s:0").unwrap())),
        ),
    ];
    for (name, make) in cases {
        let plan = plan_arrivals(&mut make(), S(12));
        let actual = realized(make(), 12).await;
        // The paused clock's timer has millisecond ticks, so an arrival planned within 1 ms of
        // a second boundary may land just after it: counts may move by one across a boundary,
        // never appear or vanish.
        assert_eq!(
            actual.iter().sum::<u64>(),
            plan.iter().sum::<u64>(),
            "{name}: {actual:?} vs {plan:?}"
        );
        let (mut cum_a, mut cum_p) = (0i64, 0i64);
        for (a, p) in actual.iter().zip(&plan) {
            cum_a += *a as i64;
            cum_p += *p as i64;
            assert!(
                (cum_p - cum_a) <= 1 && cum_a <= cum_p,
                "{name}: {actual:?} vs {plan:?}"
            );
        }
    }
    // Chaos is reproducible for a seed and different for another.
    let a = realized(ChaosRate::new(1.0, 40.0, 9).unwrap(), 12).await;
    let again = realized(ChaosRate::new(1.0, 40.0, 9).unwrap(), 12).await;
    let b = realized(ChaosRate::new(1.0, 40.0, 10).unwrap(), 12).await;
    assert_eq!(a, again);
    assert_ne!(a, b);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_ramps_and_spikes_follow_their_user_curves() {
    use loadkit_core::schedule::{plan_users, RampUsers, SpikeUsers, UserSchedule};
    // 100 ms per request back to back: each active user starts 10 requests per second.
    async fn per_second<U: UserSchedule + Clone + 'static>(
        s: U,
        secs: u64,
    ) -> (Vec<u64>, Vec<u64>) {
        let plan = plan_users(&s, S(secs));
        let r = Runner::builder(Fake::new(MS(100)), seq)
            .closed_loop(s)
            .duration(S(secs))
            .build()
            .unwrap()
            .run()
            .await;
        (
            plan,
            r.stats
                .timeline
                .iter()
                .take(secs as usize)
                .map(|e| e.started)
                .collect(),
        )
    }
    let (plan, actual) = per_second(RampUsers::new(0, 10, S(10)).unwrap(), 12).await;
    for (t, (users, started)) in plan.iter().zip(&actual).enumerate().skip(1) {
        // A user that joins mid-second starts fewer than 10 in that second.
        assert!(
            *started <= users * 10 && *started + 10 >= users.saturating_sub(1) * 10,
            "t={t}: {plan:?} {actual:?}"
        );
    }
    let (plan, actual) = per_second(SpikeUsers::new(2, 8, S(2), S(5)).unwrap(), 10).await;
    assert_eq!(actual[1], 20, "{actual:?}");
    assert_eq!(plan[5], 8);
    assert_eq!(
        actual[6], 80,
        "spike level reached within one second: {actual:?}"
    );
}

// ---- Overload: every arrival is counted, and every metric covers the right requests. ----

fn intended_total(r: &RunResult) -> u64 {
    r.stats.timeline.iter().map(|e| e.intended).sum()
}

#[tokio::test(start_paused = true)]
async fn overload_in_queue_mode_accounts_for_every_arrival() {
    // 100 req/s for 5 s against 4 slots of a 360 ms server: about 56 can start.
    let r = Runner::builder(Fake::new(MS(360)), seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .duration(S(5))
        .max_in_flight(4)
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(c.started + c.missed, 500, "{c:?}");
    assert_eq!(intended_total(&r), 500);
    assert_eq!(c.missed, c.missed_queued_at_stop, "{c:?}");
    assert!((52..=60).contains(&c.started), "{c:?}");
    assert_eq!(c.queued_late, c.started - 4, "{c:?}");
    for (t, e) in r.stats.timeline.iter().take(5).enumerate() {
        assert_eq!(e.intended, 100, "second {t}: {e:?}");
    }
    // The started ones waited in the queue: their corrected latency shows it.
    assert!(
        r.stats.e2e_corrected.max() > S(4),
        "{:?}",
        r.stats.e2e_corrected
    );
}

#[tokio::test(start_paused = true)]
async fn overload_in_drop_mode_names_the_cap_as_the_reason() {
    let r = Runner::builder(Fake::new(MS(360)), seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .duration(S(5))
        .max_in_flight(4)
        .on_saturation(Saturation::Drop)
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(c.started + c.missed, 500, "{c:?}");
    assert_eq!(c.missed, c.missed_dropped_at_cap, "{c:?}");
    assert_eq!(c.missed_queued_at_stop, 0);
    assert_eq!(intended_total(&r), 500);
}

#[tokio::test(start_paused = true)]
async fn unsent_arrivals_count_only_up_to_the_request_limit() {
    let r = Runner::builder(Fake::new(MS(500)), seq)
        .open_loop(ConstantRate::new(100.0).unwrap())
        .duration(S(2))
        .requests(100)
        .max_in_flight(1)
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(r.stop_reason, StopReason::Duration);
    assert_eq!(c.started + c.missed_queued_at_stop, 100, "{c:?}");
    assert!(c.started <= 5, "{c:?}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_counts_the_arrivals_due_before_it() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(MS(2_005) + MS(5)).await;
        stopper.cancel();
    });
    let r = Runner::builder(Fake::new(S(10)), seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(60))
        .max_in_flight(2)
        .grace(Duration::ZERO)
        .cancel_token(cancel)
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(r.stop_reason, StopReason::Signal);
    // Arrivals at 0.0, 0.1, ..., 2.0 s were due; the two that started were cancelled.
    assert_eq!((c.started, c.cancelled), (2, 2), "{c:?}");
    assert_eq!(c.started + c.missed, 21, "{c:?}");
    assert_eq!(intended_total(&r), 21);
}

#[tokio::test(start_paused = true)]
async fn fixed_interval_counts_every_skipped_slot() {
    // One user, a 1 s interval, 3.5 s per iteration, 10 s: iterations start at 0, 3.5 and 7 s.
    let r = Runner::builder(Fake::new(MS(3_500)), seq)
        .closed_loop(FixedInterval::new(1, S(1)).unwrap())
        .duration(S(10))
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!(c.started, 3, "{c:?}");
    assert_eq!(c.overruns, 2, "{c:?}");
    // Slot 1 s stands behind the start at 3.5 s, 4.5 s behind 7 s; skipped: 2, 3, 5.5, 6.5,
    // 9, and 8 (the late start meant for it would come after the deadline).
    assert_eq!(c.missed, 6, "{c:?}");
    assert_eq!(c.missed_skipped_slots, 6, "{c:?}");
    let intended: Vec<u64> = r.stats.timeline[..10].iter().map(|e| e.intended).collect();
    assert_eq!(intended, [1, 1, 1, 1, 1, 1, 1, 0, 1, 1]);
}

#[tokio::test(start_paused = true)]
async fn the_window_ends_at_the_deadline_not_after_the_grace_period() {
    /// Request 0 stalls until cancelled; the others take 10 ms.
    #[derive(Clone)]
    struct Stall;
    impl Client for Stall {
        type Request = u64;
        type Session = ();
        async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
            tokio::time::sleep(if seq == 0 { S(3_600) } else { MS(10) }).await;
            probe.content(1, 1);
            Ok(())
        }
    }
    let r = Runner::builder(Stall, seq)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .duration(S(3))
        .grace(S(4))
        .build()
        .unwrap()
        .run()
        .await;
    let c = r.stats.counters;
    assert_eq!((c.succeeded, c.cancelled), (29, 1), "{c:?}");
    assert!(r.elapsed >= S(7), "{:?}", r.elapsed);
    assert!(near(r.measured, S(3), MS(20)), "{:?}", r.measured);
}

#[tokio::test(start_paused = true)]
async fn a_late_completion_extends_the_window_to_it() {
    let r = Runner::builder(Fake::new(S(2)), seq)
        .open_loop(ConstantRate::new(1.0).unwrap())
        .duration(S(3))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.succeeded, 3);
    // The last request started at 2 s and ended at 4 s.
    assert!(near(r.measured, S(4), MS(20)), "{:?}", r.measured);
}

/// Streams `tokens` chunks `itl` apart, then fails on odd sequence numbers.
#[derive(Clone)]
struct FailAfterStreaming;

impl Client for FailAfterStreaming {
    type Request = u64;
    type Session = ();
    async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        for i in 0..5 {
            if i > 0 {
                tokio::time::sleep(MS(if seq % 2 == 1 { 50 } else { 10 })).await;
            }
            probe.content(1, 1);
        }
        match seq % 4 {
            1 => Err(RequestError::truncated("stream ended before [DONE]")),
            // Stalls until the per-request timeout.
            3 => {
                tokio::time::sleep(S(3_600)).await;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn itl_and_tpot_describe_successful_requests_only() {
    let r = Runner::builder(FailAfterStreaming, seq)
        .closed_loop(FixedUsers::new(4).unwrap())
        .requests(40)
        .timeout(Some(S(1)))
        .build()
        .unwrap()
        .run()
        .await;
    let s = &r.stats;
    assert_eq!((s.counters.succeeded, s.counters.failed), (20, 20));
    // Successes: 4 gaps of 10 ms each; failures (truncated and timed out): 4 gaps of 50 ms.
    assert_eq!(s.itl.count(), 80);
    assert!(s.itl.max() < MS(11), "{:?}", s.itl);
    assert_eq!(s.itl_failed.count(), 80);
    assert!(s.itl_failed.quantile(0.0) > MS(49), "{:?}", s.itl_failed);
    assert_eq!(s.tpot.count(), 20);
    assert!(s.tpot.max() < MS(11), "{:?}", s.tpot);
}

#[tokio::test(start_paused = true)]
async fn cancelled_requests_leave_no_gaps_behind() {
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(MS(5) + MS(25)).await;
        stopper.cancel();
    });
    let fake = Fake {
        itl: MS(10),
        tokens: 100,
        ..Fake::new(MS(1))
    };
    let r = Runner::builder(fake, seq)
        .closed_loop(FixedUsers::new(2).unwrap())
        .duration(S(10))
        .abort_token(cancel)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.cancelled, 2);
    assert_eq!(r.stats.itl.count() + r.stats.itl_failed.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn one_chunk_carrying_every_token_records_no_tpot() {
    #[derive(Clone)]
    struct NoStream;
    impl Client for NoStream {
        type Request = u64;
        type Session = ();
        async fn call(&self, _: &mut (), _: u64, probe: &mut Probe) -> Result<(), RequestError> {
            tokio::time::sleep(MS(100)).await;
            probe.content(32, 128);
            probe.usage(Some(8), Some(32));
            Ok(())
        }
    }
    let r = Runner::builder(NoStream, seq)
        .closed_loop(FixedUsers::new(1).unwrap())
        .requests(5)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.output_tokens, 160);
    assert_eq!(r.stats.tpot.count(), 0);
    assert_eq!(r.stats.itl.count(), 0);
    assert_eq!(r.stats.e2e.count(), 5);
}

#[test]
fn absurd_durations_are_refused_not_overflowed() {
    let build = |d: Duration| {
        Runner::builder(Fake::new(MS(1)), seq)
            .open_loop(ConstantRate::new(1.0).unwrap())
            .duration(d)
            .build()
            .map(|_| ())
    };
    let err = build(Duration::from_secs(500_000_000_000 * 31_557_600)).unwrap_err();
    assert!(err.to_string().contains("365 days"), "{err}");
    assert!(build(S(3600)).is_ok());
}

/// (user, session id, requests the session served before this one).
type Use = (Option<u32>, u64, u32);

/// Records, per request, which session it ran on and what that session had seen before.
#[derive(Clone, Default)]
struct Sessions {
    seen: Arc<Mutex<Vec<Use>>>,
    next_id: Arc<AtomicU64>,
}

#[derive(Default)]
struct Conn {
    id: Option<u64>,
    served: u32,
}

impl Client for Sessions {
    type Request = RequestCtx;
    type Session = Conn;
    async fn call(
        &self,
        conn: &mut Conn,
        ctx: RequestCtx,
        probe: &mut Probe,
    ) -> Result<(), RequestError> {
        // Connected lazily, on the session's first request.
        let id = *conn
            .id
            .get_or_insert_with(|| self.next_id.fetch_add(1, Ordering::Relaxed));
        self.seen.lock().unwrap().push((ctx.user, id, conn.served));
        conn.served += 1;
        // Request 5 hangs past the engine's timeout: its session must not be reused.
        tokio::time::sleep(if ctx.seq == 5 { S(60) } else { MS(300) }).await;
        probe.content(1, 1);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_user_keeps_its_session_and_a_timed_out_call_resets_it() {
    let client = Sessions::default();
    let seen = Arc::clone(&client.seen);
    let r = Runner::builder(client, |ctx: &RequestCtx| *ctx)
        .closed_loop(FixedUsers::new(2).unwrap())
        .requests(12)
        .timeout(Some(S(1)))
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.failed, 1, "{:?}", r.stats.counters);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 12);
    let five = seen[5];
    let mut sessions_by_user = std::collections::BTreeMap::<u32, Vec<(u64, u32)>>::new();
    for (user, id, served) in &seen {
        sessions_by_user
            .entry(user.unwrap())
            .or_default()
            .push((*id, *served));
    }
    for (user, uses) in &sessions_by_user {
        // A session serves its user's requests in order, one after another.
        for pair in uses.windows(2) {
            let ((a, n), (b, m)) = (pair[0], pair[1]);
            if a == b {
                assert_eq!(m, n + 1, "user {user}: {uses:?}");
            } else {
                // Only the user whose request timed out got a new session, once.
                assert_eq!(Some(*user), five.0, "user {user}: {uses:?}");
                assert_eq!(m, 0, "a new session starts empty: {uses:?}");
            }
        }
    }
    let ids: std::collections::BTreeSet<u64> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ids.len(), 3, "two users, one reset: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn open_loop_requests_each_get_a_fresh_session() {
    let client = Sessions::default();
    let seen = Arc::clone(&client.seen);
    let r = Runner::builder(client, |ctx: &RequestCtx| *ctx)
        .open_loop(ConstantRate::new(10.0).unwrap())
        .requests(5)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.succeeded, 5);
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .all(|&(user, _, served)| user.is_none() && served == 0),
        "{seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tallies_count_every_outcome_and_merge() {
    /// Tallies three per request; odd requests fail.
    struct Tally;
    impl Client for Tally {
        type Request = u64;
        type Session = ();
        async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
            probe.tally("rounds", 2);
            probe.tally("rounds", 1);
            tokio::time::sleep(MS(5)).await;
            if seq % 2 == 1 {
                return Err(RequestError::server("odd"));
            }
            probe.content(1, 1);
            Ok(())
        }
    }
    let run = || {
        Runner::builder(Tally, seq)
            .closed_loop(FixedUsers::new(2).unwrap())
            .requests(10)
            .build()
            .unwrap()
            .run()
    };
    let a = run().await;
    assert_eq!(a.stats.counters.failed, 5);
    assert_eq!(
        a.stats.tallies.get("rounds"),
        Some(&30),
        "failures count too"
    );
    let mut merged = a.stats.clone();
    merged.merge(&run().await.stats);
    assert_eq!(merged.tallies.get("rounds"), Some(&60));
}

/// A "session" client: three blocks per call, each recorded as samples (100, 200, 300 ms of
/// synthesis, real-time factors 0.5, 1.0, 1.5).
struct Blocks;

impl Client for Blocks {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), _seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        for (ms, rtf) in [(100, 0.5), (200, 1.0), (300, 1.5)] {
            let from = probe.stamp();
            tokio::time::sleep(MS(ms)).await;
            probe.content(1, 0);
            probe.sample_since("block", from);
            probe.sample_ratio("block_rtf", rtf);
        }
        probe.sample_ratio("dropped", f64::NAN);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn samples_keep_many_values_per_request_and_ratios_are_marked() {
    let r = Runner::builder(Blocks, seq)
        .closed_loop(FixedUsers::new(2).unwrap())
        .iterations(2)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stats.counters.succeeded, 4);
    let block = &r.stats.named["block"];
    assert_eq!(block.count(), 12);
    assert!(near(block.quantile(0.5), MS(200), MS(1)), "{block:?}");
    let rtf = &r.stats.named["block_rtf"];
    assert_eq!(rtf.count(), 12);
    assert!(r.stats.ratios.contains("block_rtf") && !r.stats.ratios.contains("block"));
    // Kept in millionths: the median ratio 1.0 is one million.
    let median = rtf.quantile(0.5).as_nanos() as f64;
    assert!((median - 1e6).abs() / 1e6 < 0.002, "{median}");
    assert!(!r.stats.named.contains_key("dropped"));
}

#[tokio::test(start_paused = true)]
async fn iterations_give_each_user_exactly_n_and_complete_the_run() {
    use loadkit_core::schedule::FixedUsers;
    // Three staggered users, two iterations each, 100 ms per request: the run completes by
    // itself after the slowest user's last request, with exactly 6 requests, 2 per user.
    let users = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&users);
    let client = loadkit_core::client_fn(move |user: Option<u32>| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(user.unwrap());
            tokio::time::sleep(MS(100)).await;
            Ok(())
        }
    });
    let r = Runner::builder(client, |ctx: &RequestCtx| ctx.user)
        .closed_loop(FixedUsers::new(3).unwrap().with_stagger(S(1)))
        .iterations(2)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(r.stop_reason, StopReason::Completed);
    assert_eq!(r.stats.counters.succeeded, 6);
    let mut per_user = users.lock().unwrap().clone();
    per_user.sort_unstable();
    assert_eq!(per_user, [0, 0, 1, 1, 2, 2]);
    assert!(near(r.elapsed, MS(2200), MS(50)), "{:?}", r.elapsed);
    // A request limit below users × iterations still stops first.
    let r = Runner::builder(Fake::new(MS(10)), seq)
        .closed_loop(FixedUsers::new(3).unwrap())
        .iterations(5)
        .requests(4)
        .build()
        .unwrap()
        .run()
        .await;
    assert_eq!(
        (r.stop_reason, r.stats.counters.succeeded),
        (StopReason::Requests, 4)
    );
    // Iterations need users.
    let open = Runner::builder(Fake::new(MS(10)), seq)
        .open_loop(ConstantRate::new(1.0).unwrap())
        .iterations(1)
        .build();
    assert!(open.is_err());
}

/// The first call is slow (a cold model), the rest fast.
struct Cold;

impl Client for Cold {
    type Request = u64;
    type Session = ();

    async fn call(&self, _: &mut (), seq: u64, probe: &mut Probe) -> Result<(), RequestError> {
        tokio::time::sleep(if seq == 0 { MS(900) } else { MS(10) }).await;
        probe.content(1, 1);
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_first_request_is_reported_on_its_own_even_in_the_warmup() {
    let r = Runner::builder(Cold, seq)
        .closed_loop(FixedUsers::new(1).unwrap())
        .warmup(MS(500))
        .duration(S(2))
        .build()
        .unwrap()
        .run()
        .await;
    let first = r.stats.first_request.expect("first request");
    assert!(first.warmup && first.succeeded);
    assert_eq!(first.e2e, MS(900));
    assert_eq!(first.ttft, Some(MS(900)));
    // It is in no other statistic: the measured E2E are all 10 ms.
    assert!(r.stats.e2e.max() < MS(11), "{:?}", r.stats.e2e.max());
}
