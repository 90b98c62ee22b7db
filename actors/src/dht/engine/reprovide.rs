//! A reprovide round on real peers: the records of many keys sent again, one provide per key
//! (`classic`) or region by region (`sweep`, parsec-kad's [`Sweep`] schedule and [`Walk`]s), with
//! up to `workers` provides or walks at once.
//!
//! The round is bookkeeping only: the [`Engine`](super::Engine) starts the lookups, provides and
//! ADD_PROVIDER batches it asks for, and hands back what they became as [`RoundEvent`]s. A
//! sweep's sends to one peer travel as batches of ADD_PROVIDERs on one stream each (as
//! go-libp2p-kad-dht's sweep writes them on its message sender's stream); the peer closing the
//! stream after reading them acknowledges every record of the batch.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    time::{Duration, Instant},
};

use libp2p::{Multiaddr, PeerId};
use parsec_kad::{
    region::Prefix,
    reprovide::{ReprovideRound, ReprovideStrategy, WalkReport},
    sweep::{Sweep, SweepConfig, SweepStep, WalkKind},
    walk::{Walk, WalkStep, CONNECTIONS_PER_WALK, MAX_EXPLORATION_LOOKUPS},
    Key,
};

use super::OperationId;
use crate::dht::QueryCounts;

/// ADD_PROVIDERs written on one stream at most: a peer of a large region stores thousands of a
/// round's keys; a batch of 1,024 is about 120 KiB, well within a request's timeout.
pub(crate) const MAX_BATCH_MESSAGES: usize = 1024;

/// What became of work the round asked for.
#[derive(Debug)]
pub(crate) enum RoundEvent {
    /// An exploration lookup ended: the closest peers that answered, with their addresses.
    Explored {
        id: OperationId,
        counts: QueryCounts,
        closest: Vec<(Key, PeerId, Vec<Multiaddr>)>,
    },
    /// A classic provide returned.
    Provided {
        id: OperationId,
        counts: QueryCounts,
        record_peers: u32,
    },
    /// A batch of `messages` ADD_PROVIDERs to `peer` ended, `stored` of them acknowledged.
    Batch {
        walk: Prefix,
        peer: PeerId,
        messages: u32,
        stored: u32,
    },
}

/// What the round asks the engine to do next.
#[derive(Debug)]
pub(crate) enum RoundStep {
    /// Start a provide of the key at this position (classic).
    Provide(usize),
    /// Start a FIND_NODE lookup of `part`'s first key for the walk of `walk`.
    Explore { walk: Prefix, part: Prefix },
    /// Send `peer` one batch: the records of the keys at these positions, for the walk of
    /// `walk` (a peer's next batch goes once this one ended).
    Send {
        walk: Prefix,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        positions: Vec<usize>,
    },
}

/// A walk's sends to one peer: one batch on the wire at a time, so that a peer storing thousands
/// of records reads them at its own pace instead of every batch waiting out its timeout at once.
struct PeerSends {
    addrs: Vec<Multiaddr>,
    batches: VecDeque<Vec<usize>>,
}

/// A walk in flight.
struct ActiveWalk {
    walk: Walk<PeerId>,
    kind: WalkKind,
    started: Instant,
    /// Addresses of the peers its lookups found.
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Peers with a batch out, and the batches they have still to get.
    sending: HashMap<PeerId, PeerSends>,
    /// Its requests, failures and copies so far.
    report: WalkReport,
}

enum Plan {
    Classic {
        next: usize,
        providing: HashMap<OperationId, Instant>,
    },
    Sweep {
        sweep: Box<Sweep>,
        walks: HashMap<Prefix, ActiveWalk>,
        /// Exploration lookups out, by operation, with their walk.
        exploring: HashMap<OperationId, Prefix>,
        /// Regions whose keys were sent (a later walk widened over one skips its keys).
        sent: BTreeSet<Prefix>,
    },
}

/// One reprovide round.
pub(crate) struct Round {
    strategy: ReprovideStrategy,
    workers: usize,
    k: usize,
    started: Instant,
    /// Every key ascending in the key space, and at the same position its record key.
    keys: Vec<Key>,
    record_keys: Vec<Vec<u8>>,
    /// The addresses our provider records announce.
    pub(crate) own_addrs: Vec<Multiaddr>,
    plan: Plan,
    /// Steps that events made ready (a peer's next batch).
    ready: Vec<RoundStep>,
    report: ReprovideRound,
}

/// Extra bits a lookup's target matches past its part's prefix: peers order a part's
/// candidates by distance to the preimage's hash, which differs from the part's first key only
/// below these bits (about 2^-6 of the part), where one peer at most is likely to sit.
pub(crate) const PREIMAGE_EXTRA_BITS: u32 = 6;

impl Round {
    /// A round over `record_keys` (CIDs' multihashes) with `strategy`, `workers` provides or
    /// walks at once; a sweep starts from prefixes of `prefix_len` bits (the schedule refines
    /// them as its walks find the regions), ordered around `own` (our key) as Kubo's cycle is.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        record_keys: Vec<Vec<u8>>,
        own_addrs: Vec<Multiaddr>,
        strategy: ReprovideStrategy,
        workers: usize,
        k: usize,
        own: Key,
        prefix_len: u32,
        now: Duration,
    ) -> Self {
        let mut keyed: Vec<(Key, Vec<u8>)> = record_keys.into_iter().map(|r| (Key::hash_of(&r), r)).collect();
        keyed.sort_unstable_by_key(|entry| entry.0);
        keyed.dedup_by(|a, b| a.0 == b.0);
        let (keys, record_keys): (Vec<Key>, Vec<Vec<u8>>) = keyed.into_iter().unzip();
        let workers = workers.max(1);
        let plan = match strategy {
            ReprovideStrategy::Classic => Plan::Classic {
                next: 0,
                providing: HashMap::new(),
            },
            ReprovideStrategy::Sweep => {
                let config = SweepConfig {
                    k,
                    max_workers: workers,
                    // A forced reprovide: every worker serves it.
                    reserved_periodic: 0,
                    reserved_burst: 0,
                    ..SweepConfig::default()
                };
                let mut sweep = Sweep::new(config, own, now);
                sweep.add_keys(&keys, prefix_len, now);
                sweep.force_full_reprovide();
                Plan::Sweep {
                    sweep: Box::new(sweep),
                    walks: HashMap::new(),
                    exploring: HashMap::new(),
                    sent: BTreeSet::new(),
                }
            }
        };
        let report = ReprovideRound {
            keys: keys.len(),
            ..ReprovideRound::default()
        };
        Self {
            strategy,
            workers,
            k,
            started: Instant::now(),
            keys,
            record_keys,
            own_addrs,
            plan,
            ready: Vec::new(),
            report,
        }
    }

    pub(crate) fn strategy(&self) -> ReprovideStrategy {
        self.strategy
    }

    /// The record key at `position`.
    pub(crate) fn record_key(&self, position: usize) -> &[u8] {
        &self.record_keys[position]
    }

    /// Keys of the round.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The engine started what `step` asked for as operation `id` (a provide or a lookup).
    pub(crate) fn started(&mut self, step: &RoundStep, id: OperationId) {
        match (&mut self.plan, step) {
            (Plan::Classic { providing, .. }, RoundStep::Provide(_)) => {
                providing.insert(id, Instant::now());
            }
            (Plan::Sweep { exploring, .. }, RoundStep::Explore { walk, .. }) => {
                exploring.insert(id, *walk);
            }
            _ => {}
        }
    }

    /// The engine sent a batch of `messages` ADD_PROVIDERs for the walk of `walk`.
    pub(crate) fn batch_sent(&mut self, walk: Prefix, messages: u64) {
        match self.walk_report(walk) {
            Some(report) => report.messages += messages,
            None => self.report.messages += messages,
        }
    }

    /// The report of the walk of `walk` while it runs.
    fn walk_report(&mut self, walk: Prefix) -> Option<&mut WalkReport> {
        match &mut self.plan {
            Plan::Sweep { walks, .. } => walks.get_mut(&walk).map(|active| &mut active.report),
            Plan::Classic { .. } => None,
        }
    }

    /// Takes what became of earlier work.
    pub(crate) fn on_event(&mut self, event: RoundEvent) {
        match (event, &mut self.plan) {
            (
                RoundEvent::Provided {
                    id,
                    counts,
                    record_peers,
                },
                Plan::Classic { providing, .. },
            ) => {
                let Some(started) = providing.remove(&id) else {
                    return;
                };
                self.report.add_walk(WalkReport {
                    keys: 1,
                    lookups: 1,
                    messages: u64::from(counts.requests),
                    failures: u64::from(counts.failures),
                    copies_stored: u64::from(record_peers),
                    duration: started.elapsed(),
                    ..WalkReport::default()
                });
            }
            (RoundEvent::Explored { id, counts, closest }, Plan::Sweep { walks, exploring, .. }) => {
                let Some(active) = exploring.remove(&id).and_then(|walk| walks.get_mut(&walk)) else {
                    self.report.messages += u64::from(counts.requests);
                    self.report.failures += u64::from(counts.failures);
                    return;
                };
                active.report.messages += u64::from(counts.requests);
                active.report.failures += u64::from(counts.failures);
                let mut answer = Vec::with_capacity(closest.len());
                for (key, peer, addrs) in closest {
                    if !addrs.is_empty() {
                        active.addresses.insert(peer, addrs);
                    }
                    answer.push((key, peer));
                }
                active.walk.on_lookup(answer);
            }
            (
                RoundEvent::Batch {
                    walk,
                    peer,
                    messages,
                    stored,
                },
                Plan::Sweep { walks, .. },
            ) => {
                let Some(active) = walks.get_mut(&walk) else {
                    self.report.copies_stored += u64::from(stored);
                    self.report.failures += u64::from(messages.saturating_sub(stored));
                    return;
                };
                active.report.copies_stored += u64::from(stored);
                active.report.failures += u64::from(messages.saturating_sub(stored));
                let next = active.sending.get_mut(&peer).and_then(|sends| {
                    let positions = sends.batches.pop_front()?;
                    Some(RoundStep::Send {
                        walk,
                        peer,
                        addrs: sends.addrs.clone(),
                        positions,
                    })
                });
                match next {
                    Some(step) => self.ready.push(step),
                    None => {
                        active.sending.remove(&peer);
                        active.walk.on_sent();
                    }
                }
            }
            _ => {}
        }
    }

    /// What to start now (empty: wait for events).
    pub(crate) fn poll(&mut self, now: Duration) -> Vec<RoundStep> {
        let mut steps = std::mem::take(&mut self.ready);
        match &mut self.plan {
            Plan::Classic { next, providing } => {
                while providing.len() + steps.len() < self.workers && *next < self.keys.len() {
                    steps.push(RoundStep::Provide(*next));
                    *next += 1;
                }
            }
            Plan::Sweep {
                sweep, walks, sent, ..
            } => {
                while let SweepStep::Walk { prefix, kind } = sweep.poll(now) {
                    let walk = Walk::new(prefix, self.k, MAX_EXPLORATION_LOOKUPS, CONNECTIONS_PER_WALK);
                    walks.insert(
                        prefix,
                        ActiveWalk {
                            walk,
                            kind,
                            started: Instant::now(),
                            addresses: HashMap::new(),
                            sending: HashMap::new(),
                            report: WalkReport {
                                prefix: Some(prefix),
                                ..WalkReport::default()
                            },
                        },
                    );
                }
                let mut done = Vec::new();
                for (prefix, active) in walks.iter_mut() {
                    loop {
                        match active.walk.step(&self.keys, sent) {
                            WalkStep::Lookup(part) => {
                                steps.push(RoundStep::Explore { walk: *prefix, part });
                                break;
                            }
                            WalkStep::Send { peer, keys } => {
                                let positions: Vec<usize> = keys.into_iter().flatten().collect();
                                let mut batches: VecDeque<Vec<usize>> = positions
                                    .chunks(MAX_BATCH_MESSAGES)
                                    .map(<[usize]>::to_vec)
                                    .collect();
                                let addrs = active.addresses.get(&peer).cloned().unwrap_or_default();
                                match batches.pop_front() {
                                    Some(first) => {
                                        steps.push(RoundStep::Send {
                                            walk: *prefix,
                                            peer,
                                            addrs: addrs.clone(),
                                            positions: first,
                                        });
                                        active.sending.insert(peer, PeerSends { addrs, batches });
                                    }
                                    None => active.walk.on_sent(),
                                }
                            }
                            WalkStep::Wait => break,
                            WalkStep::Done => {
                                done.push(*prefix);
                                break;
                            }
                        }
                    }
                }
                for prefix in done {
                    let Some(active) = walks.remove(&prefix) else {
                        continue;
                    };
                    sent.extend(active.walk.regions().iter().copied());
                    sweep.on_walked(prefix, active.kind, active.walk.regions(), now);
                    let walk = &active.walk;
                    self.report.add_walk(WalkReport {
                        regions: walk.regions().len() as u32,
                        peers: walk.peers_found() as u32,
                        keys: walk.keys() as u64,
                        lookups: u64::from(walk.lookups()),
                        duration: active.started.elapsed(),
                        ..active.report
                    });
                }
            }
        }
        steps
    }

    /// Whether every key was reprovided (nothing left to start or in flight).
    pub(crate) fn is_done(&self) -> bool {
        match &self.plan {
            Plan::Classic { next, providing } => *next >= self.keys.len() && providing.is_empty(),
            Plan::Sweep { sweep, walks, .. } => {
                walks.is_empty() && sweep.late() == 0 && sweep.in_flight() == 0
            }
        }
    }

    /// The report of a finished round.
    pub(crate) fn into_report(mut self) -> ReprovideRound {
        self.report.duration = self.started.elapsed();
        self.report
    }
}
