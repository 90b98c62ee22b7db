//! `parsec simulate`: rounds written to the same tables, repeatable by seed, fleets under their
//! own names, and bad parameters refused with the fix.

use super::*;

#[test]
fn simulate_writes_rounds_to_the_same_tables_and_repeats_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.sqlite");
    let (stdout, retrievals) = simulate(&first, "5");
    for expected in [
        "durations are virtual time",
        "hops p50/p90/max",
        "retrieval p50",
        "network built in",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    let stored = common::sqlite_counts(&first);
    assert_eq!(stored.provides, 5);
    assert_eq!(stored.retrievals, 15);
    assert_eq!(stored.nodes, 4);
    assert_eq!(
        stored.nodes_offline, 4,
        "simulated servers are marked offline at the end"
    );
    assert_eq!(stored.rounds, 5);
    assert_eq!(retrievals.len(), 15);
    assert!(
        retrievals.iter().all(|(fleet, d)| fleet == "sim" && *d > 0.0),
        "{retrievals:?}"
    );

    // Same seed, same virtual durations; another seed, others.
    let (_, again) = simulate(&dir.path().join("again.sqlite"), "5");
    assert_eq!(again, retrievals);
    let (_, other) = simulate(&dir.path().join("other.sqlite"), "6");
    assert_ne!(other, retrievals);
}

#[test]
fn simulate_rejects_bad_parameters_with_the_fix() {
    assert_refused(
        &["simulate", "--nodes", "100", "--no-progress"],
        &[
            (vec!["--servers", "1"], "--servers must be at least 2"),
            (vec!["--error-rate", "1.5"], "--error-rate must be within 0 and 1"),
            (vec!["--delay-range", "2s..1s"], "above the maximum"),
            (vec!["--k", "0"], "--k, --alpha and --beta must be at least 1"),
            (
                vec!["--fleets", "optprov,optprov"],
                "each fleet must have its own name",
            ),
            (vec!["--fleets", "fast"], "expected classic, optprov or fullrt"),
            (
                vec!["--reprovide", "0"],
                "--reprovide takes key counts of at least 1",
            ),
            (
                vec!["--reprovide", "10", "--reprovide-strategies", "fast"],
                "expected classic or sweep",
            ),
            (
                vec!["--fleets", "default,fullrt", "--servers", "60"],
                "cannot exceed --nodes",
            ),
        ],
    );
}

#[test]
fn simulated_fleets_store_their_rows_under_their_own_names() {
    let (stdout, per_fleet, _) = run_fleets(&[
        "simulate",
        "--nodes",
        "3000",
        "--rounds",
        "6",
        "--servers",
        "2",
        "--fleets",
        "default,optprov,fullrt",
    ]);
    assert!(
        stdout.contains("default (classic), optprov (optprov), fullrt (fullrt)"),
        "{stdout}"
    );
    // Two servers per fleet; each round one server provides and the five others, of every
    // fleet, retrieve: 6 rounds × 5 retrievals, with every fleet among the retrievers.
    assert_eq!(
        per_fleet.iter().map(|f| f.fleet.as_str()).collect::<Vec<_>>(),
        ["default", "fullrt", "optprov"]
    );
    assert!(
        per_fleet.iter().all(|f| f.nodes == 2 && f.retrievals >= 6),
        "{per_fleet:?}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.retrievals).sum::<i64>(),
        30,
        "{per_fleet:?}"
    );
    assert_eq!(
        per_fleet.iter().map(|f| f.provides).sum::<i64>(),
        6,
        "{per_fleet:?}"
    );
}

/// `--log-format json`: every log line is one JSON object with the level, the target and the
/// event's fields, the same an operator reads in text.
#[test]
fn json_logs_are_one_object_per_line_with_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let run = |format: &str| {
        let output = Command::new(PARSEC)
            .args(["--log-format", format, "--log-level", "4"])
            .args(["simulate", "--nodes", "300", "--rounds", "2", "--no-progress"])
            .arg("--database-url")
            .arg(format!(
                "sqlite://{}",
                dir.path().join(format!("{format}.sqlite")).display()
            ))
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        parsec::testing::process::expect_success(&output);
        String::from_utf8(output.stderr).unwrap()
    };
    let json = run("json");
    let events: Vec<Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    let set_up = events
        .iter()
        .find(|e| e["fields"]["message"] == "fleet set up")
        .unwrap_or_else(|| panic!("no 'fleet set up' event: {json}"));
    assert_eq!(set_up["level"], "INFO", "{set_up}");
    assert!(set_up["fields"]["setup"].is_string(), "{set_up}");
    assert!(
        set_up["target"].as_str().unwrap().starts_with("parsec"),
        "{set_up}"
    );
    // The text lines say the same events.
    let text = run("text");
    assert!(
        text.lines()
            .any(|l| l.contains("INFO") && l.contains("fleet set up") && l.contains("setup=")),
        "{text}"
    );
}

/// Ctrl-C once: the signal prints the line docs/operations.md quotes, the run ends after the
/// round in flight, and the rounds measured before are stored, the servers marked offline. (The
/// second signal is tested on a scheduler whose round hangs: tests/scheduler.rs.)
#[test]
fn an_interrupt_says_what_it_does_and_what_was_measured_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("interrupted.sqlite");
    let child = Command::new(PARSEC)
        .args([
            "simulate",
            "--nodes",
            "2000",
            "--rounds",
            "1000000",
            "--no-progress",
        ])
        .args(["--database-url", &format!("sqlite://{}", database.display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The file exists before its tables do: a count that fails is "not yet".
    let measuring = parsec::testing::process::wait_until(std::time::Duration::from_secs(60), || {
        database.exists()
            && std::panic::catch_unwind(|| common::sqlite_counts(&database).provides > 0).unwrap_or(false)
    });
    assert!(measuring, "no round was stored");
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("interrupted: stopping after the round in flight"))
        .unwrap_or_else(|| panic!("no interrupt line:\n{stderr}"));
    assert!(docs.contains(line), "printed, not documented: {line}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stored = common::sqlite_counts(&database);
    assert!(
        stored.provides > 0 && stored.nodes_offline == stored.nodes,
        "{stored:?}\n{stdout}"
    );
}

/// Reprovide rounds in the simulator: a line per strategy, every sampled key at its true closest
/// and found, the sweep's lookups a fraction of classic's one per key; both rounds stored, the
/// sweep's walks with every key once.
#[test]
fn simulate_reprovide_compares_one_provide_per_key_with_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("reprovide.sqlite");
    let output = Command::new(PARSEC)
        .arg("--database-url")
        .arg(format!("sqlite://{}", database.display()))
        .args([
            "simulate",
            "--nodes",
            "500",
            "--reprovide",
            "2000",
            "--reprovide-sample",
            "50",
        ])
        .arg("--no-progress")
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let (classic, sweep) = (table_row(&stdout, "classic", 12), table_row(&stdout, "sweep", 12));
    assert_eq!(classic[2], "2000", "one lookup per key: {stdout}");
    assert!(sweep[2].parse::<u64>().unwrap() * 10 <= 2000, "{stdout}");
    for fields in [&classic, &sweep] {
        assert_eq!(fields[10], "100.0%", "placed: {stdout}");
    }
    assert!(stdout.contains("measured side by side in this run"), "{stdout}");
    let stored = crate::stored_reprovide_rounds(&database);
    assert_eq!(stored.len(), 2, "{stored:?}");
    let (classic_row, sweep_row) = (&stored[0], &stored[1]);
    assert_eq!(
        (
            classic_row.strategy.as_str(),
            classic_row.lookups,
            classic_row.regions,
            classic_row.found
        ),
        ("classic", 2000, 0, 50)
    );
    assert_eq!(sweep_row.lookups, sweep[2].parse::<i64>().unwrap(), "{stored:?}");
    assert!(
        sweep_row.regions >= 1 && sweep_row.region_cids == 2000,
        "{stored:?}"
    );
}
