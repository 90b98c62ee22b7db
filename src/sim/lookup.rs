//! The iterative Kademlia lookup as a sans-IO state machine.
//!
//! The lookup never sends, sleeps or draws random numbers: its driver asks it which peer to query
//! next ([`Lookup::poll`]), delivers answers and failures, and owns the clock. The simulator
//! drives it over virtual time; a libp2p driver can feed it real answers (the peer handle `P` is
//! any copyable id).
//!
//! Termination follows libp2p's `ClosestPeersIter`: the lookup ends when the `k` closest peers it
//! knows have all answered. With `steps_to_stop > 0` it also ends, as py-dht's lookup does, after
//! that many answers in a row brought no new peer into the `k` closest.

use super::key::{Distance, Key};

/// Parameters of one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupConfig {
    /// Peers the lookup converges on (the bucket size k).
    pub k: usize,
    /// Queries in flight at once.
    pub alpha: usize,
    /// Answers in a row without progress that end the lookup (0: only the classic rule).
    pub steps_to_stop: usize,
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self {
            k: 20,
            alpha: 3,
            steps_to_stop: 0,
        }
    }
}

/// What the driver should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<P> {
    /// Send a query to this peer.
    Query(P),
    /// Wait for an answer or failure of a query in flight.
    Wait,
    /// The lookup is over.
    Finished,
}

/// Why a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The `k` closest known peers all answered.
    Converged,
    /// `steps_to_stop` answers in a row brought nothing closer.
    NoProgress,
    /// No peer left to query and none in flight.
    Exhausted,
    /// The driver ended it (e.g. a provider record was found).
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerState {
    NotContacted,
    Waiting,
    Succeeded,
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Candidate<P> {
    peer: P,
    distance: Distance,
    state: PeerState,
    /// Answers on the path from the lookup's own routing table to this peer (seeds are hop 1).
    hop: u32,
}

/// One iterative lookup of `target`.
#[derive(Clone, Debug)]
pub struct Lookup<P> {
    target: Key,
    config: LookupConfig,
    /// Every peer heard of, closest first.
    candidates: Vec<Candidate<P>>,
    in_flight: usize,
    answers_without_progress: usize,
    queries: u32,
    termination: Option<Termination>,
}

impl<P: Copy + Eq> Lookup<P> {
    /// A lookup of `target` that starts from `seeds` (peers of the local routing table).
    pub fn new(target: Key, config: LookupConfig, seeds: impl IntoIterator<Item = (P, Key)>) -> Self {
        let mut lookup = Self {
            target,
            config: LookupConfig {
                k: config.k.max(1),
                alpha: config.alpha.max(1),
                ..config
            },
            candidates: Vec::new(),
            in_flight: 0,
            answers_without_progress: 0,
            queries: 0,
            termination: None,
        };
        lookup.insert_all(seeds, 1);
        lookup
    }

    /// The key looked up.
    pub fn target(&self) -> Key {
        self.target
    }

    /// The next step: a peer to query (marked as in flight), waiting, or the end.
    pub fn poll(&mut self) -> Next<P> {
        if self.termination.is_some() {
            return Next::Finished;
        }
        let mut succeeded = 0;
        let mut waiting = false;
        for index in 0..self.candidates.len() {
            match self.candidates[index].state {
                PeerState::Failed => continue,
                // The `k` closest must all have answered: a closer peer still in flight may
                // bring closer ones (libp2p's rule), so answers behind it no longer count.
                PeerState::Succeeded if !waiting => {
                    succeeded += 1;
                    if succeeded >= self.config.k {
                        return self.end(Termination::Converged);
                    }
                }
                PeerState::Succeeded => {}
                PeerState::Waiting => waiting = true,
                PeerState::NotContacted => {
                    if self.in_flight >= self.config.alpha {
                        return Next::Wait;
                    }
                    let candidate = &mut self.candidates[index];
                    candidate.state = PeerState::Waiting;
                    self.in_flight += 1;
                    self.queries += 1;
                    return Next::Query(candidate.peer);
                }
            }
        }
        if waiting {
            Next::Wait
        } else {
            self.end(Termination::Exhausted)
        }
    }

    /// `peer` answered with the peers it knows closest to the target.
    pub fn on_answer(&mut self, peer: P, closer: impl IntoIterator<Item = (P, Key)>) {
        let Some(hop) = self.settle(peer, PeerState::Succeeded) else {
            return;
        };
        let progressed = self.insert_all(closer, hop + 1);
        if progressed {
            self.answers_without_progress = 0;
        } else {
            self.answers_without_progress += 1;
            if self.config.steps_to_stop > 0 && self.answers_without_progress >= self.config.steps_to_stop {
                self.end(Termination::NoProgress);
            }
        }
    }

    /// The query to `peer` failed (unreachable, timed out, or an error).
    pub fn on_failure(&mut self, peer: P) {
        self.settle(peer, PeerState::Failed);
    }

    /// Ends the lookup now (the driver found what it was looking for).
    pub fn stop(&mut self) {
        self.end(Termination::Stopped);
    }

    /// Why the lookup ended (`None` while it runs).
    pub fn termination(&self) -> Option<Termination> {
        self.termination
    }

    /// Queries started so far.
    pub fn queries(&self) -> u32 {
        self.queries
    }

    /// Queries started that have not answered or failed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// The `k` closest peers that answered, closest first, with their hop counts.
    pub fn closest_answered(&self) -> impl Iterator<Item = (P, u32)> + '_ {
        self.candidates
            .iter()
            .filter(|c| c.state == PeerState::Succeeded)
            .take(self.config.k)
            .map(|c| (c.peer, c.hop))
    }

    /// The `k` closest peers heard of that did not fail, closest first: the lookup's result when
    /// it ended before all of them answered.
    pub fn closest_known(&self) -> impl Iterator<Item = P> + '_ {
        self.candidates
            .iter()
            .filter(|c| c.state != PeerState::Failed)
            .take(self.config.k)
            .map(|c| c.peer)
    }

    /// Hops to `peer` (1 for peers of the local routing table), if it is a candidate.
    pub fn hop_of(&self, peer: P) -> Option<u32> {
        self.candidates.iter().find(|c| c.peer == peer).map(|c| c.hop)
    }

    fn end(&mut self, termination: Termination) -> Next<P> {
        self.termination.get_or_insert(termination);
        Next::Finished
    }

    /// Records the outcome of a query in flight; returns the peer's hop count.
    fn settle(&mut self, peer: P, state: PeerState) -> Option<u32> {
        let candidate = self
            .candidates
            .iter_mut()
            .find(|c| c.peer == peer && c.state == PeerState::Waiting)?;
        candidate.state = state;
        self.in_flight -= 1;
        Some(candidate.hop)
    }

    /// Adds new peers; true if one of them is now among the `k` closest candidates.
    fn insert_all(&mut self, peers: impl IntoIterator<Item = (P, Key)>, hop: u32) -> bool {
        let mut progressed = false;
        for (peer, key) in peers {
            let distance = key.distance(&self.target);
            // A peer's key is unique, so an equal distance means a peer known already.
            let Err(position) = self.candidates.binary_search_by(|c| c.distance.cmp(&distance)) else {
                continue;
            };
            self.candidates.insert(
                position,
                Candidate {
                    peer,
                    distance,
                    state: PeerState::NotContacted,
                    hop,
                },
            );
            progressed |= position < self.config.k;
        }
        progressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        let mut bytes = [0u8; 32];
        bytes[0] = byte;
        Key::from_bytes(bytes)
    }

    fn config(k: usize, alpha: usize) -> LookupConfig {
        LookupConfig {
            k,
            alpha,
            steps_to_stop: 0,
        }
    }

    #[test]
    fn queries_closest_first_and_at_most_alpha_at_once() {
        let mut lookup = Lookup::new(key(0), config(2, 2), [(3u32, key(3)), (1, key(1)), (2, key(2))]);
        assert_eq!(lookup.poll(), Next::Query(1));
        assert_eq!(lookup.poll(), Next::Query(2));
        assert_eq!(lookup.poll(), Next::Wait);
        lookup.on_answer(1, []);
        lookup.on_failure(2);
        assert_eq!(lookup.poll(), Next::Query(3));
        lookup.on_answer(3, []);
        // 1 and 3 answered: the two closest that did not fail.
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Converged));
        assert_eq!(
            lookup.closest_answered().collect::<Vec<_>>(),
            vec![(1, 1), (3, 1)]
        );
    }

    #[test]
    fn answers_bring_closer_peers_with_hop_counts() {
        let mut lookup = Lookup::new(key(0), config(1, 1), [(9u32, key(9))]);
        assert_eq!(lookup.poll(), Next::Query(9));
        lookup.on_answer(9, [(4, key(4)), (9, key(9))]);
        assert_eq!(lookup.poll(), Next::Query(4));
        lookup.on_answer(4, [(1, key(1))]);
        assert_eq!(lookup.poll(), Next::Query(1));
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.closest_answered().collect::<Vec<_>>(), vec![(1, 3)]);
        assert_eq!(lookup.queries(), 3);
    }

    #[test]
    fn a_closer_peer_in_flight_holds_the_end() {
        let mut lookup = Lookup::new(key(0), config(2, 2), [(5u32, key(5)), (6, key(6))]);
        assert_eq!(lookup.poll(), Next::Query(5));
        assert_eq!(lookup.poll(), Next::Query(6));
        lookup.on_answer(5, [(1, key(1))]);
        assert_eq!(lookup.poll(), Next::Query(1));
        // 5 and 6 answered, but 1 is closer than both and has not.
        lookup.on_answer(6, []);
        assert_eq!(lookup.poll(), Next::Wait);
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Converged));
        assert_eq!(
            lookup.closest_answered().collect::<Vec<_>>(),
            vec![(1, 2), (5, 1)]
        );
    }

    #[test]
    fn ends_when_nothing_is_left() {
        let mut lookup = Lookup::new(key(0), config(5, 3), [(1u32, key(1))]);
        assert_eq!(lookup.poll(), Next::Query(1));
        lookup.on_failure(1);
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Exhausted));
        assert_eq!(lookup.closest_answered().count(), 0);
    }

    #[test]
    fn steps_to_stop_ends_a_lookup_that_makes_no_progress() {
        let seeds = (1..=10u8).map(|b| (u32::from(b), key(b)));
        let mut lookup = Lookup::new(
            key(0),
            LookupConfig {
                k: 10,
                alpha: 1,
                steps_to_stop: 2,
            },
            seeds,
        );
        for expected in [1, 2] {
            assert_eq!(lookup.poll(), Next::Query(expected));
            lookup.on_answer(expected, []);
        }
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::NoProgress));
    }

    #[test]
    fn late_or_unknown_answers_are_ignored() {
        let mut lookup = Lookup::new(key(0), config(1, 1), [(1u32, key(1))]);
        lookup.on_answer(7, [(2, key(2))]);
        assert_eq!(lookup.poll(), Next::Query(1));
        lookup.stop();
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Stopped));
    }
}
