//! Precise waits: tokio's timer has millisecond granularity, so the last stretch before an
//! intended start is covered by yielding, which keeps open-loop schedule lag well under 1 ms.

use std::time::Duration;

use tokio::time::Instant;

/// How much of each wait is spent yielding instead of sleeping on the timer wheel: the timer
/// rounds deadlines up to the next millisecond and the parked thread wakes late by up to about
/// another millisecond.
const SPIN: Duration = Duration::from_micros(2_500);

/// Waits until `deadline` with sub-millisecond precision: [`coarse_wait`], then [`spin_until`].
pub(crate) async fn sleep_until(deadline: Instant) {
    coarse_wait(deadline).await;
    spin_until(deadline).await;
}

/// Sleeps on the timer until `SPIN` before `deadline` (at once when it is nearer). Cheap to race
/// against other futures in a `select!`.
pub(crate) async fn coarse_wait(deadline: Instant) {
    let now = Instant::now();
    if deadline > now && deadline - now > SPIN {
        tokio::time::sleep_until(deadline - SPIN).await;
    }
}

/// Yields to the scheduler until `deadline` passes: at most `SPIN` long after [`coarse_wait`].
/// Poll nothing else beside it, so each turn costs one clock read.
///
/// If the clock stops moving while yielding (tokio's paused test clock), it falls back to the
/// timer so paused-time tests still advance.
pub(crate) async fn spin_until(deadline: Instant) {
    let mut last = Instant::now();
    let mut stalled = 0u32;
    while last < deadline {
        tokio::task::yield_now().await;
        let now = Instant::now();
        if now == last {
            stalled += 1;
            if stalled > 8 {
                tokio::time::sleep_until(deadline).await;
                return;
            }
        } else {
            stalled = 0;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paused_clock_reaches_the_deadline() {
        let start = Instant::now();
        sleep_until(start + Duration::from_millis(1500)).await;
        assert!(Instant::now() >= start + Duration::from_millis(1500));
        assert!(Instant::now() < start + Duration::from_millis(1502));
    }

    #[tokio::test]
    async fn real_clock_wakes_close_to_the_deadline() {
        // Not a timing assertion on a busy machine: only that it never wakes early.
        let deadline = Instant::now() + Duration::from_millis(3);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
    }
}
