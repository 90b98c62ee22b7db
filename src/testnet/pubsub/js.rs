//! js-libp2p gossipsub peers in a pubsub testnet: each a `node` process running
//! `tests/js/gossip-peer.mjs` (`npm ci --prefix tests/js` installs `@libp2p/gossipsub`), driven
//! over its stdin and read on its stdout. A message's first copy is the instant its `received`
//! line reaches this process (the pipe adds microseconds), on the same monotonic clock as the
//! rust publisher's send.

use std::{
    collections::HashMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{bail, Context as _};
use parsec_actors::{pubsub::MessageId, Multiaddr, PeerId};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
    time::Instant,
};

/// How long a js peer may take to start or to answer a command.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// First copies a js peer remembers; the run forgets them after every iteration.
const MAX_REMEMBERED: usize = 1 << 20;

/// Answers queued per peer.
const ANSWER_QUEUE: usize = 256;

/// First copies: message → (instant, forwarder as the js peer printed it).
type FirstCopies = Arc<Mutex<HashMap<MessageId, Instant>>>;

/// One js-libp2p peer.
struct JsPeer {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    first_copies: FirstCopies,
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
            peers.push(JsPeer::start(script).await?);
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
        let peer = &mut self.peers[index];
        peer.send(&format!("dial {address}")).await?;
        peer.expect(&format!("dialed {address}")).await.map(drop)
    }

    /// Subscribes every js peer to `topic`.
    pub(super) async fn subscribe(&mut self, topic: &str) -> anyhow::Result<()> {
        for peer in &mut self.peers {
            peer.send(&format!("subscribe {topic}")).await?;
            peer.expect(&format!("subscribed {topic}")).await?;
        }
        Ok(())
    }

    /// When peer `index` first got message `id`, if it did.
    pub(super) fn first_copy(&self, index: usize, id: MessageId) -> Option<Instant> {
        let copies = self.peers[index]
            .first_copies
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        copies.get(&id).copied()
    }

    /// The copies of `id` peer `index` received (its message-id function counts every one).
    pub(super) async fn copies(&mut self, index: usize, id: MessageId) -> anyhow::Result<u32> {
        let peer = &mut self.peers[index];
        peer.send(&format!("copies {id}")).await?;
        let count = peer.expect(&format!("copies {id} ")).await?;
        count.trim().parse().context("a js peer's copy count")
    }

    /// Forgets the first copies seen so far (after an iteration's rows are made).
    pub(super) fn forget(&self) {
        for peer in &self.peers {
            peer.first_copies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    pub(super) async fn stop(mut self) {
        for peer in &mut self.peers {
            let _ = peer.child.kill().await;
        }
    }
}

impl JsPeer {
    async fn start(script: &Path) -> anyhow::Result<Self> {
        let directory = script.parent().unwrap_or(Path::new("."));
        let mut child = Command::new("node")
            .arg(
                script
                    .file_name()
                    .context("the js peer script has no file name")?,
            )
            .current_dir(directory)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a js-libp2p peer: is `node` installed?")?;
        let stdin = child.stdin.take().context("the js peer's stdin")?;
        let stdout = child.stdout.take().context("the js peer's stdout")?;
        let (answers_tx, answers) = mpsc::channel(ANSWER_QUEUE);
        let first_copies = FirstCopies::default();
        let copies = first_copies.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // `received <uuid> <topic> <from>`: noted at once, on our monotonic clock.
                if let Some(rest) = line.strip_prefix("received ") {
                    let at = Instant::now();
                    let id = rest.split(' ').next().and_then(|id| id.parse().ok());
                    if let Some(id) = id {
                        let mut copies = copies.lock().unwrap_or_else(|e| e.into_inner());
                        if copies.len() < MAX_REMEMBERED {
                            copies.entry(MessageId(id)).or_insert(at);
                        }
                    }
                } else if answers_tx.send(line).await.is_err() {
                    break;
                }
            }
        });
        let mut peer = Self {
            child,
            stdin,
            answers,
            first_copies,
            peer_id: PeerId::random(),
        };
        let id = peer.expect("peer ").await?;
        peer.peer_id = id.trim().parse().context("the js peer's id")?;
        Ok(peer)
    }

    async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .context("writing to a js peer")
    }

    /// The rest of the first answer that starts with `prefix` (other answers are skipped).
    async fn expect(&mut self, prefix: &str) -> anyhow::Result<String> {
        let give_up = Instant::now() + ANSWER_TIMEOUT;
        loop {
            let line = tokio::time::timeout_at(give_up, self.answers.recv())
                .await
                .with_context(|| format!("a js peer did not answer `{prefix}…` within {ANSWER_TIMEOUT:?}"))?
                .context("a js peer exited")?;
            if let Some(rest) = line.strip_prefix(prefix) {
                return Ok(rest.to_owned());
            }
            if line.starts_with("failed") {
                bail!("a js peer: {line}");
            }
        }
    }
}
