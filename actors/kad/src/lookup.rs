//! The iterative Kademlia lookup as a sans-IO state machine.
//!
//! The lookup never sends, sleeps or draws random numbers: its driver asks it which peer to query
//! next ([`Lookup::poll`]), delivers answers and failures, and owns the clock: time is an input
//! (`now`, any monotonic [`Duration`] since an epoch of the driver's choosing). The simulator
//! drives it over virtual time; the libp2p driver feeds it real answers (the peer handle `P` is
//! any copyable id).
//!
//! Termination follows libp2p's `ClosestPeersIter`: the lookup ends when the `k` closest peers it
//! knows have all answered. With `steps_to_stop > 0` it also ends, as py-dht's lookup does, after
//! that many answers in a row brought no new peer into the `k` closest. A termination hook
//! ([`Lookup::poll_with`]) may end it earlier: optimistic provide stops once the closest peers are
//! close enough for the network's estimated size.
//!
//! A peer that has not answered within the per-peer timeout becomes *unresponsive*: it frees its
//! slot of the `alpha` in flight and no longer holds the end of the lookup, but a late answer
//! still counts (its peers are added, it can be among the closest).

use std::time::Duration;

use crate::key::{Distance, Key};

/// Parameters of one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupConfig {
    /// Peers the lookup converges on (the bucket size k).
    pub k: usize,
    /// Queries in flight at once.
    pub alpha: usize,
    /// Answers in a row without progress that end the lookup (0: only the classic rule).
    pub steps_to_stop: usize,
    /// After this long without an answer a peer is unresponsive (`None`: a query waits for its
    /// answer or failure).
    pub peer_timeout: Option<Duration>,
}

impl Default for LookupConfig {
    fn default() -> Self {
        Self {
            k: 20,
            alpha: 3,
            steps_to_stop: 0,
            peer_timeout: None,
        }
    }
}

/// What the driver should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<P> {
    /// Send a query to this peer.
    Query(P),
    /// Wait for an answer, a failure, or the next deadline ([`Lookup::next_deadline`]).
    Wait,
    /// The lookup is over.
    Finished,
}

/// Why a lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Termination {
    /// The `k` closest known peers all answered.
    Converged,
    /// `steps_to_stop` answers in a row brought nothing closer.
    NoProgress,
    /// No peer left to query and none in flight.
    Exhausted,
    /// The driver ended it (e.g. a provider record was found).
    Stopped,
    /// The termination hook ended it (e.g. optimistic provide's set threshold).
    Satisfied,
}

/// Where a candidate peer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Heard of, not asked yet.
    NotContacted,
    /// Asked; the answer is pending.
    Waiting,
    /// Asked, and silent past the per-peer timeout: its slot is free, a late answer still counts.
    Unresponsive,
    /// Answered.
    Succeeded,
    /// Failed (unreachable, an error).
    Failed,
}

impl PeerState {
    /// Whether the peer may still be among the closest: not failed and not silent.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Failed | Self::Unresponsive)
    }
}

/// A peer heard of. Kept small (40 bytes for a `u32` peer): the candidates are walked on every
/// poll and moved on every insertion, which was a third of a simulated lookup at 64 bytes.
#[derive(Clone, Copy, Debug)]
struct Candidate<P> {
    distance: Distance,
    peer: P,
    state: PeerState,
    /// Answers on the path from the lookup's own routing table to this peer (seeds are hop 1;
    /// saturating).
    hop: u16,
}

/// A query sent whose answer may still come: waiting, or silent past the timeout.
#[derive(Clone, Copy, Debug)]
struct Pending<P> {
    peer: P,
    distance: Distance,
    sent: Duration,
    /// Past the per-peer timeout: it no longer holds a slot.
    silent: bool,
}

/// One iterative lookup of `target`.
#[derive(Clone, Debug)]
pub struct Lookup<P> {
    target: Key,
    config: LookupConfig,
    /// Every peer heard of, *farthest* first: answers mostly bring peers closer than most known
    /// ones, and inserting them at the closer end moves only the few closer still (inserting at
    /// the front moved the whole list: a sixth of a simulated lookup).
    candidates: Vec<Candidate<P>>,
    /// An answer's new peers while they are merged into `candidates` (kept for its memory).
    incoming: Vec<Candidate<P>>,
    /// Queries whose answer may still come (at most `alpha` not silent).
    pending: Vec<Pending<P>>,
    in_flight: usize,
    answers_without_progress: usize,
    /// An answer arrived since the hook last looked.
    unseen_answer: bool,
    queries: u32,
    termination: Option<Termination>,
}

impl<P: Copy + Eq> Lookup<P> {
    /// A lookup of `target` that starts from `seeds` (peers of the local routing table).
    pub fn new(target: Key, config: LookupConfig, seeds: impl IntoIterator<Item = (P, Key)>) -> Self {
        let mut lookup = Self {
            target,
            config,
            candidates: Vec::with_capacity(8 * config.k.max(1)),
            incoming: Vec::with_capacity(config.k.max(1)),
            pending: Vec::with_capacity(config.alpha.max(1)),
            in_flight: 0,
            answers_without_progress: 0,
            unseen_answer: false,
            queries: 0,
            termination: None,
        };
        lookup.restart(target, config, seeds);
        lookup
    }

    /// Starts a new lookup in this one's place, keeping its memory: a simulator runs millions of
    /// lookups one after the other, and allocating each one's lists was a tenth of its time.
    pub fn restart(&mut self, target: Key, config: LookupConfig, seeds: impl IntoIterator<Item = (P, Key)>) {
        self.target = target;
        self.config = LookupConfig {
            k: config.k.max(1),
            alpha: config.alpha.max(1),
            ..config
        };
        self.candidates.clear();
        self.pending.clear();
        self.in_flight = 0;
        self.answers_without_progress = 0;
        self.unseen_answer = false;
        self.queries = 0;
        self.termination = None;
        // Sorted at once rather than inserted one by one: seeds come in no particular order.
        let target = self.target;
        self.candidates
            .extend(seeds.into_iter().map(|(peer, key)| Candidate {
                distance: key.distance(&target),
                peer,
                state: PeerState::NotContacted,
                hop: 1,
            }));
        self.candidates
            .sort_unstable_by_key(|c| std::cmp::Reverse(c.distance));
        // A peer's key is unique, so an equal distance means a peer listed twice.
        self.candidates.dedup_by(|a, b| a.distance == b.distance);
    }

    /// The key looked up.
    pub fn target(&self) -> Key {
        self.target
    }

    /// The next step at time `now`: a peer to query (marked as in flight), waiting, or the end.
    pub fn poll(&mut self, now: Duration) -> Next<P> {
        self.poll_with(now, |_| false)
    }

    /// [`Lookup::poll`] with a termination hook, asked after new answers: returning true ends the
    /// lookup ([`Termination::Satisfied`]).
    pub fn poll_with(&mut self, now: Duration, mut hook: impl FnMut(&Self) -> bool) -> Next<P> {
        if self.termination.is_some() {
            return Next::Finished;
        }
        self.expire(now);
        if std::mem::take(&mut self.unseen_answer) && hook(self) {
            return self.end(Termination::Satisfied);
        }
        let mut succeeded = 0;
        let mut waiting = false;
        for index in (0..self.candidates.len()).rev() {
            match self.candidates[index].state {
                PeerState::Failed | PeerState::Unresponsive => continue,
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
                    self.pending.push(Pending {
                        peer: candidate.peer,
                        distance: candidate.distance,
                        sent: now,
                        silent: false,
                    });
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

    /// When the next query in flight times out, if any does (a driver's wake-up time).
    pub fn next_deadline(&self) -> Option<Duration> {
        let timeout = self.config.peer_timeout?;
        self.pending
            .iter()
            .filter(|p| !p.silent)
            .map(|p| p.sent + timeout)
            .min()
    }

    /// `peer` answered with the peers it knows closest to the target. A late answer (after the
    /// timeout made the peer unresponsive) counts as well.
    pub fn on_answer(&mut self, peer: P, closer: impl IntoIterator<Item = (P, Key)>) {
        let Some(hop) = self.settle(peer, PeerState::Succeeded) else {
            return;
        };
        self.unseen_answer = true;
        let progressed = self.insert_all(closer, hop.saturating_add(1));
        if progressed {
            self.answers_without_progress = 0;
        } else {
            self.answers_without_progress += 1;
            if self.config.steps_to_stop > 0 && self.answers_without_progress >= self.config.steps_to_stop {
                self.end(Termination::NoProgress);
            }
        }
    }

    /// The query to `peer` failed (unreachable, or an error).
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

    /// Queries started that have not answered, failed or timed out.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Queries started that have neither answered nor failed (those past the timeout included).
    pub fn unanswered(&self) -> usize {
        self.pending.len()
    }

    /// The `k` closest peers that answered, closest first, with their hop counts.
    pub fn closest_answered(&self) -> impl Iterator<Item = (P, u32)> + '_ {
        self.candidates
            .iter()
            .rev()
            .filter(|c| c.state == PeerState::Succeeded)
            .take(self.config.k)
            .map(|c| (c.peer, u32::from(c.hop)))
    }

    /// The `k` closest peers heard of that did not fail, closest first: the lookup's result when
    /// it ended before all of them answered.
    pub fn closest_known(&self) -> impl Iterator<Item = P> + '_ {
        self.candidates
            .iter()
            .rev()
            .filter(|c| c.state != PeerState::Failed)
            .take(self.config.k)
            .map(|c| c.peer)
    }

    /// The `count` closest candidates that may still be among the closest (not failed, not
    /// unresponsive), closest first, with their distance to the target and state.
    pub fn closest_live(&self, count: usize) -> impl Iterator<Item = (P, Distance, PeerState)> + '_ {
        self.candidates
            .iter()
            .rev()
            .filter(|c| c.state.is_live())
            .take(count)
            .map(|c| (c.peer, c.distance, c.state))
    }

    /// Where `peer` stands, if it is a candidate.
    pub fn state_of(&self, peer: P) -> Option<PeerState> {
        self.candidates.iter().find(|c| c.peer == peer).map(|c| c.state)
    }

    /// Hops to `peer` (1 for peers of the local routing table), if it is a candidate.
    pub fn hop_of(&self, peer: P) -> Option<u32> {
        self.candidates
            .iter()
            .find(|c| c.peer == peer)
            .map(|c| u32::from(c.hop))
    }

    fn end(&mut self, termination: Termination) -> Next<P> {
        self.termination.get_or_insert(termination);
        Next::Finished
    }

    /// Queries in flight past the per-peer timeout become unresponsive and free their slot.
    fn expire(&mut self, now: Duration) {
        let Some(timeout) = self.config.peer_timeout else {
            return;
        };
        if self.in_flight == 0 {
            return;
        }
        for at in 0..self.pending.len() {
            let pending = self.pending[at];
            if !pending.silent && pending.sent + timeout <= now {
                self.pending[at].silent = true;
                self.in_flight -= 1;
                let index = self.position(&pending.distance);
                self.candidates[index].state = PeerState::Unresponsive;
            }
        }
    }

    /// Where the candidate at `distance` is (it must be one).
    fn position(&self, distance: &Distance) -> usize {
        self.search(distance).expect("a pending query is a candidate")
    }

    /// Where `distance` is among the candidates (farthest first), or would go.
    fn search(&self, distance: &Distance) -> Result<usize, usize> {
        self.candidates.binary_search_by(|c| distance.cmp(&c.distance))
    }

    /// Records the outcome of a query (in flight, or unresponsive); returns the peer's hop count.
    fn settle(&mut self, peer: P, state: PeerState) -> Option<u16> {
        let pending = self.pending.iter().position(|p| p.peer == peer)?;
        let pending = self.pending.swap_remove(pending);
        if !pending.silent {
            self.in_flight -= 1;
        }
        let index = self.position(&pending.distance);
        let candidate = &mut self.candidates[index];
        candidate.state = state;
        Some(candidate.hop)
    }

    /// Adds new peers; true if one of them is now among the `k` closest candidates.
    ///
    /// Merged in one pass from the closer end: inserting them one by one searched the list and
    /// moved its closer part once per peer.
    fn insert_all(&mut self, peers: impl IntoIterator<Item = (P, Key)>, hop: u16) -> bool {
        let target = self.target;
        let mut incoming = std::mem::take(&mut self.incoming);
        incoming.clear();
        incoming.extend(peers.into_iter().map(|(peer, key)| Candidate {
            distance: key.distance(&target),
            peer,
            state: PeerState::NotContacted,
            hop,
        }));
        // Farthest first, like the candidates; a peer's key is unique, so an equal distance
        // means a peer listed twice.
        incoming.sort_unstable_by_key(|c| std::cmp::Reverse(c.distance));
        incoming.dedup_by(|a, b| a.distance == b.distance);
        let known = self.candidates.len();
        // Room at the closer end; the merge fills it from the back.
        self.candidates.extend_from_slice(&incoming);
        let candidates = &mut self.candidates;
        let (mut old, mut new, mut write) = (known, incoming.len(), known + incoming.len());
        // Known candidates closer than the closest newcomer, once it is placed.
        let mut closer_than_newcomer = None;
        while new > 0 {
            let newcomer = incoming[new - 1];
            match (old > 0).then(|| candidates[old - 1].distance.cmp(&newcomer.distance)) {
                Some(std::cmp::Ordering::Less) => {
                    write -= 1;
                    candidates[write] = candidates[old - 1];
                    old -= 1;
                }
                // A peer known already.
                Some(std::cmp::Ordering::Equal) => new -= 1,
                _ => {
                    write -= 1;
                    candidates[write] = newcomer;
                    new -= 1;
                    closer_than_newcomer.get_or_insert(known - old);
                }
            }
        }
        // Peers known already left a gap between the untouched farther part and the merged one.
        if write > old {
            let end = candidates.len();
            candidates.copy_within(write..end, old);
            candidates.truncate(end - (write - old));
        }
        self.incoming = incoming;
        closer_than_newcomer.is_some_and(|closer| closer < self.config.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::key::test_key as key;

    fn config(k: usize, alpha: usize) -> LookupConfig {
        LookupConfig {
            k,
            alpha,
            steps_to_stop: 0,
            peer_timeout: None,
        }
    }

    /// The merge against the definition it replaced: each new peer inserted in turn, progress
    /// when one lands among the `k` closest; answers repeat known peers and list one twice.
    #[test]
    fn answers_merge_as_if_inserted_one_by_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for round in 0..200 {
            let k = rng.gen_range(1..6);
            let target = Key::random(&mut rng);
            let keys: Vec<Key> = (0..60).map(|_| Key::random(&mut rng)).collect();
            let seeds: Vec<(u32, Key)> = (0..rng.gen_range(0..8)).map(|p| (p, keys[p as usize])).collect();
            let mut lookup = Lookup::new(target, config(k, 3), seeds.iter().copied());
            // Closest first, as the list the old code kept.
            let mut expected: Vec<(Distance, u32)> =
                seeds.iter().map(|&(p, key)| (key.distance(&target), p)).collect();
            expected.sort();
            for _ in 0..6 {
                let answer: Vec<(u32, Key)> = (0..rng.gen_range(0..25))
                    .map(|_| rng.gen_range(0..60u32))
                    .map(|p| (p, keys[p as usize]))
                    .collect();
                let mut progressed = false;
                for &(peer, key) in &answer {
                    let distance = key.distance(&target);
                    if let Err(at) = expected.binary_search(&(distance, peer)) {
                        expected.insert(at, (distance, peer));
                        progressed |= at < k;
                    }
                }
                assert_eq!(lookup.insert_all(answer, 2), progressed, "round {round}");
                let listed: Vec<(Distance, u32)> = lookup
                    .candidates
                    .iter()
                    .rev()
                    .map(|c| (c.distance, c.peer))
                    .collect();
                assert_eq!(listed, expected, "round {round}");
            }
        }
    }

    #[test]
    fn queries_closest_first_and_at_most_alpha_at_once() {
        let mut lookup = Lookup::new(key(0), config(2, 2), [(3u32, key(3)), (1, key(1)), (2, key(2))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(2));
        assert_eq!(lookup.poll(Duration::ZERO), Next::Wait);
        lookup.on_answer(1, []);
        lookup.on_failure(2);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(3));
        lookup.on_answer(3, []);
        // 1 and 3 answered: the two closest that did not fail.
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Converged));
        assert_eq!(
            lookup.closest_answered().collect::<Vec<_>>(),
            vec![(1, 1), (3, 1)]
        );
    }

    #[test]
    fn answers_bring_closer_peers_with_hop_counts() {
        let mut lookup = Lookup::new(key(0), config(1, 1), [(9u32, key(9))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(9));
        lookup.on_answer(9, [(4, key(4)), (9, key(9))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(4));
        lookup.on_answer(4, [(1, key(1))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.closest_answered().collect::<Vec<_>>(), vec![(1, 3)]);
        assert_eq!(lookup.queries(), 3);
    }

    #[test]
    fn a_closer_peer_in_flight_holds_the_end() {
        let mut lookup = Lookup::new(key(0), config(2, 2), [(5u32, key(5)), (6, key(6))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(5));
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(6));
        lookup.on_answer(5, [(1, key(1))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        // 5 and 6 answered, but 1 is closer than both and has not.
        lookup.on_answer(6, []);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Wait);
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Converged));
        assert_eq!(
            lookup.closest_answered().collect::<Vec<_>>(),
            vec![(1, 2), (5, 1)]
        );
    }

    #[test]
    fn a_restarted_lookup_is_a_new_lookup_and_lists_a_seed_once() {
        let seeds = [(7u32, key(7)), (3, key(3)), (5, key(5)), (3, key(3))];
        let mut reused = Lookup::new(key(9), config(1, 1), [(1u32, key(1))]);
        assert_eq!(reused.poll(Duration::ZERO), Next::Query(1));
        reused.on_answer(1, [(2, key(2))]);
        reused.restart(key(0), config(2, 2), seeds);
        let mut fresh = Lookup::new(key(0), config(2, 2), seeds);
        for lookup in [&mut reused, &mut fresh] {
            assert_eq!(lookup.queries(), 0);
            assert_eq!(lookup.closest_known().collect::<Vec<_>>(), vec![3, 5]);
            assert_eq!(lookup.poll(Duration::ZERO), Next::Query(3));
            assert_eq!(lookup.poll(Duration::ZERO), Next::Query(5));
            lookup.on_answer(3, []);
            lookup.on_answer(5, []);
            assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
            assert_eq!(lookup.termination(), Some(Termination::Converged));
        }
    }

    #[test]
    fn ends_when_nothing_is_left() {
        let mut lookup = Lookup::new(key(0), config(5, 3), [(1u32, key(1))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        lookup.on_failure(1);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
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
                peer_timeout: None,
            },
            seeds,
        );
        for expected in [1, 2] {
            assert_eq!(lookup.poll(Duration::ZERO), Next::Query(expected));
            lookup.on_answer(expected, []);
        }
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::NoProgress));
    }

    #[test]
    fn only_a_peer_among_the_k_closest_is_progress() {
        let config = LookupConfig {
            k: 2,
            alpha: 1,
            steps_to_stop: 1,
            peer_timeout: None,
        };
        let seeds = [(2u32, key(2)), (4, key(4)), (6, key(6))];
        // 9 and 7 rank behind the two closest (2 and 4): no progress, and one step ends it.
        let mut lookup = Lookup::new(key(0), config, seeds);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(2));
        lookup.on_answer(2, [(9, key(9)), (7, key(7))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::NoProgress));
        // Every peer heard of, closest first, whatever order the answer brought them in.
        let all: Vec<u32> = lookup.closest_live(10).map(|(p, _, _)| p).collect();
        assert_eq!(all, vec![2, 4, 6, 7, 9]);

        // 3 ranks second (2, 3, 4, …): progress, even behind a farther peer of the same answer.
        let mut lookup = Lookup::new(key(0), config, seeds);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(2));
        lookup.on_answer(2, [(5, key(5)), (3, key(3))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(3));
        assert_eq!(lookup.termination(), None);
        assert_eq!(lookup.closest_known().collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn late_or_unknown_answers_are_ignored() {
        let mut lookup = Lookup::new(key(0), config(1, 1), [(1u32, key(1))]);
        lookup.on_answer(7, [(2, key(2))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        lookup.stop();
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Stopped));
    }

    #[test]
    fn a_silent_peer_frees_its_slot_and_a_late_answer_still_counts() {
        let second = Duration::from_secs(1);
        let config = LookupConfig {
            peer_timeout: Some(second),
            ..config(2, 1)
        };
        let mut lookup = Lookup::new(key(0), config, [(1u32, key(1)), (2, key(2)), (3, key(3))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        assert_eq!(lookup.next_deadline(), Some(second));
        assert_eq!(lookup.poll(second / 2), Next::Wait);
        // Peer 1 is silent past the timeout: alpha = 1, so its slot goes to the next peer.
        assert_eq!(lookup.poll(second), Next::Query(2));
        assert_eq!(lookup.in_flight(), 1);
        lookup.on_answer(2, []);
        assert_eq!(lookup.poll(second), Next::Query(3));
        lookup.on_answer(3, []);
        // 2 and 3 answered; unresponsive 1 does not hold the end.
        assert_eq!(lookup.poll(second), Next::Finished);
        assert_eq!(
            lookup.closest_answered().map(|(p, _)| p).collect::<Vec<_>>(),
            vec![2, 3]
        );

        // The same, but 1 answers late, with a closer peer, before the end.
        let mut lookup = Lookup::new(key(0), config, [(1u32, key(1)), (2, key(2)), (3, key(3))]);
        assert_eq!(lookup.poll(Duration::ZERO), Next::Query(1));
        assert_eq!(lookup.poll(second), Next::Query(2));
        lookup.on_answer(1, [(9, key(0b1000_0000))]);
        assert_eq!(lookup.in_flight(), 1, "a late answer does not free a slot twice");
        lookup.on_answer(2, []);
        assert_eq!(lookup.poll(second), Next::Finished);
        assert_eq!(
            lookup.closest_answered().map(|(p, _)| p).collect::<Vec<_>>(),
            vec![1, 2]
        );
    }

    #[test]
    fn the_hook_ends_a_lookup_after_an_answer() {
        let mut lookup = Lookup::new(key(0), config(3, 1), [(1u32, key(1)), (2, key(2)), (3, key(3))]);
        let mut asked = 0;
        let mut hook = |l: &Lookup<u32>| {
            asked += 1;
            l.closest_answered().count() >= 1
        };
        assert_eq!(lookup.poll_with(Duration::ZERO, &mut hook), Next::Query(1));
        lookup.on_answer(1, []);
        assert_eq!(lookup.poll_with(Duration::ZERO, &mut hook), Next::Finished);
        assert_eq!(lookup.termination(), Some(Termination::Satisfied));
        assert_eq!(asked, 1, "asked once per new answer");
    }
}
