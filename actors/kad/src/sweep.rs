//! The provide sweep's schedule, as a state machine without I/O or clock: which region of the
//! key space to reprovide next, and when, spread over the reprovide interval, within the worker
//! limits (go-libp2p-kad-dht's `provider.SweepingProvider`, which Kubo runs by default).
//!
//! The schedule holds prefixes, never keys: the keys stay in the driver's store and are read per
//! region when it is walked, so a node that was offline for days catches up with a queue of at
//! most one entry per region (go-libp2p-kad-dht #1259 grew without bound).
//!
//! A region's time in the cycle comes from its prefix: the prefix XOR the node's own key (its
//! first 24 bits at most) as a fraction of the interval, so that 2^n prefixes of n bits split the
//! interval evenly and the node's own neighbourhood comes first.
//!
//! The driver's loop: [`Sweep::poll`] says [`SweepStep::Walk`] a prefix (the driver explores it:
//! lookups near the prefix until it knows the peers under it, cuts it into
//! [`regions`](crate::region::regions), allocates each region's keys and sends them), then
//! reports [`Sweep::on_walked`] with the regions that hold keys, or [`Sweep::on_failed`].

use std::{
    collections::{BTreeMap, BTreeSet, HashSet, VecDeque},
    time::Duration,
};

use crate::{key::Key, region::Prefix};

/// A region's place in the cycle uses at most this many of its bits (go-libp2p-kad-dht's
/// `maxPrefixSize`): 2^24 slots are finer than any clock needs.
const MAX_SCHEDULE_BITS: u32 = 24;

/// How a sweep runs.
#[derive(Clone, Debug)]
pub struct SweepConfig {
    /// Replication: a key's record goes to its `k` closest peers.
    pub k: usize,
    /// Every region is reprovided once per interval (Kubo: 22 h).
    pub interval: Duration,
    /// Walks at once, of any kind.
    pub max_workers: usize,
    /// Workers kept for walks on schedule.
    pub reserved_periodic: usize,
    /// Workers kept for walks off schedule (late regions, a forced reprovide, retries).
    pub reserved_burst: usize,
    /// A failed walk is tried again after this long.
    pub retry_after: Duration,
}

impl Default for SweepConfig {
    /// go-libp2p-kad-dht's library defaults: 4 workers, 2 kept for periodic walks and 1 for
    /// bursts; 22 h; a retry after 5 minutes.
    fn default() -> Self {
        Self {
            k: 20,
            interval: Duration::from_secs(22 * 3600),
            max_workers: 4,
            reserved_periodic: 2,
            reserved_burst: 1,
            retry_after: Duration::from_secs(300),
        }
    }
}

/// Why a walk runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalkKind {
    /// Its time in the cycle came.
    Periodic,
    /// Off schedule: late after the node was offline, forced, or a retry.
    Burst,
}

/// What the driver should do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SweepStep {
    /// Explore `prefix`, provide the keys of its regions, then report [`Sweep::on_walked`] or
    /// [`Sweep::on_failed`].
    Walk { prefix: Prefix, kind: WalkKind },
    /// Nothing to start before this time (or before a walk in flight ends).
    WaitUntil(Duration),
    /// Nothing scheduled and nothing in flight.
    Idle,
}

/// The prefix length at which a region of a network of `network_size` peers holds about `k` to
/// `2k` peers: where a sweep starts before it has explored anything.
pub fn estimated_prefix_len(network_size: f64, k: usize) -> u32 {
    let ratio = network_size / k.max(1) as f64;
    if ratio.is_finite() && ratio >= 2.0 {
        (ratio.log2().floor() as u32).min(MAX_SCHEDULE_BITS)
    } else {
        0
    }
}

/// The schedule of one providing node.
#[derive(Debug)]
pub struct Sweep {
    config: SweepConfig,
    /// The node's own key: the order of the cycle.
    order: Key,
    /// When the first cycle started (the driver's clock).
    cycle_start: Duration,
    /// Prefixes scheduled, none under another, with their next due time.
    scheduled: BTreeMap<Prefix, Duration>,
    /// The same, by due time.
    timeline: BTreeSet<(Duration, Prefix)>,
    /// Prefixes to walk off schedule, oldest first, each once; a prefix a walk covered since it
    /// was queued leaves `late_set` and is skipped.
    late: VecDeque<Prefix>,
    late_set: BTreeSet<Prefix>,
    /// Walks in flight.
    walking: HashSet<Prefix>,
    periodic_in_flight: usize,
    burst_in_flight: usize,
    offline_since: Option<Duration>,
}

impl Sweep {
    /// An empty schedule whose cycle starts at `now`, ordered around `order` (the node's key).
    pub fn new(config: SweepConfig, order: Key, now: Duration) -> Self {
        Self {
            config,
            order,
            cycle_start: now,
            scheduled: BTreeMap::new(),
            timeline: BTreeSet::new(),
            late: VecDeque::new(),
            late_set: BTreeSet::new(),
            walking: HashSet::new(),
            periodic_in_flight: 0,
            burst_in_flight: 0,
            offline_since: None,
        }
    }

    /// The offset of `prefix` in the cycle.
    pub fn offset_of(&self, prefix: &Prefix) -> Duration {
        let bits = prefix.bit_len().min(MAX_SCHEDULE_BITS);
        if bits == 0 {
            return Duration::ZERO;
        }
        let slot = prefix.first_key().distance(&self.order).words()[0] >> (64 - bits);
        let nanos = (self.config.interval.as_nanos() * u128::from(slot)) >> bits;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The first time after `now` at which the cycle reaches `prefix`'s offset.
    fn next_due(&self, prefix: &Prefix, now: Duration) -> Duration {
        let interval = self.config.interval.max(Duration::from_nanos(1));
        let into_cycle = now.saturating_sub(self.cycle_start).as_nanos() % interval.as_nanos();
        let offset = self.offset_of(prefix).as_nanos();
        let wait = (offset + interval.as_nanos() - into_cycle - 1) % interval.as_nanos() + 1;
        now + Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
    }

    /// Schedules the keys of `sorted_keys` that no scheduled prefix covers, under prefixes of
    /// `prefix_len` bits (see [`estimated_prefix_len`]); returns how many prefixes were added.
    pub fn add_keys(&mut self, sorted_keys: &[Key], prefix_len: u32, now: Duration) -> usize {
        let mut added = 0;
        let mut position = 0;
        while position < sorted_keys.len() {
            let key = sorted_keys[position];
            let prefix = self
                .covering(&key)
                .unwrap_or_else(|| Prefix::of(&key, prefix_len));
            if self.schedule(prefix, now) {
                added += 1;
            }
            // Skip every key under this prefix.
            position += prefix.range_in(&sorted_keys[position..]).len().max(1);
        }
        added
    }

    /// The scheduled prefix that `key` is under, if any.
    fn covering(&self, key: &Key) -> Option<Prefix> {
        let (prefix, _) = self.scheduled.range(..=Prefix::of(key, 256)).next_back()?;
        prefix.contains(key).then_some(*prefix)
    }

    /// Adds `prefix` to the schedule at its first time after `not_before`, replacing the
    /// scheduled prefixes under it; false when a scheduled prefix already covers it.
    fn schedule(&mut self, prefix: Prefix, not_before: Duration) -> bool {
        let mut ancestor = prefix;
        loop {
            if self.scheduled.contains_key(&ancestor) {
                return false;
            }
            if ancestor.is_root() {
                break;
            }
            ancestor = ancestor.parent();
        }
        let under: Vec<Prefix> = self
            .scheduled
            .range(prefix..=prefix.last())
            .map(|(p, _)| *p)
            .collect();
        for covered in under {
            self.unschedule(&covered);
        }
        let due = self.next_due(&prefix, not_before);
        self.scheduled.insert(prefix, due);
        self.timeline.insert((due, prefix));
        true
    }

    fn unschedule(&mut self, prefix: &Prefix) {
        if let Some(due) = self.scheduled.remove(prefix) {
            self.timeline.remove(&(due, *prefix));
        }
    }

    /// Whether a walk of `kind` may start: a worker is free, and starting leaves enough free for
    /// the other kind's reserve.
    fn worker_free(&self, kind: WalkKind) -> bool {
        let busy = self.periodic_in_flight + self.burst_in_flight;
        if busy >= self.config.max_workers {
            return false;
        }
        let free_after = self.config.max_workers - busy - 1;
        let other_reserve = match kind {
            WalkKind::Periodic => self.config.reserved_burst.saturating_sub(self.burst_in_flight),
            WalkKind::Burst => self
                .config
                .reserved_periodic
                .saturating_sub(self.periodic_in_flight),
        };
        free_after >= other_reserve
    }

    /// The next step at `now`.
    pub fn poll(&mut self, now: Duration) -> SweepStep {
        if self.offline_since.is_some() {
            return self.waiting();
        }
        if self.worker_free(WalkKind::Burst) {
            while let Some(prefix) = self.late.pop_front() {
                let queued = self.late_set.remove(&prefix);
                if !queued || self.walking.contains(&prefix) || !self.scheduled.contains_key(&prefix) {
                    continue;
                }
                return self.start(prefix, WalkKind::Burst);
            }
        }
        if self.worker_free(WalkKind::Periodic) {
            let mut due = self.timeline.iter().take_while(|(due, _)| *due <= now);
            if let Some(&(_, prefix)) = due.find(|(_, p)| !self.walking.contains(p)) {
                return self.start(prefix, WalkKind::Periodic);
            }
        }
        self.waiting()
    }

    fn waiting(&self) -> SweepStep {
        let next = self
            .timeline
            .iter()
            .find(|(_, prefix)| !self.walking.contains(prefix))
            .map(|(due, _)| *due);
        match next {
            _ if self.offline_since.is_some() && self.walking.is_empty() => SweepStep::Idle,
            Some(due) => SweepStep::WaitUntil(due),
            None if self.walking.is_empty() && self.late.is_empty() => SweepStep::Idle,
            // A walk in flight will report; the driver polls again then.
            None => SweepStep::WaitUntil(Duration::MAX),
        }
    }

    fn start(&mut self, prefix: Prefix, kind: WalkKind) -> SweepStep {
        self.walking.insert(prefix);
        match kind {
            WalkKind::Periodic => self.periodic_in_flight += 1,
            WalkKind::Burst => self.burst_in_flight += 1,
        }
        SweepStep::Walk { prefix, kind }
    }

    fn finish(&mut self, prefix: &Prefix, kind: WalkKind) {
        self.walking.remove(prefix);
        match kind {
            WalkKind::Periodic => self.periodic_in_flight = self.periodic_in_flight.saturating_sub(1),
            WalkKind::Burst => self.burst_in_flight = self.burst_in_flight.saturating_sub(1),
        }
    }

    /// The walk of `prefix` ended: its keys were sent. `regions` are the prefixes it was cut into
    /// that hold keys (the exploration may have found it finer or coarser than scheduled); each
    /// is next due at its own time in the next cycle: the first after half an interval, so that
    /// a finer region whose slot comes later in this cycle is not walked twice.
    pub fn on_walked(&mut self, prefix: Prefix, kind: WalkKind, regions: &[Prefix], now: Duration) {
        self.finish(&prefix, kind);
        self.unschedule(&prefix);
        self.late_set.remove(&prefix);
        let not_before = now + self.config.interval / 2;
        for region in regions {
            self.unschedule(region);
            // Its keys were just sent: queued walks under it have nothing left to do.
            let covered: Vec<Prefix> = self.late_set.range(*region..=region.last()).copied().collect();
            for done in covered {
                self.late_set.remove(&done);
            }
            self.schedule(*region, not_before);
        }
    }

    /// The walk of `prefix` failed (it reached too few peers): it stays scheduled, and is next
    /// due after [`SweepConfig::retry_after`].
    pub fn on_failed(&mut self, prefix: Prefix, kind: WalkKind, now: Duration) {
        self.finish(&prefix, kind);
        let retry = now + self.config.retry_after;
        if let Some(due) = self.scheduled.insert(prefix, retry) {
            self.timeline.remove(&(due, prefix));
            self.timeline.insert((retry, prefix));
        } else {
            self.scheduled.remove(&prefix);
        }
    }

    /// Every scheduled region is walked again now, off schedule (a forced full reprovide).
    pub fn force_full_reprovide(&mut self) {
        let all: Vec<Prefix> = self.scheduled.keys().copied().collect();
        for prefix in all {
            self.make_late(prefix);
        }
    }

    fn make_late(&mut self, prefix: Prefix) {
        if self.late_set.insert(prefix) {
            self.late.push_back(prefix);
        }
    }

    /// The node lost the network: nothing starts until [`on_online`](Self::on_online).
    pub fn on_offline(&mut self, now: Duration) {
        self.offline_since.get_or_insert(now);
    }

    /// The node is back: every region whose time passed while it was away is walked off
    /// schedule, once, and keeps its place in the cycle; returns how many are late.
    pub fn on_online(&mut self, now: Duration) -> usize {
        if self.offline_since.take().is_none() {
            return 0;
        }
        let just_after = (now + Duration::from_nanos(1), Prefix::ROOT);
        let missed: Vec<(Duration, Prefix)> = self.timeline.range(..just_after).copied().collect();
        for (due, prefix) in &missed {
            self.timeline.remove(&(*due, *prefix));
            let next = self.next_due(prefix, now);
            self.timeline.insert((next, *prefix));
            self.scheduled.insert(*prefix, next);
            self.make_late(*prefix);
        }
        missed.len()
    }

    /// Prefixes scheduled.
    pub fn regions(&self) -> usize {
        self.scheduled.len()
    }

    /// Prefixes waiting to be walked off schedule.
    pub fn late(&self) -> usize {
        self.late_set.len()
    }

    /// Walks in flight.
    pub fn in_flight(&self) -> usize {
        self.walking.len()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn config() -> SweepConfig {
        SweepConfig::default()
    }

    fn sorted_random(count: usize, seed: u64) -> Vec<Key> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut keys: Vec<Key> = (0..count).map(|_| Key::random(&mut rng)).collect();
        keys.sort();
        keys
    }

    /// `count` random keys, and a sweep ordered around the first that schedules them under
    /// prefixes of `prefix_len` bits.
    fn scheduled(count: usize, seed: u64, prefix_len: u32) -> (Vec<Key>, Sweep) {
        let keys = sorted_random(count, seed);
        let mut sweep = Sweep::new(config(), keys[0], Duration::ZERO);
        sweep.add_keys(&keys, prefix_len, Duration::ZERO);
        (keys, sweep)
    }

    /// As [`scheduled`], every prefix queued by a forced reprovide.
    fn forced_sweep(count: usize, seed: u64, prefix_len: u32) -> Sweep {
        let (_, mut sweep) = scheduled(count, seed, prefix_len);
        sweep.force_full_reprovide();
        sweep
    }

    /// Runs the sweep with walks that end at once, recording (time, prefix, kind) of each start.
    fn run_for(sweep: &mut Sweep, from: Duration, until: Duration) -> Vec<(Duration, Prefix, WalkKind)> {
        let mut now = from;
        let mut walks = Vec::new();
        while now < until {
            match sweep.poll(now) {
                SweepStep::Walk { prefix, kind } => {
                    walks.push((now, prefix, kind));
                    sweep.on_walked(prefix, kind, &[prefix], now);
                }
                SweepStep::WaitUntil(at) => now = at.max(now + Duration::from_nanos(1)),
                SweepStep::Idle => break,
            }
        }
        walks
    }

    #[test]
    fn prefixes_split_the_interval_evenly_starting_with_our_own() {
        let me = sorted_random(1, 1)[0];
        let sweep = Sweep::new(config(), me, Duration::ZERO);
        let mut offsets: Vec<Duration> = (0..16u8)
            .map(|i| sweep.offset_of(&Prefix::of(&Key::from_bytes([i << 4; 32]), 4)))
            .collect();
        assert_eq!(
            sweep.offset_of(&Prefix::of(&me, 4)),
            Duration::ZERO,
            "our own region first"
        );
        offsets.sort();
        for (slot, offset) in offsets.iter().enumerate() {
            assert_eq!(*offset, config().interval * slot as u32 / 16);
        }
        assert_eq!(sweep.offset_of(&Prefix::ROOT), Duration::ZERO);
    }

    #[test]
    fn every_region_is_walked_once_per_interval_at_its_time() {
        let keys = sorted_random(10_000, 2);
        let mut sweep = Sweep::new(config(), keys[0], Duration::ZERO);
        let added = sweep.add_keys(&keys, 6, Duration::ZERO);
        assert_eq!(added, 64, "10,000 keys fill every 6-bit prefix");
        assert_eq!(sweep.add_keys(&keys, 6, Duration::ZERO), 0, "already scheduled");
        let interval = config().interval;
        let walks = run_for(&mut sweep, Duration::ZERO, interval * 3);
        // Three cycles (the first slot is due one interval after the start).
        assert!(walks.len() >= 64 * 2 && walks.len() <= 64 * 3, "{}", walks.len());
        for (at, prefix, kind) in &walks {
            assert_eq!(*kind, WalkKind::Periodic);
            let into_cycle = at.as_nanos() % interval.as_nanos();
            assert_eq!(into_cycle, sweep.offset_of(prefix).as_nanos(), "{prefix} on time");
        }
        let mut per_prefix: BTreeMap<Prefix, Vec<Duration>> = BTreeMap::new();
        for (at, prefix, _) in walks {
            per_prefix.entry(prefix).or_default().push(at);
        }
        for times in per_prefix.values() {
            for pair in times.windows(2) {
                assert_eq!(pair[1] - pair[0], interval);
            }
        }
    }

    #[test]
    fn an_explored_region_replaces_the_prefixes_it_covers_and_is_split_when_finer() {
        let (keys, mut sweep) = scheduled(1000, 3, 4);
        assert_eq!(sweep.regions(), 16);
        // Exploring 3-bit prefix found it holds one region: two 4-bit prefixes merge into it.
        let coarse = Prefix::of(&keys[0], 3);
        sweep.on_walked(coarse, WalkKind::Periodic, &[coarse], Duration::ZERO);
        assert_eq!(sweep.regions(), 15);
        // The network is denser there after all: two regions of 5 bits.
        let fine = [coarse.child(false).child(true), coarse.child(true).child(false)];
        sweep.on_walked(coarse, WalkKind::Periodic, &fine, Duration::ZERO);
        assert_eq!(sweep.regions(), 16);
        for key in &keys {
            let covering = sweep.scheduled.keys().filter(|p| p.contains(key)).count();
            assert!(covering <= 1, "overlapping prefixes");
        }
    }

    #[test]
    fn workers_are_shared_within_their_reserves() {
        let mut sweep = forced_sweep(5000, 4, 5);
        assert_eq!(sweep.late(), 32);
        // 4 workers, 2 kept for periodic walks: at most 2 bursts at once.
        let mut started = Vec::new();
        while let SweepStep::Walk { prefix, kind } = sweep.poll(Duration::ZERO) {
            started.push((prefix, kind));
        }
        assert_eq!(started.iter().filter(|(_, k)| *k == WalkKind::Burst).count(), 2);
        // Once every region is due, periodic walks take the other two workers.
        let later = config().interval;
        while let SweepStep::Walk { prefix, kind } = sweep.poll(later) {
            started.push((prefix, kind));
        }
        assert_eq!(started.len(), 4, "{started:?}");
        assert_eq!(sweep.in_flight(), 4);
        assert!(matches!(sweep.poll(later), SweepStep::WaitUntil(_)));
        // A burst ends: its worker goes to the next late region.
        let (prefix, kind) = started[0];
        sweep.on_walked(prefix, kind, &[prefix], later);
        assert!(matches!(
            sweep.poll(later),
            SweepStep::Walk {
                kind: WalkKind::Burst,
                ..
            }
        ));
    }

    #[test]
    fn a_node_back_from_days_offline_walks_each_missed_region_once() {
        let (_, mut sweep) = scheduled(100_000, 5, 10);
        assert_eq!(sweep.regions(), 1024);
        sweep.on_offline(Duration::ZERO);
        assert_eq!(sweep.poll(HOUR), SweepStep::Idle, "nothing starts offline");
        // Three days away: every region missed three times, queued once each.
        let back = HOUR * 72;
        assert_eq!(sweep.on_online(back), 1024);
        assert_eq!(sweep.late(), 1024);
        assert_eq!(sweep.on_online(back), 0);
        let walks = run_for(&mut sweep, back, back + Duration::from_secs(1));
        assert_eq!(walks.len(), 1024);
        assert!(walks.iter().all(|(_, _, kind)| *kind == WalkKind::Burst));
        // Then back on schedule, each region once at its own time in the next cycle.
        let interval = config().interval;
        let cycle_later = back + interval * 3 / 2 + Duration::from_nanos(1);
        let next = run_for(&mut sweep, back + Duration::from_secs(1), cycle_later);
        assert_eq!(next.len(), 1024);
        for (at, prefix, _) in &next {
            assert_eq!(
                at.as_nanos() % interval.as_nanos(),
                sweep.offset_of(prefix).as_nanos()
            );
        }
        assert!(next.iter().all(|(_, _, kind)| *kind == WalkKind::Periodic));
    }

    #[test]
    fn a_forced_reprovide_skips_prefixes_a_coarser_walk_already_covered() {
        let mut sweep = forced_sweep(1000, 7, 3);
        assert_eq!(sweep.late(), 8);
        // The first walk finds the network too sparse: its region is the whole key space.
        let SweepStep::Walk { prefix, kind } = sweep.poll(Duration::ZERO) else {
            panic!("late regions");
        };
        sweep.on_walked(prefix, kind, &[Prefix::ROOT], Duration::ZERO);
        assert_eq!(sweep.late(), 0, "every queued prefix was under the root");
        assert_eq!(sweep.regions(), 1);
        assert!(matches!(sweep.poll(Duration::ZERO), SweepStep::WaitUntil(_)));
    }

    #[test]
    fn a_failed_walk_is_retried_after_the_pause() {
        let (_, mut sweep) = scheduled(200, 6, 2);
        let due = config().interval;
        let SweepStep::Walk { prefix, kind } = sweep.poll(due) else {
            panic!("a region is due");
        };
        sweep.on_failed(prefix, kind, due);
        let retry = due + config().retry_after;
        let walks = run_for(&mut sweep, due, retry + Duration::from_secs(1));
        assert!(
            walks.iter().any(|(at, p, _)| *p == prefix && *at == retry),
            "{walks:?}"
        );
    }

    #[test]
    fn the_first_prefix_length_leaves_k_to_2k_peers_a_region() {
        assert_eq!(estimated_prefix_len(10.0, 20), 0);
        assert_eq!(estimated_prefix_len(2_000.0, 20), 6);
        assert_eq!(estimated_prefix_len(10_000.0, 20), 8);
        for size in [100.0, 2_000.0, 10_000.0, 1e6] {
            let len = estimated_prefix_len(size, 20);
            let per_region = size / f64::from(1u32 << len);
            assert!((20.0..40.0).contains(&per_region), "{size}: {per_region}");
        }
    }
}
