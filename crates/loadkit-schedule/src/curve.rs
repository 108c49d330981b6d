//! Open-loop arrivals from a piecewise-linear rate curve, placed by integrating the rate exactly
//! (no time stepping): with `Λ(t) = ∫₀ᵗ rate`, arrival `k` (`k = 0, 1, 2, …`) is at the first
//! instant where `Λ` exceeds `k`, `t_k = inf { t : Λ(t) > k }`.
//!
//! Inside a piece starting at `t₀` with rate `r₀` and slope `a`, `Λ(t₀ + τ) = Λ(t₀) + r₀τ + aτ²/2`,
//! so `τ = 2d / (r₀ + √(r₀² + 2ad))` with `d = k − Λ(t₀)`: the cancellation-free root of the
//! quadratic, which is also exact for `a = 0` (`τ = d/r₀`).

use std::fmt;
use std::iter::Peekable;
use std::time::Duration;

use crate::num::from_secs;

/// A piece of a rate curve: the rate goes linearly from `from` to `to` over `len` seconds,
/// starting at `start` seconds. A piece of infinite length has a constant rate (`from`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Piece {
    pub(crate) start: f64,
    pub(crate) len: f64,
    pub(crate) from: f64,
    pub(crate) to: f64,
}

impl Piece {
    /// The number of arrivals the piece holds: `∫ rate` over it.
    pub(crate) fn area(&self) -> f64 {
        if self.len.is_infinite() {
            if self.from > 0.0 {
                f64::INFINITY
            } else {
                0.0
            }
        } else {
            (self.from + self.to) * 0.5 * self.len
        }
    }

    /// The offset `τ` in `[0, len]` into the piece where `∫ rate` reaches `d` (`0 ≤ d < area`).
    fn solve(&self, d: f64) -> f64 {
        if d <= 0.0 {
            return 0.0;
        }
        let tau = if self.len.is_infinite() || self.from == self.to {
            d / self.from
        } else {
            let slope = (self.to - self.from) / self.len;
            let disc = (self.from * self.from + 2.0 * slope * d).max(0.0);
            let den = self.from + disc.sqrt();
            if den > 0.0 {
                2.0 * d / den
            } else {
                self.len
            }
        };
        tau.clamp(0.0, self.len)
    }
}

/// A rate curve as consecutive pieces, asked for in order `0, 1, 2, …` (each index once);
/// `None` ends the curve (no arrivals after it).
pub(crate) trait RateCurve: Clone + fmt::Debug + Send {
    fn piece(&mut self, index: u64) -> Option<Piece>;
}

/// A finite list of pieces.
#[derive(Debug, Clone)]
pub(crate) struct Pieces(pub(crate) Vec<Piece>);

impl RateCurve for Pieces {
    fn piece(&mut self, index: u64) -> Option<Piece> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.0.get(i))
            .copied()
    }
}

/// The arrivals of a rate curve, in order.
#[derive(Debug, Clone)]
pub(crate) struct CurveArrivals<C> {
    curve: C,
    index: u64,
    piece: Option<Piece>,
    /// `Λ` at the start of the current piece.
    before: f64,
    /// The index `k` of the next arrival.
    next: u64,
    last: Duration,
}

impl<C: RateCurve> CurveArrivals<C> {
    pub(crate) fn new(curve: C) -> Self {
        Self {
            curve,
            index: 0,
            piece: None,
            before: 0.0,
            next: 0,
            last: Duration::ZERO,
        }
    }
}

impl<C: RateCurve> Iterator for CurveArrivals<C> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let k = self.next as f64;
        loop {
            let piece = match self.piece {
                Some(p) => p,
                None => {
                    let p = self.curve.piece(self.index)?;
                    self.piece = Some(p);
                    p
                }
            };
            let area = piece.area();
            if self.before + area > k {
                let t = piece.start + piece.solve(k - self.before);
                self.next += 1;
                // Rounding can never make offsets go backwards.
                self.last = from_secs(t).max(self.last);
                return Some(self.last);
            }
            self.before += area;
            self.index += 1;
            self.piece = None;
        }
    }
}

/// Evenly spaced arrivals: arrival `i` at `i / rate` seconds, computed from `i` (no drift).
#[derive(Debug, Clone)]
pub(crate) struct Even {
    pub(crate) rate: f64,
    pub(crate) next: u64,
}

impl Iterator for Even {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let at = from_secs(self.next as f64 / self.rate);
        self.next += 1;
        Some(at)
    }
}

/// The merge of two ordered arrival streams; on a tie, `b` (the burst stream) goes first.
#[derive(Debug, Clone)]
pub(crate) struct Merge<A: Iterator<Item = Duration>, B: Iterator<Item = Duration>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<A: Iterator<Item = Duration>, B: Iterator<Item = Duration>> Merge<A, B> {
    pub(crate) fn new(a: A, b: B) -> Self {
        Self {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = Duration>, B: Iterator<Item = Duration>> Iterator for Merge<A, B> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) if a < b => self.a.next(),
            (_, Some(_)) => self.b.next(),
            (_, None) => self.a.next(),
        }
    }
}

/// `Λ(t)` of a finite list of pieces, for tests.
#[cfg(test)]
pub(crate) fn integral(pieces: &[Piece], t: f64) -> f64 {
    let mut total = 0.0;
    for p in pieces {
        if t <= p.start {
            break;
        }
        let tau = (t - p.start).min(p.len);
        let rate_end = if p.len.is_infinite() {
            p.from
        } else {
            p.from + (p.to - p.from) * tau / p.len
        };
        total += (p.from + rate_end) * 0.5 * tau;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::secs;

    fn piece(start: f64, len: f64, from: f64, to: f64) -> Piece {
        Piece {
            start,
            len,
            from,
            to,
        }
    }

    /// Every arrival `k` sits where `Λ = k` (to 1e-9 arrivals), and offsets never decrease.
    fn check_exact(pieces: Vec<Piece>, n: usize) {
        let arrivals: Vec<Duration> = CurveArrivals::new(Pieces(pieces.clone())).take(n).collect();
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
        for (k, at) in arrivals.iter().enumerate() {
            let lambda = integral(&pieces, secs(*at));
            // Rounding to the nanosecond is worth at most (max rate × 1e-9) arrivals.
            let max_rate = pieces.iter().map(|p| p.from.max(p.to)).fold(0.0, f64::max);
            let tolerance = 1e-9 + max_rate * 1e-9;
            assert!(
                (lambda - k as f64).abs() < tolerance,
                "arrival {k} at {at:?}: Λ = {lambda}"
            );
        }
    }

    #[test]
    fn arrivals_sit_where_the_integral_reaches_k() {
        check_exact(vec![piece(0.0, f64::INFINITY, 7.0, 7.0)], 1000);
        check_exact(
            vec![
                piece(0.0, 10.0, 0.0, 100.0),
                piece(10.0, f64::INFINITY, 100.0, 100.0),
            ],
            3000,
        );
        check_exact(
            vec![piece(0.0, 10.0, 100.0, 3.0), piece(10.0, 5.0, 3.0, 3.0)],
            500,
        );
        check_exact(
            vec![piece(0.0, 1.0, 1e6, 1e6), piece(1.0, 1.0, 1e6, 0.0)],
            1_400_000,
        );
    }

    #[test]
    fn zero_rate_pieces_hold_no_arrivals_and_a_finite_curve_ends() {
        let pieces = vec![
            piece(0.0, 2.0, 0.0, 0.0),
            piece(2.0, 1.0, 4.0, 4.0),
            piece(3.0, 1.0, 0.0, 0.0),
        ];
        let got: Vec<Duration> = CurveArrivals::new(Pieces(pieces)).collect();
        let ms = Duration::from_millis;
        assert_eq!(got, [ms(2000), ms(2250), ms(2500), ms(2750)]);
    }

    #[test]
    fn a_rate_falling_to_zero_forever_ends_the_stream() {
        let pieces = vec![
            piece(0.0, 4.0, 2.0, 0.0),
            piece(4.0, f64::INFINITY, 0.0, 0.0),
        ];
        assert_eq!(CurveArrivals::new(Pieces(pieces)).count(), 4);
    }

    #[test]
    fn merge_orders_two_streams_and_puts_b_first_on_ties() {
        let ms = Duration::from_millis;
        let a = [ms(0), ms(5), ms(10)].into_iter();
        let b = [ms(5), ms(7)].into_iter();
        let got: Vec<Duration> = Merge::new(a, b).collect();
        assert_eq!(got, [ms(0), ms(5), ms(5), ms(7), ms(10)]);
    }
}
