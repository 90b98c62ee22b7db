//! A reprovide round: a node sends the provider records of all its keys again, one lookup per key
//! (`classic`: rust-libp2p's republish, Kubo's reprovider before 0.39), or region by region
//! (`sweep`: [`walk`](crate::walk)s on the [`sweep`](crate::sweep) schedule). Both drivers, the
//! simulator and the engine on real peers, report a round as a [`ReprovideRound`].

use std::time::Duration;

use crate::region::Prefix;

/// How a node reprovides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReprovideStrategy {
    /// One provide (lookup, then `k` stores) per key.
    Classic,
    /// Region by region.
    #[default]
    Sweep,
}

impl ReprovideStrategy {
    /// Every strategy, in the order reports list them.
    pub const ALL: [Self; 2] = [Self::Classic, Self::Sweep];

    /// The name flags and rows use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Sweep => "sweep",
        }
    }
}

crate::impl_named!(ReprovideStrategy, "reprovide strategy");

/// What a reprovide round did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReprovideRound {
    /// Keys reprovided.
    pub keys: usize,
    /// Lookups run: one per key (classic), the explorations of the regions (sweep).
    pub lookups: u64,
    /// Requests sent: lookup queries and ADD_PROVIDERs (one per key and peer).
    pub messages: u64,
    /// Requests that failed (a store that failed leaves its keys without that copy).
    pub failures: u64,
    /// Records acknowledged: one per key and peer that stored it.
    pub copies_stored: u64,
    /// Each walk (sweep: a prefix's lookups, then its sends; classic: one provide), in the order
    /// they ended.
    pub walks: Vec<WalkReport>,
    /// The round's time, its walks spread over the workers.
    pub duration: Duration,
}

/// One walk of a round: what it cost and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalkReport {
    /// The prefix scheduled (sweep; `None`: a classic provide).
    pub prefix: Option<Prefix>,
    /// Regions the explored prefix was cut into that held keys not sent before.
    pub regions: u32,
    /// Peers the exploration found under the prefix (classic: 0).
    pub peers: u32,
    /// Keys whose records it sent.
    pub keys: u64,
    /// Lookups, requests (lookup queries and ADD_PROVIDERs), failures and records acknowledged,
    /// as the round counts them.
    pub lookups: u64,
    pub messages: u64,
    pub failures: u64,
    pub copies_stored: u64,
    /// From its start to its last send's end.
    pub duration: Duration,
}

impl ReprovideRound {
    /// Keys reprovided per hour of the round's time.
    pub fn keys_per_hour(&self) -> f64 {
        self.keys as f64 / self.duration.as_secs_f64().max(f64::MIN_POSITIVE) * 3600.0
    }

    /// Lookups per key.
    pub fn lookups_per_key(&self) -> f64 {
        self.lookups as f64 / self.keys.max(1) as f64
    }

    /// Walks (sweep: prefixes walked; classic: provides).
    pub fn walks(&self) -> usize {
        self.walks.len()
    }

    /// Requests per key.
    pub fn messages_per_key(&self) -> f64 {
        self.messages as f64 / self.keys.max(1) as f64
    }

    /// Acknowledged records per key.
    pub fn copies_per_key(&self) -> f64 {
        self.copies_stored as f64 / self.keys.max(1) as f64
    }

    /// Adds a walk that ended to the round's totals (the lookups, requests, failures and copies
    /// the round did not count already).
    pub fn add_walk(&mut self, walk: WalkReport) {
        self.lookups += walk.lookups;
        self.messages += walk.messages;
        self.failures += walk.failures;
        self.copies_stored += walk.copies_stored;
        self.walks.push(walk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_read_and_print_their_names() {
        assert_eq!("sweep".parse::<ReprovideStrategy>(), Ok(ReprovideStrategy::Sweep));
        assert_eq!(ReprovideStrategy::Classic.to_string(), "classic");
        assert!("fast"
            .parse::<ReprovideStrategy>()
            .unwrap_err()
            .contains("classic or sweep"));
    }
}
