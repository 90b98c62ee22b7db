//! How many measurement rows per second the MeasurementRecorder stores, into a throwaway
//! PostgreSQL (durable settings and fsync=off) and into the embedded SQLite file, compared with
//! parsec's way of storing them: one INSERT per row, one round trip each.
//!
//! Run: `cargo bench --bench recorder` (options: `-- --rows 200000 --baseline-rows 5000`).
//! Needs the PostgreSQL server binaries (`apt-get install -y postgresql`).

use std::time::{Duration, Instant};

use actix::prelude::*;
use diesel::sql_types::{Double, Integer, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use parsec::{
    db::{DatabaseTarget, Store},
    testing::TempPostgres,
};
use parsec_actors::{
    recorder::drain,
    testing::{register_sample, sample_measurement},
    Measurement, MeasurementRecorder, Operation, RecordMeasurement,
};

struct Options {
    rows: usize,
    baseline_rows: usize,
}

fn options() -> Options {
    let mut options = Options {
        rows: 200_000,
        baseline_rows: 5_000,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = || {
            pair[1]
                .parse()
                .unwrap_or_else(|_| panic!("{} needs a number", pair[0]))
        };
        match pair[0].as_str() {
            "--rows" => options.rows = value(),
            "--baseline-rows" => options.baseline_rows = value(),
            _ => {}
        }
    }
    options
}

/// Rows per second the recorder sustains into `store` (from the first row sent until the last
/// is committed).
async fn recorder_rate(store: &Store, rows: usize) -> f64 {
    let (node, scheduler) = register_sample(store).await.unwrap();
    let recorder = MeasurementRecorder::new(store.measurement_sink(scheduler)).start();
    let template = Measurement {
        node,
        ..sample_measurement(Operation::Retrieval, Duration::from_millis(250))
    };
    let started = Instant::now();
    for probe in 0..rows {
        recorder.do_send(RecordMeasurement(Measurement {
            id: uuid::Uuid::new_v4(),
            probe: probe as u32,
            ..template.clone()
        }));
    }
    let written = drain(&recorder, Duration::from_secs(600)).await.unwrap();
    assert_eq!(written, rows as u64);
    rows as f64 / started.elapsed().as_secs_f64()
}

/// Rows per second with parsec's approach: one autocommitted INSERT per measurement.
async fn one_insert_per_row_rate(url: &str, rows: usize) -> f64 {
    let mut conn = AsyncPgConnection::establish(url).await.unwrap();
    let started = Instant::now();
    for i in 0..rows {
        diesel::sql_query(
            "INSERT INTO retrievals_ecs (scheduler_id, node_id, rt_size, duration, cid, created_at) \
             VALUES (1, 1, $1, $2, $3, $4)",
        )
        .bind::<Integer, _>(i as i32)
        .bind::<Double, _>(0.25)
        .bind::<Text, _>("QmbwQQH8rEaq14fGteYZMLruemKKMWgjeL5QYCs8MMeTrE")
        .bind::<Timestamptz, _>(chrono::Utc::now())
        .execute(&mut conn)
        .await
        .unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn postgres(label: &str, cluster: TempPostgres, options: &Options) {
    System::new().block_on(async {
        let store = Store::open(&DatabaseTarget::Postgres { url: cluster.url() })
            .await
            .unwrap();
        let recorder = recorder_rate(&store, options.rows).await;
        let baseline = one_insert_per_row_rate(&cluster.url(), options.baseline_rows).await;
        println!(
            "postgres ({label}): recorder {recorder:>9.0} rows/s ({} rows); one INSERT per row \
             {baseline:>7.0} rows/s ({} rows); ratio {:.1}x",
            options.rows,
            options.baseline_rows,
            recorder / baseline
        );
    });
}

fn main() {
    let options = options();
    let start = |cluster: Result<TempPostgres, _>| cluster.unwrap_or_else(|e| panic!("{e}"));
    postgres(
        "durable: fsync on",
        start(TempPostgres::start_durable()),
        &options,
    );
    postgres("fsync off", start(TempPostgres::start()), &options);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    System::new().block_on(async {
        let store = Store::open(&DatabaseTarget::Sqlite { path }).await.unwrap();
        let rate = recorder_rate(&store, options.rows).await;
        println!(
            "sqlite (WAL, synchronous=NORMAL): recorder {rate:>9.0} rows/s ({} rows)",
            options.rows
        );
    });
}
