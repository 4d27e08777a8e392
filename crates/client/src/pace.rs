//! How far ahead a sequential reader should read: twice the bandwidth-delay product of its
//! READs, measured from the READs themselves (no clock is read here; the caller passes the
//! times, so the logic is tested with made-up ones).
//!
//! A window larger than the bandwidth-delay product adds nothing: the READs past it only
//! wait in the server's queue (their round trip grows with the window, the rate does not),
//! while their buffers push the reader's data out of the processor's caches. A 1 GiB copy
//! from nfs-ganesha on tmpfs over loopback took 0.44 s with 8 MiB read ahead and 0.39 s
//! with 1-2 MiB, and it is on links with a long round trip that a large window pays.
//!
//! The estimate follows BBR (Cardwell et al., "BBR: congestion-based congestion control",
//! ACM Queue 2016): the delivery rate of a READ is the bytes that came back between its
//! send and its reply, over that time; the bandwidth is the largest recent rate; the delay
//! is the shortest round trip of a READ of the stream's (largest) size. With twice their
//! product in flight, a window held back by the link's latency still doubles each round
//! (the rate grows with it); a window at the server's or the link's limit stops growing.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Completions remembered for rate samples (a READ's sample counts those that came back
/// while it was in flight; more READs than this in flight is a window of 256 READs).
const RECENT: usize = 256;

/// Rate samples the bandwidth is the largest of (a few windows' worth).
const RATES: usize = 32;

/// A shortest round trip older than this is replaced by the next one measured (the path
/// or the server's load may have changed).
const RTT_EXPIRY: Duration = Duration::from_secs(10);

/// One READ of the stream: sent, answered, bytes it brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) sent: Instant,
    pub(crate) done: Instant,
    pub(crate) bytes: u64,
}

/// The estimator of one sequential stream.
#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// Recent completions, by reply time.
    recent: VecDeque<Span>,
    /// Recent delivery rates, bytes per second.
    rates: VecDeque<f64>,
    /// Shortest round trip of a READ of `rtt_bytes` bytes, and when it was measured.
    min_rtt: Option<(Duration, Instant)>,
    rtt_bytes: u64,
}

impl Pace {
    /// Forgets everything (the stream ended: a read elsewhere in the file).
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Takes READs that completed, in any order.
    pub(crate) fn on_done(&mut self, spans: &mut [Span]) {
        spans.sort_by_key(|s| s.done);
        for s in spans.iter() {
            let Some(rtt) = s.done.checked_duration_since(s.sent) else {
                continue;
            };
            if rtt.is_zero() || s.bytes == 0 {
                continue;
            }
            if self.recent.len() == RECENT {
                self.recent.pop_front();
            }
            self.recent.push_back(*s);
            // Delivered while this READ was in flight, itself included.
            let delivered: u64 = self
                .recent
                .iter()
                .rev()
                .take_while(|o| o.done > s.sent)
                .map(|o| o.bytes)
                .sum();
            if self.rates.len() == RATES {
                self.rates.pop_front();
            }
            self.rates.push_back(delivered as f64 / rtt.as_secs_f64());
            // The round trip of a READ grows with its size: only READs of the largest size
            // seen give the delay (a short READ at the end of the file does not lower it).
            let expired = self
                .min_rtt
                .is_some_and(|(_, at)| s.done.saturating_duration_since(at) > RTT_EXPIRY);
            let better = match self.min_rtt {
                None => true,
                Some((m, _)) => s.bytes > self.rtt_bytes || (s.bytes == self.rtt_bytes && rtt < m),
            };
            if s.bytes >= self.rtt_bytes && (better || expired) {
                self.min_rtt = Some((rtt, s.done));
                self.rtt_bytes = s.bytes;
            }
        }
    }

    /// The bandwidth-delay product in bytes, once a READ has completed.
    pub(crate) fn bdp(&self) -> Option<u64> {
        let (rtt, _) = self.min_rtt?;
        let rate = self.rates.iter().copied().fold(0.0, f64::max);
        Some((rate * rtt.as_secs_f64()) as u64)
    }

    /// The window to keep in flight: twice the bandwidth-delay product, at least `floor`
    /// bytes; `None` before any measurement.
    pub(crate) fn window(&self, floor: u64) -> Option<u64> {
        self.bdp().map(|b| b.saturating_mul(2).max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Runs rounds of a stream that keeps `window(floor)` bytes in flight (starting at
    /// `start`) over a link answering a READ of `size` bytes sent at `t` with `reply(...)`;
    /// returns the window after `rounds` rounds.
    fn run(
        size: u64,
        start: u64,
        rounds: usize,
        mut reply: impl FnMut(Instant, usize, usize) -> Instant,
    ) -> u64 {
        let mut p = Pace::default();
        let mut t = Instant::now();
        let mut window = start;
        for _ in 0..rounds {
            let n = window.div_ceil(size) as usize;
            let mut spans: Vec<Span> = (0..n)
                .map(|i| Span {
                    sent: t,
                    done: reply(t, i, n),
                    bytes: size,
                })
                .collect();
            t = spans.iter().map(|s| s.done).max().unwrap_or(t);
            p.on_done(&mut spans);
            window = p.window(2 * size).unwrap();
        }
        window
    }

    #[test]
    fn nothing_measured_no_window() {
        let mut p = Pace::default();
        assert_eq!(p.window(MIB), None);
        let t = Instant::now();
        // A reply at the instant of the call, or an empty one, says nothing.
        p.on_done(&mut [
            Span {
                sent: t,
                done: t,
                bytes: MIB,
            },
            Span {
                sent: t,
                done: t + ms(1),
                bytes: 0,
            },
        ]);
        assert_eq!(p.window(MIB), None);
    }

    #[test]
    fn a_window_held_back_by_latency_doubles_each_round() {
        // 20 ms away, the server answers every READ 20 ms after it was sent, however many
        // are in flight: the rate is the window over 20 ms, and the window doubles.
        let w = run(MIB, 2 * MIB, 1, |t, _, _| t + ms(20));
        assert_eq!(w, 4 * MIB);
        let w = run(MIB, 2 * MIB, 4, |t, _, _| t + ms(20));
        assert_eq!(w, 32 * MIB);
    }

    #[test]
    fn a_window_at_the_servers_limit_stops_growing() {
        // A server doing one READ at a time, 0.4 ms each: READs sent together come back
        // one after the other. Twice the bandwidth-delay product is two READs.
        for start in [2 * MIB, 8 * MIB, 32 * MIB] {
            let w = run(MIB, start, 6, |t, i, _| {
                t + Duration::from_micros(400 * (i as u64 + 1))
            });
            assert_eq!(w, 2 * MIB, "from {start}");
        }
        // Two at a time (two cores): four READs.
        let w = run(MIB, 2 * MIB, 6, |t, i, _| {
            t + Duration::from_micros(400 * (i as u64 / 2 + 1))
        });
        assert_eq!(w, 4 * MIB);
    }

    #[test]
    fn a_link_with_latency_and_a_bandwidth_limit_settles_at_twice_its_product() {
        // 10 ms of latency, 100 MB/s: a READ of 1 MiB takes 10 ms + its transfer, READs in
        // flight share the bandwidth. The product is about 1 MB; the window ends at about
        // twice that, rounded to READs.
        let bw = 100e6;
        let w = run(MIB, 2 * MIB, 10, |t, i, _| {
            let transfer = Duration::from_secs_f64((i as f64 + 1.0) * MIB as f64 / bw);
            t + ms(10) + transfer
        });
        assert!((2 * MIB..=4 * MIB).contains(&w), "window {w}");
    }

    #[test]
    fn short_reads_do_not_lower_the_delay_and_larger_reads_replace_it() {
        let mut p = Pace::default();
        let t = Instant::now();
        p.on_done(&mut [Span {
            sent: t,
            done: t + ms(10),
            bytes: MIB,
        }]);
        let before = p.bdp().unwrap();
        // A short READ (end of file) with a shorter round trip: the delay stays.
        p.on_done(&mut [Span {
            sent: t + ms(10),
            done: t + ms(11),
            bytes: 4096,
        }]);
        assert_eq!(p.min_rtt.unwrap().0, ms(10));
        assert!(p.bdp().unwrap() >= before);
        // A larger READ: its round trip is the delay now, even if longer.
        p.on_done(&mut [Span {
            sent: t + ms(11),
            done: t + ms(31),
            bytes: 4 * MIB,
        }]);
        assert_eq!((p.min_rtt.unwrap().0, p.rtt_bytes), (ms(20), 4 * MIB));
    }

    #[test]
    fn an_old_shortest_round_trip_expires() {
        let mut p = Pace::default();
        let t = Instant::now();
        p.on_done(&mut [Span {
            sent: t,
            done: t + ms(1),
            bytes: MIB,
        }]);
        p.on_done(&mut [Span {
            sent: t + ms(100),
            done: t + ms(105),
            bytes: MIB,
        }]);
        assert_eq!(p.min_rtt.unwrap().0, ms(1));
        let late = t + RTT_EXPIRY + ms(200);
        p.on_done(&mut [Span {
            sent: late,
            done: late + ms(5),
            bytes: MIB,
        }]);
        assert_eq!(p.min_rtt.unwrap().0, ms(5));
        p.reset();
        assert_eq!(p.bdp(), None);
    }

    #[test]
    fn memory_stays_bounded() {
        let mut p = Pace::default();
        let t = Instant::now();
        for i in 0..10 * RECENT as u64 {
            p.on_done(&mut [Span {
                sent: t + ms(i),
                done: t + ms(i + 1),
                bytes: MIB,
            }]);
        }
        assert_eq!((p.recent.len(), p.rates.len()), (RECENT, RATES));
    }
}
