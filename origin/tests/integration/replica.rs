//! A real streaming replica (issue 16): a cluster of the test's own, a replica of it made with
//! `pg_basebackup -R`, and an origin reading through the replica. The replica's answer is used
//! only when it is provably fresh enough: at or above `min_revision`, at or after every change
//! the origin knows for the question's ids, and with the change listener connected.
//!
//! L1 is off in these tests, so every question reaches the facts path: the counters of
//! `Decider::replica_reads` say whether the replica answered, was asked and not believed, or
//! was not asked at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authz_origin::decision::ReplicaReads;
use serde_json::{Value, json};

use crate::faults::{
    self, OWNER, PgCluster, READER, STRANGER, TEST_APPLICATION, Tally, ask, dataset, question,
};
use crate::support::{self, TestOrigin};

/// A primary holding `dataset(4)`, its streaming replica caught up, and an origin reading
/// through the replica with L1 off, its listener connected and at the data's revision.
struct Topology {
    primary: PgCluster,
    replica: PgCluster,
    /// The test's own connection to the primary's `authz` database.
    client: tokio_postgres::Client,
    origin: TestOrigin,
}

impl Topology {
    async fn start() -> Self {
        let primary = PgCluster::start().await;
        let admin = support::connect(&primary.url("postgres")).await;
        admin
            .batch_execute("CREATE DATABASE authz")
            .await
            .expect("create database");
        let url = primary.url("authz");
        authz_origin::db::migrate::run(&url).await.expect("migrate");
        let client = support::connect(&format!("{url}?application_name={TEST_APPLICATION}")).await;
        support::load(&client, &dataset(4), 0).await;
        let replica = primary.start_replica().await;
        // One transaction replayed by the replica, so that its last replayed commit has a
        // time (the lag in seconds is unknown until then).
        client
            .batch_execute(
                "INSERT INTO users (id, email) \
                 VALUES ('a0000000-0000-4000-8000-0000000000ff', 'late@example.test')",
            )
            .await
            .expect("insert");
        let revision = support::current_revision(&client).await;
        let topology_replica = support::connect(&replica.url("authz")).await;
        wait_replayed(&topology_replica, revision).await;
        let mut vars = faults::vars_on(&url);
        faults::set(
            &mut vars,
            &[
                ("POSTGRES_REPLICA_URL", replica.url("authz").as_str()),
                ("AUTHZ_L1_CAPACITY", "0"),
            ],
        );
        let origin = TestOrigin::start(vars).await;
        origin.wait_revision(revision).await;
        Self {
            primary,
            replica,
            client,
            origin,
        }
    }

    fn reads(&self) -> ReplicaReads {
        self.origin.state.decider.replica_reads()
    }

    async fn replica_client(&self) -> tokio_postgres::Client {
        support::connect(&self.replica.url("authz")).await
    }

    /// The database health document (admin).
    async fn database_health(&self) -> Value {
        let (status, body) = self
            .origin
            .get("/api/v1/system/database/health", Some(support::ADMIN_TOKEN))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

/// The replica's own revision row.
async fn replica_revision(replica: &tokio_postgres::Client) -> i64 {
    replica
        .query_one("SELECT value FROM authz_revision WHERE id = 1", &[])
        .await
        .expect("replica revision")
        .get(0)
}

/// Waits (up to 10 s) until the replica has replayed `revision`.
async fn wait_replayed(replica: &tokio_postgres::Client, revision: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica_revision(replica).await < revision {
        assert!(
            Instant::now() < deadline,
            "the replica never replayed revision {revision}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pause_replay(replica: &tokio_postgres::Client) {
    replica
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause replay");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = replica
            .query_one("SELECT pg_get_wal_replay_pause_state()", &[])
            .await
            .expect("pause state")
            .get(0);
        if state == "paused" {
            return;
        }
        assert!(Instant::now() < deadline, "replay never paused: {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn resume_replay(replica: &tokio_postgres::Client) {
    replica
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .expect("resume replay");
}

/// Revokes READER's share on the primary; the revision it was numbered with.
async fn revoke(client: &tokio_postgres::Client) -> i64 {
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    support::current_revision(client).await
}

fn reader_download() -> Value {
    question(READER, 1, "download")
}

fn stranger_read() -> Value {
    question(STRANGER, 2, "read")
}

async fn expect_answer(origin: &TestOrigin, body: Value, granted: bool) {
    let reply = ask(origin, body).await;
    assert_eq!(
        (reply.status, reply.granted()),
        (200, Some(granted)),
        "{}",
        reply.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_replica_is_not_believed_after_a_revocation_and_min_revision_holds() {
    let topology = Topology::start().await;
    let origin = &topology.origin;
    let replica = topology.replica_client().await;

    let before = topology.reads();
    expect_answer(origin, reader_download(), true).await;
    assert_eq!(
        topology.reads().used,
        before.used + 1,
        "a replica that has replayed everything answers: {:?}",
        topology.reads()
    );

    pause_replay(&replica).await;
    let revision = revoke(&topology.client).await;
    origin.wait_revision(revision).await;
    assert!(replica_revision(&replica).await < revision);

    // The replica still holds the share; the origin knows of the change and does not believe
    // it: every answer is the primary's deny.
    let before = topology.reads();
    for _ in 0..20 {
        expect_answer(origin, reader_download(), false).await;
    }
    let with_floor = json!({
        "user_id": READER, "resource_type": "generation", "resource_id": faults::generation(1),
        "operation": "download", "min_revision": revision,
    });
    let reply = ask(origin, with_floor).await;
    assert_eq!(
        (reply.status, reply.granted()),
        (200, Some(false)),
        "{}",
        reply.body
    );
    assert_eq!(
        reply.body["revision"].as_u64(),
        u64::try_from(revision).ok(),
        "answered at the primary's revision: {}",
        reply.body
    );
    let after = topology.reads();
    assert_eq!(after.used, before.used, "{after:?}");
    assert!(
        after.stale >= 21,
        "the replica was asked and refused: {after:?}"
    );

    // A question the revocation did not touch is still answered by the lagging replica.
    let before = topology.reads();
    expect_answer(origin, stranger_read(), false).await;
    expect_answer(origin, question(OWNER, 2, "read"), true).await;
    assert_eq!(
        topology.reads().used,
        before.used + 2,
        "{:?}",
        topology.reads()
    );

    // The lag is on the database health document.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = topology.database_health().await;
    let lag = &health["replica"];
    assert_eq!(lag["reachable"], true, "{health}");
    assert_eq!(lag["replay_paused"], true, "{health}");
    assert!(
        lag["lag_bytes"].as_f64().is_some_and(|b| b > 0.0),
        "{health}"
    );
    assert!(
        lag["lag_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{health}"
    );
    assert!(
        lag["revisions_behind"].as_i64().is_some_and(|r| r >= 1),
        "{health}"
    );
    let metrics = origin.metrics_text().await;
    assert!(
        metrics.contains("authz_replica_reads_total{result=\"stale\"}"),
        "{metrics}"
    );

    // Replay resumes: the replica catches up and answers again, with the deny.
    resume_replay(&replica).await;
    wait_replayed(&replica, revision).await;
    let before = topology.reads();
    expect_answer(origin, reader_download(), false).await;
    assert_eq!(
        topology.reads().used,
        before.used + 1,
        "{:?}",
        topology.reads()
    );
    let health = topology.database_health().await;
    assert_eq!(health["replica"]["revisions_behind"], 0, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_replica_answers_while_the_listener_is_down() {
    let topology = Topology::start().await;
    let origin = &topology.origin;
    let replica = topology.replica_client().await;
    let admin = support::connect(&topology.primary.url("postgres")).await;
    let invalidation = &origin.state.invalidation;

    let before = topology.reads();
    expect_answer(origin, stranger_read(), false).await;
    assert_eq!(topology.reads().used, before.used + 1);

    // Replay paused and a revocation: the primary's pool now holds a connection (the deny
    // came from it), which it keeps while the database refuses new ones.
    pause_replay(&replica).await;
    let revision = revoke(&topology.client).await;
    origin.wait_revision(revision).await;
    expect_answer(origin, reader_download(), false).await;

    // The listener is terminated and kept out.
    let pid = faults::listener_backend(&topology.client, "authz").await;
    admin
        .batch_execute("ALTER DATABASE authz WITH ALLOW_CONNECTIONS false")
        .await
        .expect("refuse connections");
    faults::terminate(&topology.client, pid).await;
    let killed = Instant::now();
    while invalidation.is_connected() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the drop was never seen"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Nothing the replica says is used now, not even for a question the revocation did not
    // touch and that it answered a moment ago: a change committed now would not be announced.
    let before = topology.reads();
    let mut tally = Tally::default();
    let held = Instant::now();
    while held.elapsed() < Duration::from_millis(500) {
        tally.record(&ask(origin, stranger_read()).await, false);
        tally.record(&ask(origin, reader_download()).await, false);
        assert!(!invalidation.is_connected(), "the listener got back in");
    }
    let during = topology.reads();
    println!(
        "[replica/listener-down] {}; reads {before:?} -> {during:?}",
        tally.summary()
    );
    assert_eq!(
        (tally.wrong, tally.server_errors),
        (0, 0),
        "{}",
        tally.summary()
    );
    assert_eq!(during.used, before.used, "{during:?}");
    assert!(during.skipped > before.skipped, "{during:?}");

    // Back: the listener reconnects, replay resumes, and the replica answers again.
    admin
        .batch_execute("ALTER DATABASE authz WITH ALLOW_CONNECTIONS true")
        .await
        .expect("allow connections");
    let allowed = Instant::now();
    while !invalidation.is_connected() {
        assert!(
            allowed.elapsed() < Duration::from_secs(10),
            "the listener never came back"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    resume_replay(&replica).await;
    wait_replayed(&replica, support::current_revision(&topology.client).await).await;
    let before = topology.reads();
    expect_answer(origin, stranger_read(), false).await;
    assert_eq!(
        topology.reads().used,
        before.used + 1,
        "{:?}",
        topology.reads()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_stopped_mid_load_falls_back_to_the_primary_and_is_used_again() {
    let topology = Arc::new(Topology::start().await);
    let stop = Arc::new(AtomicBool::new(false));
    // Four askers, each cycling through questions with known answers.
    let askers: Vec<_> = (0..4)
        .map(|n| {
            let (topology, stop) = (Arc::clone(&topology), Arc::clone(&stop));
            tokio::spawn(async move {
                let questions = [
                    (reader_download(), true),
                    (stranger_read(), false),
                    (question(OWNER, 1 + n % 4, "read"), true),
                    (question(READER, 2, "download"), false),
                ];
                let mut tally = Tally::default();
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
                    let (body, expected) = &questions[i % questions.len()];
                    tally.record(&ask(&topology.origin, body.clone()).await, *expected);
                    i += 1;
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before_stop = topology.reads();
    assert!(before_stop.used > 0, "{before_stop:?}");
    topology.replica.stop_immediate().await;
    let stopped = Instant::now();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let while_down = topology.reads();
    let health = topology.database_health().await;
    assert_eq!(health["replica"]["reachable"], false, "{health}");
    topology.replica.pg_start().await;
    let restarted = Instant::now();
    // Used again once it is back (its pool opens new connections).
    let deadline = Instant::now() + Duration::from_secs(15);
    while topology.reads().used <= while_down.used {
        assert!(
            Instant::now() < deadline,
            "the replica was never used again: {:?}",
            topology.reads()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back_after = restarted.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut wrong = 0;
    let mut server_errors = 0;
    for asker in askers {
        let tally = asker.await.expect("asker");
        println!("[replica/stopped] {}", tally.summary());
        wrong += tally.wrong;
        server_errors += tally.server_errors;
    }
    let after = topology.reads();
    println!(
        "[replica/stopped] down {:?}; used again {back_after:?} after the restart; reads before \
         the stop {before_stop:?}, while down {while_down:?}, at the end {after:?}",
        restarted.duration_since(stopped)
    );
    assert_eq!((wrong, server_errors), (0, 0));
    assert!(
        while_down.failed > before_stop.failed,
        "the replica's failures were seen and the primary answered: {while_down:?}"
    );
    assert!(after.used > while_down.used, "{after:?}");
}
