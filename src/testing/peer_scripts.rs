//! The other implementations' peers the tests run (`tests/js`, `tests/py`), started as
//! [`ScriptPeer`]s, the driver the pubsub testnet uses for its js peers. A missing install fails
//! with the command that installs it (`.ci/run` runs both).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _};
use parsec_actors::{multiaddr::Protocol, ContentId, Multiaddr, PeerId};
use tokio::process::Command;

use crate::testnet::script_peer::ScriptPeer;

/// The js-libp2p scripts and their `node_modules`.
pub const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");

/// The py-libp2p script and its virtualenv.
pub const PY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py");

/// A started peer script that printed `listening <multiaddr>/p2p/<id>`.
#[derive(Debug)]
pub struct ListeningPeer {
    pub script: ScriptPeer,
    /// Where it listens, with its `/p2p/<id>`.
    pub address: Multiaddr,
    pub peer_id: PeerId,
}

impl ListeningPeer {
    /// Starts `script` with `program` in `dir` and reads its address.
    async fn start(program: impl AsRef<std::ffi::OsStr>, script: &str, dir: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        command.arg(script).current_dir(dir);
        let mut script = ScriptPeer::start(command)?;
        let address: Multiaddr = script
            .expect("listening ")
            .await?
            .trim()
            .parse()
            .context("a peer script's address")?;
        let Some(Protocol::P2p(peer_id)) = address.iter().last() else {
            anyhow::bail!("{address} ends in no /p2p");
        };
        Ok(Self {
            script,
            address,
            peer_id,
        })
    }

    /// Has a kad peer publish a provider record of `cid` with its own client.
    pub async fn provide(&mut self, cid: &ContentId) -> anyhow::Result<()> {
        let (command, done) = (format!("provide {cid}"), format!("provided {cid}"));
        self.script.ask(&command, &done).await.map(drop)
    }

    /// Has a kad peer look up the first provider of `cid` with its own client.
    pub async fn find(&mut self, cid: &ContentId) -> anyhow::Result<PeerId> {
        let (command, done) = (format!("find {cid}"), format!("found {cid}"));
        let answer = self.script.ask(&command, &done).await?;
        answer.trim().parse().with_context(|| format!("{answer:?}"))
    }
}

/// The js-libp2p kad-dht peer (`tests/js/kad-peer.mjs`) and its key type (it has an RSA one).
pub async fn js_kad_peer() -> anyhow::Result<(ListeningPeer, String)> {
    ensure_js("node_modules")?;
    let mut peer = ListeningPeer::start("node", "kad-peer.mjs", JS_DIR).await?;
    let key = peer.script.expect("key ").await?;
    Ok((peer, key))
}

/// The py-libp2p kad-dht peer (`tests/py/kad_peer.py`), in the virtualenv `.ci/run` makes.
pub async fn py_kad_peer() -> anyhow::Result<ListeningPeer> {
    let python: PathBuf = Path::new(PY_DIR).join(".venv/bin/python");
    ensure!(
        python.is_file(),
        "py-libp2p is not installed: run `python3 -m venv tests/py/.venv && \
         tests/py/.venv/bin/pip install -r tests/py/requirements.txt` (.ci/run does)"
    );
    ListeningPeer::start(python, "kad_peer.py", PY_DIR).await
}

/// The js-libp2p gossipsub peer (`tests/js/gossip-peer.mjs`).
pub async fn js_gossip_peer() -> anyhow::Result<ListeningPeer> {
    ensure_js("node_modules/@libp2p/gossipsub")?;
    ListeningPeer::start("node", "gossip-peer.mjs", JS_DIR).await
}

fn ensure_js(installed: &str) -> anyhow::Result<()> {
    ensure!(
        Path::new(JS_DIR).join(installed).is_dir(),
        "js-libp2p is not installed: run `npm ci --prefix tests/js` (.ci/run does)"
    );
    Ok(())
}
