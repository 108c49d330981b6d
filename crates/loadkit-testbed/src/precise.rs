//! Sub-millisecond wake-ups for paced responses.
//!
//! tokio's timer rounds every deadline up to the next millisecond and the reactor's wait rounds
//! up again, so a token released with `sleep_until` is typically 1 to 2 ms late. A simulated
//! server whose release times are meant to be known exactly cannot afford that, nor can it spin
//! (thousands of slow streams would burn the CPU the load generator under test needs). So paced
//! bodies sleep on tokio's timer until [`COARSE`] before a release, then hand their waker to one
//! background thread that keeps a heap of deadlines and sleeps on a condition variable, which
//! the kernel wakes within tens of microseconds.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Waits longer than this go through tokio's timer first.
pub(crate) const COARSE: Duration = Duration::from_millis(3);

struct Entry {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so the `BinaryHeap` pops the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

struct Timer {
    heap: Mutex<BinaryHeap<Entry>>,
    wake: Condvar,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<&'static Timer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static Timer = Box::leak(Box::new(Timer {
            heap: Mutex::new(BinaryHeap::new()),
            wake: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("loadkit-testbed-timer".into())
            .spawn(move || run(timer));
        if let Err(e) = spawned {
            tracing::warn!("cannot start the precise timer thread: {e}");
        }
        timer
    })
}

fn run(timer: &Timer) {
    let mut due: Vec<Waker> = Vec::new();
    let mut heap = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.at <= now) {
            if let Some(entry) = heap.pop() {
                due.push(entry.waker);
            }
        }
        if !due.is_empty() {
            drop(heap);
            due.drain(..).for_each(Waker::wake);
            heap = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        heap = match heap.peek().map(|e| e.at - now) {
            Some(wait) => {
                timer
                    .wake
                    .wait_timeout(heap, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => timer.wake.wait(heap).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Wakes `waker` at `at` (within tens of microseconds).
pub(crate) fn wake_at(at: Instant, waker: &Waker) {
    let timer = timer();
    let mut heap = timer.heap.lock().unwrap_or_else(|e| e.into_inner());
    let earliest = heap.peek().is_none_or(|e| at < e.at);
    heap.push(Entry {
        at,
        waker: waker.clone(),
    });
    drop(heap);
    if earliest {
        timer.wake.notify_one();
    }
}

/// Sleeps until `deadline` with the precision of [`wake_at`].
pub(crate) async fn sleep_until(deadline: tokio::time::Instant) {
    if deadline > tokio::time::Instant::now() + COARSE {
        tokio::time::sleep_until(deadline - COARSE).await;
    }
    std::future::poll_fn(|cx| {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return std::task::Poll::Ready(());
        }
        wake_at(Instant::now() + (deadline - now), cx.waker());
        std::task::Poll::Pending
    })
    .await;
}
