//! js-libp2p gossipsub peers in a pubsub testnet: each a `node` process running
//! `tests/js/gossip-peer.mjs` (`npm ci --prefix tests/js` installs `@libp2p/gossipsub`), driven as
//! a [`ScriptPeer`]. A message's first copy is the instant its `received` line reaches this
//! process (the pipe adds microseconds), on the same monotonic clock as the rust publisher's
//! send.

use std::path::Path;

use anyhow::{bail, Context as _};
use parsec_actors::{pubsub::MessageId, Multiaddr, PeerId};
use tokio::{process::Command, time::Instant};

use crate::testnet::script_peer::ScriptPeer;

/// One js-libp2p peer and its id.
struct JsPeer {
    script: ScriptPeer,
    peer_id: PeerId,
}

/// The js peers of one network size.
pub(super) struct JsPeers {
    peers: Vec<JsPeer>,
}

impl JsPeers {
    /// Starts `count` peers of `script`.
    pub(super) async fn start(count: usize, script: &Path) -> anyhow::Result<Self> {
        if count > 0 && !script.is_file() {
            bail!(
                "--js-peers needs {} (and `npm ci --prefix tests/js` for @libp2p/gossipsub)",
                script.display()
            );
        }
        let mut peers = Vec::with_capacity(count);
        for _ in 0..count {
            let mut command = Command::new("node");
            command
                .arg(
                    script
                        .file_name()
                        .context("the js peer script has no file name")?,
                )
                .current_dir(script.parent().unwrap_or(Path::new(".")));
            let mut script = ScriptPeer::start(command)?;
            let id = script.expect("peer ").await?;
            let peer_id = id.trim().parse().context("the js peer's id")?;
            peers.push(JsPeer { script, peer_id });
        }
        Ok(Self { peers })
    }

    pub(super) fn len(&self) -> usize {
        self.peers.len()
    }

    pub(super) fn peer_id(&self, index: usize) -> PeerId {
        self.peers[index].peer_id
    }

    /// Has peer `index` dial `address` (with `/p2p/<id>`).
    pub(super) async fn dial(&mut self, index: usize, address: &Multiaddr) -> anyhow::Result<()> {
        let peer = &mut self.peers[index].script;
        peer.ask(&format!("dial {address}"), &format!("dialed {address}"))
            .await
            .map(drop)
    }

    /// Subscribes every js peer to `topic`.
    pub(super) async fn subscribe(&mut self, topic: &str) -> anyhow::Result<()> {
        for peer in &mut self.peers {
            peer.script
                .ask(&format!("subscribe {topic}"), &format!("subscribed {topic}"))
                .await?;
        }
        Ok(())
    }

    /// When peer `index` first got message `id`, if it did.
    pub(super) fn first_copy(&self, index: usize, id: MessageId) -> Option<Instant> {
        self.peers[index].script.first_copy(id).map(|copy| copy.at)
    }

    /// The copies of `id` peer `index` received (its message-id function counts every one).
    pub(super) async fn copies(&mut self, index: usize, id: MessageId) -> anyhow::Result<u32> {
        let peer = &mut self.peers[index].script;
        let count = peer
            .ask(&format!("copies {id}"), &format!("copies {id} "))
            .await?;
        count.trim().parse().context("a js peer's copy count")
    }

    /// Forgets the first copies seen so far (after an iteration's rows are made).
    pub(super) fn forget(&self) {
        for peer in &self.peers {
            peer.script.forget_first_copies();
        }
    }

    pub(super) async fn stop(self) {
        for peer in self.peers {
            peer.script.stop().await;
        }
    }
}
