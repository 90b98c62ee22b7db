//! When a topic's meshes have formed, judged from every peer's view poll after poll: one rule for
//! a testnet's in-process peers and a fleet's servers.
//!
//! Publishing before the meshes formed measures them forming, not delivery: a peer whose
//! subscription (or GRAFT) its neighbour has not processed yet is not forwarded the message, and
//! once the GRAFT lands it is a mesh peer, to which gossip never offers what it missed.

use std::time::Duration;

use tokio::time::Instant;

use super::TopicPeers;

/// How often the views are read while the meshes form.
pub const MESH_POLL: Duration = Duration::from_millis(100);

/// How long every mesh must stay formed before it counts: a view read while a SUBSCRIBE or GRAFT
/// was in flight can look formed without the peer that sent it, and a GRAFT answered by a PRUNE
/// (backoff) shows in the grafting peer's mesh until the PRUNE comes back.
pub const MESH_STABLE: Duration = Duration::from_millis(500);

/// Where the meshes stand after a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshState {
    /// Some peers have fewer mesh peers than wanted; `isolated` of them have none at all.
    Forming { short: usize, isolated: usize },
    /// Every peer has its mesh, for less than [`MESH_STABLE`] so far.
    Holding,
    /// Every peer has had its mesh for [`MESH_STABLE`].
    Formed,
}

/// Judges the views of one topic, poll after poll (sans-IO: the caller reads the views).
#[derive(Debug)]
pub struct MeshWatch {
    wanted: usize,
    formed_since: Option<Instant>,
}

impl MeshWatch {
    /// A peer's mesh is formed with `wanted` mesh peers, or every subscribed peer it is connected
    /// to when it has fewer (at least one).
    pub fn new(wanted: usize) -> Self {
        Self {
            wanted: wanted.max(1),
            formed_since: None,
        }
    }

    /// The state after reading `views` (one per peer) at `now`.
    pub fn observe(&mut self, views: &[TopicPeers], now: Instant) -> MeshState {
        let short = views
            .iter()
            .filter(|v| v.subscribed == 0 || v.mesh < self.wanted.min(v.subscribed))
            .count();
        if short > 0 {
            self.formed_since = None;
            let isolated = views.iter().filter(|v| v.mesh == 0).count();
            return MeshState::Forming { short, isolated };
        }
        let since = *self.formed_since.get_or_insert(now);
        if now.duration_since(since) >= MESH_STABLE {
            MeshState::Formed
        } else {
            MeshState::Holding
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(subscribed: usize, mesh: usize) -> TopicPeers {
        TopicPeers { subscribed, mesh }
    }

    #[test]
    fn a_mesh_counts_once_every_peer_held_it_for_the_stable_time() {
        let start = Instant::now();
        let mut watch = MeshWatch::new(4);
        // Two neighbours both meshed, six neighbours four meshed: formed, not yet for long.
        let formed = [view(2, 2), view(6, 4)];
        assert_eq!(watch.observe(&formed, start), MeshState::Holding);
        assert_eq!(watch.observe(&formed, start + MESH_POLL), MeshState::Holding);
        assert_eq!(watch.observe(&formed, start + MESH_STABLE), MeshState::Formed);
    }

    #[test]
    fn a_peer_falling_short_restarts_the_stable_time() {
        let start = Instant::now();
        let mut watch = MeshWatch::new(4);
        assert_eq!(
            watch.observe(&[view(2, 2), view(3, 3)], start),
            MeshState::Holding
        );
        // A subscription that was in flight arrives: the peer knows one more subscriber than its
        // mesh holds.
        let later = start + MESH_POLL;
        assert_eq!(
            watch.observe(&[view(3, 2), view(3, 3)], later),
            MeshState::Forming {
                short: 1,
                isolated: 0
            }
        );
        let regrafted = [view(3, 3), view(3, 3)];
        let formed_again = start + MESH_STABLE;
        assert_eq!(watch.observe(&regrafted, formed_again), MeshState::Holding);
        assert_eq!(
            watch.observe(&regrafted, formed_again + MESH_STABLE - MESH_POLL),
            MeshState::Holding
        );
        assert_eq!(
            watch.observe(&regrafted, formed_again + MESH_STABLE),
            MeshState::Formed
        );
    }

    #[test]
    fn a_peer_with_no_subscribed_neighbour_is_isolated_and_never_formed() {
        let mut watch = MeshWatch::new(0);
        assert_eq!(
            watch.observe(&[view(0, 0), view(1, 1)], Instant::now()),
            MeshState::Forming {
                short: 1,
                isolated: 1
            }
        );
        assert_eq!(
            watch.observe(&[view(1, 0)], Instant::now()),
            MeshState::Forming {
                short: 1,
                isolated: 1
            }
        );
    }
}
