//! The simulated network's state: node ids, regions, liveness, routing tables and provider
//! records, in flat arrays so that a million nodes fit in a few GiB.
//!
//! Routing tables are built as a converged network holds them: k-bucket `b` of a node (peers
//! sharing exactly `b` leading bits with it) holds the `k` peers of that bucket's key range that
//! are closest to the node. Nodes are sorted by id once, so each bucket's range is found by binary
//! search and its closest peers by descending the implicit binary trie. Tables are built in
//! parallel (rayon) and are deterministic: the ids come from the seed, the rest is computed.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use parsec_kad::{table::converged_table, Distance, Key};

use super::latency::Regions;

/// Index of a node in the network.
pub type NodeIndex = u32;

/// A routing-table slot without a peer.
const EMPTY: NodeIndex = NodeIndex::MAX;

/// How a network is built.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    /// Nodes at the start.
    pub nodes: usize,
    /// Bucket size.
    pub k: usize,
    /// Seed of ids, regions and reachability.
    pub seed: u64,
    /// Where nodes live.
    pub regions: Regions,
    /// Share of nodes that are in routing tables but never answer (NAT'd or firewalled peers
    /// that announce themselves as DHT servers).
    pub unreachable: f64,
}

/// Per-node flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    alive: bool,
    reachable: bool,
}

/// The simulated network; see the module docs.
#[derive(Debug)]
pub struct Network {
    k: usize,
    keys: Vec<Key>,
    regions: Vec<u8>,
    flags: Vec<Flags>,
    /// Every node (dead ones too), sorted by key, and their keys in that order.
    sorted: Vec<NodeIndex>,
    sorted_keys: Vec<Key>,
    /// Routing tables: node `i` owns buckets `first_bucket[i]..` (`buckets[i]` of them), bucket
    /// `g` being slots `g * k..(g + 1) * k`: its `fill[g]` peers first, then `EMPTY`. An answer
    /// reads only peers, and knows a bucket's size without reading it.
    slots: Vec<NodeIndex>,
    fill: Vec<u8>,
    first_bucket: Vec<usize>,
    buckets: Vec<u8>,
    /// Nodes holding a provider record of a content key.
    records: HashMap<Key, Vec<NodeIndex>>,
    alive: usize,
    rng: ChaCha8Rng,
    unreachable: f64,
    region_model: Regions,
}

impl Network {
    /// Builds a converged network; `progress` is called with the number of tables built so far.
    pub fn build(config: &NetworkConfig, progress: impl Fn(usize) + Sync) -> Result<Self, String> {
        // A bucket's size is kept in a byte.
        if config.k == 0 || config.k > usize::from(u8::MAX) {
            return Err(format!("k must be between 1 and {}", u8::MAX));
        }
        if config.nodes < 2 || config.nodes >= EMPTY as usize {
            return Err(format!("a network needs between 2 and {} nodes", EMPTY - 1));
        }
        if !(0.0..=1.0).contains(&config.unreachable) {
            return Err("the unreachable share must be within 0..=1".to_owned());
        }
        config.regions.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut keys = Vec::with_capacity(config.nodes);
        let mut regions = Vec::with_capacity(config.nodes);
        let mut flags = Vec::with_capacity(config.nodes);
        for _ in 0..config.nodes {
            keys.push(Key::random(&mut rng));
            regions.push(config.regions.draw(&mut rng));
            flags.push(Flags {
                alive: true,
                reachable: !rng.gen_bool(config.unreachable),
            });
        }
        let mut sorted: Vec<NodeIndex> = (0..config.nodes as NodeIndex).collect();
        sorted.par_sort_unstable_by_key(|&i| keys[i as usize]);
        let sorted_keys: Vec<Key> = sorted.iter().map(|&i| keys[i as usize]).collect();

        // Tables are built in id order: neighbours in the key space walk the same parts of the
        // sorted ids, which keeps a million-node build in cache (2.7× faster than index order).
        let built = std::sync::atomic::AtomicUsize::new(0);
        let tables: Vec<Vec<NodeIndex>> = sorted
            .par_iter()
            .with_min_len(256)
            .map(|&node| {
                let table = converged_table(&sorted_keys, &sorted, &keys[node as usize], config.k, EMPTY);
                let done = built.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if done.is_multiple_of(4096) {
                    progress(done);
                }
                table
            })
            .collect();
        progress(config.nodes);

        let mut network = Self {
            k: config.k,
            alive: config.nodes,
            slots: Vec::with_capacity(tables.iter().map(Vec::len).sum()),
            fill: Vec::with_capacity(tables.iter().map(Vec::len).sum::<usize>() / config.k),
            first_bucket: vec![0; config.nodes],
            buckets: vec![0; config.nodes],
            keys,
            regions,
            flags,
            sorted,
            sorted_keys,
            records: HashMap::new(),
            rng,
            unreachable: config.unreachable,
            region_model: config.regions.clone(),
        };
        for (position, table) in tables.into_iter().enumerate() {
            let node = network.sorted[position];
            network.store_table(node, table);
        }
        Ok(network)
    }

    /// Appends `node`'s table to the slots (each bucket's peers first, in their order) and points
    /// `node`'s entries (which must exist) at it.
    fn store_table(&mut self, node: NodeIndex, table: Vec<NodeIndex>) {
        self.first_bucket[node as usize] = self.fill.len();
        self.buckets[node as usize] = (table.len() / self.k) as u8;
        for bucket in table.chunks_exact(self.k) {
            let before = self.slots.len();
            self.slots.extend(bucket.iter().filter(|&&p| p != EMPTY));
            self.fill.push((self.slots.len() - before) as u8);
            self.slots.resize(before + self.k, EMPTY);
        }
    }

    /// The peers of bucket `g` (of all the network's buckets).
    fn members(&self, g: usize) -> &[NodeIndex] {
        &self.slots[g * self.k..][..usize::from(self.fill[g])]
    }

    /// Nodes ever created (dead ones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the network has no nodes.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Nodes up now.
    pub fn alive_count(&self) -> usize {
        self.alive
    }

    /// Bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A node's id.
    pub fn key(&self, node: NodeIndex) -> Key {
        self.keys[node as usize]
    }

    /// A node's region index.
    pub fn region(&self, node: NodeIndex) -> u8 {
        self.regions[node as usize]
    }

    /// The regions nodes are placed in.
    pub fn region_model(&self) -> &Regions {
        &self.region_model
    }

    /// Whether a node is up.
    pub fn is_alive(&self, node: NodeIndex) -> bool {
        self.flags[node as usize].alive
    }

    /// Whether a node answers requests: up and reachable.
    pub fn answers(&self, node: NodeIndex) -> bool {
        let flags = self.flags[node as usize];
        flags.alive && flags.reachable
    }

    /// Makes a node reachable or not (the simulated servers always are).
    pub fn set_reachable(&mut self, node: NodeIndex, reachable: bool) {
        self.flags[node as usize].reachable = reachable;
    }

    /// The index of `bucket` of `node`'s table among the network's buckets, if the table has
    /// that bucket.
    fn bucket_index(&self, node: NodeIndex, bucket: u32) -> Option<usize> {
        (bucket < u32::from(self.buckets[node as usize]))
            .then(|| self.first_bucket[node as usize] + bucket as usize)
    }

    /// Peers in a node's routing table (dead ones it has not noticed included).
    pub fn routing_table(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        let first = self.first_bucket[node as usize];
        (first..first + usize::from(self.buckets[node as usize]))
            .flat_map(|g| self.members(g).iter().copied())
    }

    /// Peers in bucket `bucket` of a node's routing table.
    pub fn bucket_level(&self, node: NodeIndex, bucket: u32) -> usize {
        self.bucket_index(node, bucket)
            .map_or(0, |g| self.members(g).len())
    }

    /// Size of a node's routing table.
    pub fn routing_table_size(&self, node: NodeIndex) -> usize {
        self.routing_table(node).count()
    }

    /// The `count` peers of `node`'s routing table closest to `target`, closest first, in `out`
    /// (cleared first).
    ///
    /// Buckets are read in groups, each wholly closer to `target` than the next: the bucket of
    /// the common prefix length `c` of node and target, then every deeper bucket together, then
    /// buckets `c - 1`, `c - 2`, … 0. Reading stops once a group fills `count`, so an answer
    /// usually computes about `k` distances instead of the whole table's.
    pub fn closest_in_table(&self, node: NodeIndex, target: &Key, count: usize, out: &mut Vec<NodeIndex>) {
        let mut found = Vec::with_capacity(2 * self.k);
        self.closest_unordered(node, target, count, &mut found);
        found.sort_unstable();
        out.clear();
        out.extend(found.into_iter().map(|(_, p)| p));
    }

    /// [`Network::closest_in_table`] in no particular order, with each peer's distance to
    /// `target`, in `found` (cleared first): a lookup sorts what it inserts anyway, and the sort
    /// was a fifth of a simulated lookup's time.
    pub fn closest_unordered(
        &self,
        node: NodeIndex,
        target: &Key,
        count: usize,
        found: &mut Vec<(Distance, NodeIndex)>,
    ) {
        self.closest_unordered_where(node, target, count, |_| true, found);
    }

    /// The peers of [`Network::closest_unordered`] that `wanted` accepts (a lookup wants only
    /// the peers it has not heard of yet). A distance is computed only where it decides: for a
    /// wanted peer, and for each member of the one group that overflows `count` when a wanted
    /// peer is among them. Half the answers of a lookup bring only peers it knows, and they
    /// compute no distance at all.
    pub fn closest_unordered_where(
        &self,
        node: NodeIndex,
        target: &Key,
        count: usize,
        wanted: impl Fn(NodeIndex) -> bool,
        found: &mut Vec<(Distance, NodeIndex)>,
    ) {
        found.clear();
        if count == 0 {
            return;
        }
        let buckets = u32::from(self.buckets[node as usize]);
        let shared = self.key(node).common_prefix_len(target);
        let first_bucket = self.first_bucket[node as usize];
        let fills = &self.fill[first_bucket..][..buckets as usize];
        let bucket = |b: u32| self.members(first_bucket + b as usize);
        let with_distance = |p: NodeIndex| (self.keys[p as usize].distance(target), p);
        // Peers of the answer so far, wanted or not.
        let mut answered = 0;
        // Each group is closer to `target` than the next, so only the group that overflows
        // `count` needs a selection, and only among its own members. True once the answer is
        // full.
        let mut take = |first: u32, last: u32, found: &mut Vec<(Distance, NodeIndex)>| {
            let size: usize = fills[first as usize..last as usize]
                .iter()
                .map(|&f| usize::from(f))
                .sum();
            if answered + size <= count {
                for b in first..last {
                    for &p in bucket(b) {
                        if wanted(p) {
                            found.push(with_distance(p));
                        }
                    }
                }
                answered += size;
                return answered == count;
            }
            if (first..last).any(|b| bucket(b).iter().any(|&p| wanted(p))) {
                let before = found.len();
                for b in first..last {
                    found.extend(bucket(b).iter().map(|&p| with_distance(p)));
                }
                let need = count - answered;
                found[before..].select_nth_unstable(need - 1);
                found.truncate(before + need);
                let mut kept = before;
                for index in before..found.len() {
                    if wanted(found[index].1) {
                        found.swap(kept, index);
                        kept += 1;
                    }
                }
                found.truncate(kept);
            }
            answered = count;
            true
        };
        let mut full = false;
        if shared < buckets {
            full = take(shared, shared + 1, found) || take(shared + 1, buckets, found);
        }
        let mut bucket = shared.min(buckets);
        while !full && bucket > 0 {
            bucket -= 1;
            full = take(bucket, bucket + 1, found);
        }
    }

    /// Starts loading the bucket `node` reads first to answer a query for `target`, for a
    /// query sent now and answered later: the tables do not fit in a core's cache, and waiting
    /// for that load was half of an answer's time.
    pub fn prefetch_answer(&self, node: NodeIndex, target: &Key) {
        let buckets = u32::from(self.buckets[node as usize]);
        if buckets == 0 {
            return;
        }
        let bucket = self.key(node).common_prefix_len(target).min(buckets - 1);
        let g = self.first_bucket[node as usize] + bucket as usize;
        prefetch(&self.slots[g * self.k..][..self.k]);
        prefetch(&self.fill[g..][..1]);
    }

    /// The `count` peers of `node`'s routing table closest to `target` by scanning all of it (the
    /// reference `closest_in_table` is checked against).
    #[cfg(test)]
    fn closest_in_table_by_scan(&self, node: NodeIndex, target: &Key, count: usize) -> Vec<NodeIndex> {
        let start = self.first_bucket[node as usize] * self.k;
        let slots = &self.slots[start..start + usize::from(self.buckets[node as usize]) * self.k];
        let mut all: Vec<NodeIndex> = slots.iter().copied().filter(|&p| p != EMPTY).collect();
        all.sort_unstable_by_key(|&p| self.keys[p as usize].distance(target));
        all.truncate(count);
        all
    }

    /// `node` noticed that `peer` is gone: it drops it from its routing table.
    pub fn forget(&mut self, node: NodeIndex, peer: NodeIndex) {
        let bucket = self.key(node).common_prefix_len(&self.key(peer));
        let Some(g) = self.bucket_index(node, bucket) else {
            return;
        };
        if let Some(at) = self.members(g).iter().position(|&p| p == peer) {
            // The last peer fills the gap: a bucket's order does not matter, its size does.
            self.fill[g] -= 1;
            let start = g * self.k;
            let last = start + usize::from(self.fill[g]);
            self.slots.swap(start + at, last);
            self.slots[last] = EMPTY;
        }
    }

    /// `node` heard from `peer`: it adds it to its routing table if the bucket has room.
    pub fn learn(&mut self, node: NodeIndex, peer: NodeIndex) {
        if node == peer {
            return;
        }
        let bucket = self.key(node).common_prefix_len(&self.key(peer));
        let Some(g) = self.bucket_index(node, bucket) else {
            return;
        };
        let members = self.members(g);
        let size = members.len();
        if size < self.k && !members.contains(&peer) {
            self.slots[g * self.k + size] = peer;
            self.fill[g] += 1;
        }
    }

    /// The `count` live nodes closest to `target`, by brute force (for checks and tests).
    pub fn true_closest(&self, target: &Key, count: usize) -> Vec<NodeIndex> {
        let mut all: Vec<NodeIndex> = (0..self.len() as NodeIndex)
            .filter(|&n| self.is_alive(n))
            .collect();
        all.sort_unstable_by_key(|&n| self.keys[n as usize].distance(target));
        all.truncate(count);
        all
    }

    /// Stores a provider record of `content` at `node`.
    pub fn store_record(&mut self, node: NodeIndex, content: Key) {
        let holders = self.records.entry(content).or_default();
        if !holders.contains(&node) {
            holders.push(node);
        }
    }

    /// Whether `node` holds a provider record of `content`.
    pub fn holds_record(&self, node: NodeIndex, content: &Key) -> bool {
        self.records.get(content).is_some_and(|h| h.contains(&node))
    }

    /// A random live node (for churn), or `None` if none is up.
    fn random_alive(&mut self, exclude: &[NodeIndex]) -> Option<NodeIndex> {
        if self.alive <= exclude.len() {
            return None;
        }
        loop {
            let node = self.rng.gen_range(0..self.len() as NodeIndex);
            if self.is_alive(node) && !exclude.contains(&node) {
                return Some(node);
            }
        }
    }

    /// Takes a random live node (not one of `keep`) down. Others keep it in their tables until
    /// they find it dead; its records stay with it and are never served again (dead nodes never
    /// answer, and node indices are not reused).
    pub fn leave_random(&mut self, keep: &[NodeIndex]) -> Option<NodeIndex> {
        let node = self.random_alive(keep)?;
        self.flags[node as usize].alive = false;
        self.alive -= 1;
        Some(node)
    }

    /// `count` new nodes join at once: fresh ids, converged routing tables of the live nodes
    /// (built in parallel), and the peers in each new table learn the new node where a bucket
    /// has room. One merge of the sorted ids serves the whole batch.
    pub fn join_many(&mut self, count: usize) -> Vec<NodeIndex> {
        let first = self.keys.len() as NodeIndex;
        let count = count.min((EMPTY - 1 - first) as usize);
        let mut joining: Vec<(Key, NodeIndex)> = Vec::with_capacity(count);
        for offset in 0..count as NodeIndex {
            let key = Key::random(&mut self.rng);
            let region = self.region_model.draw(&mut self.rng);
            let reachable = !self.rng.gen_bool(self.unreachable);
            self.keys.push(key);
            self.regions.push(region);
            self.flags.push(Flags {
                alive: true,
                reachable,
            });
            joining.push((key, first + offset));
        }
        joining.sort_unstable();
        self.merge_sorted(&joining);

        let (sorted_keys, sorted, flags, k) = (&self.sorted_keys, &self.sorted, &self.flags, self.k);
        let tables: Vec<Vec<NodeIndex>> = (first..first + count as NodeIndex)
            .into_par_iter()
            .map(|node| {
                let mut table = converged_table(sorted_keys, sorted, &self.keys[node as usize], k, EMPTY);
                for slot in &mut table {
                    if *slot != EMPTY && !flags[*slot as usize].alive {
                        *slot = EMPTY;
                    }
                }
                table
            })
            .collect();
        self.first_bucket.resize(self.keys.len(), 0);
        self.buckets.resize(self.keys.len(), 0);
        for (node, table) in (first..).zip(tables) {
            self.store_table(node, table);
        }
        self.alive += count;
        let joined: Vec<NodeIndex> = (first..first + count as NodeIndex).collect();
        for &node in &joined {
            let peers: Vec<NodeIndex> = self.routing_table(node).collect();
            for peer in peers {
                self.learn(peer, node);
            }
        }
        joined
    }

    /// One new node joins (see [`Network::join_many`]).
    pub fn join(&mut self) -> NodeIndex {
        self.join_many(1)[0]
    }

    /// Merges ids sorted by key into the sorted index.
    fn merge_sorted(&mut self, joining: &[(Key, NodeIndex)]) {
        let total = self.sorted.len() + joining.len();
        let mut keys = Vec::with_capacity(total);
        let mut nodes = Vec::with_capacity(total);
        let (mut old, mut new) = (0, 0);
        while old < self.sorted.len() || new < joining.len() {
            let take_new =
                new < joining.len() && (old == self.sorted.len() || joining[new].0 < self.sorted_keys[old]);
            if take_new {
                keys.push(joining[new].0);
                nodes.push(joining[new].1);
                new += 1;
            } else {
                keys.push(self.sorted_keys[old]);
                nodes.push(self.sorted[old]);
                old += 1;
            }
        }
        self.sorted_keys = keys;
        self.sorted = nodes;
    }
}

/// Asks the processor to bring `data` into its cache, without waiting for it.
fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks((64 / std::mem::size_of::<T>()).max(1)) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it reads no data into the program and faults on no
        // address; SSE, which it needs, is part of every x86-64 processor.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(nodes: usize, k: usize, seed: u64) -> Network {
        Network::build(
            &NetworkConfig {
                nodes,
                k,
                seed,
                regions: Regions::world(),
                unreachable: 0.0,
            },
            |_| {},
        )
        .unwrap()
    }

    #[test]
    fn closest_in_table_reads_few_buckets_and_agrees_with_a_full_scan() {
        let net = network(5000, 20, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut out = Vec::new();
        for _ in 0..500 {
            let node = rng.gen_range(0..5000);
            // Random targets, and targets close to the node (deep buckets, or none).
            let target = if rng.gen_bool(0.5) {
                Key::random(&mut rng)
            } else {
                net.key(rng.gen_range(0..5000))
            };
            for count in [1, 3, 20, 60] {
                net.closest_in_table(node, &target, count, &mut out);
                let expected = net.closest_in_table_by_scan(node, &target, count);
                assert_eq!(out, expected);
                // The same peers, reduced to those wanted, whichever they are.
                let modulus = rng.gen_range(2..5);
                let wanted = |p: NodeIndex| !p.is_multiple_of(modulus);
                let mut found = Vec::new();
                net.closest_unordered_where(node, &target, count, wanted, &mut found);
                let mut found: Vec<NodeIndex> = found.into_iter().map(|(_, p)| p).collect();
                found.sort_unstable();
                let mut expected: Vec<NodeIndex> = expected.into_iter().filter(|&p| wanted(p)).collect();
                expected.sort_unstable();
                assert_eq!(
                    found, expected,
                    "node {node}, count {count}, every {modulus}th unwanted"
                );
            }
        }
        net.closest_in_table(0, &net.key(0), 5, &mut out);
        assert_eq!(out, net.closest_in_table_by_scan(0, &net.key(0), 5));
    }

    #[test]
    fn buckets_stay_packed_as_peers_are_forgotten_and_learned() {
        let mut net = network(2000, 20, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..20_000 {
            let node = rng.gen_range(0..2000);
            let peer = rng.gen_range(0..2000);
            if rng.gen_bool(0.5) {
                net.forget(node, peer);
            } else {
                net.learn(node, peer);
            }
        }
        for node in 0..2000 {
            for bucket in 0..u32::from(net.buckets[node as usize]) {
                let g = net.bucket_index(node, bucket).unwrap();
                let slots = &net.slots[g * net.k..][..net.k];
                let fill = net.bucket_level(node, bucket);
                assert!(slots[..fill].iter().all(|&p| p != EMPTY && p != node));
                assert!(slots[fill..].iter().all(|&p| p == EMPTY));
                let mut peers = slots[..fill].to_vec();
                peers.sort_unstable();
                peers.dedup();
                assert_eq!(
                    peers.len(),
                    fill,
                    "node {node} bucket {bucket} holds a peer twice"
                );
                assert!(peers
                    .iter()
                    .all(|&p| net.key(node).common_prefix_len(&net.key(p)) == bucket));
            }
            let target = Key::random(&mut rng);
            let mut out = Vec::new();
            net.closest_in_table(node, &target, 20, &mut out);
            assert_eq!(out, net.closest_in_table_by_scan(node, &target, 20));
        }
    }

    #[test]
    fn a_bucket_size_that_does_not_fit_a_byte_is_refused() {
        let config = |k| NetworkConfig {
            nodes: 100,
            k,
            seed: 1,
            regions: Regions::world(),
            unreachable: 0.0,
        };
        for k in [0, 256, 1000] {
            let error = Network::build(&config(k), |_| {}).unwrap_err();
            assert!(error.contains("between 1 and 255"), "{error}");
        }
        assert!(Network::build(&config(255), |_| {}).is_ok());
    }

    #[test]
    fn closest_in_table_is_sorted_and_bounded() {
        let net = network(500, 20, 2);
        let target = net.key(42);
        let mut out = Vec::new();
        net.closest_in_table(7, &target, 5, &mut out);
        assert_eq!(out.len(), 5);
        let distances: Vec<_> = out.iter().map(|&p| net.key(p).distance(&target)).collect();
        assert!(distances.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn leaving_and_joining_nodes() {
        let mut net = network(1000, 20, 9);
        let gone = net.leave_random(&[]).unwrap();
        assert!(!net.is_alive(gone));
        assert_eq!(net.alive_count(), 999);
        let new = net.join();
        assert_eq!(net.alive_count(), 1000);
        assert!(net.routing_table_size(new) > 20);
        assert!(net.routing_table(new).all(|p| net.is_alive(p)));
        // Some peers of the new node learned it.
        assert!((0..1000).any(|p| net.routing_table(p).any(|q| q == new)));
        let batch = net.join_many(200);
        assert_eq!(batch.len(), 200);
        assert_eq!(net.alive_count(), 1200);
        assert!(net.sorted_keys.windows(2).all(|w| w[0] < w[1]));
        assert!(net
            .sorted
            .iter()
            .zip(&net.sorted_keys)
            .all(|(&n, key)| net.key(n) == *key));
        // A batch's nodes find each other: the closest to a new node is often another new one.
        let among_themselves = batch
            .iter()
            .filter(|&&n| net.routing_table(n).any(|p| batch.contains(&p)))
            .count();
        assert!(among_themselves > 100, "{among_themselves}");
    }
}
