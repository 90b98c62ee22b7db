//! `parsec testnet`: the main job on real peers (rounds, fleets, profiles, interruption, the
//! bootstrap-load sweep) and what it refuses before it starts.

use super::*;

#[test]
fn testnet_runs_rounds_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("testnet.sqlite");
    let report = dir.path().join("report");
    let output = common::testnet_command(3, "tcp", &format!("sqlite://{}", database.display()))
        .args(["--seed", "7", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let line = |op: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(op))
            .unwrap_or_else(|| panic!("{stdout}"))
            .to_owned()
    };
    let provide: Vec<String> = line("provide").split_whitespace().map(str::to_owned).collect();
    let retrieval: Vec<String> = line("retrieval").split_whitespace().map(str::to_owned).collect();
    assert_eq!(provide[1], "3", "{stdout}");
    assert_eq!(retrieval[1], "6", "{stdout}");
    assert_eq!(retrieval[2], "100.0%", "{stdout}");
    assert!(stdout.contains("peak RSS"), "{stdout}");

    // The embedded store holds the run as parsec's tables would, and the summary says where.
    assert!(
        stdout.contains(&format!("stored in sqlite://{}", database.display())),
        "{stdout}"
    );
    assert!(stdout.contains("sqlite3 "), "{stdout}");
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.provides, 3);
    assert_eq!(stored.retrievals, 6);
    assert_eq!(stored.schedulers, 1);
    assert_eq!(stored.nodes, 3);
    assert_eq!(stored.nodes_with_heartbeat, 3, "servers heartbeat once ready");
    assert_eq!(stored.nodes_offline, 3, "servers are marked offline at the end");
    assert_eq!(stored.rounds, 3, "each round has its own round id");

    // --report DIR leaves the run's report, read back from the store, in every format.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let attempts = |operation: &str| -> u64 {
        json["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == operation)
            .unwrap()["by_region"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["attempts"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((attempts("provide"), attempts("retrieval")), (3, 6), "{json}");
    for file in [
        "report.html",
        "report.md",
        "report.csv",
        "charts/cdf-retrieval.svg",
    ] {
        assert!(report.join(file).exists(), "{file}: {stdout}");
    }
    assert!(
        stdout.contains(&format!("report: {}", report.join("report.html").display())),
        "{stdout}"
    );
}

/// `parsec testnet --fleets`: real peers of every strategy side by side, each server's rows
/// stored under its own fleet, every fleet providing and retrieving what the others provide.
#[test]
fn testnet_fleets_of_every_strategy_store_their_rows_under_their_own_names() {
    let (stdout, per_fleet, misses) = run_fleets(&[
        "testnet",
        "--peers",
        "40",
        "--servers",
        "2",
        "--rounds",
        "8",
        "--transport",
        "memory",
        "--fleets",
        "default,classic,optprov,fullrt",
    ]);
    assert!(
        stdout.contains("8 servers (default, classic, optprov, fullrt)"),
        "{stdout}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.fleet.as_str()).collect::<Vec<_>>(),
        ["classic", "default", "fullrt", "optprov"]
    );
    // 8 rounds, the provider rotating over the 8 servers: each provides once and the seven
    // others, of every fleet, find its record. A `default` store counts once the peer read the
    // record and closed the stream (our kad patch), but that peer's swarm files it a moment
    // later, so on a loaded machine a retrieval can reach it first (method.md); such a miss is
    // allowed right after a `default` provide only, and is counted against the retriever's fleet.
    assert!(
        misses
            .iter()
            .all(|m| m.provider_fleet == "default" && m.error == "not found"),
        "misses after a provide that waits for the peers: {misses:?}"
    );
    for fleet in &per_fleet {
        let missed = misses.iter().filter(|m| m.fleet == fleet.fleet).count() as i64;
        assert_eq!(
            (fleet.nodes, fleet.provides, fleet.retrievals + missed),
            (2, 2, 14),
            "{per_fleet:?} {misses:?}"
        );
    }
}

/// The configuration of every production deployment, as the issue that found local-store
/// "retrievals" ran it: server-mode servers only, a WAN delay and a settle time, so every
/// retriever holds the record itself before it looks. No retrieval may end sooner than a round
/// trip (0.1 s), in any fleet.
#[test]
fn server_mode_retrievers_that_hold_the_record_still_look_it_up_in_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("server-mode.sqlite");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--peers",
            "0",
            "--servers",
            "2",
            "--server-mode",
            "--latency",
            "100ms",
        ])
        .args(["--settle", "1s", "--rounds", "4", "--transport", "memory"])
        .args([
            "--fleets",
            "default,classic,optprov,fullrt",
            "--no-progress",
            "--database-url",
        ])
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let found = stored_retrievals(&database, "fleet", true);
    for fleet in ["default", "classic", "optprov", "fullrt"] {
        assert!(
            found.iter().any(|(f, _)| f == fleet),
            "{fleet} found nothing:\n{stdout}"
        );
    }
    let too_fast: Vec<&(String, f64)> = found.iter().filter(|(_, duration)| *duration < 0.1).collect();
    assert!(
        too_fast.is_empty(),
        "retrievals faster than a round trip: {too_fast:?}\n{stdout}"
    );
}

#[test]
fn testnet_rejects_a_run_that_cannot_measure_or_cannot_fit_before_it_starts() {
    assert_refused(
        &["testnet", "--no-progress"],
        &[
            (vec!["--servers", "1"], "--servers must be at least 2"),
            (vec!["--rounds", "0"], "--rounds must be at least 1"),
            (
                vec!["--fleets", "optprov,optprov"],
                "each fleet must have its own name",
            ),
            (
                vec!["--fleets", "optprov,nope"],
                "expected default, classic, optprov or fullrt",
            ),
            (vec!["--peers", "0"], "Add --server-mode"),
            (vec!["--peers", "100000000"], "Lower --peers"),
            // Fits in memory (8.7 GiB), not in the open-files limit (about a million).
            (
                vec!["--peers", "1000", "--transport", "tcp", "--start", "bootstrap"],
                "open files",
            ),
        ],
    );
}

/// `--profile` on the testnet: servers registered in the profile's first regions, the region
/// table printed, every retrieval at least its server's shortest round trip in the profile, and
/// `--latency` refused beside it.
#[test]
fn testnet_under_a_profile_places_servers_in_regions_and_pays_their_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("profile.sqlite");
    let output = Command::new(PARSEC)
        .args(["testnet", "--peers", "30", "--servers", "2", "--rounds", "2"])
        .args([
            "--transport",
            "memory",
            "--profile",
            "ipfs-2025",
            "--seed",
            "3",
            "--no-progress",
        ])
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(stdout.contains("ipfs-2025 profile"), "{stdout}");
    let region_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("eu ") || l.starts_with("na-east "))
        .collect();
    assert_eq!(region_rows.len(), 2, "{stdout}");

    let rows = stored_retrievals(&database, "region", true);
    assert_eq!(rows.len(), 2, "both rounds' retrievals found the record");
    let profile = parsec::sim::Profile::Ipfs2025.latency().regions();
    for (region, duration) in &rows {
        let index = profile
            .index_of(region)
            .unwrap_or_else(|| panic!("region {region:?}"));
        let shortest_ms = profile.rtt_ms[index].iter().copied().fold(f64::MAX, f64::min);
        assert!(
            *duration >= shortest_ms / 1000.0,
            "a retrieval from {region} took {duration} s, under its shortest round trip ({shortest_ms} ms)"
        );
    }

    assert_refused(
        &["testnet", "--no-progress", "--profile", "ipfs-2025"],
        &[(vec!["--latency", "100ms"], "cannot be used with")],
    );
}

#[test]
fn an_interrupted_testnet_stores_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("interrupted.sqlite");
    let child = common::testnet_command(100_000, "memory", &format!("sqlite://{}", database.display()))
        .args(["--latency", "20ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once a round is stored, however long the set-up took.
    let a_round_stored = || database.exists() && common::sqlite_counts(&database).provides >= 1;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(120), a_round_stored),
        "no round was stored"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let rounds: i64 = stdout
        .split(" rounds run")
        .next()
        .and_then(|head| head.rsplit(", ").next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no round count in {stdout}"));
    assert!(rounds > 0 && rounds < 100_000, "{stdout}");
    let stored = common::sqlite_counts(&database);
    assert_eq!(stored.provides, rounds, "every finished round is stored");
    assert_eq!(stored.retrievals, 2 * rounds);
    assert_eq!(stored.nodes_offline, 3);
}

/// The bootstrap-load experiment: a star swept over two sizes; at each the hub carries every
/// other peer's connection, and the comparison lands in a table, a CSV and a chart.
#[test]
fn a_star_sweep_compares_the_bootstrap_peer_with_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let output = Command::new(PARSEC)
        .args([
            "testnet",
            "--topology",
            "star",
            "--sweep",
            "20,40",
            "--servers",
            "2",
            "--rounds",
            "2",
        ])
        .args(["--transport", "memory", "--no-progress", "--database-url"])
        .arg(format!("sqlite://{}", dir.path().join("star.sqlite").display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    assert!(stdout.contains("=== sweep 2/2: 40 peers ==="), "{stdout}");
    let mut csv = ::csv::Reader::from_path(report.join("bootstrap-load.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    for peers in ["20", "40"] {
        let connections = rows
            .iter()
            .find(|r| &r[0] == peers && &r[1] == "connections")
            .unwrap_or_else(|| panic!("no connections row for {peers}: {rows:?}"));
        let hub: f64 = connections[2].parse().unwrap();
        let median: f64 = connections[3].parse().unwrap();
        // Every other background peer and both servers dialled the hub.
        let spokes = peers.parse::<f64>().unwrap() - 1.0 + 2.0;
        assert!(
            hub >= spokes && hub > median,
            "{peers} peers: hub {hub}, others' median {median}"
        );
        assert!(report.join(format!("peers-{peers}/report.html")).exists());
    }
    let svg = std::fs::read_to_string(report.join("bootstrap-load.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    assert!(stdout.contains("bootstrap load (star start"), "{stdout}");
}

/// Reprovide rounds on real peers: the table's rows, each sampled CID found by another peer and
/// held by its true closest peers, and the sweep's lookups a fraction of classic's one per CID;
/// a quarter of the peers replaced between two rounds, the second round placing every record at
/// the new closest peers again; every round stored, the sweep's walks with every CID once.
#[test]
fn a_reprovide_testnet_compares_one_provide_per_cid_with_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("reprovide.sqlite");
    let output = Command::new(PARSEC)
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .args([
            "testnet",
            "--protocol",
            "reprovide",
            "--peers",
            "40",
            "--transport",
            "memory",
        ])
        .args([
            "--reprovide-keys",
            "100",
            "--reprovide-sample",
            "20",
            "--reprovide-rounds",
            "2",
            "--reprovide-churn",
            "0.25",
            "--seed",
            "3",
            "--no-progress",
        ])
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let (classic, sweep) = (table_row(&stdout, "classic", 13), table_row(&stdout, "sweep", 13));
    for fields in [&classic, &sweep] {
        assert_eq!(fields[0], "100", "{stdout}");
        assert_eq!(&fields[11..], ["100.0%", "100.0%"], "found and placed: {stdout}");
    }
    let lookups = |fields: &[String]| fields[4].parse::<u64>().unwrap();
    assert_eq!(lookups(&classic), 100, "{stdout}");
    assert!(lookups(&sweep) * 5 <= 100, "{stdout}");
    assert!(stdout.contains("measured side by side in this run"), "{stdout}");
    assert!(stdout.contains("tables reprovide_rounds_ecs"), "{stdout}");
    assert!(
        stdout.contains("churn: 10 of 40 peers left, 10 joined"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("after churn, before round 2").count(),
        2,
        "{stdout}"
    );
    // The second round of each strategy: every sampled CID found, and the records back at the
    // closest peers of the network as churn left it (a classic lookup through tables that still
    // list departed peers may miss a new closest peer now and then: at least 95 %).
    let second = |strategy: &str| {
        stdout
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>())
            .filter(|fields| fields.len() == 13 && fields[1] == strategy)
            .nth(1)
            .unwrap_or_else(|| panic!("no second {strategy} round: {stdout}"))
            .iter()
            .map(|f| (*f).to_owned())
            .collect::<Vec<_>>()
    };
    let percent = |text: &str| text.trim_end_matches(['%', ',']).parse::<f64>().unwrap();
    for strategy in ["classic", "sweep"] {
        let after = second(strategy);
        let before = stdout
            .lines()
            .find(|line| line.contains(&format!("{strategy} after churn")))
            .and_then(|line| line.rsplit("placed ").next())
            .map(percent)
            .unwrap_or_else(|| panic!("no {strategy} line after churn: {stdout}"));
        assert_eq!(after[11], "100.0%", "found: {stdout}");
        let placed = percent(&after[12]);
        assert!(
            placed >= 95.0 && placed > before,
            "{strategy}: placed {before}% → {placed}%: {stdout}"
        );
    }

    let stored = crate::stored_reprovide_rounds(&database);
    assert_eq!(stored.len(), 4, "{stored:?}");
    // Two providing nodes, two rounds (the strategies side by side in each), fleets named once.
    assert_eq!(
        crate::stored_reprovide_identities(&database),
        (2, 2, r#"["classic","sweep"]"#.to_owned())
    );
    let (classic_row, sweep_row) = (&stored[0], &stored[2]);
    assert_eq!(
        (classic_row.strategy.as_str(), classic_row.lookups),
        ("classic", 100)
    );
    // A classic round's walks are its provides: no region rows.
    assert_eq!((classic_row.regions, classic_row.found), (0, 20), "{stored:?}");
    assert_eq!(sweep_row.lookups, lookups(&sweep) as i64, "{stored:?}");
    // Every CID sent in exactly one walk.
    assert!(
        sweep_row.regions >= 1 && sweep_row.region_cids == 100,
        "{stored:?}"
    );
}

#[test]
fn a_reprovide_testnet_refuses_what_it_cannot_measure() {
    assert_refused(
        &["testnet", "--protocol", "reprovide", "--no-progress"],
        &[
            (vec!["--peers", "10"], "fewer than k = 20"),
            (
                vec!["--reprovide-strategies", "fast"],
                "expected classic or sweep",
            ),
            (vec!["--reprovide-keys", "0"], "at least 1"),
            (
                vec!["--messages", "5"],
                "--messages only apply to --protocol gossipsub",
            ),
        ],
    );
    assert_refused(
        &["testnet", "--no-progress"],
        &[(
            vec!["--reprovide-keys", "5"],
            "--reprovide-keys only apply to --protocol reprovide",
        )],
    );
}
