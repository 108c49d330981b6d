//! `Player`: one listener's audio player, simulated in real time on the engine's clock. Blocks
//! are requested in batches, played in index order from the first one's arrival, each for its
//! audio's duration; the next block missing when the audio before it ran out is an underrun.
//!
//! Nothing here sleeps or reads a clock: the client passes the instants (`tokio`'s, the
//! engine's clock), so the arithmetic is tested without a server.

use std::ops::Range;
use std::time::Duration;

use tokio::time::Instant;

/// What one block's arrival meant for the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// Time since the later of the previous block's arrival and its batch's request: the
    /// server's time for this block alone, not the player's wait between batches.
    pub(crate) synthesis: Duration,
    /// The listener heard nothing for this long before playback resumed with this block.
    pub(crate) underrun: Option<Duration>,
    /// Playback started with this arrival (block 0 arrived): time to first audio.
    pub(crate) first_audio: bool,
}

/// A block the player cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlayerError {
    /// An index outside the document, or one not requested yet.
    #[error("audio for block {0}, which was not requested")]
    NotRequested(u64),
    /// The same block twice.
    #[error("audio for block {0} twice")]
    Duplicate(u64),
}

/// One listener's player.
#[derive(Debug)]
pub(crate) struct Player {
    prefetch: usize,
    refill_below: Duration,
    /// Per block: its audio duration once it arrived.
    blocks: Vec<Option<Duration>>,
    /// The first block not yet requested.
    next_request: usize,
    /// Blocks of the batch in flight not yet arrived (0: no batch in flight).
    outstanding: usize,
    /// When the batch in flight was requested.
    batch_sent: Option<Instant>,
    last_arrival: Option<Instant>,
    /// The first block not yet queued for playback.
    next_play: usize,
    /// When the audio queued so far finishes playing (`None` before block 0).
    play_end: Option<Instant>,
    received: usize,
    underruns: u64,
    underrun_total: Duration,
    audio_total: Duration,
}

impl Player {
    /// A player for a document of `blocks` blocks, requested `prefetch` at a time, the next
    /// batch when less than `refill_below` of audio is left to play.
    pub(crate) fn new(blocks: usize, prefetch: usize, refill_below: Duration) -> Self {
        Self {
            prefetch: prefetch.max(1),
            refill_below,
            blocks: vec![None; blocks],
            next_request: 0,
            outstanding: 0,
            batch_sent: None,
            last_arrival: None,
            next_play: 0,
            play_end: None,
            received: 0,
            underruns: 0,
            underrun_total: Duration::ZERO,
            audio_total: Duration::ZERO,
        }
    }

    /// `true` once every block arrived.
    pub(crate) fn finished(&self) -> bool {
        self.received == self.blocks.len()
    }

    /// `true` while a batch is in flight.
    pub(crate) fn waiting(&self) -> bool {
        self.outstanding > 0
    }

    /// When the next batch is due (`None`: a batch is in flight, or every block was
    /// requested): when the audio left to play falls below the refill level, or at once
    /// before playback started (`now`).
    pub(crate) fn refill_at(&self, now: Instant) -> Option<Instant> {
        if self.outstanding > 0 || self.next_request >= self.blocks.len() {
            return None;
        }
        Some(match self.play_end {
            // Before block 0 nothing plays: ask at once (the first batch).
            None => now,
            Some(end) => end.checked_sub(self.refill_below).unwrap_or(end),
        })
    }

    /// The next batch's block indexes, requested at `now`; `None` when one is in flight or
    /// none is left.
    pub(crate) fn request(&mut self, now: Instant) -> Option<Range<usize>> {
        if self.outstanding > 0 || self.next_request >= self.blocks.len() {
            return None;
        }
        let start = self.next_request;
        let end = (start + self.prefetch).min(self.blocks.len());
        self.next_request = end;
        self.outstanding = end - start;
        self.batch_sent = Some(now);
        Some(start..end)
    }

    /// Block `index` arrived at `now` with `audio` of sound.
    pub(crate) fn arrive(
        &mut self,
        index: u64,
        audio: Duration,
        now: Instant,
    ) -> Result<Arrival, PlayerError> {
        let i = usize::try_from(index)
            .ok()
            .filter(|&i| i < self.next_request)
            .ok_or(PlayerError::NotRequested(index))?;
        if self.blocks[i].is_some() {
            return Err(PlayerError::Duplicate(index));
        }
        self.blocks[i] = Some(audio);
        self.received += 1;
        self.outstanding = self.outstanding.saturating_sub(1);
        self.audio_total += audio;
        let from = match (self.last_arrival, self.batch_sent) {
            (Some(last), Some(sent)) => last.max(sent),
            (None, Some(sent)) => sent,
            (last, None) => last.unwrap_or(now),
        };
        self.last_arrival = Some(now);
        let mut arrival = Arrival {
            synthesis: now.saturating_duration_since(from),
            underrun: None,
            first_audio: false,
        };
        // Queue for playback every block now contiguous with what plays.
        while let Some(Some(d)) = self.blocks.get(self.next_play).copied() {
            self.play_end = Some(match self.play_end {
                None => {
                    arrival.first_audio = true;
                    now + d
                }
                Some(end) if now > end => {
                    let gap = now - end;
                    self.underruns += 1;
                    self.underrun_total += gap;
                    arrival.underrun = Some(gap);
                    now + d
                }
                Some(end) => end + d,
            });
            self.next_play += 1;
        }
        Ok(arrival)
    }

    /// Blocks arrived.
    pub(crate) fn received(&self) -> usize {
        self.received
    }

    /// Underruns so far, and their total silence.
    pub(crate) fn underruns(&self) -> (u64, Duration) {
        (self.underruns, self.underrun_total)
    }

    /// Audio received so far.
    pub(crate) fn audio_total(&self) -> Duration {
        self.audio_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_server_faster_than_playback_never_starves_the_listener() {
        let t0 = Instant::now();
        let mut p = Player::new(6, 3, 2 * S);
        assert!(p.refill_at(t0).is_some(), "the first batch is due at once");
        assert_eq!(p.request(t0), Some(0..3));
        assert_eq!(p.request(t0), None, "one batch in flight at a time");
        assert_eq!(p.refill_at(t0), None);
        let a = p.arrive(0, S, t0 + ms(100)).unwrap();
        assert!(a.first_audio);
        assert_eq!(a.synthesis, ms(100));
        assert_eq!(p.arrive(1, S, t0 + ms(150)).unwrap().synthesis, ms(50));
        p.arrive(2, S, t0 + ms(200)).unwrap();
        // 3 s of audio from 100 ms: ends at 3.1 s; refill when 2 s are left, at 1.1 s.
        assert_eq!(p.refill_at(t0), Some(t0 + ms(1100)));
        assert_eq!(p.request(t0 + ms(1100)), Some(3..6));
        // The first block of a batch is timed from the batch's request, not from the last
        // block of the batch before (the player's own wait).
        assert_eq!(p.arrive(3, S, t0 + ms(1200)).unwrap().synthesis, ms(100));
        p.arrive(4, S, t0 + ms(1250)).unwrap();
        p.arrive(5, S, t0 + ms(1300)).unwrap();
        assert!(p.finished());
        assert_eq!(p.underruns(), (0, Duration::ZERO));
        assert_eq!(p.audio_total(), 6 * S);
        assert_eq!(p.refill_at(t0), None);
    }

    #[test]
    fn a_block_late_past_the_end_of_the_audio_is_an_underrun_of_the_wait() {
        let t0 = Instant::now();
        let mut p = Player::new(3, 3, ms(500));
        p.request(t0);
        p.arrive(0, ms(200), t0 + ms(100)).unwrap(); // plays until 300 ms
        let late = p.arrive(1, ms(200), t0 + ms(450)).unwrap();
        assert_eq!(late.underrun, Some(ms(150)));
        assert_eq!(late.synthesis, ms(350));
        // Block 2 arrives while block 1 plays (until 650 ms): no underrun.
        assert_eq!(p.arrive(2, ms(200), t0 + ms(600)).unwrap().underrun, None);
        assert_eq!(p.underruns(), (1, ms(150)));
    }

    #[test]
    fn out_of_order_blocks_wait_for_the_one_before_them() {
        let t0 = Instant::now();
        let mut p = Player::new(3, 3, ms(100));
        p.request(t0);
        // Block 2 first: nothing plays yet.
        let early = p.arrive(2, ms(300), t0 + ms(50)).unwrap();
        assert!(!early.first_audio);
        assert!(!p.arrive(1, ms(300), t0 + ms(60)).unwrap().first_audio);
        // Block 0 starts playback, with 1 and 2 queued behind it: 900 ms from 80 ms.
        let first = p.arrive(0, ms(300), t0 + ms(80)).unwrap();
        assert!(first.first_audio);
        assert_eq!(first.underrun, None);
        assert!(p.finished());
        assert_eq!(p.underruns().0, 0);
    }

    #[test]
    fn cached_audio_is_refilled_when_the_buffer_runs_low_not_never() {
        // Every block arrives the instant it is asked for: the refill time is still reached
        // (the buffer drains as it plays), so the document completes.
        let t0 = Instant::now();
        let mut p = Player::new(5, 2, ms(1500));
        let mut now = t0;
        while !p.finished() {
            let due = p
                .refill_at(t0)
                .expect("a batch is due whenever none is in flight");
            now = now.max(due);
            for i in p.request(now).unwrap() {
                p.arrive(i as u64, S, now).unwrap();
            }
        }
        // Batches at 0 s (2 s queued), 0.5 s (4 s, ends 4 s), 2.5 s (block 4).
        assert_eq!(now, t0 + ms(2500));
        assert_eq!(p.underruns().0, 0);
    }

    #[test]
    fn blocks_not_asked_for_or_twice_are_refused() {
        let t0 = Instant::now();
        let mut p = Player::new(4, 2, S);
        p.request(t0);
        assert_eq!(p.arrive(2, S, t0), Err(PlayerError::NotRequested(2)));
        assert_eq!(p.arrive(9, S, t0), Err(PlayerError::NotRequested(9)));
        p.arrive(0, S, t0).unwrap();
        assert_eq!(p.arrive(0, S, t0), Err(PlayerError::Duplicate(0)));
        assert_eq!(p.received(), 1);
    }
}
