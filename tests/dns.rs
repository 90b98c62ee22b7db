//! `/dnsaddr` bootstrap entries, as the IPFS Amino bootstrappers are published, resolved through
//! a DNS server this test controls (dnsmasq answering TXT records on loopback).

mod common;

use std::{
    net::{SocketAddr, UdpSocket},
    process::{Child, Command, Stdio},
    time::Duration,
};

use parsec_actors::{
    local_network::{dht_runtime, TransportKind},
    DhtConfig, DhtHandle, DhtMode, Multiaddr,
};

/// dnsmasq on a free loopback port, answering the given TXT records and nothing else.
struct DnsServer {
    child: Child,
    address: SocketAddr,
}

impl DnsServer {
    /// dnsmasq takes no port 0 (it means "no DNS"), so a port is picked free; when something took
    /// it before dnsmasq bound it, dnsmasq exits, and it starts again on another (5 tries).
    fn start(txt_records: &[(&str, String)]) -> Self {
        for _ in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut command = Command::new(parsec::testing::process::installed("dnsmasq", "dnsmasq-base"));
            command.args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--user=root",
                &format!(
                    "--pid-file={}",
                    std::env::temp_dir()
                        .join(format!("parsec-dnsmasq-{port}.pid"))
                        .display()
                ),
                &format!("--port={port}"),
            ]);
            for (name, value) in txt_records {
                command.arg(format!("--txt-record={name},{value}"));
            }
            let mut child = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let address = SocketAddr::from(([127, 0, 0, 1], port));
            // Ready once it answers on its port (it binds before serving); gone if it could not bind.
            let settled = parsec::testing::process::wait_until(Duration::from_secs(10), || {
                Self::answers(address) || child.try_wait().unwrap().is_some()
            });
            assert!(settled, "dnsmasq neither answered nor exited");
            if child.try_wait().unwrap().is_none() {
                return Self { child, address };
            }
        }
        panic!("dnsmasq could not bind a free port in 5 tries");
    }

    /// Whether something answers a DNS query at `address` (a query for the root's NS records).
    fn answers(address: SocketAddr) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
        socket.send_to(&query, address).is_ok() && socket.recv(&mut [0; 512]).is_ok()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(bootstrap: Vec<Multiaddr>, dns: Option<SocketAddr>, runtime: &tokio::runtime::Handle) -> DhtHandle {
    let mut config = DhtConfig::default();
    config
        .set_mode(DhtMode::Server)
        .set_listen(vec![TransportKind::Tcp.listen_addr()])
        .set_announce_listen_addrs(true)
        .set_periodic_bootstrap(None)
        .set_bootstrap(bootstrap)
        .set_dns_server(dns);
    runtime.block_on(DhtHandle::spawn(config, runtime)).unwrap()
}

/// A node joins through `/dnsaddr/<name>/p2p/<id>` (the Amino form) and through a bare
/// `/dnsaddr/<name>` (Filecoin's form), each resolved by the test's DNS server.
#[test]
fn dnsaddr_bootstrap_entries_resolve_through_the_given_dns_server() {
    let runtime = dht_runtime(2).unwrap();
    let bootstrap = peer(vec![], None, runtime.handle());
    let target = bootstrap.dialable_addrs()[0].clone();
    let id = bootstrap.peer_id();
    let dns = DnsServer::start(&[
        ("_dnsaddr.bootstrap.parsec.test", format!("dnsaddr={target}")),
        ("_dnsaddr.peers.parsec.test", format!("dnsaddr={target}")),
    ]);

    for entry in [
        format!("/dnsaddr/bootstrap.parsec.test/p2p/{id}"),
        "/dnsaddr/peers.parsec.test".to_owned(),
    ] {
        let node = peer(vec![entry.parse().unwrap()], Some(dns.address), runtime.handle());
        let joined = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), node.join(Duration::from_millis(500))).await
        });
        assert_eq!(
            joined.map(|r| r.unwrap()).ok(),
            Some(1),
            "{entry} did not lead to the bootstrap peer"
        );
    }

    // A name the server does not know leads nowhere: the node stays unjoined.
    let lost = peer(
        vec![format!("/dnsaddr/nobody.parsec.test/p2p/{id}").parse().unwrap()],
        Some(dns.address),
        runtime.handle(),
    );
    let joined = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(3), lost.join(Duration::from_millis(500))).await
    });
    assert!(joined.is_err(), "joined through a name that does not resolve");
    runtime.shutdown_timeout(Duration::from_secs(1));
}
