//! `parsec testnet --protocol gossipsub` and pubsub across server processes (a skewed clock).

use super::*;

/// `parsec testnet --protocol gossipsub`: the pubsub benchmark's sweep on real peers, every
/// subscribed peer receiving every message, the table per point and the seed's two charts.
#[test]
fn testnet_gossipsub_sweep_delivers_every_message_and_draws_the_charts() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("pubsub");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--protocol",
            "gossipsub",
            "--sweep-hosts",
            "6,12",
            "--messages",
            "3,6",
        ])
        .args([
            "--iterations",
            "2",
            "--topics",
            "2",
            "--transport",
            "memory",
            "--heartbeat",
            "200ms",
        ])
        .args(["--seed", "3", "--no-progress", "--report"])
        .arg(&report)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("pubsub.sqlite").display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.len() >= 11 && cells[0].parse::<usize>().is_ok())
        .collect();
    let points: Vec<(&str, &str)> = rows.iter().map(|cells| (cells[0], cells[1])).collect();
    assert_eq!(
        points,
        [("6", "3"), ("6", "6"), ("12", "3"), ("12", "6")],
        "{stdout}"
    );
    for cells in &rows {
        assert_eq!(cells[2], "2", "iterations: {stdout}");
        assert_eq!(
            cells[5], "100.00%",
            "every subscribed peer gets every message: {stdout}"
        );
    }
    let csv = std::fs::read_to_string(report.join("pubsub.csv")).unwrap();
    // 12 hosts, 6 messages, 2 iterations: 11 receivers × 6 × 2 deliveries expected, all made.
    assert!(
        csv.lines()
            .any(|l| l.starts_with("12,6,2,") && l.contains(",132,132,")),
        "{csv}"
    );
    for chart in ["pubsub-duration.svg", "pubsub-memory.svg"] {
        let svg = std::fs::read_to_string(report.join(chart)).unwrap();
        let document = roxmltree::Document::parse(&svg).unwrap();
        let texts: Vec<&str> = document
            .descendants()
            .filter_map(|n| n.text())
            .map(str::trim)
            .collect();
        assert!(
            texts.contains(&"hosts") && texts.contains(&"6 messages"),
            "{chart}: {texts:?}"
        );
    }
    // Beside them, each size's stored rows' report (each size a run of its own): every delivery
    // (12 hosts: 11×6×2 + 11×3×2 = 198; 6 hosts: 5×6×2 + 5×3×2 = 90) and every publish (6×2 + 3×2
    // = 18 per size), all made.
    let attempts = |hosts: usize, operation: &str| -> (u64, u64) {
        let path = report.join(format!("hosts-{hosts}/report.json"));
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let groups = json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap_or_else(|| panic!("no {operation} in {json}"))["by_region"]
            .as_array()
            .unwrap()
            .clone();
        groups.iter().fold((0, 0), |(a, s), g| {
            (
                a + g["attempts"].as_u64().unwrap(),
                s + g["successes"].as_u64().unwrap(),
            )
        })
    };
    assert_eq!(attempts(12, "delivery"), (198, 198));
    assert_eq!(attempts(6, "delivery"), (90, 90));
    for hosts in [6, 12] {
        assert_eq!(attempts(hosts, "publish"), (18, 18), "{hosts} hosts");
    }
    assert_eq!(
        stdout.matches("as scheduler").count(),
        2,
        "a scheduler per size: {stdout}"
    );
    let html = std::fs::read_to_string(report.join("hosts-12/report.html")).unwrap();
    assert!(
        html.contains("dup/delivery") && html.contains("rust-libp2p"),
        "{html}"
    );
}

#[test]
fn testnet_gossipsub_rejects_what_cannot_measure_with_the_fix() {
    assert_refused(
        &["testnet", "--protocol", "gossipsub", "--no-progress"],
        &[
            (vec!["--sweep-hosts", "1,10"], "at least 2 hosts"),
            (
                vec!["--messages", "0"],
                "--messages: every count must be at least 1",
            ),
            (vec!["--mesh-n-low", "7"], "--mesh-n-low"),
            (vec!["--validation", "lax"], "expected strict"),
            (vec!["--message-bytes", "100000"], "must be at most 64368"),
            (vec!["--message-bytes", "65536"], "65680-byte gossipsub frame"),
            (vec!["--message-bytes", "10"], "at least 16"),
            (vec!["--churn-topics", "0.6", "--churn-network", "0.5"], "below 1"),
        ],
    );
    // A DHT testnet (the default protocol) would run on without the gossipsub-only flags.
    assert_refused(
        &["testnet", "--no-progress"],
        &[
            (
                vec!["--message-bytes", "2048"],
                "--message-bytes only apply to --protocol gossipsub",
            ),
            (
                vec!["--protocol", "dht", "--sweep-hosts", "5", "--mesh-n", "3"],
                "--sweep-hosts, --mesh-n only apply",
            ),
        ],
    );
}

/// Under churn (hosts leaving their topics and the network between iterations, and coming
/// back), the hosts that were away receive nothing and those present receive ≥ 99 %.
#[test]
fn testnet_gossipsub_under_churn_delivers_to_those_present_and_none_to_those_away() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("churn");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--protocol",
            "gossipsub",
            "--sweep-hosts",
            "30",
            "--messages",
            "8",
        ])
        .args([
            "--iterations",
            "6",
            "--topics",
            "2",
            "--transport",
            "memory",
            "--heartbeat",
            "200ms",
        ])
        .args([
            "--churn-topics",
            "0.2",
            "--churn-network",
            "0.1",
            "--seed",
            "5",
            "--no-progress",
            "--report",
        ])
        .arg(&report)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.path().join("churn.sqlite").display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let csv = std::fs::read_to_string(report.join("pubsub.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let values: Vec<&str> = lines.next().unwrap().split(',').collect();
    let field = |name: &str| -> f64 {
        let index = header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("{name}: {csv}"));
        values[index].parse().unwrap()
    };
    // Five iterations after the first have churn: 6 hosts leave their topics and 3 the network
    // before each.
    assert_eq!(
        (field("left_topics"), field("left_network")),
        (30.0, 15.0),
        "{csv}"
    );
    assert_eq!(field("received_while_away"), 0.0, "{stdout}");
    let ratio = field("delivered") / field("expected");
    assert!(
        ratio >= 0.99,
        "delivery ratio among the hosts present {ratio}: {stdout}"
    );
    // The present hosts of the first iteration: all but the publisher.
    assert!(
        field("expected") < (6 * 8 * 29) as f64,
        "away hosts are not expected: {csv}"
    );
}

/// The clock of a server process as the scheduler estimates it: `ProbeClock` on the
/// `RemoteNode` its pubsub rounds send, 8 round trips to `/pubsub/clock`.
async fn clock_offset(server: &ServerProcess) -> parsec_actors::pubsub::clock::ClockOffset {
    use actix::Actor as _;
    let remote = parsec::api::client::RemoteNode::new(server.http.clone(), Default::default()).start();
    remote
        .send(parsec_actors::node::pubsub::ProbeClock { samples: 8 })
        .await
        .unwrap()
        .unwrap()
}

/// What `server` answers about message `id`, waiting up to 5 s for it.
async fn delivery_within_5_s(client: &awc::Client, server: &ServerProcess, id: &str) -> Value {
    client
        .get(format!("{}/pubsub/messages/{id}?wait_ms=5000", server.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Two server processes speaking gossipsub, the publisher's clock skewed 7 s ahead (libfaketime):
/// the offsets estimated from HTTP round trips are right within their stated uncertainty, and the
/// latency corrected by them is a latency, where the raw difference of the two clocks is not.
#[test]
fn pubsub_across_server_processes_corrects_a_skewed_clock() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install -y faketime"
    );
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pubsub.sqlite").display());
    let gossip = ["--gossipsub", "--heartbeat", "200ms", "--database-url", &url];
    let skewed = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME", "+7s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let publisher = ServerProcess::start_with_env(&gossip, &skewed);
    let mut joining = gossip.to_vec();
    joining.extend(["--bootstrap", &publisher.tcp_multiaddr]);
    let receiver = ServerProcess::start(&joining);
    let plain = ServerProcess::start(&["--database-url", &url]);
    let deadline = Instant::now() + Duration::from_secs(30);
    ServerProcess::wait_until_ready(&[&publisher, &receiver], deadline);

    actix::System::new().block_on(async {
        let client = common::client();
        let ahead = clock_offset(&publisher).await;
        let level = clock_offset(&receiver).await;
        assert!(
            (ahead.offset - 7.0).abs() <= ahead.uncertainty + 1e-6,
            "{ahead:?}"
        );
        assert!(level.offset.abs() <= level.uncertainty + 1e-6, "{level:?}");
        assert!(
            ahead.uncertainty < 0.05 && level.uncertainty < 0.05,
            "{ahead:?} {level:?}"
        );

        for server in [&publisher, &receiver] {
            let status = client
                .post(format!("{}/pubsub/subscribe", server.http))
                .send_json(&json!({"topic": "blocks"}))
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 204);
        }
        // Until the receiver's subscription reached the publisher, gossipsub has nobody to send to.
        let (id, published) = loop {
            let id = uuid::Uuid::new_v4().to_string();
            let mut response = client
                .post(format!("{}/pubsub/publish", publisher.http))
                .send_json(&json!({"topic": "blocks", "message_id": id, "size": 512}))
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            if response.status().is_success() {
                break (id, body);
            }
            assert_eq!(response.status().as_u16(), 503, "{body}");
            assert!(
                body["error"].as_str().unwrap().contains("reached no peer"),
                "{body}"
            );
            assert!(
                Instant::now() < deadline,
                "the publisher never saw the subscription"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(published["message_id"], id.as_str());
        // The same id again can never be published: a conflict, not "try again".
        let mut again = client
            .post(format!("{}/pubsub/publish", publisher.http))
            .send_json(&json!({"topic": "blocks", "message_id": id, "size": 512}))
            .await
            .unwrap();
        let body: Value = again.json().await.unwrap();
        assert_eq!(again.status().as_u16(), 409, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("already published"),
            "{body}"
        );
        assert!(published["topic_peers"].as_u64().unwrap() >= 1, "{published}");
        let delivery = delivery_within_5_s(&client, &receiver, &id).await;
        assert_eq!(delivery["delivered"], true, "{delivery}");
        assert!(delivery["copies"].as_u64().unwrap() >= 1, "{delivery}");
        let sent = chrono::DateTime::from_timestamp_nanos(published["sent_at_ns"].as_i64().unwrap());
        let received = chrono::DateTime::from_timestamp_nanos(delivery["received_at_ns"].as_i64().unwrap());
        let raw = (received - sent).num_milliseconds();
        assert!(raw < -6_000, "the clocks are 7 s apart: {raw} ms");
        // The scheduler's own rule: a latency, not a clock error, and no more than the wait.
        let (latency, bound) = parsec_actors::pubsub::clock::delivery_latency(sent, ahead, received, level)
            .unwrap_or_else(|e| panic!("{e}: {ahead:?} {level:?}"));
        assert!(latency < Duration::from_secs(5), "{latency:?} ± {bound}");

        // What cannot be served is said, with the status that says whose fault it is.
        let status_of = |response: awc::http::StatusCode| response.as_u16();
        let too_big = client
            .post(format!("{}/pubsub/publish", publisher.http))
            .send_json(
                &json!({"topic": "blocks", "message_id": uuid::Uuid::new_v4().to_string(), "size": 100_000}),
            )
            .await
            .unwrap();
        assert_eq!(status_of(too_big.status()), 413);
        // The documented maximum payload does not fit gossipsub's 65,536-byte frame with its
        // envelope: refused, naming the largest that fits; that one is delivered, and the link
        // still carries the next message (a frame over the limit would have reset it).
        let mut over_frame = client
            .post(format!("{}/pubsub/publish", publisher.http))
            .send_json(
                &json!({"topic": "blocks", "message_id": uuid::Uuid::new_v4().to_string(), "size": 65_536}),
            )
            .await
            .unwrap();
        let body: Value = over_frame.json().await.unwrap();
        assert_eq!(status_of(over_frame.status()), 413, "{body}");
        let error = body["error"].as_str().unwrap();
        let largest: usize = error
            .rsplit("the largest message that fits is ")
            .next()
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{body}"));
        assert!((64_000..64_512).contains(&largest), "{body}");
        for size in [largest, 16] {
            let id = uuid::Uuid::new_v4().to_string();
            let mut published = client
                .post(format!("{}/pubsub/publish", publisher.http))
                .send_json(&json!({"topic": "blocks", "message_id": id, "size": size}))
                .await
                .unwrap();
            assert!(
                published.status().is_success(),
                "{size}: {:?}",
                published.body().await
            );
            let delivery = delivery_within_5_s(&client, &receiver, &id).await;
            assert_eq!(delivery["delivered"], true, "{size} bytes: {delivery}");
        }
        let bad_id = client
            .get(format!("{}/pubsub/messages/not-a-uuid", receiver.http))
            .send()
            .await
            .unwrap();
        assert_eq!(status_of(bad_id.status()), 400);
        // A query string that does not parse is a JSON 400 as well.
        for query in [
            "wait_ms=-1",
            "wait_ms=1&wait_ms=2",
            "wait_ms=18446744073709551616",
        ] {
            let mut bad_query = client
                .get(format!("{}/pubsub/messages/{id}?{query}", receiver.http))
                .send()
                .await
                .unwrap();
            assert_eq!(status_of(bad_query.status()), 400, "{query}");
            let body: Value = bad_query.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().contains("invalid query string"),
                "{query}: {body}"
            );
        }
        let mut without = client
            .post(format!("{}/pubsub/subscribe", plain.http))
            .send_json(&json!({"topic": "blocks"}))
            .await
            .unwrap();
        assert_eq!(status_of(without.status()), 501);
        let body: Value = without.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("--gossipsub"), "{body}");
    });
    for server in [plain, receiver, publisher] {
        assert!(server.terminate().success());
    }
}

/// The server-side sockets of connections between `server_port` and `client_port`, from the
/// kernel's table (`/proc/net/tcp`): their states, as hex codes (01 established, 08 close-wait).
fn server_sockets(server_port: u16, client_port: u16) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of = |address: &str| u16::from_str_radix(address.rsplit(':').next().unwrap_or(""), 16).ok();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (fields.get(1)?, fields.get(2)?, fields.get(3)?);
            (port_of(local) == Some(server_port) && port_of(remote) == Some(client_port))
                .then(|| state.to_string())
        })
        .collect()
}

/// A client that hangs up while its `GET /pubsub/messages/…?wait_ms=30000` waits frees its
/// connection within a second, not at the end of the wait: the server's socket leaves the
/// kernel's table (it would sit in close-wait for 30 s otherwise).
#[test]
fn a_waiter_whose_client_hung_up_is_ended() {
    use std::io::Write as _;

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("waiter.sqlite").display());
    // Alone, never ready: a wait needs no peer.
    let server = ServerProcess::start(&["--gossipsub", "--database-url", &url]);
    let address = server.http.trim_start_matches("http://").to_owned();
    let server_port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let mut client = std::net::TcpStream::connect(&address).unwrap();
    let client_port = client.local_addr().unwrap().port();
    let id = uuid::Uuid::new_v4();
    write!(
        client,
        "GET /pubsub/messages/{id}?wait_ms=30000 HTTP/1.1\r\nHost: {address}\r\n\r\n"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server_sockets(server_port, client_port),
        ["01"],
        "the request is not waiting"
    );

    drop(client);
    let hung_up = Instant::now();
    while !server_sockets(server_port, client_port).is_empty() {
        assert!(
            hung_up.elapsed() < Duration::from_secs(3),
            "the server still holds the connection: {:?}",
            server_sockets(server_port, client_port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "connection freed {:?} after the client hung up",
        hung_up.elapsed()
    );
    assert!(server.terminate().success());
}

/// `--max-peer-topics` caps the topics a remote peer may be subscribed to with a server: past it
/// the peer's subscriptions are ignored, and gossipsub's ERROR line for each ignored RPC is
/// written once (the log's rate limit), not once per RPC.
#[test]
fn a_peer_past_the_topic_cap_is_ignored_and_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cap.sqlite").display());
    let capped = ServerProcess::start(&["--gossipsub", "--max-peer-topics", "2", "--database-url", &url]);
    let subscriber = ServerProcess::start(&[
        "--gossipsub",
        "--bootstrap",
        &capped.tcp_multiaddr,
        "--database-url",
        &url,
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    ServerProcess::wait_until_ready(&[&capped, &subscriber], deadline);
    actix::System::new().block_on(async {
        let client = common::client();
        let topics = ["t1", "t2", "t3", "t4", "t5"];
        for topic in topics {
            let status = client
                .post(format!("{}/pubsub/subscribe", subscriber.http))
                .send_json(&json!({ "topic": topic }))
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 204);
        }
        let seen = |topic: &'static str| {
            let client = client.clone();
            let url = format!("{}/pubsub/topics/{topic}", capped.http);
            async move {
                let view: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                view["subscribed"].as_u64().unwrap()
            }
        };
        while seen("t2").await < 1 {
            assert!(
                Instant::now() < deadline,
                "the capped server never saw the first topics"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The later subscriptions have had the same time to arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(seen("t1").await, 1);
        for topic in ["t3", "t4", "t5"] {
            assert_eq!(seen(topic).await, 0, "{topic} past the cap was accepted");
        }
    });
    let log = capped.log();
    assert_eq!(log.matches("Subscription filter error").count(), 1, "{log}");
    for server in [subscriber, capped] {
        assert!(server.terminate().success());
    }
}
