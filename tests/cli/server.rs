//! `parsec server`, `health` and `networks`: server processes that form a DHT, refuse what they
//! cannot serve, and do not look alive when they reached nobody.

use super::*;

/// `parsec --version` names the commit it was built from (the checkout's, here) and when.
#[test]
fn the_version_names_its_commit_and_build_time() {
    let output = Command::new(PARSEC).arg("--version").output().unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let head = String::from_utf8(head.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!(
            "parsec {} (commit {}, built ",
            env!("CARGO_PKG_VERSION"),
            head.trim()
        )),
        "{stdout}"
    );
    // The build time as `built` writes it (RFC 2822, UTC).
    assert!(stdout.trim_end().ends_with("+0000)"), "{stdout}");
}

#[test]
fn health_fails_when_nothing_listens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(PARSEC)
        .args(["health", &format!("127.0.0.1:{port}"), "--timeout", "1s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not ready"));
}

#[test]
fn two_server_processes_form_a_dht_and_serve_each_other() {
    // Both servers register in one embedded database, as a fleet shares one Postgres.
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("servers.sqlite");
    let url = format!("sqlite://{}", database.display());
    let [first, second] = common::two_servers(&url);
    assert!(
        first.tcp_multiaddr.contains("/p2p/12D3KooW"),
        "{}",
        first.tcp_multiaddr
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    ServerProcess::wait_until_ready(&[&first, &second], deadline);
    // Each heartbeats once its readiness poll (every 100 ms here) has seen it ready.
    while common::sqlite_counts(&database).nodes_with_heartbeat < 2 {
        assert!(Instant::now() < deadline, "ready servers never heartbeated");
        std::thread::sleep(Duration::from_millis(50));
    }

    let (provided, retrieved) = actix::System::new().block_on(async {
        let client = awc::Client::builder().timeout(Duration::from_secs(60)).finish();
        let provided: Value = client
            .post(format!("{}/provide", first.http))
            .send_json(&json!({"Content": "aGVsbG8gcGFyc2Vj"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cid = provided["CID"].as_str().unwrap().to_owned();
        let retrieved: Value = client
            .post(format!("{}/retrieve/{cid}", second.http))
            .send_json(&json!({}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (provided, retrieved)
    });
    assert_eq!(provided["Measurements"][0]["Error"], "", "{provided}");
    assert_eq!(retrieved["CID"], provided["CID"]);
    assert_eq!(retrieved["Measurements"][0]["Error"], "", "{retrieved}");

    assert!(second.terminate().success());
    assert!(first.terminate().success());
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.nodes, 2);
    assert_eq!(stored.nodes_offline, 2, "SIGTERM marks a server offline");
}

/// The isolated server: its only bootstrap peer refuses connections (the entry ends in a comma,
/// as a hand-edited env var does). It must not look alive: no readiness, no heartbeat, and a
/// provide through it is an error that says the record reached nobody.
#[test]
fn a_server_whose_bootstrap_peer_is_unreachable_is_not_ready_and_does_not_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("isolated.sqlite");
    let url = format!("sqlite://{}", database.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody =
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5,");
    let server = ServerProcess::start(&[
        "--database-url",
        &url,
        "--heartbeat-interval",
        "100ms",
        "--bootstrap",
        &nobody,
        "--connections",
        "cold",
    ]);
    // Three seconds of join attempts (with backoff) and readiness polls every 100 ms.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        assert!(!server.health(), "ready without a single peer");
        std::thread::sleep(Duration::from_millis(250));
    }
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.nodes, 1, "registered");
    assert_eq!(stored.nodes_with_heartbeat, 0, "an isolated server heartbeated");

    let (status, provided) = actix::System::new().block_on(async {
        let mut response = awc::Client::default()
            .post(format!("{}/provide", server.http))
            .send_json(&json!({"Content": "aGVsbG8gcGFyc2Vj"}))
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    });
    assert_eq!(status, 200, "{provided}");
    assert_eq!(provided["Measurements"][0]["Error"], "reached no peer");
    assert_eq!(provided["Connections"], "cold", "the flag reaches the report");
    assert_eq!(provided["RecordPeers"], 0);
    assert_eq!(provided["RoutingTableSize"], 0);
}

#[test]
fn provide_accepts_only_json() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("json.sqlite").display());
    let server = ServerProcess::start(&["--database-url", &url]);
    let statuses = actix::System::new().block_on(async {
        let client = awc::Client::default();
        let mut statuses = Vec::new();
        for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
            let mut response = client
                .post(format!("{}/provide", server.http))
                .insert_header(("content-type", content_type))
                .send_body(r#"{"Content":"aGVsbG8="}"#)
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("application/json"),
                "{body}"
            );
            statuses.push(response.status().as_u16());
        }
        statuses
    });
    assert_eq!(statuses, [415, 415]);
}

#[test]
fn networks_lists_the_presets_with_their_protocols() {
    let output = Command::new(PARSEC)
        .args(["networks", "--bootstrap"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "ipfs       amino       /ipfs/kad/1.0.0",
        "filecoin   calibnet    /fil/kad/calibrationnet/kad/1.0.0",
        "celestia   mocha       /celestia/mocha-4/kad/1.0.0",
        "polkadot   kusama      /ksmcc3/kad",
        "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    ] {
        assert!(
            listing.contains(expected),
            "{expected:?} missing from:\n{listing}"
        );
    }

    let unknown = Command::new(PARSEC)
        .args(["server", "dht", "--network", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("unknown network ipfs/nope") && stderr.contains("parsec networks"),
        "{stderr}"
    );

    // What would run on with nothing to run on is refused before anything starts.
    assert_refused(
        &["server", "dht", "--dry-run"],
        &[
            (vec!["--bootstrap", ",,,"], "lists no address"),
            (vec!["--http-workers", "0"], "--http-workers"),
            (vec!["--dht-threads", "0"], "--dht-threads"),
            (
                vec!["--project", "nope", "--network", "local"],
                "unknown project \"nope\"",
            ),
        ],
    );
}
