//! Shared test set-up: a local libp2p network whose nodes serve the real HTTP API on loopback.

#![allow(dead_code, unreachable_pub)]

use std::{net::TcpListener, time::Duration};

use actix::prelude::*;
use parsec::api;
use parsec_actors::{
    network::TransportKind,
    testing::{spawn_fleet, LocalFleet},
    DhtConfig, DhtHandle, NodeActor, NodeRecipients,
};

/// A node's API served on an OS-chosen loopback port.
pub fn serve_node(node: &Addr<NodeActor>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = api::serve(listener, NodeRecipients::of(node), 1).unwrap();
    actix::spawn(server);
    url
}

/// `peers` background DHT peers and `servers` nodes over TCP, each node with its HTTP API.
pub async fn http_fleet(
    peers: usize,
    servers: usize,
    runtime: &tokio::runtime::Handle,
) -> (LocalFleet, Vec<String>) {
    let fleet = spawn_fleet(peers, servers, TransportKind::Tcp, runtime)
        .await
        .unwrap();
    let urls = fleet.nodes.iter().map(serve_node).collect();
    (fleet, urls)
}

/// A node on a DHT peer that knows nobody (never ready until given peers).
pub async fn lone_node(runtime: &tokio::runtime::Handle) -> (DhtHandle, Addr<NodeActor>, String) {
    let config = parsec_actors::network::local_peer_config(&DhtConfig::default(), TransportKind::Tcp);
    let peer = DhtHandle::spawn(config, runtime).await.unwrap();
    let node = NodeActor::new(peer.clone()).start();
    let url = serve_node(&node);
    (peer, node, url)
}

/// An HTTP client with a generous timeout.
pub fn client() -> awc::Client {
    awc::Client::builder().timeout(Duration::from_secs(30)).finish()
}
