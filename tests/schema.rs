//! The committed diesel schema modules are what the diesel CLI prints for freshly migrated
//! databases: a migration changed without regenerating them fails here.
//!
//! Needs the diesel CLI (`.ci/run` installs it):
//! `cargo install diesel_cli --no-default-features --features postgres,sqlite-bundled`.

use std::process::Command;

use parsec::{
    db::{sqlite::SqliteStore, DatabaseTarget, Store},
    testing::TempPostgres,
};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn print_schema(config_file: &str, database_url: &str) -> String {
    let output = Command::new("diesel")
        .args([
            "print-schema",
            "--config-file",
            config_file,
            "--database-url",
            database_url,
        ])
        .current_dir(MANIFEST_DIR)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the diesel CLI ({e}); install it with \
                 `cargo install diesel_cli --no-default-features --features postgres,sqlite-bundled`"
            )
        });
    assert!(
        output.status.success(),
        "diesel print-schema failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn committed(path: &str) -> String {
    std::fs::read_to_string(format!("{MANIFEST_DIR}/{path}")).unwrap()
}

#[actix::test]
async fn postgres_schema_rs_matches_the_migrated_database() {
    let pg = TempPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    Store::open(&DatabaseTarget::Postgres { url: pg.url() })
        .await
        .unwrap();
    assert_eq!(
        print_schema("diesel.toml", &pg.url()),
        committed("src/db/schema.rs"),
        "src/db/schema.rs is stale: regenerate it with `diesel print-schema > src/db/schema.rs`"
    );
}

#[actix::test]
async fn sqlite_schema_rs_matches_the_migrated_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema.sqlite");
    SqliteStore::open(&path, parsec::db::SchemaPolicy::Migrate)
        .await
        .unwrap();
    assert_eq!(
        print_schema("migrations/sqlite.diesel.toml", path.to_str().unwrap()),
        committed("src/db/sqlite_schema.rs"),
        "src/db/sqlite_schema.rs is stale: regenerate it with `diesel print-schema --config-file \
         migrations/sqlite.diesel.toml --database-url <file> > src/db/sqlite_schema.rs`"
    );
}
