//! Doubling pauses between retries, capped: the one backoff of the recorder, the joins and the
//! round runner.

use std::time::Duration;

/// First pause after a failure in the defaults parsec uses (recorder writes, failed rounds).
pub const DEFAULT_FIRST: Duration = Duration::from_millis(500);

/// Longest pause between retries in those defaults.
pub const DEFAULT_MAX: Duration = Duration::from_secs(30);

/// Doubling pauses between retries, from `first` up to `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(DEFAULT_FIRST, DEFAULT_MAX)
    }
}

impl Backoff {
    /// Pauses from `first`, doubling up to `max` (a `first` above `max` is cut to it).
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The pause to take now; the next one is twice as long, up to the cap.
    pub fn step(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    /// After a success: the next failure waits the first pause again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let pauses: Vec<u64> = (0..5).map(|_| backoff.step().as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.step(), Duration::from_secs(1));
        assert_eq!(
            Backoff::new(Duration::from_secs(9), Duration::from_secs(2))
                .step()
                .as_secs(),
            2
        );
    }
}
