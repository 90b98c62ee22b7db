//! The accelerated client's crawl (fullrt), as a sans-IO state machine: from the peers we know,
//! ask every peer found for each of its buckets until the whole network is listed.
//!
//! A FIND_NODE for a key at common-prefix length `c` with a peer returns that peer's bucket `c`
//! (the peers closest to the key share `c` bits with it), topped up with deeper ones when the
//! bucket holds fewer than `k`. So the crawl asks each peer for `c = 0, 1, …` and stops at the
//! first bucket whose answer held fewer than `k - 1` peers at depth `c` or deeper (one slot for
//! ourselves, whom a peer never returns to us): by then the peer's deeper buckets came with it.
//! The driver sends what [`Crawl::next_request`] gives and reports answers and failures.

use std::collections::{HashMap, VecDeque};

use libp2p::{Multiaddr, PeerId};
use parsec_kad::{region::Prefix, Key, SortedPeers};
use rand::RngCore;

/// Peers a crawl lists at most: memory stays bounded on a network larger than we expect (the
/// IPFS DHT has ~10k servers; each entry is a key and a few addresses).
pub(crate) const MAX_CRAWL_PEERS: usize = 200_000;

/// Deepest bucket asked for: past it a preimage costs over 100k hashes, and a network would need
/// 20 · 2^17 peers to fill it.
const MAX_CPL: u32 = 16;

/// Addresses kept per peer.
const MAX_ADDRS: usize = 8;

/// One FIND_NODE the crawl wants sent.
#[derive(Debug)]
pub(crate) struct CrawlRequest {
    pub(crate) peer: PeerId,
    pub(crate) addrs: Vec<Multiaddr>,
    /// The FIND_NODE key: its SHA-256 shares exactly `cpl` leading bits with the peer's key.
    pub(crate) key: Vec<u8>,
    pub(crate) cpl: u32,
}

#[derive(Debug)]
struct Found {
    key: Key,
    addrs: Vec<Multiaddr>,
    answered: bool,
}

/// A crawl in progress.
#[derive(Debug)]
pub(crate) struct Crawl {
    k: usize,
    local: PeerId,
    peers: HashMap<PeerId, Found>,
    queue: VecDeque<(PeerId, u32)>,
    in_flight: usize,
    requests: u32,
    failures: u32,
}

/// What a finished crawl found: the peers that answered, sorted by key.
#[derive(Debug, Default)]
pub(crate) struct CrawlTable {
    /// Positions in `peers`, sorted by the peers' keys.
    sorted: SortedPeers<usize>,
    peers: Vec<(PeerId, Vec<Multiaddr>)>,
    /// FIND_NODE requests sent and failed.
    pub(crate) requests: u32,
    pub(crate) failures: u32,
}

impl Crawl {
    /// A crawl for buckets of `k`, starting from `seeds` (our routing table).
    pub(crate) fn new(
        k: usize,
        local: PeerId,
        seeds: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>,
    ) -> Self {
        let mut crawl = Self {
            k: k.max(2),
            local,
            peers: HashMap::new(),
            queue: VecDeque::new(),
            in_flight: 0,
            requests: 0,
            failures: 0,
        };
        for (peer, addrs) in seeds {
            crawl.discover(peer, addrs);
        }
        crawl
    }

    /// The next FIND_NODE to send, if the crawl has one and fewer than `parallelism` are in flight.
    pub(crate) fn next_request(
        &mut self,
        parallelism: usize,
        rng: &mut impl RngCore,
    ) -> Option<CrawlRequest> {
        if self.in_flight >= parallelism {
            return None;
        }
        let (peer, cpl) = self.queue.pop_front()?;
        let found = &self.peers[&peer];
        self.in_flight += 1;
        self.requests += 1;
        Some(CrawlRequest {
            peer,
            addrs: found.addrs.clone(),
            key: preimage_at_cpl(&found.key, cpl, rng),
            cpl,
        })
    }

    /// `peer` answered the FIND_NODE for its bucket `cpl` with `closer`.
    pub(crate) fn on_answer(
        &mut self,
        peer: PeerId,
        cpl: u32,
        closer: impl IntoIterator<Item = (PeerId, Vec<Multiaddr>)>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(asked) = self.peers.get_mut(&peer) else {
            return;
        };
        asked.answered = true;
        let asked_key = asked.key;
        let mut deep = 0;
        for (found, addrs) in closer {
            if found == self.local {
                continue;
            }
            let key = self.discover(found, addrs);
            if key.is_some_and(|key| key.common_prefix_len(&asked_key) >= cpl) {
                deep += 1;
            }
        }
        if deep + 1 >= self.k && cpl < MAX_CPL {
            self.queue.push_back((peer, cpl + 1));
        }
    }

    /// The FIND_NODE to `peer` failed: it is left out (a peer that fails one bucket is not asked
    /// for the others).
    pub(crate) fn on_failure(&mut self, peer: PeerId) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.failures += 1;
        self.queue.retain(|(queued, _)| *queued != peer);
    }

    /// Whether every request was answered and none is left.
    pub(crate) fn is_done(&self) -> bool {
        self.queue.is_empty() && self.in_flight == 0
    }

    /// Peers found so far (answered or not).
    pub(crate) fn found(&self) -> usize {
        self.peers.len()
    }

    /// The table of the peers that answered.
    pub(crate) fn into_table(self) -> CrawlTable {
        let mut keys = Vec::new();
        let peers: Vec<(PeerId, Vec<Multiaddr>)> = self
            .peers
            .into_iter()
            .filter(|(_, found)| found.answered)
            .map(|(peer, found)| {
                keys.push((found.key, keys.len()));
                (peer, found.addrs)
            })
            .collect();
        CrawlTable {
            sorted: SortedPeers::new(keys),
            peers,
            requests: self.requests,
            failures: self.failures,
        }
    }

    /// Adds a peer heard of (queued for its bucket 0), or more addresses of a known one; its key.
    fn discover(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Option<Key> {
        if let Some(found) = self.peers.get_mut(&peer) {
            for addr in addrs {
                if found.addrs.len() < MAX_ADDRS && !found.addrs.contains(&addr) {
                    found.addrs.push(addr);
                }
            }
            return Some(found.key);
        }
        if self.peers.len() >= MAX_CRAWL_PEERS || addrs.is_empty() {
            return None;
        }
        let key = peer_key(&peer);
        let mut addrs = addrs;
        addrs.truncate(MAX_ADDRS);
        self.peers.insert(
            peer,
            Found {
                key,
                addrs,
                answered: false,
            },
        );
        self.queue.push_back((peer, 0));
        Some(key)
    }
}

impl CrawlTable {
    /// Peers in the table.
    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// The `count` peers closest to `target`, with their addresses.
    pub(crate) fn closest(&self, target: &Key, count: usize) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let mut positions = Vec::with_capacity(count);
        self.sorted.closest(target, count, &mut positions);
        positions.into_iter().map(|i| self.peers[i].clone()).collect()
    }
}

/// A peer's Kademlia key, as libp2p computes it (SHA-256 of the peer id's bytes).
pub(crate) fn peer_key(peer: &PeerId) -> Key {
    Key::hash_of(&peer.to_bytes())
}

/// Bytes whose SHA-256 shares exactly `cpl` leading bits with `key` (about 2^(cpl+1) hashes): a
/// preimage of the first `cpl + 1` bits of `key` with bit `cpl` flipped ([`Key::preimage`], up
/// to its 28 bits; a crawl never reaches buckets that deep).
fn preimage_at_cpl(key: &Key, cpl: u32, rng: &mut impl RngCore) -> Vec<u8> {
    let sibling = Prefix::of(key, cpl).child(!key.bit(cpl)).first_key();
    sibling.preimage(cpl + 1, rng.next_u64()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    /// A network of converged routing tables answering FIND_NODE as kad does: the `k` peers of
    /// the answerer's table closest to the key, never the asker.
    struct Network {
        ids: Vec<PeerId>,
        keys: Vec<Key>,
        tables: Vec<Vec<usize>>,
        index: HashMap<PeerId, usize>,
        k: usize,
    }

    impl Network {
        fn new(size: usize, k: usize) -> Self {
            let ids: Vec<PeerId> = (0..size).map(|_| PeerId::random()).collect();
            let keys: Vec<Key> = ids.iter().map(peer_key).collect();
            let mut by_key: Vec<usize> = (0..size).collect();
            by_key.sort_by_key(|&i| keys[i]);
            let sorted: Vec<Key> = by_key.iter().map(|&i| keys[i]).collect();
            let tables = (0..size)
                .map(|peer| {
                    parsec_kad::table::converged_table(&sorted, &by_key, &keys[peer], k, usize::MAX)
                        .into_iter()
                        .filter(|&p| p != usize::MAX && p != peer)
                        .collect()
                })
                .collect();
            let index = ids.iter().enumerate().map(|(i, p)| (*p, i)).collect();
            Self {
                ids,
                keys,
                tables,
                index,
                k,
            }
        }

        fn find_node(&self, peer: PeerId, key: &[u8], asker: PeerId) -> Vec<(PeerId, Vec<Multiaddr>)> {
            let target = Key::hash_of(key);
            let mut table: Vec<usize> = self.tables[self.index[&peer]].clone();
            table.retain(|&p| self.ids[p] != asker);
            table.sort_by_cached_key(|&p| self.keys[p].distance(&target));
            table.truncate(self.k);
            table
                .into_iter()
                .map(|p| (self.ids[p], vec![address()]))
                .collect()
        }
    }

    fn address() -> Multiaddr {
        "/memory/1".parse().unwrap()
    }

    #[test]
    fn a_crawl_from_one_peer_lists_the_whole_network() {
        let mut rng = StdRng::seed_from_u64(7);
        for (size, k) in [(300, 20), (1000, 20), (400, 5)] {
            let network = Network::new(size + 1, k);
            let (me, rest) = network.ids.split_last().unwrap();
            let mut crawl = Crawl::new(k, *me, [(rest[0], vec![address()])]);
            let mut answered_requests = 0;
            while let Some(request) = crawl.next_request(usize::MAX, &mut rng) {
                let answer = network.find_node(request.peer, &request.key, *me);
                crawl.on_answer(request.peer, request.cpl, answer);
                answered_requests += 1;
            }
            assert!(crawl.is_done());
            let table = crawl.into_table();
            assert_eq!(table.len(), size, "{size} peers, k = {k}");
            // Each peer is asked for its few deepest buckets, not for every one of 256.
            let per_peer = f64::from(answered_requests) / size as f64;
            assert!(
                per_peer < (size as f64 / k as f64).log2() + 4.0,
                "{per_peer} requests a peer"
            );
        }
    }

    #[test]
    fn failed_peers_are_left_out_and_closest_is_exact() {
        let mut rng = StdRng::seed_from_u64(3);
        let network = Network::new(301, 20);
        let (me, rest) = network.ids.split_last().unwrap();
        let silent = rest[5];
        let mut crawl = Crawl::new(20, *me, rest.iter().take(10).map(|p| (*p, vec![address()])));
        while let Some(request) = crawl.next_request(8, &mut rng) {
            if request.peer == silent {
                crawl.on_failure(request.peer);
            } else {
                let answer = network.find_node(request.peer, &request.key, *me);
                crawl.on_answer(request.peer, request.cpl, answer);
            }
        }
        let table = crawl.into_table();
        assert_eq!(table.len(), 299);
        assert_eq!(table.failures, 1);
        let target = Key::hash_of(b"some content");
        let mut expected: Vec<PeerId> = rest.iter().copied().filter(|p| *p != silent).collect();
        expected.sort_by_key(|p| peer_key(p).distance(&target));
        expected.truncate(20);
        let closest: Vec<PeerId> = table.closest(&target, 20).into_iter().map(|(p, _)| p).collect();
        assert_eq!(closest, expected);
    }

    #[test]
    fn preimages_land_in_the_asked_bucket() {
        let mut rng = StdRng::seed_from_u64(1);
        let key = peer_key(&PeerId::random());
        for cpl in 0..10 {
            assert_eq!(
                Key::hash_of(&preimage_at_cpl(&key, cpl, &mut rng)).common_prefix_len(&key),
                cpl
            );
        }
    }
}
