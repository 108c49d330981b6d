//! `Counters`: the plain request and token counts of a run, mergeable.

/// Request and token counts. All fields count measured requests only (warm-up excluded) unless
/// the field name says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests started in the measured window.
    pub started: u64,
    /// Requests that completed successfully.
    pub succeeded: u64,
    /// Successful requests that carried content (the population of TTFT).
    pub succeeded_with_content: u64,
    /// Requests that ended with an error (cancelled ones are not failures).
    pub failed: u64,
    /// Requests cancelled because the run stopped while they were in flight.
    pub cancelled: u64,
    /// Arrivals the schedule wanted that never started, for any of the reasons below
    /// (`missed_dropped_at_cap + missed_queued_at_stop + missed_skipped_slots`).
    pub missed: u64,
    /// Open loop, `--on-saturation drop`: arrivals dropped because the in-flight cap was reached.
    pub missed_dropped_at_cap: u64,
    /// Open loop, `--on-saturation queue`: arrivals still waiting for a slot at the in-flight cap
    /// when the run stopped (due before the stop, never sent).
    pub missed_queued_at_stop: u64,
    /// Fixed-interval: slots skipped because an earlier iteration of the same user overran them.
    pub missed_skipped_slots: u64,
    /// Arrivals that waited for a free slot at the in-flight cap and started late.
    pub queued_late: u64,
    /// Requests started during warm-up (not in any other counter or histogram).
    pub warmup: u64,
    /// Warm-up arrivals that never started (not in `missed`).
    pub warmup_missed: u64,
    /// Warm-up requests that succeeded (the timeline includes them; no statistic does).
    pub warmup_succeeded: u64,
    /// Warm-up requests that failed.
    pub warmup_failed: u64,
    /// Warm-up requests cancelled because the run stopped.
    pub warmup_cancelled: u64,
    /// Output tokens of successful warm-up requests.
    pub warmup_output_tokens: u64,
    /// Fixed-interval iterations that started late because the previous one overran.
    pub overruns: u64,
    /// Input (prompt) tokens, as reported by the server.
    pub input_tokens: u64,
    /// Output tokens: from server usage when reported, else counted content chunks.
    pub output_tokens: u64,
    /// Requests whose output tokens came from the server's usage report.
    pub tokens_from_server: u64,
    /// Requests whose output tokens were counted from content chunks.
    pub tokens_counted: u64,
    /// Content chunks received.
    pub content_chunks: u64,
    /// Requests that failed on a reused keep-alive connection before any response byte (the
    /// server had closed it) and were sent again once on a new connection.
    pub stale_connection_retries: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Successful requests whose own values met every goodput target (0 when no targets).
    pub goodput: u64,
    /// Closed loop with Retry-After respected: times a user waited as the server asked.
    pub retry_after_waits: u64,
    /// Milliseconds those waits took in all.
    pub retry_after_wait_ms: u64,
}

impl Counters {
    /// Adds every field of `other` to `self`.
    pub fn merge(&mut self, other: &Counters) {
        let Counters {
            started,
            succeeded,
            succeeded_with_content,
            failed,
            cancelled,
            missed,
            missed_dropped_at_cap,
            missed_queued_at_stop,
            missed_skipped_slots,
            queued_late,
            warmup,
            warmup_missed,
            warmup_succeeded,
            warmup_failed,
            warmup_cancelled,
            warmup_output_tokens,
            overruns,
            input_tokens,
            output_tokens,
            tokens_from_server,
            tokens_counted,
            content_chunks,
            stale_connection_retries,
            bytes,
            goodput,
            retry_after_waits,
            retry_after_wait_ms,
        } = *other;
        self.started += started;
        self.succeeded += succeeded;
        self.succeeded_with_content += succeeded_with_content;
        self.failed += failed;
        self.cancelled += cancelled;
        self.missed += missed;
        self.missed_dropped_at_cap += missed_dropped_at_cap;
        self.missed_queued_at_stop += missed_queued_at_stop;
        self.missed_skipped_slots += missed_skipped_slots;
        self.queued_late += queued_late;
        self.warmup += warmup;
        self.warmup_missed += warmup_missed;
        self.warmup_succeeded += warmup_succeeded;
        self.warmup_failed += warmup_failed;
        self.warmup_cancelled += warmup_cancelled;
        self.warmup_output_tokens += warmup_output_tokens;
        self.overruns += overruns;
        self.input_tokens += input_tokens;
        self.output_tokens += output_tokens;
        self.tokens_from_server += tokens_from_server;
        self.tokens_counted += tokens_counted;
        self.content_chunks += content_chunks;
        self.stale_connection_retries += stale_connection_retries;
        self.bytes += bytes;
        self.goodput += goodput;
        self.retry_after_waits += retry_after_waits;
        self.retry_after_wait_ms += retry_after_wait_ms;
    }

    /// Requests that finished, successfully or not (cancelled ones excluded).
    pub fn completed(&self) -> u64 {
        self.succeeded + self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_field() {
        let a = Counters {
            started: 3,
            failed: 1,
            bytes: 10,
            ..Counters::default()
        };
        let mut b = Counters {
            started: 2,
            succeeded: 2,
            bytes: 5,
            ..Counters::default()
        };
        b.merge(&a);
        assert_eq!(b.started, 5);
        assert_eq!(b.completed(), 3);
        assert_eq!(b.bytes, 15);
    }
}
