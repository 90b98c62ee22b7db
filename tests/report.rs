//! `parsec report` on both stores filled with known rows: its percentiles against the same SQL
//! computed independently by Postgres, its filters, its charts (SVG parsed as XML, PNG decoded)
//! and its HTML page as headless Chromium renders it.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use chrono::{DateTime, Utc};
use diesel::{
    sql_types::{BigInt, Double, Nullable, Text},
    QueryableByName,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use indicatif::ProgressBar;
use parsec::{
    db::{
        aggregates::{GroupStats, ReportFilter},
        DatabaseTarget, Store,
    },
    report::{
        data::{build, Report, ReportRequest},
        render::{write, Format},
    },
    testing::TempPostgres,
};
use parsec_actors::{
    testing::{sample_measurement, sample_registration},
    Measurement, MeasurementSink, NodeRegistration, Operation, PubsubDetails, Registry, SchedulerId,
    SchedulerRegistration,
};

const FLEETS: [&str; 2] = ["default", "optprov"];
const REGIONS: [&str; 2] = ["eu-central-1", "us-east-1"];
/// Rows per operation.
const ROWS: u64 = 1_200;

fn day0() -> DateTime<Utc> {
    "2026-11-20T00:00:00Z".parse().unwrap()
}

/// Four servers (2 fleets × 2 regions, peer ids marked `tag`) and a scheduler of both fleets.
async fn register_servers(store: &Store, tag: &str) -> (Vec<parsec_actors::NodeId>, SchedulerId) {
    let mut nodes = Vec::new();
    for fleet in FLEETS {
        for region in REGIONS {
            let registration = NodeRegistration {
                fleet: fleet.into(),
                region: region.into(),
                peer_id: format!("12D3KooW{tag}{fleet}{region}"),
                ..sample_registration()
            };
            nodes.push(store.register_node(registration).await.unwrap());
        }
    }
    let scheduler = store
        .register_scheduler(SchedulerRegistration {
            fleets: FLEETS.map(String::from).to_vec(),
            dependencies: Default::default(),
        })
        .await
        .unwrap();
    (nodes, scheduler)
}

/// Four servers (2 fleets × 2 regions) and 2 × [`ROWS`] measurements over four days: durations
/// of a fixed, uneven spread, every 13th an error, every 5th from a routing table of 3 peers.
async fn fill(store: &Store) -> SchedulerId {
    let (nodes, scheduler) = register_servers(store, "dht").await;
    let mut batch = Vec::new();
    for operation in [Operation::Provide, Operation::Retrieval] {
        for i in 0..ROWS {
            let millis = (i * 7919) % 997 + 1 + if i % 17 == 0 { 20_000 } else { 0 };
            batch.push(Measurement {
                node: nodes[(i % 4) as usize],
                started_at: day0() + chrono::Duration::hours((i / 4 % 4 * 24 + i % 23) as i64),
                error: (i % 13 == 0).then(|| "no provider found".to_owned()),
                routing_table_size: if i % 5 == 0 { 3 } else { 40 },
                ..sample_measurement(operation, Duration::from_millis(millis))
            });
        }
    }
    store.measurement_sink(scheduler).write(batch).await.unwrap();
    scheduler
}

#[derive(QueryableByName, Debug)]
struct Independent {
    #[diesel(sql_type = Text)]
    fleet: String,
    #[diesel(sql_type = Text)]
    region: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = BigInt)]
    successes: i64,
    #[diesel(sql_type = Nullable<Double>)]
    p50: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p90: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    p99: Option<f64>,
}

/// Per fleet and region, what Postgres computes for `table` under `condition`.
async fn independent(url: &str, table: &str, condition: &str) -> BTreeMap<(String, String), Independent> {
    independent_by(url, table, "n.region", condition).await
}

/// Per fleet and `key` (an SQL expression), what Postgres computes for `table` under `condition`.
async fn independent_by(
    url: &str,
    table: &str,
    key: &str,
    condition: &str,
) -> BTreeMap<(String, String), Independent> {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let rows: Vec<Independent> = diesel::sql_query(format!(
        "SELECT n.fleet, {key} AS region, count(*) AS attempts, count(*) FILTER (WHERE m.error IS NULL) AS successes, \
         percentile_cont(0.5) WITHIN GROUP (ORDER BY m.duration) FILTER (WHERE m.error IS NULL) AS p50, \
         percentile_cont(0.9) WITHIN GROUP (ORDER BY m.duration) FILTER (WHERE m.error IS NULL) AS p90, \
         percentile_cont(0.99) WITHIN GROUP (ORDER BY m.duration) FILTER (WHERE m.error IS NULL) AS p99 \
         FROM {table} m JOIN nodes_ecs n ON n.id = m.node_id WHERE {condition} GROUP BY 1, 2"
    ))
    .load(&mut conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|row| ((row.fleet.clone(), row.region.clone()), row))
        .collect()
}

fn assert_matches(groups: &[GroupStats], expected: &BTreeMap<(String, String), Independent>, what: &str) {
    assert_eq!(groups.len(), expected.len(), "{what}: groups");
    for group in groups {
        let sql = &expected[&(group.fleet.clone(), group.key.clone())];
        let label = format!("{what} {}/{}", group.fleet, group.key);
        assert_eq!(group.attempts as i64, sql.attempts, "{label}: attempts");
        assert_eq!(group.successes as i64, sql.successes, "{label}: successes");
        for (percent, value) in [(50, sql.p50), (90, sql.p90), (99, sql.p99)] {
            let ours = group.percentile(percent).unwrap();
            let theirs = value.unwrap();
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{label}: p{percent} {ours} != {theirs}"
            );
        }
    }
}

async fn report(store: &Store, request: &ReportRequest) -> Report {
    build(store, "test".into(), request, &ProgressBar::hidden())
        .await
        .unwrap()
}

fn operation<'a>(report: &'a Report, step: &str) -> &'a parsec::report::data::OperationReport {
    report.operations.iter().find(|o| o.operation == step).unwrap()
}

/// A throwaway Postgres and an SQLite file in a temporary folder, both opened as stores.
async fn both_stores() -> (TempPostgres, tempfile::TempDir, Store, Store) {
    let pg = TempPostgres::start().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let postgres = Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    let sqlite = Store::open(&DatabaseTarget::Sqlite {
        path: dir.path().join("parsec.db"),
    })
    .await
    .unwrap();
    (pg, dir, postgres, sqlite)
}

#[tokio::test(flavor = "multi_thread")]
async fn percentiles_equal_postgres_percentile_cont_on_both_stores() {
    let (pg, _dir, postgres, sqlite) = both_stores().await;
    fill(&postgres).await;
    fill(&sqlite).await;

    let everything = ReportRequest::default();
    let populated = ReportRequest {
        filter: ReportFilter {
            min_rt_size: Some(10),
            fleets: vec!["optprov".into()],
            ..Default::default()
        },
        ..Default::default()
    };
    let window = ReportRequest {
        filter: ReportFilter {
            since: Some(day0() + chrono::Duration::days(2)),
            until: Some(day0() + chrono::Duration::days(4)),
            ..Default::default()
        },
        compare_previous: true,
        ..Default::default()
    };
    let (since, until, previous) = (
        "'2026-11-22T00:00:00Z'",
        "'2026-11-24T00:00:00Z'",
        "'2026-11-20T00:00:00Z'",
    );
    for (store, name) in [(&postgres, "postgres"), (&sqlite, "sqlite")] {
        let all = report(store, &everything).await;
        let rt = report(store, &populated).await;
        let windowed = report(store, &window).await;
        for (step, table) in [("retrieval", "retrievals_ecs"), ("provide", "provides_ecs")] {
            let what = format!("{name} {step}");
            assert_matches(
                &operation(&all, step).by_region,
                &independent(&pg.url(), table, "TRUE").await,
                &format!("{what} all"),
            );
            assert_matches(
                &operation(&rt, step).by_region,
                &independent(&pg.url(), table, "m.rt_size >= 10 AND n.fleet = 'optprov'").await,
                &format!("{what} --min-rt-size 10 --fleet optprov"),
            );
            let of_window = operation(&windowed, step);
            assert_matches(
                &of_window.by_region,
                &independent(
                    &pg.url(),
                    table,
                    &format!("m.created_at >= {since} AND m.created_at < {until}"),
                )
                .await,
                &format!("{what} window"),
            );
            assert_matches(
                of_window.previous_by_region.as_ref().unwrap(),
                &independent(
                    &pg.url(),
                    table,
                    &format!("m.created_at >= {previous} AND m.created_at < {since}"),
                )
                .await,
                &format!("{what} previous window"),
            );
            // Four days, one box each; the timeline steps by day past two days.
            let days: Vec<&str> = operation(&all, step)
                .by_day
                .iter()
                .map(|g| g.key.as_str())
                .collect();
            assert_eq!(days.len(), 8, "{what}: 2 fleets × 4 days, got {days:?}");
            assert!(days.contains(&"2026-11-23"), "{what}: {days:?}");
            let attempts: u64 = operation(&all, step).by_day.iter().map(|g| g.attempts).sum();
            assert_eq!(attempts, ROWS);
            // The window holds two days: its timeline is hourly.
            assert!(of_window
                .timeline
                .iter()
                .all(|g| g.key.len() == "2026-11-22T05:00".len()));
            assert_eq!(operation(&all, step).errors[0].error, "no provider found");
        }
    }
}

/// Rows per pubsub operation.
const PUBSUB_ROWS: u64 = 900;

/// Pubsub rows beside the same four servers' kind: publishes (every 7th not reaching all) and
/// deliveries (every 11th not delivered, a third to js-libp2p receivers, 1–5 copies, a clock
/// uncertainty on even rows as across processes).
async fn fill_pubsub(store: &Store) -> SchedulerId {
    let (nodes, scheduler) = register_servers(store, "pubsub").await;
    let round = parsec_actors::RoundId::new();
    let mut batch = Vec::new();
    for i in 0..PUBSUB_ROWS {
        let node = nodes[(i % 4) as usize];
        let started_at = day0() + chrono::Duration::minutes(i as i64);
        let message = uuid::Uuid::from_u128(u128::from(i / 9)).to_string();
        let delivered = i % 11 != 0;
        // The message's publisher is the node of its first row (below); two in five first copies
        // came from it, one in seven from an unknown forwarder (a js receiver cannot tell).
        let publisher = (i / 9 * 9 % 4) as usize;
        let from_publisher = format!(
            "12D3KooWpubsub{}{}",
            FLEETS[publisher / 2],
            REGIONS[publisher % 2]
        );
        let first_from = match (i % 5, i % 7) {
            (_, 3) => None,
            (0 | 1, _) => Some(from_publisher),
            _ => Some("12D3KooWforwarder".to_owned()),
        };
        let delivery = PubsubDetails {
            copies: if delivered { 1 + (i % 5) as u32 } else { 0 },
            first_from: first_from.filter(|_| delivered),
            clock_uncertainty: (i % 2 == 0).then_some(0.001 * (i % 4) as f64),
            ..PubsubDetails::new(
                "blocks",
                1024,
                if i % 3 == 0 { "js-libp2p" } else { "rust-libp2p" },
            )
        };
        batch.push(Measurement {
            started_at,
            duration: Duration::from_micros((i * 7919) % 99_991 + 500),
            error: (!delivered).then(|| parsec_actors::NOT_DELIVERED.to_owned()),
            ..Measurement::pubsub(Operation::Delivery, round, "x", node, &message, delivery)
        });
        if i % 9 == 0 {
            batch.push(Measurement {
                started_at,
                duration: Duration::from_micros((i * 104_729) % 299_993 + 900),
                error: (i % 7 == 0).then(|| "not delivered to 1 of 8 peers".to_owned()),
                ..Measurement::pubsub(
                    Operation::Publish,
                    round,
                    "x",
                    node,
                    &message,
                    PubsubDetails::new("blocks", 1024, "rust-libp2p"),
                )
            });
        }
    }
    store.measurement_sink(scheduler).write(batch).await.unwrap();
    scheduler
}

#[derive(QueryableByName, Debug)]
struct PubsubFigures {
    #[diesel(sql_type = Text)]
    fleet: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = Nullable<Double>)]
    duplicates: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    clock_uncertainty: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    one_hop: Option<f64>,
}

/// Deliveries: the report's delivery ratio and percentiles per region and per implementation
/// equal Postgres' own, its duplicates per delivery and clock uncertainty equal the means of the
/// delivered rows; a step filter leaves pubsub out, a pubsub-only store reports pubsub alone.
#[tokio::test(flavor = "multi_thread")]
async fn pubsub_deliveries_are_reported_per_region_and_implementation_on_both_stores() {
    let (pg, dir, postgres, sqlite) = both_stores().await;
    fill_pubsub(&postgres).await;
    fill_pubsub(&sqlite).await;

    let mut conn = AsyncPgConnection::establish(&pg.url()).await.unwrap();
    let figures = |key: &str| {
        format!(
            "SELECT n.fleet, {key} AS key, avg(m.copies - 1) FILTER (WHERE m.error IS NULL)::float8 AS duplicates, \
             avg(m.clock_uncertainty)::float8 AS clock_uncertainty, \
             avg(CASE WHEN m.first_from IS NULL THEN NULL WHEN m.first_from = (SELECT pn.peer_id \
               FROM pubsub_publishes_ecs p JOIN nodes_ecs pn ON pn.id = p.node_id \
               WHERE p.message_id = m.message_id AND p.round_id = m.round_id) THEN 1 ELSE 0 END) \
               FILTER (WHERE m.error IS NULL)::float8 AS one_hop \
             FROM pubsub_deliveries_ecs m JOIN nodes_ecs n ON n.id = m.node_id GROUP BY 1, 2"
        )
    };
    let by_region: Vec<PubsubFigures> = diesel::sql_query(figures("n.region"))
        .load(&mut conn)
        .await
        .unwrap();
    let by_implementation: Vec<PubsubFigures> = diesel::sql_query(figures("m.implementation"))
        .load(&mut conn)
        .await
        .unwrap();
    let per_implementation =
        independent_by(&pg.url(), "pubsub_deliveries_ecs", "m.implementation", "TRUE").await;
    for (store, name) in [(&postgres, "postgres"), (&sqlite, "sqlite")] {
        let all = report(store, &ReportRequest::default()).await;
        let steps: Vec<&str> = all.operations.iter().map(|o| o.operation.as_str()).collect();
        assert_eq!(steps, ["delivery", "publish"], "{name}: a pubsub-only store");
        let deliveries = operation(&all, "delivery");
        assert_matches(
            &deliveries.by_region,
            &independent(&pg.url(), "pubsub_deliveries_ecs", "TRUE").await,
            &format!("{name} deliveries"),
        );
        assert_matches(
            &operation(&all, "publish").by_region,
            &independent(&pg.url(), "pubsub_publishes_ecs", "TRUE").await,
            &format!("{name} publishes"),
        );
        for (groups, expected) in [
            (&deliveries.by_region, &by_region),
            (&deliveries.by_implementation, &by_implementation),
        ] {
            assert_eq!(groups.len(), expected.len(), "{name}");
            for group in groups {
                let sql = expected
                    .iter()
                    .find(|e| e.fleet == group.fleet && e.key == group.key)
                    .unwrap();
                let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) => (a - b).abs() < 1e-9,
                    (a, b) => a == b,
                };
                assert!(
                    close(group.duplicates, sql.duplicates),
                    "{name} {group:?} vs {sql:?}"
                );
                assert!(
                    close(group.clock_uncertainty, sql.clock_uncertainty),
                    "{name} {group:?} vs {sql:?}"
                );
                assert!(close(group.one_hop, sql.one_hop), "{name} {group:?} vs {sql:?}");
            }
        }
        // A third of the receivers are js-libp2p; each implementation's delivery ratio and
        // attempts add up to the region table's.
        let js: u64 = deliveries
            .by_implementation
            .iter()
            .filter(|g| g.key == "js-libp2p")
            .map(|g| g.attempts)
            .sum();
        assert_eq!(js, PUBSUB_ROWS / 3, "{name}");
        assert_matches(
            &deliveries.by_implementation,
            &per_implementation,
            &format!("{name} deliveries per implementation"),
        );
        assert!(deliveries
            .by_region
            .iter()
            .all(|g| g.success_rate() < 1.0 && g.success_rate() > 0.85));

        let out = dir.path().join(format!("{name}-text"));
        write(&all, Format::Text, Some(&out), false).unwrap();
        let text = std::fs::read_to_string(out.join("report.txt")).unwrap();
        assert!(
            deliveries
                .by_region
                .iter()
                .any(|g| g.one_hop.is_some_and(|h| h > 0.0 && h < 1.0)),
            "{name}: {:?}",
            deliveries.by_region
        );
        for expected in [
            "delivered",
            "dup/delivery",
            "one hop",
            "clock ±",
            "js-libp2p",
            "receiver's implementation",
        ] {
            assert!(text.contains(expected), "{name}: no {expected:?} in\n{text}");
        }
        let charts = parsec::report::charts::charts(&all);
        assert!(
            charts.iter().any(|c| c.name == "cdf-delivery-implementation"),
            "{name}: {:?}",
            charts.iter().map(|c| &c.name).collect::<Vec<_>>()
        );

        // Pubsub rows have no step: a step filter selects the DHT's rows alone.
        let retrievals_only = report(
            store,
            &ReportRequest {
                filter: ReportFilter {
                    steps: vec!["retrieval".into()],
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
        assert!(
            retrievals_only.operations.iter().all(|o| !o.is_pubsub()),
            "{name}: a step filter reported pubsub"
        );
    }
}

/// Fraction of pixels that are not white in an RGB(A) PNG, and its size.
fn png_ink(path: &Path) -> ((u32, u32), f64) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let channels = info.color_type.samples();
    let pixels = &pixels[..info.buffer_size()];
    let inked = pixels
        .chunks(channels)
        .filter(|p| p.iter().take(3).any(|&c| c < 240))
        .count();
    (
        (info.width, info.height),
        inked as f64 / (pixels.len() / channels) as f64,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn charts_are_valid_svg_and_png_and_the_html_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&DatabaseTarget::Sqlite {
        path: dir.path().join("parsec.db"),
    })
    .await
    .unwrap();
    fill(&store).await;
    let report = report(
        &store,
        &ReportRequest {
            title: "report test".into(),
            ..Default::default()
        },
    )
    .await;
    let out = dir.path().join("md");
    let written = write(&report, Format::Md, Some(&out), true).unwrap();
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    let svgs: Vec<_> = written
        .iter()
        .filter(|p| p.extension().unwrap() == "svg")
        .collect();
    let pngs: Vec<_> = written
        .iter()
        .filter(|p| p.extension().unwrap() == "png")
        .collect();
    // Per operation a CDF, days and a timeline, and the success rate.
    assert_eq!(svgs.len(), 7, "{written:?}");
    assert_eq!(pngs.len(), svgs.len());
    for svg in svgs {
        let text = std::fs::read_to_string(svg).unwrap();
        let document = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", svg.display()));
        assert_eq!(document.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = document
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            texts.iter().any(|t| t.contains("(s") || t.contains("(%)")),
            "{}: no axis label with a unit in {texts:?}",
            svg.display()
        );
        let name = svg.file_name().unwrap().to_str().unwrap();
        assert!(
            markdown.contains(&format!("charts/{name}")),
            "report.md links {name}"
        );
    }
    for png in pngs {
        let (size, ink) = png_ink(png);
        assert_eq!(size, (960, 540), "{}", png.display());
        assert!(
            ink > 0.02 && ink < 0.9,
            "{}: {:.1}% of pixels drawn",
            png.display(),
            ink * 100.0
        );
    }

    let html_dir = dir.path().join("html");
    write(&report, Format::Html, Some(&html_dir), false).unwrap();
    let page = html_dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("src=") && !html.contains("<link"),
        "the page loads nothing from elsewhere"
    );
    assert_eq!(html.matches("<svg").count(), 7);
    let screenshot = dir.path().join("screenshot.png");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1200,1800",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("chromium").display()
        ))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium (apt-get install chromium): {e}"));
    let log = String::from_utf8_lossy(&output.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "the page wrote to the console: {console:?}");
    let ((width, height), ink) = png_ink(&screenshot);
    assert_eq!((width, height), (1200, 1800), "{log}");
    assert!(ink > 0.02, "the screenshot is blank ({:.2}% drawn)", ink * 100.0);
}

#[test]
fn the_command_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_parsec"))
            .arg("report")
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let missing = format!("sqlite://{}", dir.path().join("none.db").display());
    let (code, stderr) = run(&["--database-url", &missing]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("does not exist") && stderr.contains("--database-url"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("none.db").exists(),
        "reading must not create a store"
    );

    let (code, stderr) = run(&["--compare-previous", "--database-url", &missing]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--compare-previous needs a window"), "{stderr}");

    // A period longer than the calendar is refused, not a panic (exit 101).
    let (code, stderr) = run(&["--last", "999999999d", "--database-url", &missing]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("--last") && stderr.contains("shorter period"),
        "{stderr}"
    );
    // 90 million days fit, the window of equal length before them does not.
    let (code, stderr) = run(&[
        "--last",
        "90000000d",
        "--compare-previous",
        "--database-url",
        &missing,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("earliest time"), "{stderr}");

    let (code, stderr) = run(&["--since", "yesterday"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("neither RFC 3339"), "{stderr}");

    // A SQLite file that is not parsec's is refused, and left as it was: reading never writes.
    let unrelated = dir.path().join("unrelated.sqlite");
    {
        use diesel::{connection::SimpleConnection, Connection};
        let mut conn = diesel::SqliteConnection::establish(unrelated.to_str().unwrap()).unwrap();
        conn.batch_execute("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
            .unwrap();
    }
    let before = std::fs::read(&unrelated).unwrap();
    let (code, stderr) = run(&["--database-url", &format!("sqlite://{}", unrelated.display())]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("holds no parsec tables"), "{stderr}");
    assert_eq!(std::fs::read(&unrelated).unwrap(), before, "the file was changed");
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, ["unrelated.sqlite"], "reading left files behind");
}

#[test]
fn a_simulation_leaves_its_report_with_hops_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let output = Command::new(env!("CARGO_BIN_EXE_parsec"))
        .args([
            "simulate",
            "--nodes",
            "500",
            "--rounds",
            "6",
            "--no-progress",
            "--database-url",
        ])
        .arg(format!("sqlite://{}", dir.path().join("sim.db").display()))
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = parsec::testing::process::expect_success(&output);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let effort = json["effort"].as_array().unwrap();
    assert_eq!(effort.len(), 2, "provide and retrieve: {json}");
    let operations: u64 = effort[0]["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap())
        .sum();
    assert_eq!(operations, 6, "one provide per round: {json}");
    let svg = std::fs::read_to_string(report.join("charts/effort.svg")).unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    assert!(std::fs::read_to_string(report.join("report.md"))
        .unwrap()
        .contains("charts/effort.svg"));
    assert!(stdout.contains("report: "), "{stdout}");
}

/// A reprovide round of `strategy` over `cids` CIDs that took `seconds`, ran `lookups` lookups,
/// stored 20 copies a CID and saw `found` of 10 sampled CIDs found (0: a failed round).
fn reprovide_round(
    node: parsec_actors::NodeId,
    strategy: parsec_actors::ReprovideStrategy,
    cids: usize,
    seconds: f64,
    lookups: u64,
    found: u32,
) -> Measurement {
    use parsec_actors::{ReprovideDetails, ReprovideRound};
    let details = ReprovideDetails {
        strategy,
        workers: 4,
        round: ReprovideRound {
            keys: cids,
            lookups,
            copies_stored: 20 * cids as u64,
            duration: Duration::from_secs_f64(seconds),
            ..ReprovideRound::default()
        },
        sampled: 10,
        found,
        ..ReprovideDetails::default()
    };
    Measurement::reprovide(
        parsec_actors::RoundId::new(),
        strategy.name(),
        node,
        day0(),
        details.failure(),
        details,
    )
}

/// The report's reprovide rounds per strategy and CID count on both stores: CIDs per hour over
/// the rounds' summed time, lookups per CID, found share, failed rounds counted but not pooled;
/// its table and chart.
#[tokio::test(flavor = "multi_thread")]
async fn reprovide_rounds_are_reported_per_strategy_and_cid_count_on_both_stores() {
    use parsec_actors::ReprovideStrategy::{Classic, Sweep};
    let (_pg, dir, postgres, sqlite) = both_stores().await;
    for (name, store) in [("postgres", &postgres), ("sqlite", &sqlite)] {
        let (nodes, scheduler) = register_servers(store, "reprovide").await;
        let batch = vec![
            reprovide_round(nodes[0], Classic, 1000, 10.0, 1000, 10),
            reprovide_round(nodes[1], Sweep, 1000, 1.0, 20, 10),
            reprovide_round(nodes[1], Sweep, 1000, 3.0, 30, 9),
            // Found nothing: counted, not pooled.
            reprovide_round(nodes[1], Sweep, 1000, 0.5, 10, 0),
            reprovide_round(nodes[1], Sweep, 4000, 2.0, 40, 10),
        ];
        store.measurement_sink(scheduler).write(batch).await.unwrap();
        let all = report(store, &ReportRequest::default()).await;
        let figures: Vec<(String, u64, u64, u64, f64, f64, f64)> = all
            .reprovide
            .iter()
            .map(|g| {
                (
                    g.strategy.clone(),
                    g.cids,
                    g.rounds,
                    g.successes,
                    g.cids_per_hour.unwrap(),
                    g.lookups_per_cid.unwrap(),
                    g.found.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            figures,
            [
                ("classic".to_owned(), 1000, 1, 1, 360_000.0, 1.0, 1.0),
                ("sweep".to_owned(), 1000, 3, 2, 1_800_000.0, 0.025, 0.95),
                ("sweep".to_owned(), 4000, 1, 1, 7_200_000.0, 0.01, 1.0),
            ],
            "{name}"
        );
        assert!(
            all.reprovide.iter().all(|g| g.copies_per_cid == Some(20.0)),
            "{name}"
        );
        // A store of rounds alone reports them alone.
        assert!(all.operations.is_empty(), "{name}");

        let out = dir.path().join(format!("{name}-reprovide"));
        write(&all, Format::Text, Some(&out), false).unwrap();
        let text = std::fs::read_to_string(out.join("report.txt")).unwrap();
        assert!(
            text.contains("reprovide rounds") && text.contains("1800000") && text.contains("0.0250"),
            "{name}:\n{text}"
        );
        let charts = parsec::report::charts::charts(&all);
        let chart = charts
            .iter()
            .find(|c| c.name == "reprovide")
            .expect("a reprovide chart");
        roxmltree::Document::parse(&chart.svg().unwrap()).unwrap();
    }
}
