//! Another implementation as the bootstrap peer: a js-libp2p kad-dht node (npm, `tests/js`)
//! with an RSA identity, as the IPFS Amino bootstrappers have. Our nodes join through it, count
//! it in their routing tables, and provide and find a record through it.
//!
//! `.ci/run` installs the npm packages (`npm ci --prefix tests/js`).

use std::{
    io::{BufRead, BufReader, Lines, Write},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    time::Duration,
};

use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    multiaddr::Protocol,
    testing::retrieve_until_found,
    ContentId, DhtClient, DhtConfig, DhtHandle, DhtMode, Multiaddr, PeerId, Strategy,
};

const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");

/// The js peer, killed on drop.
struct JsPeer {
    child: Child,
    address: Multiaddr,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl JsPeer {
    fn start() -> Self {
        assert!(
            std::path::Path::new(JS_DIR).join("node_modules").is_dir(),
            "js-libp2p is not installed: run `npm ci --prefix tests/js` (.ci/run does)"
        );
        let mut child = Command::new("node")
            .arg("kad-peer.mjs")
            .current_dir(JS_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut address, mut key) = (None, None);
        while address.is_none() || key.is_none() {
            let line = lines.next().expect("the js peer printed its address").unwrap();
            if let Some(text) = line.strip_prefix("listening ") {
                address = Some(text.parse().unwrap());
            } else if let Some(text) = line.strip_prefix("key ") {
                key = Some(text.to_owned());
            }
        }
        assert_eq!(key.as_deref(), Some("RSA"));
        Self {
            stdin: child.stdin.take().unwrap(),
            child,
            address: address.unwrap(),
            lines,
        }
    }

    fn peer_id(&self) -> PeerId {
        match self.address.iter().last() {
            Some(Protocol::P2p(peer)) => peer,
            _ => panic!("{} ends in no /p2p", self.address),
        }
    }

    /// Has the js peer publish a provider record of `cid` (its own kad-dht client).
    fn provide(&mut self, cid: &ContentId) -> Result<(), String> {
        self.ask("provide", cid, "provided").map(drop)
    }

    /// Has the js peer look up the first provider of `cid`.
    fn find(&mut self, cid: &ContentId) -> Result<PeerId, String> {
        let answer = self.ask("find", cid, "found")?;
        answer.trim().parse().map_err(|e| format!("{answer:?}: {e}"))
    }

    /// Sends `command <cid>`; the rest of the line answered `done <cid> …`, or the failure.
    fn ask(&mut self, command: &str, cid: &ContentId, done: &str) -> Result<String, String> {
        writeln!(self.stdin, "{command} {cid}").unwrap();
        for line in self.lines.by_ref() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix(&format!("{done} {cid}")) {
                return Ok(rest.to_owned());
            }
            if line.starts_with(&format!("failed {cid}")) {
                return Err(line);
            }
        }
        Err("the js peer exited".to_owned())
    }
}

impl Drop for JsPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn our_nodes_join_and_measure_through_a_js_libp2p_peer_with_an_rsa_identity() {
    let js = JsPeer::start();
    let runtime = dht_runtime(2).unwrap();
    runtime.block_on(async {
        let spawn = |bootstrap: Multiaddr| {
            let mut config = DhtConfig::default();
            config
                .set_mode(DhtMode::Client)
                .set_listen(vec![TransportKind::Tcp.listen_addr()])
                .set_announce_listen_addrs(true)
                .set_periodic_bootstrap(None)
                .set_bootstrap(vec![bootstrap])
                .set_provide_timeout(Duration::from_secs(20))
                .set_retrieve_timeout(Duration::from_secs(20));
            DhtHandle::spawn(config, runtime.handle())
        };
        let provider = spawn(js.address.clone()).await.unwrap();
        let retriever = spawn(js.address.clone()).await.unwrap();
        for node in [&provider, &retriever] {
            let reached =
                tokio::time::timeout(Duration::from_secs(30), node.join(Duration::from_millis(500)))
                    .await
                    .expect("joined through the js peer in time")
                    .unwrap();
            assert_eq!(reached, 1, "the js peer is in the routing table");
        }

        let cid = ContentId::for_content(b"provided through js-libp2p");
        let provided = provider.provide(cid.clone()).await.unwrap();
        assert_eq!(provided.error, None);
        assert_eq!(provided.record_peers, Some(1), "the js peer took the record");
        let found = retrieve_until_found(&retriever, &cid, 11, Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(found.error, None, "the js peer did not hand out the record");
        assert_eq!(found.provider, Some(provider.peer_id()));
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

/// Our engine against js-libp2p's kad-dht, both ways: nodes running `classic`, `optprov` and
/// `fullrt` join through a js peer; each finds what the others stored, and so does the js peer's
/// own client; then the js peer publishes and every one of them finds its record.
#[test]
fn our_engine_and_js_libp2p_find_each_others_records() {
    let mut js = JsPeer::start();
    let runtime = dht_runtime(2).unwrap();
    let strategies = [
        Strategy::Classic,
        Strategy::Optimistic,
        Strategy::FullRoutingTable,
    ];
    let nodes: Vec<DhtHandle> = runtime.block_on(async {
        let mut nodes = Vec::new();
        for strategy in strategies {
            let mut config = DhtConfig::default();
            config
                .set_mode(DhtMode::Server)
                .set_client(DhtClient::Engine(strategy))
                .set_listen(vec![TransportKind::Tcp.listen_addr()])
                .set_announce_listen_addrs(true)
                .set_periodic_bootstrap(None)
                .set_bootstrap(vec![js.address.clone()])
                .set_provide_timeout(Duration::from_secs(20))
                .set_retrieve_timeout(Duration::from_secs(20));
            let node = DhtHandle::spawn(config, runtime.handle()).await.unwrap();
            // fullrt joins once its crawl of the js peer's table finished.
            tokio::time::timeout(Duration::from_secs(30), node.join(Duration::from_millis(500)))
                .await
                .expect("joined through the js peer in time")
                .unwrap();
            nodes.push(node);
        }
        for (index, provider) in nodes.iter().enumerate() {
            let cid = ContentId::for_content(format!("engine record {index}").as_bytes());
            let provided = provider.provide(cid.clone()).await.unwrap();
            assert_eq!(provided.error, None, "{:?} provide", strategies[index]);
            assert!(provided.record_peers.unwrap_or(0) >= 1);
            for (other, retriever) in nodes.iter().enumerate().filter(|(i, _)| *i != index) {
                let found = retrieve_until_found(retriever, &cid, 5, Duration::from_millis(200))
                    .await
                    .unwrap();
                assert_eq!(
                    found.error, None,
                    "{:?} finds {:?}'s record",
                    strategies[other], strategies[index]
                );
                assert_eq!(found.provider, Some(provider.peer_id()));
            }
        }
        nodes
    });

    for (index, provider) in nodes.iter().enumerate() {
        let cid = ContentId::for_content(format!("engine record {index}").as_bytes());
        let found = js.find(&cid).expect("the js peer finds our record");
        assert_eq!(found, provider.peer_id(), "{:?}", strategies[index]);
    }
    let cid = ContentId::for_content(b"published by js-libp2p");
    js.provide(&cid).expect("the js peer published its record");
    runtime.block_on(async {
        for (node, strategy) in nodes.iter().zip(strategies) {
            let found = retrieve_until_found(node, &cid, 5, Duration::from_millis(200))
                .await
                .unwrap();
            assert_eq!(found.error, None, "{strategy:?} finds the js record");
            assert_eq!(found.provider, Some(js.peer_id()), "{strategy:?}");
        }
    });
    drop(nodes);
    runtime.shutdown_timeout(Duration::from_secs(1));
}
