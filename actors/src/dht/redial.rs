//! Keeping a pubsub peer's topic peers connected, as a state machine without I/O: the swarm task
//! reports connections and subscriptions, asks which peers are due a dial, and dials them.
//!
//! A peer that shares one of our topics and whose last connection closed without our asking is
//! dialled again after 1 s, then with doubling pauses up to a minute, at most [`MAX_TRIES`]
//! times. Connections we close on purpose (cold lookups, a host leaving a testnet) are not
//! reopened. Without this, two servers whose only connection dropped (an idle timeout, the
//! other side's restart, a NAT mapping lost) kept no subscribed peer and refused to publish until
//! some DHT lookup happened to dial the other again.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

/// The pause before the first dial again; each failure doubles it.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two dials.
const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// Dials of one peer before it is given up (about five minutes of pauses).
pub(crate) const MAX_TRIES: u32 = 10;
/// Peers followed at most: subscriptions of more peers than this are not kept for redial (a
/// server's meshes hold a few dozen).
const MAX_FOLLOWED: usize = 4_096;

/// A peer to dial again, and when.
#[derive(Debug)]
struct Due {
    at: Instant,
    tries: u32,
    addresses: Vec<Multiaddr>,
}

/// What the swarm task should do for one peer now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Dial {
    pub(crate) peer: PeerId,
    /// Where we reached it before, when we dialled it; the routing table may know more.
    pub(crate) addresses: Vec<Multiaddr>,
}

/// Topic peers to keep connected.
#[derive(Debug, Default)]
pub(crate) struct Redial {
    /// The topics each connected peer told us it is subscribed to.
    topics: HashMap<PeerId, HashSet<String>>,
    /// Where we dialled each connected peer (no address for a peer that dialled us).
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Peers whose connections we are closing on purpose.
    closing: HashSet<PeerId>,
    due: HashMap<PeerId, Due>,
}

impl Redial {
    /// `peer` announced a subscription to `topic`.
    pub(crate) fn on_subscribed(&mut self, peer: PeerId, topic: &str) {
        if self.topics.len() < MAX_FOLLOWED || self.topics.contains_key(&peer) {
            self.topics.entry(peer).or_default().insert(topic.to_owned());
        }
    }

    /// `peer` announced it left `topic`.
    pub(crate) fn on_unsubscribed(&mut self, peer: PeerId, topic: &str) {
        if let Some(topics) = self.topics.get_mut(&peer) {
            topics.remove(topic);
            if topics.is_empty() {
                self.topics.remove(&peer);
            }
        }
    }

    /// A connection to `peer` is up; `dialled` is the address when we dialled it.
    pub(crate) fn on_connected(&mut self, peer: PeerId, dialled: Option<Multiaddr>) {
        self.due.remove(&peer);
        if let Some(address) = dialled {
            if self.addresses.len() < MAX_FOLLOWED || self.addresses.contains_key(&peer) {
                let known = self.addresses.entry(peer).or_default();
                if !known.contains(&address) {
                    known.push(address);
                }
            }
        }
    }

    /// We are about to close every connection to `peer` on purpose.
    pub(crate) fn closing_on_purpose(&mut self, peer: PeerId) {
        self.due.remove(&peer);
        if self.topics.contains_key(&peer) {
            self.closing.insert(peer);
        }
    }

    /// A connection to `peer` closed, `remaining` are still open; `our_topics` are the topics we
    /// are subscribed to. Returns whether the peer will be dialled again.
    pub(crate) fn on_closed<'a>(
        &mut self,
        peer: PeerId,
        remaining: u32,
        our_topics: impl IntoIterator<Item = &'a str>,
        now: Instant,
    ) -> bool {
        if remaining > 0 {
            return false;
        }
        let on_purpose = self.closing.remove(&peer);
        let topics = self.topics.remove(&peer).unwrap_or_default();
        let addresses = self.addresses.remove(&peer).unwrap_or_default();
        let shares_a_topic = our_topics.into_iter().any(|t| topics.contains(t));
        if on_purpose || !shares_a_topic {
            return false;
        }
        self.due.insert(
            peer,
            Due {
                at: now + FIRST_PAUSE,
                tries: 0,
                addresses,
            },
        );
        true
    }

    /// A dial of `peer` failed: it is tried again later, or given up after [`MAX_TRIES`]. Returns
    /// whether it was given up.
    pub(crate) fn on_dial_failed(&mut self, peer: PeerId, now: Instant) -> bool {
        let Some(due) = self.due.get_mut(&peer) else {
            return false;
        };
        if due.tries >= MAX_TRIES {
            self.due.remove(&peer);
            return true;
        }
        let pause = FIRST_PAUSE
            .saturating_mul(1 << due.tries.min(16))
            .min(LONGEST_PAUSE);
        due.at = now + pause;
        false
    }

    /// The peers due a dial now; each counts as one try, and waits for its outcome before the
    /// next (a failure reschedules it, a connection ends it).
    pub(crate) fn take_due(&mut self, now: Instant) -> Vec<Dial> {
        let mut dials = Vec::new();
        for (peer, due) in &mut self.due {
            if due.at <= now {
                due.tries += 1;
                // Parked until the dial's outcome reschedules it.
                due.at = now + LONGEST_PAUSE * 2;
                dials.push(Dial {
                    peer: *peer,
                    addresses: due.addresses.clone(),
                });
            }
        }
        dials
    }

    /// When the next peer is due, if any is.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.values().map(|d| d.at).min()
    }

    /// Peers waiting for a dial.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Multiaddr {
        "/ip4/127.0.0.1/tcp/4001".parse().unwrap()
    }

    #[test]
    fn a_topic_peer_lost_by_accident_is_dialled_again_after_a_pause() {
        let (mut redial, peer, now) = (Redial::default(), PeerId::random(), Instant::now());
        redial.on_subscribed(peer, "t");
        redial.on_connected(peer, Some(address()));
        assert!(redial.on_closed(peer, 0, ["t"], now));
        assert!(redial.take_due(now).is_empty(), "not before the pause");
        assert_eq!(redial.next_due(), Some(now + FIRST_PAUSE));
        let dials = redial.take_due(now + FIRST_PAUSE);
        assert_eq!(
            dials,
            vec![Dial {
                peer,
                addresses: vec![address()]
            }]
        );
        redial.on_connected(peer, None);
        assert_eq!(redial.waiting(), 0);
    }

    #[test]
    fn closes_on_purpose_other_topics_and_other_connections_are_left_alone() {
        let now = Instant::now();
        let mut redial = Redial::default();
        let (ours, theirs, kept) = (PeerId::random(), PeerId::random(), PeerId::random());
        for peer in [ours, kept] {
            redial.on_subscribed(peer, "t");
        }
        redial.on_subscribed(theirs, "other");
        redial.closing_on_purpose(ours);
        assert!(!redial.on_closed(ours, 0, ["t"], now), "we closed it");
        assert!(!redial.on_closed(theirs, 0, ["t"], now), "no topic of ours");
        assert!(!redial.on_closed(kept, 1, ["t"], now), "still connected");
        assert_eq!(redial.waiting(), 0);
        // A peer that left our topic is not followed either.
        redial.on_unsubscribed(kept, "t");
        assert!(!redial.on_closed(kept, 0, ["t"], now));
    }

    #[test]
    fn failed_dials_back_off_and_are_given_up() {
        let (mut redial, peer) = (Redial::default(), PeerId::random());
        let mut now = Instant::now();
        redial.on_subscribed(peer, "t");
        redial.on_closed(peer, 0, ["t"], now);
        let mut pauses = Vec::new();
        let mut given_up = false;
        while !given_up {
            let due = redial.next_due().expect("still followed");
            pauses.push(due - now);
            now = due;
            assert_eq!(redial.take_due(now).len(), 1);
            assert!(redial.take_due(now).is_empty(), "one dial at a time");
            given_up = redial.on_dial_failed(peer, now);
        }
        assert_eq!(
            pauses.len(),
            MAX_TRIES as usize,
            "given up after {MAX_TRIES} tries"
        );
        assert_eq!(pauses[..3], [FIRST_PAUSE, FIRST_PAUSE * 2, FIRST_PAUSE * 4]);
        assert!(pauses.iter().all(|p| *p <= LONGEST_PAUSE));
        assert_eq!(redial.waiting(), 0);
    }
}
