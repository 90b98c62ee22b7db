//! When the strategies' background work is due: the lookups of random keys that keep optimistic
//! provide's network size estimate filled and fresh, and the accelerated client's crawls.
//!
//! One schedule for both drivers: the libp2p engine runs it in real time, the simulator in
//! virtual time. Each asks [`EstimateUpkeep::due`] how many lookups to start now, reports each
//! one's end, and asks [`EstimateUpkeep::is_warm`] before it provides optimistically.

use std::time::Duration;

/// Lookups of random keys started at once to (re)fill the estimate: a batch, repeated at once
/// while it still converges new samples and the estimate is not warm.
pub const ESTIMATE_LOOKUPS: usize = 4;
/// Converged lookups the estimate needs before optimistic provide uses it. The estimator answers
/// from 5 samples a rank, but its spread there is wide: on a 63-peer test network, 8 samples gave
/// up to 87 and 16 gave 57–86 (12 runs).
pub const ESTIMATE_WARM_UP: usize = 32;
/// Pause after a batch that converged no new sample (a network smaller than k + 1 never
/// converges one).
pub const ESTIMATE_RETRY: Duration = Duration::from_secs(2);
/// How often a warm estimate is refreshed with a new batch (go-libp2p-kad-dht refreshes its
/// routing table, whose lookups feed its estimate, every 10 minutes; samples live 2 h).
pub const ESTIMATE_REFRESH: Duration = Duration::from_secs(10 * 60);
/// How often the accelerated client crawls the whole network (go-libp2p-kad-dht's fullrt: 1 h).
pub const CRAWL_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// The estimate's upkeep: how many samples it has, and when the next batch is due.
#[derive(Clone, Debug, Default)]
pub struct EstimateUpkeep {
    /// Converged lookups tracked (up to the warm-up).
    samples: usize,
    /// As many when the running batch started.
    samples_at_start: usize,
    /// Lookups of the running batch not ended yet.
    running: usize,
    /// The last batch: when its last lookup ended, and whether it brought a new sample.
    last: Option<(Duration, bool)>,
    /// When the next batch is due, once decided (at the first ask after a batch ended, so the
    /// estimate is asked for once a batch, not on every ask).
    next: Option<Duration>,
}

impl EstimateUpkeep {
    /// Lookups of random keys to start at `now`: a batch if one is due and none runs, else 0.
    /// A batch is due at once, then [`ESTIMATE_REFRESH`] after the last one ended once the
    /// estimate is warm and `estimated` (the estimator gives an estimate; asked once a batch),
    /// at once after a batch that brought a new sample, and [`ESTIMATE_RETRY`] after one that
    /// brought none.
    pub fn due(&mut self, now: Duration, estimated: impl FnOnce() -> bool) -> usize {
        if self.running > 0 {
            return 0;
        }
        let next = match self.next {
            Some(next) => next,
            None => {
                let next = self.next_after_last(estimated);
                self.next = Some(next);
                next
            }
        };
        if now < next {
            return 0;
        }
        self.next = None;
        self.samples_at_start = self.samples;
        self.running = ESTIMATE_LOOKUPS;
        ESTIMATE_LOOKUPS
    }

    /// When the batch after the last one is due.
    fn next_after_last(&self, estimated: impl FnOnce() -> bool) -> Duration {
        let Some((ended, sampled)) = self.last else {
            return Duration::ZERO;
        };
        let wait = if self.is_warm() && estimated() {
            ESTIMATE_REFRESH
        } else if sampled {
            Duration::ZERO
        } else {
            ESTIMATE_RETRY
        };
        ended + wait
    }

    /// The estimator took a converged lookup's closest peers (a lookup of a batch, or any other
    /// lookup that converged, such as a provide's).
    pub fn record_sample(&mut self) {
        self.samples = (self.samples + 1).min(ESTIMATE_WARM_UP);
    }

    /// A lookup of the running batch ended at `now` (after its sample, if it gave one).
    pub fn batch_lookup_ended(&mut self, now: Duration) {
        if self.running == 0 {
            return;
        }
        self.running -= 1;
        if self.running == 0 {
            self.last = Some((now, self.samples > self.samples_at_start));
            self.next = None;
        }
    }

    /// Whether optimistic provide may use the estimate: it has its warm-up's samples.
    pub fn is_warm(&self) -> bool {
        self.samples >= ESTIMATE_WARM_UP
    }

    /// Converged lookups tracked so far (at most the warm-up's).
    pub fn samples(&self) -> usize {
        self.samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_batch(upkeep: &mut EstimateUpkeep, now: Duration, sampled: bool) {
        for _ in 0..ESTIMATE_LOOKUPS {
            if sampled {
                upkeep.record_sample();
            }
            upkeep.batch_lookup_ended(now);
        }
    }

    #[test]
    fn batches_follow_each_other_while_they_bring_samples_then_refresh() {
        let mut upkeep = EstimateUpkeep::default();
        let now = Duration::from_secs(100);
        let mut batches = 0;
        while upkeep.due(now, || true) == ESTIMATE_LOOKUPS {
            batches += 1;
            assert_eq!(upkeep.due(now, || false), 0, "one batch at a time");
            run_batch(&mut upkeep, now, true);
            assert!(batches <= ESTIMATE_WARM_UP, "bounded");
        }
        assert!(upkeep.is_warm());
        assert_eq!(batches, ESTIMATE_WARM_UP / ESTIMATE_LOOKUPS);
        // The estimate is asked once a batch, not on every ask.
        let mut asked = 0;
        for _ in 0..5 {
            let lookups = upkeep.due(now + ESTIMATE_REFRESH / 2, || {
                asked += 1;
                true
            });
            assert_eq!(lookups, 0);
        }
        assert_eq!(
            asked, 0,
            "decided when the batch that made it warm was asked after"
        );
        assert_eq!(upkeep.due(now + ESTIMATE_REFRESH, || true), ESTIMATE_LOOKUPS);
    }

    #[test]
    fn a_batch_that_brings_no_sample_waits_before_the_next() {
        let mut upkeep = EstimateUpkeep::default();
        let now = Duration::from_secs(5);
        assert_eq!(upkeep.due(now, || false), ESTIMATE_LOOKUPS);
        run_batch(&mut upkeep, now, false);
        assert_eq!(upkeep.due(now, || false), 0);
        assert_eq!(upkeep.due(now + ESTIMATE_RETRY, || false), ESTIMATE_LOOKUPS);
        assert!(!upkeep.is_warm());
        // Warm, but the estimator cannot answer (samples expired): the batches go on.
        let mut upkeep = EstimateUpkeep::default();
        for _ in 0..ESTIMATE_WARM_UP / ESTIMATE_LOOKUPS {
            assert_eq!(upkeep.due(now, || false), ESTIMATE_LOOKUPS);
            run_batch(&mut upkeep, now, true);
        }
        assert!(upkeep.is_warm());
        assert_eq!(upkeep.due(now, || false), ESTIMATE_LOOKUPS);
    }
}
