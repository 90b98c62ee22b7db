//! A provide as one sans-IO state machine: its lookup (with optimistic provide's hook riding on
//! it), the stores its strategy decides, and the rule that says when it returns. A driver sends
//! what [`Provide::poll`] asks for and reports the answers back; it owns only I/O and time.
//!
//! - classic: look up the `k` closest peers, then store at those that answered; returns once
//!   every store answered.
//! - optimistic (with a network size estimate): stores go out during the lookup at peers that are
//!   close enough, the lookup ends once enough are, then at the closest known; returns once
//!   [`RETURN_RATIO`](crate::strategy::RETURN_RATIO) of them answered. Without an estimate it is
//!   classic, as go falls back.
//! - the accelerated client ([`Provide::direct`]): stores at the closest peers of its crawl, no
//!   lookup; returns by the quiet rule.

use std::{collections::VecDeque, time::Duration};

use crate::{
    key::Key,
    lookup::{Lookup, Next, Termination},
    strategy::{OptimisticProvide, StoreProgress, Strategy},
};

/// When a classic provide's stores start, and where they go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoresStart {
    /// When the lookup ends, at the `k` closest peers that answered: rust-libp2p's kad, which
    /// drops the queries still in flight, and our engine.
    #[default]
    LookupEnd,
    /// Once every query the lookup sent has answered or failed, at its result then: the `k`
    /// closest that answered, or the `k` closest known when it stopped early (no progress, or a
    /// hook). go-libp2p-kad-dht's provide follows its lookup up with the closest peers it has not
    /// heard from; the simulator, calibrated on that network, waits for every query.
    AllAnswered,
}

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvideStep<P> {
    /// Send the lookup's query (FIND_NODE) to this peer.
    Query(P),
    /// The lookup just ended (said once): its result is final, a driver may feed an estimator.
    LookupEnded,
    /// Send the provider record (ADD_PROVIDER) to this peer.
    Store(P),
    /// Nothing to send until an answer, or [`Provide::next_deadline`].
    Wait,
}

/// One provide of one key.
#[derive(Clone, Debug)]
pub struct Provide<P> {
    lookup: Option<Lookup<P>>,
    optimistic: Option<OptimisticProvide<P>>,
    stores: StoreProgress,
    /// Stores decided, not yet handed to the driver.
    to_store: VecDeque<P>,
    lookup_ended: bool,
    lookup_end_told: bool,
    stores_start: StoresStart,
    /// Where the stores go is known (all of them, for a classic provide).
    stores_decided: bool,
}

impl<P: Copy + Eq> Provide<P> {
    /// A provide that looks up the closest peers first: optimistically with a network size
    /// `estimate`, classically without; `k` peers store the record.
    pub fn with_lookup(lookup: Lookup<P>, k: usize, estimate: Option<f64>) -> Self {
        let (optimistic, strategy) = match estimate {
            Some(size) => (Some(OptimisticProvide::new(size, k)), Strategy::Optimistic),
            None => (None, Strategy::Classic),
        };
        Self {
            lookup: Some(lookup),
            optimistic,
            stores: StoreProgress::new(strategy.store_rule(k)),
            to_store: VecDeque::new(),
            lookup_ended: false,
            lookup_end_told: false,
            stores_start: StoresStart::default(),
            stores_decided: false,
        }
    }

    /// When a classic provide's stores start (optimistic provide's go out as it decides).
    pub fn with_stores_start(mut self, start: StoresStart) -> Self {
        self.stores_start = start;
        self
    }

    /// The accelerated client's provide: stores at `closest` (the closest peers of its crawl)
    /// without a lookup, returning by its rule for `k` stores.
    pub fn direct(closest: impl IntoIterator<Item = P>, k: usize) -> Self {
        Self {
            lookup: None,
            optimistic: None,
            stores: StoreProgress::new(Strategy::FullRoutingTable.store_rule(k)),
            to_store: closest.into_iter().collect(),
            lookup_ended: true,
            lookup_end_told: true,
            stores_start: StoresStart::default(),
            stores_decided: true,
        }
    }

    /// The next step at `now`. Call until it says [`ProvideStep::Wait`].
    pub fn poll(&mut self, now: Duration) -> ProvideStep<P> {
        loop {
            if let Some(peer) = self.to_store.pop_front() {
                self.stores.sent(1);
                return ProvideStep::Store(peer);
            }
            if let Some(lookup) = self.lookup.as_mut().filter(|_| !self.lookup_ended) {
                let next = match &mut self.optimistic {
                    Some(optimistic) => lookup.poll_with(now, |l| optimistic.check(l)),
                    None => lookup.poll(now),
                };
                if let Next::Query(peer) = next {
                    return ProvideStep::Query(peer);
                }
                if lookup.termination().is_some() {
                    self.lookup_ended = true;
                    if let Some(optimistic) = &mut self.optimistic {
                        optimistic.finish_lookup(lookup.closest_known());
                        self.stores_decided = true;
                    }
                }
            }
            if self.lookup_ended && !self.stores_decided {
                self.decide_classic_stores();
            }
            if let Some(optimistic) = &mut self.optimistic {
                self.to_store.extend(optimistic.take_scheduled());
            }
            if self.lookup_ended && !self.lookup_end_told {
                self.lookup_end_told = true;
                return ProvideStep::LookupEnded;
            }
            if self.to_store.is_empty() {
                return ProvideStep::Wait;
            }
        }
    }

    /// `peer` answered the lookup's query with the peers it knows closest to the key.
    pub fn on_answer(&mut self, peer: P, closer: impl IntoIterator<Item = (P, Key)>) {
        if let Some(lookup) = &mut self.lookup {
            lookup.on_answer(peer, closer);
        }
    }

    /// The lookup's query to `peer` failed.
    pub fn on_failure(&mut self, peer: P) {
        if let Some(lookup) = &mut self.lookup {
            lookup.on_failure(peer);
        }
    }

    /// The store at `peer` answered at `now`.
    pub fn on_stored(&mut self, now: Duration, peer: P, succeeded: bool) {
        self.stores.on_answer(now, succeeded);
        if let Some(optimistic) = &mut self.optimistic {
            optimistic.on_stored(peer, succeeded);
        }
    }

    /// A classic provide's stores, once its lookup allows ([`StoresStart`]).
    fn decide_classic_stores(&mut self) {
        let Some(lookup) = &self.lookup else {
            return;
        };
        match self.stores_start {
            StoresStart::LookupEnd => self.to_store.extend(lookup.closest_answered().map(|(p, _)| p)),
            StoresStart::AllAnswered => {
                if lookup.unanswered() > 0 {
                    return;
                }
                let stopped_early = matches!(
                    lookup.termination(),
                    Some(Termination::NoProgress | Termination::Satisfied)
                );
                // Nobody answered: no result, and nowhere to store.
                if lookup.closest_answered().next().is_some() {
                    if stopped_early {
                        self.to_store.extend(lookup.closest_known());
                    } else {
                        self.to_store.extend(lookup.closest_answered().map(|(p, _)| p));
                    }
                }
            }
        }
        self.stores_decided = true;
    }

    /// Whether the provide returns at `now`: its lookup is over, every store it decided was
    /// handed out, and its rule is met (later stores go on in the background).
    pub fn has_returned(&self, now: Duration) -> bool {
        self.lookup_ended && self.stores_decided && self.to_store.is_empty() && self.stores.is_done(now, true)
    }

    /// Whether nothing it sent is still awaited (queries after the lookup ended are not).
    pub fn is_idle(&self) -> bool {
        let lookup_idle = self
            .lookup
            .as_ref()
            .is_none_or(|l| (self.lookup_ended && self.stores_decided) || l.in_flight() == 0);
        lookup_idle && self.stores.in_flight() == 0
    }

    /// When to poll again if nothing answers: a query's timeout while the lookup runs, or the
    /// quiet rule's end.
    pub fn next_deadline(&self) -> Option<Duration> {
        let lookup = self
            .lookup
            .as_ref()
            .filter(|_| !self.lookup_ended)
            .and_then(Lookup::next_deadline);
        match (lookup, self.stores.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Its lookup (none for [`Provide::direct`]).
    pub fn lookup(&self) -> Option<&Lookup<P>> {
        self.lookup.as_ref()
    }

    /// Its lookup, for a driver that hands answers to it in place ([`Provide::on_answer`] does
    /// the same).
    pub fn lookup_mut(&mut self) -> Option<&mut Lookup<P>> {
        self.lookup.as_mut()
    }

    /// Its lookup back, for a driver that reuses its memory.
    pub fn into_lookup(self) -> Option<Lookup<P>> {
        self.lookup
    }

    /// Its stores so far.
    pub fn stores(&self) -> &StoreProgress {
        &self.stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::LookupConfig;

    use crate::key::test_key as key;

    fn lookup(k: usize, seeds: &[u32]) -> Lookup<u32> {
        let config = LookupConfig {
            k,
            alpha: 3,
            steps_to_stop: 0,
            peer_timeout: None,
        };
        Lookup::new(key(0), config, seeds.iter().map(|&p| (p, key(p as u8))))
    }

    /// Drains the steps due now.
    fn steps(provide: &mut Provide<u32>) -> Vec<ProvideStep<u32>> {
        let mut steps = Vec::new();
        loop {
            match provide.poll(Duration::ZERO) {
                ProvideStep::Wait => return steps,
                step => steps.push(step),
            }
        }
    }

    #[test]
    fn classic_stores_at_the_peers_that_answered_once_the_lookup_ended_and_returns_when_all_answered() {
        let mut provide = Provide::with_lookup(lookup(2, &[1, 2, 3]), 2, None);
        use ProvideStep::*;
        assert_eq!(steps(&mut provide), [Query(1), Query(2), Query(3)]);
        provide.on_answer(1, []);
        provide.on_failure(2);
        assert_eq!(steps(&mut provide), []);
        provide.on_answer(3, []);
        // The two closest that answered: 1 and 3; peer 2 failed.
        assert_eq!(steps(&mut provide), [LookupEnded, Store(1), Store(3)]);
        assert!(!provide.has_returned(Duration::ZERO));
        provide.on_stored(Duration::ZERO, 1, true);
        assert!(!provide.has_returned(Duration::ZERO));
        assert!(!provide.is_idle());
        provide.on_stored(Duration::ZERO, 3, false);
        assert!(provide.has_returned(Duration::ZERO) && provide.is_idle());
        assert_eq!((provide.stores().succeeded(), provide.stores().failed()), (1, 1));
    }

    #[test]
    fn classic_stores_start_at_the_lookups_end_or_once_every_query_answered() {
        use ProvideStep::*;
        for start in [StoresStart::LookupEnd, StoresStart::AllAnswered] {
            let mut provide = Provide::with_lookup(lookup(2, &[1, 2, 3]), 2, None).with_stores_start(start);
            assert_eq!(steps(&mut provide), [Query(1), Query(2), Query(3)]);
            provide.on_answer(1, []);
            provide.on_answer(2, []);
            // The two closest answered: the lookup converged with peer 3 still in flight.
            let at_end = steps(&mut provide);
            match start {
                StoresStart::LookupEnd => assert_eq!(at_end, [LookupEnded, Store(1), Store(2)]),
                StoresStart::AllAnswered => {
                    assert_eq!(at_end, [LookupEnded]);
                    assert!(!provide.has_returned(Duration::ZERO), "nothing stored yet");
                    provide.on_failure(3);
                    assert_eq!(steps(&mut provide), [Store(1), Store(2)]);
                }
            }
            provide.on_stored(Duration::ZERO, 1, true);
            provide.on_stored(Duration::ZERO, 2, true);
            assert!(provide.has_returned(Duration::ZERO), "{start:?}");
        }
    }

    #[test]
    fn optimistic_stores_during_the_lookup_at_a_peer_close_enough_and_returns_on_its_ratio() {
        // In a network of 1,000 a peer 1/2^16 away is among the closest with near certainty; one
        // 1/2 away is not, and keeps the lookup going.
        let mut near = [0u8; 32];
        near[2] = 1;
        let config = LookupConfig {
            k: 2,
            alpha: 1,
            steps_to_stop: 0,
            peer_timeout: None,
        };
        let seeds = [(1u32, key(0x80)), (2, Key::from_bytes(near))];
        let mut provide = Provide::with_lookup(Lookup::new(Key::default(), config, seeds), 2, Some(1_000.0));
        use ProvideStep::*;
        assert_eq!(steps(&mut provide), [Query(2)]);
        provide.on_answer(2, []);
        assert_eq!(
            steps(&mut provide),
            [Query(1), Store(2)],
            "a store before the lookup ended"
        );
        provide.on_answer(1, []);
        assert_eq!(steps(&mut provide), [LookupEnded, Store(1)]);
        provide.on_stored(Duration::ZERO, 2, true);
        // Three quarters of two stores: both.
        assert!(!provide.has_returned(Duration::ZERO));
        provide.on_stored(Duration::ZERO, 1, true);
        assert!(provide.has_returned(Duration::ZERO));
    }

    #[test]
    fn a_direct_provide_stores_at_once_and_returns_after_a_quiet_period() {
        let mut provide = Provide::direct([7u32, 8, 9, 10], 4);
        use ProvideStep::*;
        assert_eq!(steps(&mut provide), [Store(7), Store(8), Store(9), Store(10)]);
        assert_eq!(provide.next_deadline(), None);
        let at = Duration::from_millis(100);
        provide.on_stored(at, 7, true);
        // One success of four is enough (30 %), once no other came for the quiet period.
        let quiet = provide.next_deadline().expect("the quiet rule's deadline");
        assert!(!provide.has_returned(at));
        assert!(provide.has_returned(quiet));
        assert!(!provide.is_idle(), "three stores still in flight");
    }
}
