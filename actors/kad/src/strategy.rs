//! How a node provides and retrieves: the strategies parsec's fleets compare.
//!
//! - [`Strategy::Classic`]: look up the `k` closest peers, then store the record at each; the
//!   provide returns when every store has answered (go-libp2p-kad-dht's and rust-libp2p's way).
//! - [`Strategy::Optimistic`]: optimistic provide (go-libp2p-kad-dht PR #783, the Kubo default
//!   since 0.39). During the lookup, store at every peer that is, with certainty ≥ 0.9, among the
//!   `k` closest for the estimated network size; end the lookup once the `k` closest known are,
//!   on average, that close (strictness 0.1); return once 75 % of the stores have answered, and
//!   let the rest finish in the background ([`OptimisticProvide`]).
//! - [`Strategy::FullRoutingTable`]: the accelerated client. It crawls the whole network, so the
//!   `k` closest peers of any key are known without a lookup; it stores at them directly and
//!   returns once 30 % succeeded and no further success came for 500 ms.

use std::time::Duration;

use crate::{estimator::normed_distance, lookup::Lookup};

/// A provide/retrieve strategy of our engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Lookup, then store at the `k` closest, waiting for all.
    #[default]
    Classic,
    /// Optimistic provide.
    Optimistic,
    /// The full routing table of the accelerated client.
    FullRoutingTable,
}

impl Strategy {
    /// Every strategy, in the order reports list them.
    pub const ALL: [Strategy; 3] = [Self::Classic, Self::Optimistic, Self::FullRoutingTable];

    /// The name parsec's fleets use (`classic`, `optprov`, `fullrt`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Optimistic => "optprov",
            Self::FullRoutingTable => "fullrt",
        }
    }

    /// When a provide using this strategy returns, for `stores` store requests.
    pub fn store_rule(self, stores: usize) -> StoreRule {
        match self {
            Self::Classic => StoreRule::All,
            Self::Optimistic => StoreRule::Completed(optimistic_return_after(stores)),
            Self::FullRoutingTable => StoreRule::QuietAfterSuccesses {
                successes: (stores as f64 * FULLRT_WAIT_FRACTION) as usize,
                quiet: FULLRT_QUIET,
            },
        }
    }
}

crate::impl_named!(Strategy, "strategy");

/// Certainty that a peer under the individual threshold is among the `k` closest (go: 0.9).
pub const INDIVIDUAL_CERTAINTY: f64 = 0.9;
/// Probability that the closest set is farther than the set threshold (go: 0.1).
pub const SET_STRICTNESS: f64 = 0.1;
/// Share of stores that must have answered before an optimistic provide returns (go: 0.75).
pub const RETURN_RATIO: f64 = 0.75;
/// Share of stores that must succeed before the accelerated client stops waiting (go: 0.3).
pub const FULLRT_WAIT_FRACTION: f64 = 0.3;
/// How long the accelerated client waits for one more success once enough succeeded (go: 500 ms).
pub const FULLRT_QUIET: Duration = Duration::from_millis(500);

fn optimistic_return_after(stores: usize) -> usize {
    (stores as f64 * RETURN_RATIO).ceil() as usize
}

/// When a provide returns, given how its store requests answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreRule {
    /// Every store answered (succeeded or failed).
    All,
    /// This many stores answered.
    Completed(usize),
    /// At least `successes` succeeded and no other success came for `quiet` (or all answered).
    QuietAfterSuccesses {
        /// Successes before the quiet period can end the provide.
        successes: usize,
        /// Time without a success that ends it.
        quiet: Duration,
    },
}

/// The stores of one provide: counts answers and says when the provide returns.
#[derive(Clone, Debug)]
pub struct StoreProgress {
    rule: StoreRule,
    sent: usize,
    succeeded: usize,
    failed: usize,
    last_success: Duration,
}

impl StoreProgress {
    /// Progress under `rule`, with no store sent yet.
    pub fn new(rule: StoreRule) -> Self {
        Self {
            rule,
            sent: 0,
            succeeded: 0,
            failed: 0,
            last_success: Duration::ZERO,
        }
    }

    /// `count` more stores were sent.
    pub fn sent(&mut self, count: usize) {
        self.sent += count;
    }

    /// A store answered at `now`.
    pub fn on_answer(&mut self, now: Duration, succeeded: bool) {
        if succeeded {
            self.succeeded += 1;
            self.last_success = now;
        } else {
            self.failed += 1;
        }
    }

    /// Stores that succeeded.
    pub fn succeeded(&self) -> usize {
        self.succeeded
    }

    /// Stores that failed.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Stores sent that have not answered yet.
    pub fn in_flight(&self) -> usize {
        self.sent - self.succeeded - self.failed
    }

    /// Whether the provide returns at `now`; `all_sent`: no further store will be sent.
    pub fn is_done(&self, now: Duration, all_sent: bool) -> bool {
        let answered = self.succeeded + self.failed;
        if !all_sent {
            return false;
        }
        if answered >= self.sent {
            return true;
        }
        match self.rule {
            StoreRule::All => false,
            StoreRule::Completed(count) => answered >= count.min(self.sent),
            StoreRule::QuietAfterSuccesses { successes, quiet } => {
                self.succeeded >= successes.max(1) && now >= self.last_success + quiet
            }
        }
    }

    /// When the provide returns if nothing else answers (the quiet rule's deadline).
    pub fn deadline(&self) -> Option<Duration> {
        match self.rule {
            StoreRule::QuietAfterSuccesses { successes, quiet } if self.succeeded >= successes.max(1) => {
                Some(self.last_success + quiet)
            }
            _ => None,
        }
    }
}

/// The thresholds of optimistic provide for a network of `size` peers and buckets of `k`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OptimisticThresholds {
    /// A peer at a normed distance below this is among the `k` closest with certainty 0.9.
    pub individual: f64,
    /// The lookup ends when the `k` closest known are, on average, closer than this.
    pub set: f64,
}

impl OptimisticThresholds {
    /// go-libp2p-kad-dht's thresholds: the normed distance of the `k`-th closest peer to a key is
    /// Gamma(k, 1/N)-distributed, the mean of the `k` closest is about Gamma(k/2 + 1, 1/N).
    pub fn new(size: f64, k: usize) -> Self {
        let size = size.max(1.0);
        Self {
            individual: puruspe::invgammp(1.0 - INDIVIDUAL_CERTAINTY, k as f64) / size,
            set: puruspe::invgammp(1.0 - SET_STRICTNESS, k as f64 / 2.0 + 1.0) / size,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StoreState {
    /// Decided, not yet taken by the driver.
    Scheduled,
    Sent,
    Succeeded,
    Failed,
}

/// An optimistic provide beside its lookup: its termination hook decides where to store early
/// and when to end the lookup; the driver sends what [`OptimisticProvide::take_scheduled`] gives.
#[derive(Clone, Debug)]
pub struct OptimisticProvide<P> {
    thresholds: OptimisticThresholds,
    k: usize,
    stores: Vec<(P, StoreState)>,
}

impl<P: Copy + Eq> OptimisticProvide<P> {
    /// A provide for a network of the estimated `size`, with buckets of `k`.
    pub fn new(size: f64, k: usize) -> Self {
        Self {
            thresholds: OptimisticThresholds::new(size, k),
            k: k.max(1),
            stores: Vec::with_capacity(k),
        }
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> OptimisticThresholds {
        self.thresholds
    }

    /// The lookup's termination hook: schedules stores at peers under the individual threshold;
    /// true once `k` stores are scheduled or succeeded, or the closest set is close enough.
    pub fn check(&mut self, lookup: &Lookup<P>) -> bool {
        let mut sum = 0.0;
        let mut known = 0;
        for (peer, distance, _) in lookup.closest_live(self.k) {
            let normed = normed_distance(&distance);
            sum += normed;
            known += 1;
            if normed <= self.thresholds.individual && !self.knows(peer) {
                self.stores.push((peer, StoreState::Scheduled));
            }
        }
        let pending_or_stored = self
            .stores
            .iter()
            .filter(|(_, state)| *state != StoreState::Failed)
            .count();
        pending_or_stored >= self.k || (known == self.k && sum / (self.k as f64) < self.thresholds.set)
    }

    /// The lookup ended with these closest peers: store at each not contacted yet.
    pub fn finish_lookup(&mut self, closest: impl IntoIterator<Item = P>) {
        for peer in closest {
            if !self.knows(peer) {
                self.stores.push((peer, StoreState::Scheduled));
            }
        }
    }

    /// The stores to send now (each given once).
    pub fn take_scheduled(&mut self) -> Vec<P> {
        self.stores
            .iter_mut()
            .filter(|(_, state)| *state == StoreState::Scheduled)
            .map(|(peer, state)| {
                *state = StoreState::Sent;
                *peer
            })
            .collect()
    }

    /// A store answered.
    pub fn on_stored(&mut self, peer: P, succeeded: bool) {
        if let Some((_, state)) = self.stores.iter_mut().find(|(p, _)| *p == peer) {
            *state = if succeeded {
                StoreState::Succeeded
            } else {
                StoreState::Failed
            };
        }
    }

    /// Peers a store was sent to or decided for.
    pub fn stores(&self) -> usize {
        self.stores.len()
    }

    fn knows(&self, peer: P) -> bool {
        self.stores.iter().any(|(p, _)| *p == peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::test_key as key;
    use crate::{
        key::Key,
        lookup::{LookupConfig, Next},
    };

    #[test]
    fn thresholds_match_go_libp2p_kad_dht() {
        // go: GammaIncRegInv(20, 0.1) / N and GammaIncRegInv(11, 0.9) / N. The references solve
        // P(a, x) = 1 - e^-x Σ_{j<a} x^j / j! (integer a) by bisection.
        let t = OptimisticThresholds::new(10_000.0, 20);
        assert!(
            (t.individual * 10_000.0 - 14.525_261).abs() < 1e-3,
            "{}",
            t.individual * 10_000.0
        );
        assert!(
            (t.set * 10_000.0 - 15.406_641).abs() < 1e-3,
            "{}",
            t.set * 10_000.0
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_expected() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
        }
        assert!("fast"
            .parse::<Strategy>()
            .unwrap_err()
            .contains("classic, optprov or fullrt"));
    }

    #[test]
    fn store_rules_end_a_provide_as_each_strategy_does() {
        let ms = Duration::from_millis;
        // Classic waits for all 20.
        let mut classic = StoreProgress::new(Strategy::Classic.store_rule(20));
        classic.sent(20);
        for _ in 0..19 {
            classic.on_answer(ms(10), true);
        }
        assert!(!classic.is_done(ms(10_000), true));
        classic.on_answer(ms(10_000), false);
        assert!(classic.is_done(ms(10_000), true));
        // Optimistic returns after 15 answers, failures included, once all are sent.
        let mut optimistic = StoreProgress::new(Strategy::Optimistic.store_rule(20));
        optimistic.sent(20);
        for i in 0..15 {
            optimistic.on_answer(ms(10), i % 2 == 0);
        }
        assert!(!optimistic.is_done(ms(10), false));
        assert!(optimistic.is_done(ms(10), true));
        // The accelerated client: 6 successes (30 % of 20), then 500 ms without another.
        let mut fullrt = StoreProgress::new(Strategy::FullRoutingTable.store_rule(20));
        fullrt.sent(20);
        for _ in 0..6 {
            fullrt.on_answer(ms(100), true);
        }
        assert_eq!(fullrt.deadline(), Some(ms(600)));
        assert!(!fullrt.is_done(ms(599), true));
        assert!(fullrt.is_done(ms(600), true));
    }

    #[test]
    fn optimistic_provide_stores_early_at_very_close_peers_and_ends_the_lookup() {
        // In a network of 1,000 a peer 1/2^16 away is among the 20 closest with near certainty;
        // one 1/2 away is not.
        let mut close = [0u8; 32];
        close[2] = 1;
        let near = Key::from_bytes(close);
        let config = LookupConfig {
            k: 2,
            alpha: 1,
            ..LookupConfig::default()
        };
        let mut lookup = Lookup::new(Key::default(), config, [(1u32, key(0x80)), (2, near)]);
        let mut provide = OptimisticProvide::new(1_000.0, 2);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(2));
        lookup.on_answer(2, []);
        let next = lookup.poll_with(Duration::ZERO, |l| provide.check(l));
        assert_eq!(provide.take_scheduled(), vec![2], "only the close peer");
        assert_eq!(next, Next::Query(1), "peer 1 keeps the set's average far");
        lookup.on_answer(1, []);
        provide.finish_lookup(lookup.closest_known());
        assert_eq!(provide.take_scheduled(), vec![1]);
        assert!(provide.take_scheduled().is_empty(), "each store is given once");
    }
}
