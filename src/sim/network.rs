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

use super::{key::Key, latency::Regions};

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
    /// Routing tables: node `i` owns `buckets[i] * k` slots from `table_start[i]`, bucket by
    /// bucket; unused slots hold `EMPTY`.
    slots: Vec<NodeIndex>,
    table_start: Vec<usize>,
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
        if config.k == 0 {
            return Err("k must be at least 1".to_owned());
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

        let built = std::sync::atomic::AtomicUsize::new(0);
        let tables: Vec<Vec<NodeIndex>> = keys
            .par_iter()
            .with_min_len(256)
            .map(|key| {
                let table = converged_table(&sorted_keys, &sorted, key, config.k);
                let done = built.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                if done % 4096 == 0 {
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
            table_start: Vec::with_capacity(config.nodes),
            buckets: Vec::with_capacity(config.nodes),
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
        for table in tables {
            network.push_table(table);
        }
        Ok(network)
    }

    fn push_table(&mut self, table: Vec<NodeIndex>) {
        self.table_start.push(self.slots.len());
        self.buckets.push((table.len() / self.k) as u8);
        self.slots.extend(table);
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

    fn table(&self, node: NodeIndex) -> &[NodeIndex] {
        let start = self.table_start[node as usize];
        &self.slots[start..start + usize::from(self.buckets[node as usize]) * self.k]
    }

    fn bucket_mut(&mut self, node: NodeIndex, bucket: u32) -> Option<&mut [NodeIndex]> {
        if bucket >= u32::from(self.buckets[node as usize]) {
            return None;
        }
        let start = self.table_start[node as usize] + bucket as usize * self.k;
        Some(&mut self.slots[start..start + self.k])
    }

    /// Peers in a node's routing table (dead ones it has not noticed included).
    pub fn routing_table(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.table(node).iter().copied().filter(|&p| p != EMPTY)
    }

    /// Size of a node's routing table.
    pub fn routing_table_size(&self, node: NodeIndex) -> usize {
        self.routing_table(node).count()
    }

    /// The `count` peers of `node`'s routing table closest to `target`, closest first, appended
    /// to `out` (cleared first).
    pub fn closest_in_table(&self, node: NodeIndex, target: &Key, count: usize, out: &mut Vec<NodeIndex>) {
        out.clear();
        let mut by_distance: Vec<(super::key::Distance, NodeIndex)> = self
            .table(node)
            .iter()
            .filter(|&&p| p != EMPTY)
            .map(|&p| (self.keys[p as usize].distance(target), p))
            .collect();
        if by_distance.len() > count && count > 0 {
            by_distance.select_nth_unstable(count - 1);
            by_distance.truncate(count);
        }
        by_distance.sort_unstable();
        out.extend(by_distance.into_iter().take(count).map(|(_, p)| p));
    }

    /// `node` noticed that `peer` is gone: it drops it from its routing table.
    pub fn forget(&mut self, node: NodeIndex, peer: NodeIndex) {
        let bucket = self.key(node).common_prefix_len(&self.key(peer));
        if let Some(slots) = self.bucket_mut(node, bucket) {
            for slot in slots.iter_mut().filter(|s| **s == peer) {
                *slot = EMPTY;
            }
        }
    }

    /// `node` heard from `peer`: it adds it to its routing table if the bucket has room.
    pub fn learn(&mut self, node: NodeIndex, peer: NodeIndex) {
        if node == peer {
            return;
        }
        let bucket = self.key(node).common_prefix_len(&self.key(peer));
        if let Some(slots) = self.bucket_mut(node, bucket) {
            if slots.contains(&peer) {
                return;
            }
            if let Some(slot) = slots.iter_mut().find(|s| **s == EMPTY) {
                *slot = peer;
            }
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

    /// Takes a random live node (not one of `keep`) down; its records go with it, others keep it
    /// in their tables until they find it dead.
    pub fn leave_random(&mut self, keep: &[NodeIndex]) -> Option<NodeIndex> {
        let node = self.random_alive(keep)?;
        self.flags[node as usize].alive = false;
        self.alive -= 1;
        for holders in self.records.values_mut() {
            holders.retain(|&h| h != node);
        }
        Some(node)
    }

    /// A new node joins: a fresh id, a converged routing table of the nodes it can find (the
    /// dead ones others still list included, then dropped), and the peers in its table learn it.
    pub fn join(&mut self) -> NodeIndex {
        let key = Key::random(&mut self.rng);
        let region = self.region_model.draw(&mut self.rng);
        let reachable = !self.rng.gen_bool(self.unreachable);
        let node = self.keys.len() as NodeIndex;
        let mut table = converged_table(&self.sorted_keys, &self.sorted, &key, self.k);
        for slot in &mut table {
            if *slot != EMPTY && !self.flags[*slot as usize].alive {
                *slot = EMPTY;
            }
        }
        self.keys.push(key);
        self.regions.push(region);
        self.flags.push(Flags {
            alive: true,
            reachable,
        });
        let position = self.sorted_keys.partition_point(|k| *k < key);
        self.sorted.insert(position, node);
        self.sorted_keys.insert(position, key);
        self.push_table(table);
        self.alive += 1;
        let peers: Vec<NodeIndex> = self.routing_table(node).collect();
        for peer in peers {
            self.learn(peer, node);
        }
        node
    }
}

/// A converged routing table of the node with id `me`: for each bucket up to the deepest
/// non-empty one, the `k` peers of the bucket's range closest to `me`, padded with `EMPTY`.
fn converged_table(sorted_keys: &[Key], sorted: &[NodeIndex], me: &Key, k: usize) -> Vec<NodeIndex> {
    let mut table = Vec::with_capacity(k * 24);
    for bucket in 0..256u32 {
        let (low, high) = me.bucket_range(bucket);
        let start = sorted_keys.partition_point(|key| *key < low);
        let end = sorted_keys.partition_point(|key| *key <= high);
        let before = table.len();
        closest_in_range(sorted_keys, sorted, start, end, me, bucket + 1, k, &mut table);
        table.resize(before + k, EMPTY);
        // Nodes sharing the first `bucket + 1` bits with `me` fill the deeper buckets: when
        // `me` is alone in that subtree, every deeper bucket is empty.
        let (own_low, own_high) = me.prefix_range(bucket + 1);
        let own_start = sorted_keys.partition_point(|key| *key < own_low);
        let own_end = sorted_keys.partition_point(|key| *key <= own_high);
        let me_included = sorted_keys[own_start..own_end].binary_search(me).is_ok();
        if own_end - own_start == usize::from(me_included) || bucket == 255 {
            break;
        }
    }
    table
}

/// Appends the up to `need` ids of `sorted_keys[start..end]` closest to `target`. All keys of
/// the range share their first `depth` bits, so the range splits at bit `depth` into two
/// sub-ranges; the one agreeing with `target` at that bit is closer.
#[allow(clippy::too_many_arguments)]
fn closest_in_range(
    sorted_keys: &[Key],
    sorted: &[NodeIndex],
    start: usize,
    end: usize,
    target: &Key,
    depth: u32,
    need: usize,
    out: &mut Vec<NodeIndex>,
) {
    if need == 0 || start >= end {
        return;
    }
    if end - start <= need || depth >= 256 {
        out.extend(sorted[start..end].iter().take(need));
        return;
    }
    let split = start + sorted_keys[start..end].partition_point(|key| !key.bit(depth));
    let (near, far) = if target.bit(depth) {
        ((split, end), (start, split))
    } else {
        ((start, split), (split, end))
    };
    let before = out.len();
    closest_in_range(sorted_keys, sorted, near.0, near.1, target, depth + 1, need, out);
    let taken = out.len() - before;
    closest_in_range(
        sorted_keys,
        sorted,
        far.0,
        far.1,
        target,
        depth + 1,
        need - taken,
        out,
    );
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
    fn buckets_hold_the_closest_peers_of_their_range() {
        let net = network(3000, 8, 5);
        for node in [0, 17, 2999] {
            let me = net.key(node);
            let mut by_bucket: HashMap<u32, Vec<NodeIndex>> = HashMap::new();
            for peer in 0..net.len() as NodeIndex {
                if peer != node {
                    by_bucket
                        .entry(me.common_prefix_len(&net.key(peer)))
                        .or_default()
                        .push(peer);
                }
            }
            for (bucket, mut peers) in by_bucket {
                peers.sort_by_key(|&p| net.key(p).distance(&me));
                peers.truncate(8);
                peers.sort_unstable();
                let mut table: Vec<NodeIndex> = net
                    .routing_table(node)
                    .filter(|&p| me.common_prefix_len(&net.key(p)) == bucket)
                    .collect();
                table.sort_unstable();
                assert_eq!(table, peers, "node {node} bucket {bucket}");
            }
        }
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
    }
}
