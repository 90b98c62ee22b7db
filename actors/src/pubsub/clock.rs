//! How far a server's clock is from ours, estimated from HTTP round trips as NTP does: we note
//! our clock when we ask and when the answer comes, the server notes its clock in between. Its
//! clock then lay within that round trip, so the offset is known to within half of it; the
//! shortest of several round trips gives the tightest bound.

use chrono::{DateTime, Utc};

/// This process's wall clock read against its monotonic clock once, so that every instant maps to
/// a wall time the same way (rows of one iteration stay in the order they happened, whatever NTP
/// does meanwhile).
#[derive(Clone, Copy, Debug)]
pub struct WallClock {
    wall: DateTime<Utc>,
    instant: tokio::time::Instant,
}

impl WallClock {
    /// Reads both clocks now: the wall clock between two monotonic reads, keeping the tightest
    /// of a few tries and pairing it with their midpoint. A single pair of reads is off by
    /// whatever passed between them, a preemption included (0.2 ms was seen on a loaded CI
    /// machine, beyond the microseconds of a round trip's bound on the same host).
    pub fn now() -> Self {
        const TRIES: usize = 64;
        // Tighter than this cannot be improved on: the reads themselves take about as long.
        const GOOD_ENOUGH: std::time::Duration = std::time::Duration::from_micros(2);
        let read = || {
            let before = tokio::time::Instant::now();
            let wall = Utc::now();
            let bracket = before.elapsed();
            let instant = before + bracket / 2;
            (bracket, Self { wall, instant })
        };
        let mut best = read();
        for _ in 1..TRIES {
            if best.0 <= GOOD_ENOUGH {
                break;
            }
            let next = read();
            if next.0 < best.0 {
                best = next;
            }
        }
        best.1
    }

    /// This process's one reading, taken when first asked for. Every instant of the process maps
    /// to wall time through it, so two instants of one process compare exactly (their difference
    /// is the monotonic one: a publisher and a receiver in one process share a clock with no
    /// uncertainty), and a server's `/pubsub/clock` answer is on the timeline of the timestamps
    /// it reports. (Two separate readings differ by whatever passed between their two clock
    /// reads, a preemption included.)
    pub fn process() -> Self {
        static CLOCK: std::sync::OnceLock<WallClock> = std::sync::OnceLock::new();
        *CLOCK.get_or_init(WallClock::now)
    }

    /// The wall time of monotonic `instant` (before or after the reading).
    pub fn at(&self, instant: tokio::time::Instant) -> DateTime<Utc> {
        let delta = |d| chrono::Duration::from_std(d).unwrap_or_default();
        if instant >= self.instant {
            self.wall + delta(instant - self.instant)
        } else {
            self.wall - delta(self.instant - instant)
        }
    }
}

/// One exchange with the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockSample {
    /// Our clock when the request left.
    pub sent: DateTime<Utc>,
    /// The server's clock while it answered.
    pub server: DateTime<Utc>,
    /// Our clock when the answer came.
    pub received: DateTime<Utc>,
}

/// The server's clock minus ours, and the bound of the estimate's error (seconds): the true
/// offset lies in `offset ± uncertainty`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockOffset {
    pub offset: f64,
    pub uncertainty: f64,
}

impl ClockOffset {
    /// One shared clock.
    pub const NONE: ClockOffset = ClockOffset {
        offset: 0.0,
        uncertainty: 0.0,
    };

    /// Our clock's time of the server's instant `at`.
    pub fn to_ours(self, at: DateTime<Utc>) -> DateTime<Utc> {
        at - chrono::Duration::nanoseconds((self.offset * 1e9).round() as i64)
    }
}

fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_nanoseconds().map_or(f64::MAX, |n| n as f64 / 1e9)
}

/// The estimate from the exchange with the shortest round trip (`None` without a sample whose
/// answer came after its request).
pub fn estimate(samples: &[ClockSample]) -> Option<ClockOffset> {
    let best = samples
        .iter()
        .filter(|s| s.received >= s.sent)
        .min_by_key(|s| s.received - s.sent)?;
    let half_trip = seconds(best.received - best.sent) / 2.0;
    let midpoint = best.sent + (best.received - best.sent) / 2;
    Some(ClockOffset {
        offset: seconds(best.server - midpoint),
        uncertainty: half_trip,
    })
}

/// A latency measured across two clocks: from `sent` on the publisher's clock to `received` on
/// the receiver's, each corrected by its offset against ours; the bounds add up.
pub fn corrected_latency(
    sent: DateTime<Utc>,
    publisher: ClockOffset,
    received: DateTime<Utc>,
    receiver: ClockOffset,
) -> (f64, f64) {
    let latency = seconds(receiver.to_ours(received) - publisher.to_ours(sent));
    (latency, publisher.uncertainty + receiver.uncertainty)
}

/// A copy that, by the corrected clocks, arrived before it was sent by more than the clocks'
/// bounds allow: the offsets are wrong, and the copy measures no latency.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "clock error: by the corrected clocks the copy arrived {early_by:.3} s before it was sent, \
     beyond their ±{bound:.3} s bound"
)]
pub struct ClockError {
    /// How long before the send the copy arrived, by the corrected clocks (seconds).
    pub early_by: f64,
    /// The clocks' combined bound (seconds).
    pub bound: f64,
}

/// The latency of a copy across two clocks ([`corrected_latency`]) with its bound. A negative
/// latency within the bound is 0 s (the clocks cannot tell it apart); beyond it, a
/// [`ClockError`].
pub fn delivery_latency(
    sent: DateTime<Utc>,
    publisher: ClockOffset,
    received: DateTime<Utc>,
    receiver: ClockOffset,
) -> Result<(std::time::Duration, f64), ClockError> {
    let (latency, bound) = corrected_latency(sent, publisher, received, receiver);
    if latency < -bound {
        return Err(ClockError {
            early_by: -latency,
            bound,
        });
    }
    Ok((std::time::Duration::from_secs_f64(latency.max(0.0)), bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn instants_before_and_after_the_reading_map_to_wall_times_alike() {
        let clock = WallClock::now();
        let second = std::time::Duration::from_secs(1);
        let after = clock.at(clock.instant + second);
        let before = clock.at(clock.instant - second);
        assert_eq!(after - clock.wall, chrono::Duration::seconds(1));
        assert_eq!(clock.wall - before, chrono::Duration::seconds(1));
    }

    #[test]
    fn the_shortest_round_trip_bounds_the_offset() {
        // The server runs 5 s ahead; the second exchange took 4 ms, the first 40 ms.
        let samples = [
            ClockSample {
                sent: at(1_000),
                server: at(6_030),
                received: at(1_040),
            },
            ClockSample {
                sent: at(2_000),
                server: at(7_001),
                received: at(2_004),
            },
        ];
        let estimate = estimate(&samples).unwrap();
        assert!((estimate.offset - 4.999).abs() < 1e-9, "{estimate:?}");
        assert!((estimate.uncertainty - 0.002).abs() < 1e-9, "{estimate:?}");
        assert!((estimate.offset - 5.0).abs() <= estimate.uncertainty);
        assert_eq!(super::estimate(&[]), None);
    }

    #[test]
    fn a_latency_across_clocks_is_corrected_by_both_offsets() {
        let publisher = ClockOffset {
            offset: 2.0,
            uncertainty: 0.001,
        };
        let receiver = ClockOffset {
            offset: -1.0,
            uncertainty: 0.002,
        };
        // Sent at our 10.000 s (the publisher's 12.000), received at our 10.050 (its 9.050).
        let (latency, bound) = corrected_latency(at(12_000), publisher, at(9_050), receiver);
        assert!((latency - 0.050).abs() < 1e-9, "{latency}");
        assert!((bound - 0.003).abs() < 1e-12);
    }

    #[test]
    fn an_arrival_before_the_send_beyond_the_bound_is_a_clock_error_not_a_zero_latency() {
        let publisher = ClockOffset {
            offset: 0.0,
            uncertainty: 0.001,
        };
        let receiver = ClockOffset {
            offset: 0.0,
            uncertainty: 0.002,
        };
        // 2 ms early: within the 3 ms bound, so 0 s.
        let (latency, bound) = delivery_latency(at(10_000), publisher, at(9_998), receiver).unwrap();
        assert_eq!(latency, std::time::Duration::ZERO);
        assert!((bound - 0.003).abs() < 1e-12);
        // 50 ms early: the offsets are off.
        let error = delivery_latency(at(10_000), publisher, at(9_950), receiver).unwrap_err();
        assert!((error.early_by - 0.050).abs() < 1e-9, "{error:?}");
        assert!(error.to_string().starts_with("clock error: "), "{error}");
        let (latency, _) = delivery_latency(at(10_000), publisher, at(10_040), receiver).unwrap();
        assert_eq!(latency, std::time::Duration::from_millis(40));
    }
}
