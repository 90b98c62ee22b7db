//! First copies counted over receivers and messages: one tally for the fleet's pubsub rounds,
//! the gossipsub testnet's points and the metrics.

use std::time::Duration;

use crate::model::percentile;

/// Expected first copies and how they went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryTally {
    /// First copies expected: one per receiver and message.
    pub expected: usize,
    /// Those that came by the deadline and were measured.
    pub delivered: usize,
    /// Those that came, but the corrected clocks put them before their send beyond their bounds:
    /// not delivered in 0 s, unmeasurable.
    pub clock_errors: usize,
    /// The latency of every delivered copy (in arrival order until [`DeliveryTally::sort`]).
    pub latencies: Vec<Duration>,
    /// Copies beyond the first, over the delivered ones.
    pub duplicates: u64,
}

impl DeliveryTally {
    /// A first copy that came `latency` after its send, one of `copies` received.
    pub fn delivered(&mut self, latency: Duration, copies: u32) {
        self.expected += 1;
        self.delivered += 1;
        self.latencies.push(latency);
        self.duplicates += u64::from(copies.saturating_sub(1));
    }

    /// A first copy that did not come by the deadline.
    pub fn missed(&mut self) {
        self.expected += 1;
    }

    /// A copy that came, but whose latency the clocks cannot tell.
    pub fn unmeasurable(&mut self) {
        self.expected += 1;
        self.clock_errors += 1;
    }

    /// [`DeliveryTally::delivered`] for `Some((latency, copies))`, else
    /// [`DeliveryTally::missed`].
    pub fn count(&mut self, arrived: Option<(Duration, u32)>) {
        match arrived {
            Some((latency, copies)) => self.delivered(latency, copies),
            None => self.missed(),
        }
    }

    /// Expected first copies that never came (clock errors came).
    pub fn missing(&self) -> usize {
        self.expected - self.delivered - self.clock_errors
    }

    /// Delivered over expected (0 with nothing expected).
    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }

    /// Sorts the latencies, for [`DeliveryTally::latency`].
    pub fn sort(&mut self) {
        self.latencies.sort_unstable();
    }

    /// The `p`th percentile latency (nearest rank), once sorted.
    pub fn latency(&self, p: f64) -> Option<Duration> {
        percentile(&self.latencies, p)
    }

    /// Duplicates per delivered copy.
    pub fn duplicates_per_delivery(&self) -> f64 {
        if self.delivered == 0 {
            0.0
        } else {
            self.duplicates as f64 / self.delivered as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expected_copy_is_delivered_missed_or_unmeasurable() {
        let mut tally = DeliveryTally::default();
        tally.count(Some((Duration::from_millis(30), 3)));
        tally.delivered(Duration::from_millis(10), 1);
        tally.count(None);
        tally.unmeasurable();
        assert_eq!(
            (
                tally.expected,
                tally.delivered,
                tally.clock_errors,
                tally.missing()
            ),
            (4, 2, 1, 1)
        );
        assert_eq!(tally.delivery_ratio(), 0.5);
        assert_eq!(tally.duplicates_per_delivery(), 1.0);
        tally.sort();
        assert_eq!(tally.latency(50.0), Some(Duration::from_millis(10)));
        assert_eq!(tally.latency(100.0), Some(Duration::from_millis(30)));
        assert_eq!(DeliveryTally::default().delivery_ratio(), 0.0);
    }
}
