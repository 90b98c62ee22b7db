//! A retrieval as one sans-IO state machine: the first provider record of a key, from a peer
//! that answered over the network. A driver sends what [`Retrieve::poll`] asks for, reports each
//! answer (and whether it carried a provider record) back, and owns only I/O and time.
//!
//! - with a lookup ([`Retrieve::with_lookup`]): GET_PROVIDERS along the lookup, which stops at
//!   the first answer with a record;
//! - the accelerated client ([`Retrieve::direct`]): GET_PROVIDERS to the closest peers of its
//!   crawl at once; the first record wins, the others' answers are still counted.
//!
//! A record the retriever holds itself is no answer (docs/method.md, "What a retrieval is"):
//! nothing here looks at a local store, and a driver reports only records from the network.

use std::time::Duration;

use crate::{
    key::Key,
    lookup::{Lookup, Next},
};

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrieveStep<P> {
    /// Send GET_PROVIDERS to this peer.
    Query(P),
    /// The lookup just ended (said once): its result is final, a driver may feed an estimator.
    LookupEnded,
    /// Nothing to send until an answer, or [`Retrieve::next_deadline`].
    Wait,
}

#[derive(Clone, Debug)]
enum Route<P> {
    Lookup {
        lookup: Lookup<P>,
        end_told: bool,
    },
    /// The peers not asked yet (last first) and the queries in flight.
    Direct {
        unsent: Vec<P>,
        in_flight: usize,
        sent: u32,
    },
}

/// One retrieval of one key.
#[derive(Clone, Debug)]
pub struct Retrieve<P> {
    route: Route<P>,
    /// The peer whose answer carried the first record, and its hop.
    found: Option<(P, u32)>,
}

impl<P: Copy + Eq> Retrieve<P> {
    /// A retrieval along `lookup` (started from the local routing table).
    pub fn with_lookup(lookup: Lookup<P>) -> Self {
        Self {
            route: Route::Lookup {
                lookup,
                end_told: false,
            },
            found: None,
        }
    }

    /// The accelerated client's retrieval: every peer of `closest` (the closest of its crawl)
    /// asked at once, in that order.
    pub fn direct(closest: impl IntoIterator<Item = P>) -> Self {
        let mut unsent: Vec<P> = closest.into_iter().collect();
        unsent.reverse();
        Self {
            route: Route::Direct {
                unsent,
                in_flight: 0,
                sent: 0,
            },
            found: None,
        }
    }

    /// The next step at `now`. Call until it says [`RetrieveStep::Wait`].
    pub fn poll(&mut self, now: Duration) -> RetrieveStep<P> {
        match &mut self.route {
            Route::Lookup { lookup, end_told } => {
                if let Next::Query(peer) = lookup.poll(now) {
                    return RetrieveStep::Query(peer);
                }
                if lookup.termination().is_some() && !*end_told {
                    *end_told = true;
                    return RetrieveStep::LookupEnded;
                }
                RetrieveStep::Wait
            }
            Route::Direct {
                unsent,
                in_flight,
                sent,
            } => match unsent.pop() {
                Some(peer) => {
                    *in_flight += 1;
                    *sent += 1;
                    RetrieveStep::Query(peer)
                }
                None => RetrieveStep::Wait,
            },
        }
    }

    /// `peer` answered with the peers it knows closest to the key and, if `has_record`, a
    /// provider record. The first record ends the lookup; later ones change nothing.
    pub fn on_answer(&mut self, peer: P, closer: impl IntoIterator<Item = (P, Key)>, has_record: bool) {
        match &mut self.route {
            Route::Lookup { lookup, .. } => {
                lookup.on_answer(peer, closer);
                if has_record && self.found.is_none() {
                    self.found = Some((peer, lookup.hop_of(peer).unwrap_or(1)));
                    lookup.stop();
                }
            }
            Route::Direct { in_flight, .. } => {
                *in_flight = in_flight.saturating_sub(1);
                if has_record && self.found.is_none() {
                    self.found = Some((peer, 1));
                }
            }
        }
    }

    /// The query to `peer` failed (unreachable, an error, no answer).
    pub fn on_failure(&mut self, peer: P) {
        match &mut self.route {
            Route::Lookup { lookup, .. } => lookup.on_failure(peer),
            Route::Direct { in_flight, .. } => *in_flight = in_flight.saturating_sub(1),
        }
    }

    /// The peer whose answer carried the first provider record, and its hop (answers on the path
    /// from the local routing table; 1 for a direct retrieval).
    pub fn found(&self) -> Option<(P, u32)> {
        self.found
    }

    /// Whether the retrieval is decided: a record found, or none can come any more (the lookup
    /// ended, or every direct query answered or failed).
    pub fn is_decided(&self) -> bool {
        self.found.is_some()
            || match &self.route {
                Route::Lookup { lookup, .. } => lookup.termination().is_some(),
                Route::Direct {
                    unsent, in_flight, ..
                } => unsent.is_empty() && *in_flight == 0,
            }
    }

    /// Whether nothing it waits for is in flight: an ended lookup forgets its stragglers, direct
    /// queries are all awaited (each answer is counted).
    pub fn is_idle(&self) -> bool {
        match &self.route {
            Route::Lookup { lookup, .. } => lookup.termination().is_some() || lookup.in_flight() == 0,
            Route::Direct {
                unsent, in_flight, ..
            } => unsent.is_empty() && *in_flight == 0,
        }
    }

    /// When a query in flight times out (a lookup's per-peer timeout), if one can.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.lookup()
            .filter(|l| l.termination().is_none())
            .and_then(Lookup::next_deadline)
    }

    /// Queries sent so far.
    pub fn queries(&self) -> u32 {
        match &self.route {
            Route::Lookup { lookup, .. } => lookup.queries(),
            Route::Direct { sent, .. } => *sent,
        }
    }

    /// The lookup, for a retrieval that runs one.
    pub fn lookup(&self) -> Option<&Lookup<P>> {
        match &self.route {
            Route::Lookup { lookup, .. } => Some(lookup),
            Route::Direct { .. } => None,
        }
    }

    /// The lookup, to give its memory back once the retrieval is over.
    pub fn into_lookup(self) -> Option<Lookup<P>> {
        match self.route {
            Route::Lookup { lookup, .. } => Some(lookup),
            Route::Direct { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        key::test_key as key,
        lookup::{LookupConfig, Termination},
    };

    fn config() -> LookupConfig {
        LookupConfig {
            k: 3,
            alpha: 2,
            steps_to_stop: 0,
            peer_timeout: None,
        }
    }

    fn queries(retrieve: &mut Retrieve<u8>) -> Vec<u8> {
        let mut sent = Vec::new();
        while let RetrieveStep::Query(peer) = retrieve.poll(Duration::ZERO) {
            sent.push(peer);
        }
        sent
    }

    #[test]
    fn the_first_answer_with_a_record_stops_the_lookup() {
        let target = key(0);
        let seeds = [(8u8, key(8)), (9, key(9)), (10, key(10))];
        let mut retrieve = Retrieve::with_lookup(Lookup::new(target, config(), seeds));
        assert_eq!(queries(&mut retrieve), vec![8, 9]);
        // 8 knows closer peers, no record: the lookup goes on towards them.
        retrieve.on_answer(8, [(2, key(2)), (3, key(3))], false);
        assert!(!retrieve.is_decided());
        assert_eq!(queries(&mut retrieve), vec![2]);
        // 2 (hop 2) holds a record: decided, nothing more is sent, the end is said once.
        retrieve.on_answer(2, [], true);
        assert_eq!(retrieve.found(), Some((2, 2)));
        assert!(retrieve.is_decided());
        assert_eq!(retrieve.poll(Duration::ZERO), RetrieveStep::LookupEnded);
        assert_eq!(retrieve.poll(Duration::ZERO), RetrieveStep::Wait);
        assert_eq!(
            retrieve.lookup().and_then(Lookup::termination),
            Some(Termination::Stopped)
        );
        // A later record (9's) changes nothing; an ended lookup waits for no straggler.
        retrieve.on_answer(9, [], true);
        assert_eq!(retrieve.found(), Some((2, 2)));
        assert!(retrieve.is_idle());
        assert_eq!(retrieve.queries(), 3);
    }

    #[test]
    fn a_lookup_without_a_record_is_decided_when_it_ends() {
        let seeds = [(8u8, key(8)), (9, key(9))];
        let mut retrieve = Retrieve::with_lookup(Lookup::new(key(0), config(), seeds));
        assert_eq!(queries(&mut retrieve), vec![8, 9]);
        retrieve.on_answer(8, [], false);
        assert!(!retrieve.is_decided() && !retrieve.is_idle());
        retrieve.on_failure(9);
        assert_eq!(retrieve.poll(Duration::ZERO), RetrieveStep::LookupEnded);
        assert!(retrieve.is_decided() && retrieve.is_idle());
        assert_eq!(retrieve.found(), None);
    }

    #[test]
    fn a_direct_retrieval_asks_every_peer_and_awaits_them_all() {
        let mut retrieve = Retrieve::direct([5u8, 6, 7]);
        assert!(retrieve.lookup().is_none());
        assert_eq!(queries(&mut retrieve), vec![5, 6, 7]);
        retrieve.on_failure(6);
        retrieve.on_answer(7, [(1, key(1))], true);
        // Found, so decided; one answer still awaited.
        assert_eq!(retrieve.found(), Some((7, 1)));
        assert!(retrieve.is_decided() && !retrieve.is_idle());
        retrieve.on_answer(5, [], true);
        assert_eq!(retrieve.found(), Some((7, 1)));
        assert!(retrieve.is_idle());
        assert_eq!(retrieve.queries(), 3);
    }

    #[test]
    fn a_direct_retrieval_without_a_record_is_decided_by_its_last_answer() {
        let mut retrieve = Retrieve::direct([5u8, 6]);
        assert_eq!(queries(&mut retrieve), vec![5, 6]);
        retrieve.on_answer(5, [], false);
        assert!(!retrieve.is_decided());
        retrieve.on_failure(6);
        assert!(retrieve.is_decided() && retrieve.found().is_none());
    }
}
