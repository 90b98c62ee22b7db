//! Another implementation as the bootstrap peer: a js-libp2p kad-dht node (npm, `tests/js`)
//! with an RSA identity, as the IPFS Amino bootstrappers have. Our nodes join through it, count
//! it in their routing tables, and provide and find a record through it.
//!
//! `.ci/run` installs the npm packages (`npm ci --prefix tests/js`).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    testing::retrieve_until_found,
    ContentId, DhtConfig, DhtHandle, DhtMode, Multiaddr,
};

const JS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/js");

/// The js peer, killed on drop.
struct JsPeer {
    child: Child,
    address: Multiaddr,
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
            child,
            address: address.unwrap(),
        }
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
