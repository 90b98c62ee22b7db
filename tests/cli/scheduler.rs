//! `parsec scheduler`: settings refused before it starts, and the offline marks it sets on nodes.

use super::*;

#[test]
fn scheduler_rejects_settings_that_cannot_run_before_it_starts() {
    assert_refused(
        &["scheduler"],
        &[
            (vec!["--rounds", "0"], "--rounds must be at least 1"),
            (vec!["--fleets", " "], "--fleets needs at least one fleet name"),
            (
                vec!["--protocol", "reprovide", "--reprovide-keys", "0"],
                "cids must be between 1 and",
            ),
            (
                vec!["--protocol", "reprovide", "--reprovide-workers", "100"],
                "workers must be between 1 and 64",
            ),
            (
                vec!["--protocol", "reprovide", "--reprovide-strategies", "fast"],
                "classic or sweep",
            ),
        ],
    );
}

/// A scheduler marks a node offline after one failed readiness check; the node keeps running and
/// heartbeating, so its next heartbeat brings it back. A node that shut down stays offline.
#[test]
fn a_node_marked_offline_by_a_scheduler_comes_back_and_one_that_shut_down_stays_offline() {
    use parsec::db::{self, DatabaseTarget, Store};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("recover.sqlite");
    let url = format!("sqlite://{}", database.display());
    let [first, second] = common::two_servers(&url);
    let beating = || common::sqlite_counts(&database).nodes_with_heartbeat == 2;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(30), beating),
        "servers never heartbeated"
    );

    // What the scheduler does after a failed check: the same registry call, from this process.
    actix::System::new().block_on(async {
        let store = Store::open(&DatabaseTarget::Sqlite {
            path: database.clone(),
        })
        .await
        .unwrap();
        let registry = db::registry(&store);
        for node in [1, 2] {
            registry
                .mark_offline(parsec_actors::NodeId(node), chrono::Utc::now())
                .await
                .unwrap();
        }
    });
    assert_eq!(common::sqlite_counts(&database).nodes_offline, 2);
    let back = || common::sqlite_counts(&database).nodes_offline == 0;
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(5), back),
        "ready nodes stayed offline after heartbeating"
    );

    assert!(second.terminate().success());
    // The stopped node writes nothing more; the running one does, at its next heartbeat: wait for
    // that beat, then nothing may have flipped.
    let first_beat = || common::last_heartbeat(&database, 1);
    let before = first_beat();
    assert!(
        parsec::testing::process::wait_until(Duration::from_secs(10), || first_beat() != before),
        "the running server stopped heartbeating"
    );
    assert_eq!(
        common::sqlite_counts(&database).nodes_offline,
        1,
        "the node that shut down came back, or the running one was marked"
    );
    drop(first);
}
