//! Faults under load: 24 client tasks post `/v1/authorize` back to back against a real origin
//! while a dependency fails (Redis killed, Postgres killed, Redis paused, the change listener's
//! backend terminated) and while revocable pairs are revoked with plain SQL at recorded
//! instants. Every request is recorded (sent and received instants, pair, status, answer,
//! tier), and the records are judged afterwards against the known truth of the dataset:
//!
//! - a **wrong grant** is a grant for a pair that is never granted, or for a revoked pair when
//!   the request was sent later than the revocation's commit plus its bound (1 s while the
//!   listener is connected; two heartbeats when its notice is lost, ARCHITECTURE.md decision
//!   12), so a stale grant from a broken invalidation, or a grant made from an error, fails;
//! - a **wrong deny** is a deny for a pair that is always granted, or for a revocable pair
//!   answered before its revocation was sent;
//! - a 5xx is neither: it is counted and held to what ARCHITECTURE.md promises for the fault
//!   (none while Postgres answers; while it is down, only keys no cache could answer);
//! - the **recovery** is the time from the end of the fault to the first correct answer from
//!   the tier that came back (`l2` after Redis, `db` after Postgres, `l1` after the listener).
//!
//! Each test writes its figures to `target/fault-report/<test>.json` (or under
//! `CARGO_TARGET_DIR`) before asserting, and prints one summary line. The servers that are
//! killed are the tests' own (`faults.rs`): a redis-server on a free port, a Postgres cluster
//! made with initdb; the listener test terminates a backend of its own database only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authz_core::dataset::Dataset;
use serde_json::{Value, json};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::faults::{self, RedisServer};
use crate::support::{self, TestDb, TestOrigin, TestRedis};

/// Concurrent client tasks of the load.
const CLIENTS: usize = 24;
/// Load with every dependency healthy before a fault.
const STEADY: Duration = Duration::from_millis(500);
/// How long a killed server stays down (kill to restart).
const OUTAGE: Duration = Duration::from_millis(1500);
/// How long Redis stays paused.
const PAUSE: Duration = Duration::from_millis(2000);
/// Load kept after the recovery and after every revocation's bound, to see the steady state
/// again and give a forbidden grant the time to show.
const AFTER: Duration = Duration::from_millis(500);
/// The longest wait for anything the tests poll for.
const PATIENCE: Duration = Duration::from_secs(10);
/// The bound for a revocation committed while the change listener is connected. The notice
/// path's published lag (BENCHMARKS.md, "Revocation lag") is under 6 ms at p99, and an earlier
/// run with other builds going reached 55 ms at worst (docs/bench/history.md); 1 s leaves room for this machine's two cores shared with 24
/// clients and the origin, and is still 30 times below the 30 s grant TTL, so an invalidation
/// that does not work (stale until the TTL) cannot pass.
const HEALTHY_BOUND: Duration = Duration::from_secs(1);
/// The listener's heartbeat (the origin's default, `AUTHZ_LISTENER_HEARTBEAT_MS`).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The bound for a revocation whose notice is lost with the listener's connection: the
/// listener drops caches at once when it reads the error, and the heartbeat catches a
/// connection that dies silently, so "about two heartbeats" (ARCHITECTURE.md decision 12,
/// `invalidation::listen_forever`).
const LISTENER_GAP_BOUND: Duration = Duration::from_secs(2 * HEARTBEAT.as_secs());
/// The slowest answer tolerated while Redis is paused: every Redis command has a 50 ms
/// deadline and its breaker, so only Postgres and this machine's load add to it.
const SLOW: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// The dataset: owners, strangers, revocable shares and team memberships

/// Groups of revocable pairs; the tests revoke groups 0 and 1 (the Redis ones 2 too), group 3
/// stays granted.
const GROUPS: usize = 4;
/// Generations owned outright, asked by owners and strangers.
const OWNED: usize = 8;
/// Generations asked only once Postgres is down (the Postgres test).
const COLD: usize = 16;

fn owner(n: usize) -> String {
    format!("a1000000-0000-4000-8000-{:012}", 1 + n % 4)
}

fn stranger(n: usize) -> String {
    format!("a1000000-0000-4000-8000-{:012}", 11 + n % 4)
}

fn sharee(group: usize) -> String {
    format!("a1000000-0000-4000-8000-{:012}", 20 + group)
}

fn member(group: usize) -> String {
    format!("a1000000-0000-4000-8000-{:012}", 30 + group)
}

fn team(group: usize) -> String {
    format!("b1000000-0000-4000-8000-{:012}", group)
}

fn project(group: usize) -> String {
    format!("c1000000-0000-4000-8000-{:012}", group)
}

/// Owned generations are 0..OWNED, team-linked ones 100 + group, shared ones 200 + group,
/// cold ones 300 + k.
fn generation(n: usize) -> String {
    format!("d1000000-0000-4000-8000-{n:012}")
}

/// The rows: owner `owner(n)` owns generation n (and the group's team, project and
/// generations); `sharee(g)` holds a `download` share of generation 200 + g; `member(g)` is an
/// active editor of team g, linked with `write` to the team-only project g holding generation
/// 100 + g; strangers have nothing.
fn dataset() -> Dataset {
    let users: Vec<Value> = (0..4)
        .flat_map(|n| [owner(n), stranger(n)])
        .chain((0..GROUPS).flat_map(|g| [sharee(g), member(g)]))
        .map(|id| json!({"id": id}))
        .collect();
    let mut generations: Vec<Value> = (0..OWNED)
        .chain((0..COLD).map(|k| 300 + k))
        .map(|n| json!({"id": generation(n), "user_id": owner(n), "status": "completed"}))
        .collect();
    for group in 0..GROUPS {
        generations.push(json!({
            "id": generation(100 + group),
            "user_id": owner(group),
            "project_id": project(group),
            "status": "completed",
        }));
        generations.push(json!({
            "id": generation(200 + group),
            "user_id": owner(group),
            "status": "completed",
        }));
    }
    serde_json::from_value(json!({
        "users": users,
        "teams": (0..GROUPS)
            .map(|g| json!({"id": team(g), "owner_id": owner(g)}))
            .collect::<Vec<_>>(),
        "team_members": (0..GROUPS)
            .map(|g| json!({"team_id": team(g), "user_id": member(g), "role": "editor"}))
            .collect::<Vec<_>>(),
        "projects": (0..GROUPS)
            .map(|g| json!({"id": project(g), "user_id": owner(g), "visibility": "team-only"}))
            .collect::<Vec<_>>(),
        "project_teams": (0..GROUPS)
            .map(|g| json!({"project_id": project(g), "team_id": team(g), "access_level": "write"}))
            .collect::<Vec<_>>(),
        "generations": generations,
        "generation_shares": (0..GROUPS)
            .map(|g| json!({
                "generation_id": generation(200 + g),
                "shared_with_user_id": sharee(g),
                "permission_level": "download",
            }))
            .collect::<Vec<_>>(),
    }))
    .expect("dataset")
}

/// The truth of one pair over the whole test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Granted,
    Denied,
    /// Granted until its group is revoked, denied after.
    Revocable(usize),
}

/// When the load asks a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Always.
    Hot,
    /// Except while [`Load::set_quiet`] holds them back: pairs cached before a fault and
    /// asked again only after it, so that what the fault left in the caches is what answers.
    Quiet,
    /// Only once [`Load::ask_cold`] is called: never cached before a fault.
    Cold,
}

/// One question of the load.
#[derive(Debug)]
struct Pair {
    body: Value,
    truth: Truth,
    class: Class,
}

fn pair(user: &str, kind: &str, id: &str, operation: &str, truth: Truth) -> Pair {
    Pair {
        body: json!({
            "user_id": user,
            "resource_type": kind,
            "resource_id": id,
            "operation": operation,
        }),
        truth,
        class: Class::Hot,
    }
}

/// The questions. Of each revocable group, the membership's team read and the share's
/// download are quiet.
fn pairs() -> Vec<Pair> {
    use Truth::{Denied, Granted, Revocable};
    let mut pairs = Vec::new();
    for n in 0..OWNED {
        for operation in ["read", "write", "admin"] {
            pairs.push(pair(
                &owner(n),
                "generation",
                &generation(n),
                operation,
                Granted,
            ));
        }
        for operation in ["read", "write"] {
            pairs.push(pair(
                &stranger(n),
                "generation",
                &generation(n),
                operation,
                Denied,
            ));
        }
    }
    for g in 0..GROUPS {
        pairs.push(pair(&owner(g), "team", &team(g), "admin", Granted));
        pairs.push(pair(&owner(g), "project", &project(g), "admin", Granted));
        pairs.push(pair(&stranger(g), "team", &team(g), "read", Denied));
        pairs.push(pair(
            &stranger(g),
            "generation",
            &generation(200 + g),
            "read",
            Denied,
        ));
        // The share never allowed writing.
        pairs.push(pair(
            &sharee(g),
            "generation",
            &generation(200 + g),
            "write",
            Denied,
        ));
        let (shared, linked) = (generation(200 + g), generation(100 + g));
        let (team_id, project_id) = (team(g), project(g));
        for (user, kind, id, operation) in [
            (sharee(g), "generation", &shared, "read"),
            (sharee(g), "generation", &shared, "download"),
            (member(g), "generation", &linked, "read"),
            (member(g), "generation", &linked, "write"),
            (member(g), "team", &team_id, "read"),
            (member(g), "project", &project_id, "write"),
        ] {
            let mut revocable = pair(&user, kind, id, operation, Revocable(g));
            if (kind, operation) == ("team", "read") || operation == "download" {
                revocable.class = Class::Quiet;
            }
            pairs.push(revocable);
        }
    }
    for k in 0..COLD {
        let n = 300 + k;
        for (user, truth) in [(owner(n), Granted), (stranger(n), Denied)] {
            let mut cold = pair(&user, "generation", &generation(n), "read", truth);
            cold.class = Class::Cold;
            pairs.push(cold);
        }
    }
    pairs
}

// ---------------------------------------------------------------------------------------------
// Revocations

/// One revocation: a group's share and membership deactivated in one statement batch.
#[derive(Debug, Clone)]
struct Revocation {
    group: usize,
    /// When the statements were sent.
    started: Instant,
    /// When they returned to the writer: committed by then.
    committed: Instant,
    /// Grants sent later than `committed + bound` are wrong.
    bound: Duration,
    /// The revision it produced.
    revision: u64,
    /// When this test saw the origin hold that revision (None: not waited for).
    applied: Option<Instant>,
}

/// Revokes `group` with plain SQL (one transaction) and checks both rows changed.
async fn revoke(client: &Client, group: usize, bound: Duration) -> Revocation {
    revoke_with(client, group, bound, "").await
}

/// Revokes `group` in one transaction that also runs `also` (statements whose rows must all
/// say `t`) right before its commit, all in one round trip.
async fn revoke_with(client: &Client, group: usize, bound: Duration, also: &str) -> Revocation {
    let sql = format!(
        "BEGIN; \
         UPDATE generation_shares SET is_active = false WHERE shared_with_user_id = '{}'; \
         UPDATE team_members SET is_active = false WHERE user_id = '{}'; \
         {also} COMMIT",
        sharee(group),
        member(group)
    );
    let started = Instant::now();
    let messages = client.simple_query(&sql).await.expect("revoke");
    let committed = Instant::now();
    let mut changed = Vec::new();
    for message in &messages {
        match message {
            SimpleQueryMessage::CommandComplete(rows) => changed.push(*rows),
            SimpleQueryMessage::Row(row) => assert_eq!(row.get(0), Some("t"), "{also}"),
            _ => {}
        }
    }
    assert_eq!(
        changed.get(1..3),
        Some([1, 1].as_slice()),
        "revocation of group {group}"
    );
    let revision = u64::try_from(support::current_revision(client).await).expect("revision");
    Revocation {
        group,
        started,
        committed,
        bound,
        revision,
        applied: None,
    }
}

/// Polls until the origin holds `revocation`'s revision (its notice, or a reconnect after it).
async fn wait_applied(origin: &TestOrigin, revocation: &mut Revocation) {
    let deadline = Instant::now() + PATIENCE;
    while origin.state.invalidation.newest_revision() < revocation.revision {
        assert!(
            Instant::now() < deadline,
            "the origin never learnt of revision {}",
            revocation.revision
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    revocation.applied = Some(Instant::now());
}

// ---------------------------------------------------------------------------------------------
// The load

/// One request and its answer.
#[derive(Debug, Clone)]
struct Record {
    pair: usize,
    sent: Instant,
    received: Instant,
    /// The HTTP status; 0 when no response came.
    status: u16,
    /// `granted` of a 200.
    granted: Option<bool>,
    /// `source` of a 200.
    source: Option<String>,
    /// `error.code` of an error.
    code: Option<String>,
}

/// Client tasks asking the pairs round-robin, back to back, until stopped.
struct Load {
    started: Instant,
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    quiet: Arc<AtomicBool>,
    cold: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, pairs: &Arc<Vec<Pair>>) -> Self {
        assert!(pairs.iter().any(|pair| pair.class == Class::Hot));
        let records = Arc::new(Mutex::new(Vec::with_capacity(64 * 1024)));
        let stop = Arc::new(AtomicBool::new(false));
        let quiet = Arc::new(AtomicBool::new(true));
        let cold = Arc::new(AtomicBool::new(false));
        let ticket = Arc::new(AtomicUsize::new(0));
        let url = format!("{base}/v1/authorize");
        let tasks = (0..CLIENTS)
            .map(|_| {
                let (records, stop, quiet, cold, ticket, pairs, url) = (
                    Arc::clone(&records),
                    Arc::clone(&stop),
                    Arc::clone(&quiet),
                    Arc::clone(&cold),
                    Arc::clone(&ticket),
                    Arc::clone(pairs),
                    url.clone(),
                );
                tokio::spawn(async move {
                    while !stop.load(Ordering::Acquire) {
                        let index = ticket.fetch_add(1, Ordering::Relaxed) % pairs.len();
                        let asked = match pairs[index].class {
                            Class::Hot => true,
                            Class::Quiet => quiet.load(Ordering::Acquire),
                            Class::Cold => cold.load(Ordering::Acquire),
                        };
                        if asked {
                            let record = ask(&url, index, &pairs[index].body).await;
                            records.lock().expect("records").push(record);
                        }
                    }
                })
            })
            .collect();
        Self {
            started: Instant::now(),
            records,
            stop,
            quiet,
            cold,
            tasks,
        }
    }

    /// From now on the cold pairs are asked too.
    fn ask_cold(&self) {
        self.cold.store(true, Ordering::Release);
    }

    /// Whether the quiet pairs are asked (they are at the start).
    fn set_quiet(&self, asked: bool) {
        self.quiet.store(asked, Ordering::Release);
    }

    /// Polls the records until `done` holds; panics naming `what` after [`PATIENCE`].
    async fn wait_until(&self, what: &str, done: impl Fn(&[Record]) -> bool) -> Instant {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let finished = {
                let records = self.records.lock().expect("records");
                done(&records)
            };
            if finished {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what} under load"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Lets the load run for `duration` (the length of a phase, not a synchronisation).
    async fn run_for(duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Lets the load run [`AFTER`] past the recovery and past every revocation's bound, so
    /// that a grant the bound forbids has the time to show.
    async fn run_past(recovered: Instant, revocations: &[Revocation]) {
        let end = revocations
            .iter()
            .map(|revocation| revocation.committed + revocation.bound)
            .fold(recovered, Instant::max)
            + AFTER;
        tokio::time::sleep_until(end.into()).await;
    }

    /// Stops the clients and returns every record.
    async fn stop(self) -> Vec<Record> {
        self.stop.store(true, Ordering::Release);
        for task in self.tasks {
            task.await.expect("load task");
        }
        let mut records = std::mem::take(&mut *self.records.lock().expect("records"));
        records.sort_by_key(|record| record.received);
        records
    }
}

/// One `POST /v1/authorize` with the service token, recorded; transport errors are records
/// with status 0, never panics.
async fn ask(url: &str, pair: usize, body: &Value) -> Record {
    let sent = Instant::now();
    let response = support::http_client()
        .post(url)
        .bearer_auth(support::SERVICE_TOKEN)
        .json(body)
        .send()
        .await;
    let (status, body) = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.ok())
        }
        Err(_) => (0, None),
    };
    let body = body.unwrap_or(Value::Null);
    Record {
        pair,
        sent,
        received: Instant::now(),
        status,
        granted: if status == 200 {
            body["granted"].as_bool()
        } else {
            None
        },
        source: body["source"].as_str().map(str::to_owned),
        code: body["error"]["code"].as_str().map(str::to_owned),
    }
}

/// Every pair but the cold ones has a 200 sent at or after `after` whose source is `source` (any source when None).
fn every_hot_pair_answered(
    pairs: &[Pair],
    records: &[Record],
    after: Instant,
    source: Option<&str>,
) -> bool {
    let mut seen = vec![false; pairs.len()];
    for record in records {
        if record.status == 200
            && record.sent >= after
            && source.is_none_or(|source| record.source.as_deref() == Some(source))
        {
            seen[record.pair] = true;
        }
    }
    pairs
        .iter()
        .zip(seen)
        .all(|(pair, seen)| pair.class == Class::Cold || seen)
}

// ---------------------------------------------------------------------------------------------
// Judging the records

/// What a 200 to a request should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Grant,
    Deny,
    /// Its revocation is in flight (sent after the UPDATE was, within the bound of the commit):
    /// a deny is right, a grant is stale but within the published bound.
    Either,
}

fn expected(pair: &Pair, record: &Record, revocations: &[Revocation]) -> Expected {
    match pair.truth {
        Truth::Granted => Expected::Grant,
        Truth::Denied => Expected::Deny,
        Truth::Revocable(group) => {
            match revocations
                .iter()
                .find(|revocation| revocation.group == group)
            {
                None => Expected::Grant,
                Some(revocation) if record.received < revocation.started => Expected::Grant,
                Some(revocation) if record.sent > revocation.committed + revocation.bound => {
                    Expected::Deny
                }
                Some(_) => Expected::Either,
            }
        }
    }
}

/// Whether `record` is a 200 that is right by itself (not merely within a bound).
fn correct(pair: &Pair, record: &Record, revocations: &[Revocation]) -> bool {
    record.status == 200
        && match expected(pair, record, revocations) {
            Expected::Grant => record.granted == Some(true),
            Expected::Deny => record.granted == Some(false),
            Expected::Either => false,
        }
}

/// Whether `record` is a 200 that is right, or a grant of a revoked pair within the bound.
fn acceptable(pair: &Pair, record: &Record, revocations: &[Revocation]) -> bool {
    record.status == 200
        && match expected(pair, record, revocations) {
            Expected::Grant => record.granted == Some(true),
            Expected::Deny => record.granted == Some(false),
            Expected::Either => record.granted.is_some(),
        }
}

/// The first correct answer from `source` received at or after `after`.
fn first_correct<'a>(
    pairs: &[Pair],
    records: &'a [Record],
    revocations: &[Revocation],
    after: Instant,
    source: &str,
) -> Option<&'a Record> {
    records
        .iter()
        .filter(|record| {
            record.received >= after
                && record.source.as_deref() == Some(source)
                && correct(&pairs[record.pair], record, revocations)
        })
        .min_by_key(|record| record.received)
}

fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 10_000.0).round() / 10.0
}

/// The counts of one test.
#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    grants: usize,
    denies: usize,
    wrong_grants: usize,
    wrong_denies: usize,
    status_5xx: usize,
    /// 5xx that are not API.md's 503 `unavailable`.
    other_5xx: usize,
    other_errors: usize,
    /// Grants of revoked pairs sent after the commit, but within the bound.
    stale_within_bound: usize,
    /// Per revocation (in order): the latest grant of its pairs sent after its commit, in ms
    /// after the commit.
    last_revoked_grant_ms: Vec<Option<f64>>,
    statuses: BTreeMap<u16, usize>,
    sources: BTreeMap<String, usize>,
    latency_ms: [f64; 3],
    /// The first few wrong answers, for failure messages.
    examples: Vec<String>,
}

fn tally(pairs: &[Pair], records: &[Record], revocations: &[Revocation], t0: Instant) -> Tally {
    let mut tally = Tally {
        requests: records.len(),
        last_revoked_grant_ms: vec![None; revocations.len()],
        ..Tally::default()
    };
    let mut latencies: Vec<Duration> = Vec::with_capacity(records.len());
    for record in records {
        let pair = &pairs[record.pair];
        *tally.statuses.entry(record.status).or_default() += 1;
        if record.status != 0 {
            latencies.push(record.received - record.sent);
        }
        let describe = |what: &str| {
            format!(
                "{what}: {} sent at +{} ms, status {}, granted {:?}, source {:?}",
                pair.body,
                millis(record.sent - t0),
                record.status,
                record.granted,
                record.source
            )
        };
        if record.status >= 500 {
            tally.status_5xx += 1;
            if !(record.status == 503 && record.code.as_deref() == Some("unavailable")) {
                tally.other_5xx += 1;
                if tally.examples.len() < 10 {
                    tally.examples.push(describe("unexpected 5xx"));
                }
            }
            continue;
        }
        let granted = match (record.status, record.granted) {
            (200, Some(granted)) => granted,
            _ => {
                tally.other_errors += 1;
                if tally.examples.len() < 10 {
                    tally
                        .examples
                        .push(describe(&format!("other error {:?}", record.code)));
                }
                continue;
            }
        };
        *tally
            .sources
            .entry(record.source.clone().unwrap_or_default())
            .or_default() += 1;
        if granted {
            tally.grants += 1;
        } else {
            tally.denies += 1;
        }
        let mut after_commit = false;
        if let Truth::Revocable(group) = pair.truth
            && granted
        {
            for (index, revocation) in revocations.iter().enumerate() {
                if revocation.group == group && record.sent > revocation.committed {
                    after_commit = true;
                    let lag = millis(record.sent - revocation.committed);
                    let last = &mut tally.last_revoked_grant_ms[index];
                    *last = Some(last.map_or(lag, |last: f64| last.max(lag)));
                }
            }
        }
        match (expected(pair, record, revocations), granted) {
            (Expected::Grant, false) => {
                tally.wrong_denies += 1;
                if tally.examples.len() < 10 {
                    tally.examples.push(describe("wrong deny"));
                }
            }
            (Expected::Deny, true) => {
                tally.wrong_grants += 1;
                if tally.examples.len() < 10 {
                    tally.examples.push(describe("WRONG GRANT"));
                }
            }
            (Expected::Either, true) if after_commit => tally.stale_within_bound += 1,
            _ => {}
        }
    }
    latencies.sort();
    let at = |fraction: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((latencies.len().saturating_sub(1)) as f64 * fraction).round() as usize;
        latencies.get(index).copied().map_or(0.0, millis)
    };
    tally.latency_ms = [at(0.5), at(0.99), at(1.0)];
    tally
}

/// Where the reports go: `$CARGO_TARGET_DIR/fault-report`, else the workspace's `target/`.
fn report_dir() -> PathBuf {
    let workspace = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map_or_else(|| workspace.join("target"), |dir| workspace.join(dir));
    target.join("fault-report")
}

/// One test's figures.
struct Report<'a> {
    test: &'a str,
    tally: &'a Tally,
    revocations: &'a [Revocation],
    t0: Instant,
    recovery: Option<Duration>,
    fault_window: Duration,
    notes: String,
    details: Value,
}

impl Report<'_> {
    /// Writes the JSON file and prints the summary line.
    fn publish(&self) {
        let tally = self.tally;
        let revocations: Vec<Value> = self
            .revocations
            .iter()
            .zip(&tally.last_revoked_grant_ms)
            .map(|(revocation, last)| {
                json!({
                    "group": revocation.group,
                    "committed_at_ms": millis(revocation.committed - self.t0),
                    "statement_ms": millis(revocation.committed - revocation.started),
                    "bound_ms": millis(revocation.bound),
                    "last_grant_after_commit_ms": last,
                })
            })
            .collect();
        let mut details = json!({
            "clients": CLIENTS,
            "stale_grants_within_bound": tally.stale_within_bound,
            "non_503_5xx": tally.other_5xx,
            "revocations": revocations,
            "statuses": tally.statuses,
            "sources": tally.sources,
            "latency_ms": {
                "p50": tally.latency_ms[0],
                "p99": tally.latency_ms[1],
                "max": tally.latency_ms[2],
            },
        });
        if let (Some(target), Value::Object(extra)) = (details.as_object_mut(), &self.details) {
            target.extend(extra.clone());
        }
        let report = json!({
            "test": self.test,
            "requests": tally.requests,
            "grants": tally.grants,
            "denies": tally.denies,
            "wrong_grants": tally.wrong_grants,
            "wrong_denies": tally.wrong_denies,
            "status_5xx": tally.status_5xx,
            "other_errors": tally.other_errors,
            "recovery_ms": self.recovery.map(millis),
            "fault_window_ms": millis(self.fault_window),
            "notes": self.notes,
            "details": details,
        });
        let dir = report_dir();
        std::fs::create_dir_all(&dir).expect("report dir");
        let path = dir.join(format!("{}.json", self.test));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&report).expect("report json") + "\n",
        )
        .expect("write report");
        println!(
            "[faults_load/{}] requests {}, grants {}, denies {}, wrong grants {}, wrong denies {}, \
             5xx {}, other errors {}, recovery {:?} ms, fault window {} ms, latency p50/p99/max \
             {:?} ms; {} ({})",
            self.test,
            tally.requests,
            tally.grants,
            tally.denies,
            tally.wrong_grants,
            tally.wrong_denies,
            tally.status_5xx,
            tally.other_errors,
            self.recovery.map(millis),
            millis(self.fault_window),
            tally.latency_ms,
            self.notes,
            path.display()
        );
    }
}

/// The assertions every test makes: no wrong grant, no wrong deny, nothing but a 200 or a
/// 503 `unavailable`.
fn assert_correct(tally: &Tally) {
    assert_eq!(
        tally.wrong_grants, 0,
        "grants after a revocation's bound, or to strangers: {:#?}",
        tally.examples
    );
    assert_eq!(tally.wrong_denies, 0, "{:#?}", tally.examples);
    assert_eq!(tally.other_errors, 0, "{:#?}", tally.examples);
    assert_eq!(tally.other_5xx, 0, "{:#?}", tally.examples);
}

/// The end of both Redis tests, from the instant Redis is `back`: revokes group 1, waits for
/// a correct `l2` answer, revokes group 2 (Redis now holds its grants, stale there, and only
/// the invalidation oracle says so), runs past every bound and stops the load. The records,
/// the recovery time (back to the first correct `l2` answer) and the tally.
async fn finish_once_redis_answers(
    load: Load,
    pairs: &[Pair],
    client: &Client,
    revocations: &mut Vec<Revocation>,
    (back, t0): (Instant, Instant),
    what: &str,
) -> (Vec<Record>, Option<Duration>, Tally) {
    revocations.push(revoke(client, 1, HEALTHY_BOUND).await);
    let seen = load
        .wait_until(what, |records| {
            first_correct(pairs, records, revocations, back, "l2").is_some()
        })
        .await;
    revocations.push(revoke(client, 2, HEALTHY_BOUND).await);
    Load::run_past(seen, revocations).await;
    let records = load.stop().await;
    let recovered = first_correct(pairs, &records, revocations, back, "l2")
        .map(|record| record.received - back);
    let tally = tally(pairs, &records, revocations, t0);
    (records, recovered, tally)
}

/// Answers received while a fault was known to be on, by tier.
fn sources_between(records: &[Record], from: Instant, to: Instant) -> BTreeMap<String, usize> {
    let mut sources = BTreeMap::new();
    for record in records {
        if record.sent >= from && record.received <= to && record.status == 200 {
            *sources
                .entry(record.source.clone().unwrap_or_default())
                .or_default() += 1;
        }
    }
    sources
}

// ---------------------------------------------------------------------------------------------
// Redis faults

/// An origin on its own redis-server and a fresh database with the dataset, its listener up.
/// L1 is off so that every request goes to Redis (with L1 on, the hot pairs would never reach
/// it and the fault would go unseen). The breaker runs at its defaults (first probe after
/// 100 ms, doubling to 30 s): the recovery measured is what a deployment with defaults gets.
async fn origin_on_own_redis() -> (RedisServer, TestRedis, TestDb, Client, TestOrigin) {
    let server = RedisServer::start().await;
    let redis = TestRedis::on(&server.url());
    let db = TestDb::new().await;
    let client = db.client().await;
    support::load(&client, &dataset(), 0).await;
    let mut vars = support::origin_vars(&db, Some(&redis));
    faults::set(&mut vars, &[("AUTHZ_L1_CAPACITY", "0")]);
    let origin = TestOrigin::start(vars).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    (server, redis, db, client, origin)
}

/// Redis dies (SIGKILL) under load and comes back empty: Postgres answers meanwhile, nothing
/// is wrong and nothing is a 5xx; revocations made while Redis is down and right after it is
/// back are honoured within the healthy bound (the listener is on Postgres); answers come from
/// Redis again once its breaker's probe succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_load() {
    const TEST: &str = "redis_killed_mid_load";
    let (mut server, _redis, _db, client, origin) = origin_on_own_redis().await;
    let pairs = Arc::new(pairs());
    let load = Load::start(&origin.base, &pairs);
    let t0 = load.started;
    load.wait_until("every pair answered from Redis", |records| {
        every_hot_pair_answered(&pairs, records, t0, Some("l2"))
    })
    .await;
    Load::run_for(STEADY).await;

    let kill_started = Instant::now();
    server.kill();
    let killed = Instant::now();
    load.wait_until("100 answers sent after the kill", |records| {
        records
            .iter()
            .filter(|r| r.sent >= killed && r.status != 0)
            .count()
            >= 100
    })
    .await;
    let mut revocations = vec![revoke(&client, 0, HEALTHY_BOUND).await];
    tokio::time::sleep_until((kill_started + OUTAGE).into()).await;
    let restart_started = Instant::now();
    server.spawn().await;
    let restarted = Instant::now();
    let (records, recovered, tally) = finish_once_redis_answers(
        load,
        &pairs,
        &client,
        &mut revocations,
        (restarted, t0),
        "a correct answer from Redis after its restart",
    )
    .await;
    let during = sources_between(&records, killed, restart_started);
    let answered_during: usize = during.values().sum();
    Report {
        test: TEST,
        tally: &tally,
        revocations: &revocations,
        t0,
        recovery: recovered,
        fault_window: restarted - kill_started,
        notes: format!(
            "redis-server SIGKILLed at +{} ms under {CLIENTS} clients (L1 off), restarted empty \
             {} ms later; group 0 revoked while Redis was down, group 1 right after the restart, \
             group 2 once Redis answered again (bound {} ms, the listener is on Postgres); answers wholly inside the outage by tier \
             {during:?}; recovery = restart to the first correct answer from l2 (breaker at \
             its defaults: first probe after 100 ms, then 1.5 times longer each, up to 30 s)",
            millis(kill_started - t0),
            millis(restart_started - kill_started),
            millis(HEALTHY_BOUND)
        ),
        details: json!({"answers_during_outage": during}),
    }
    .publish();
    assert_correct(&tally);
    assert_eq!(tally.status_5xx, 0, "Postgres answers while Redis is down");
    assert!(
        answered_during > 100,
        "the load went on during the outage: {during:?}"
    );
    assert_eq!(
        during.get("l2"),
        None,
        "nothing can come from a dead Redis: {during:?}"
    );
    assert!(recovered.is_some());
    origin.stop().await;
}

/// Redis stops answering (`CLIENT PAUSE ... ALL`) under load: every command meets its 50 ms
/// deadline, the breaker opens, Postgres answers, nothing is wrong, slow beyond [`SLOW`] or a
/// 5xx; a revocation in the middle of the pause is honoured within the healthy bound, and
/// Redis answers again once the pause ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_paused_mid_load() {
    const TEST: &str = "redis_paused_mid_load";
    let (server, _redis, _db, client, origin) = origin_on_own_redis().await;
    let redis_client = redis::Client::open(server.url()).expect("redis url");
    let mut pauser = redis_client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    // Connected before the pause: its PING is queued by the pause and answered when it ends.
    let mut prober = redis_client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(PATIENCE),
        )
        .await
        .expect("redis");
    let pairs = Arc::new(pairs());
    let load = Load::start(&origin.base, &pairs);
    let t0 = load.started;
    load.wait_until("every pair answered from Redis", |records| {
        every_hot_pair_answered(&pairs, records, t0, Some("l2"))
    })
    .await;
    Load::run_for(STEADY).await;

    let paused = Instant::now();
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(u64::try_from(PAUSE.as_millis()).expect("pause"))
        .arg("ALL")
        .query_async(&mut pauser)
        .await
        .expect("CLIENT PAUSE");
    let probe = tokio::spawn(async move {
        let pong: String = redis::cmd("PING")
            .query_async(&mut prober)
            .await
            .expect("PING after the pause");
        assert_eq!(pong, "PONG");
        Instant::now()
    });
    load.wait_until("100 answers sent during the pause", |records| {
        records
            .iter()
            .filter(|r| r.sent >= paused && r.status != 0)
            .count()
            >= 100
    })
    .await;
    let mut revocations = vec![revoke(&client, 0, HEALTHY_BOUND).await];
    let resumed = probe.await.expect("probe");
    assert!(
        resumed - paused >= PAUSE - Duration::from_millis(50),
        "the pause ended early"
    );
    let (records, recovered, tally) = finish_once_redis_answers(
        load,
        &pairs,
        &client,
        &mut revocations,
        (resumed, t0),
        "a correct answer from Redis after the pause",
    )
    .await;
    // A command sent during the pause fails at its deadline; a request sent 100 ms into it
    // cannot have been answered by Redis.
    let during = sources_between(&records, paused + Duration::from_millis(100), resumed);
    let answered_during: usize = during.values().sum();
    let slowest_during = records
        .iter()
        .filter(|r| r.sent >= paused && r.sent <= resumed)
        .map(|r| r.received - r.sent)
        .max()
        .unwrap_or_default();
    Report {
        test: TEST,
        tally: &tally,
        revocations: &revocations,
        t0,
        recovery: recovered,
        fault_window: resumed - paused,
        notes: format!(
            "CLIENT PAUSE {} ALL at +{} ms under {CLIENTS} clients (L1 off, Redis deadline 50 ms); \
             group 0 revoked during the pause, group 1 right after it, group 2 once \
             Redis answered again (bound {} ms); answers \
             inside the pause by tier {during:?}, slowest {} ms; recovery = pause end to the \
             first correct answer from l2",
            PAUSE.as_millis(),
            millis(paused - t0),
            millis(HEALTHY_BOUND),
            millis(slowest_during)
        ),
        details: json!({
            "answers_during_pause": during,
            "slowest_during_pause_ms": millis(slowest_during),
        }),
    }
    .publish();
    assert_correct(&tally);
    assert_eq!(
        tally.status_5xx, 0,
        "Postgres answers while Redis is paused"
    );
    assert!(
        answered_during > 100,
        "the load went on during the pause: {during:?}"
    );
    assert_eq!(
        during.get("l2"),
        None,
        "a paused Redis answers nothing: {during:?}"
    );
    assert!(
        slowest_during < SLOW,
        "a request took {slowest_during:?} while Redis was paused"
    );
    assert!(recovered.is_some());
    origin.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Postgres killed

/// Postgres dies (`pg_ctl stop -m immediate`) under load and is restarted. Without Redis and
/// with the default `AUTHZ_SERVE_STALE_ON_ERROR=all` (ARCHITECTURE.md decision 11), what L1
/// holds fresh keeps being answered and everything else is a 503, never a guess: questions
/// first asked during the outage (cold pairs, half of whose true answer is a deny) get only
/// 503s. A revocation applied before the kill holds through it; one made right after the
/// restart (Postgres answers again; the listener may still be reconnecting, so caches are
/// bypassed) is honoured within the healthy bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_killed_mid_load() {
    const TEST: &str = "postgres_killed_mid_load";
    let data = dataset();
    // Warming off: it would cache the cold pairs (their owners' recent generations).
    let (cluster, origin) =
        faults::origin_on_own_cluster(&data, &[("AUTHZ_WARMING_INTERVAL_SECONDS", "0")]).await;
    let invalidation = &origin.state.invalidation;
    let url = cluster.url("authz");
    let pairs = Arc::new(pairs());
    let load = Load::start(&origin.base, &pairs);
    let t0 = load.started;
    load.wait_until("every pair answered", |records| {
        every_hot_pair_answered(&pairs, records, t0, None)
    })
    .await;
    Load::run_for(STEADY).await;

    // Group 0 is revoked while everything is healthy; its pairs are asked again once the
    // origin knows, so L1 holds their denies when Postgres dies.
    let client = support::connect(&url).await;
    let mut revocations = vec![revoke(&client, 0, HEALTHY_BOUND).await];
    wait_applied(&origin, &mut revocations[0]).await;
    let applied = revocations[0].applied.expect("applied");
    load.wait_until("every pair answered after the revocation", |records| {
        every_hot_pair_answered(&pairs, records, applied, None)
    })
    .await;
    drop(client);
    let reconnects_before = invalidation.reconnects();

    let kill_started = Instant::now();
    cluster.stop_immediate().await;
    let killed = Instant::now();
    load.ask_cold();
    while invalidation.is_connected() {
        assert!(
            killed.elapsed() < PATIENCE,
            "the listener never noticed the kill"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let noticed = Instant::now();
    tokio::time::sleep_until((kill_started + OUTAGE).into()).await;
    let restart_started = Instant::now();
    cluster.pg_start().await;
    let restarted = Instant::now();
    let client = support::connect(&url).await;
    revocations.push(revoke(&client, 1, HEALTHY_BOUND).await);
    load.wait_until(
        "a correct answer from Postgres after its restart",
        |records| first_correct(&pairs, records, &revocations, restarted, "db").is_some(),
    )
    .await;
    while !(invalidation.is_connected() && invalidation.reconnects() > reconnects_before) {
        assert!(
            restarted.elapsed() < PATIENCE,
            "the listener never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let relistened = Instant::now();
    wait_applied(&origin, &mut revocations[1]).await;
    let all_cold_seen = load
        .wait_until("every cold pair answered", |records| {
            let mut seen = vec![false; pairs.len()];
            for record in records.iter().filter(|r| r.status == 200) {
                seen[record.pair] = true;
            }
            seen.iter().all(|seen| *seen)
        })
        .await;
    Load::run_past(all_cold_seen, &revocations).await;
    let records = load.stop().await;

    let recovered = first_correct(&pairs, &records, &revocations, restarted, "db")
        .map(|record| record.received - restarted);
    // When the last cold pair got its first answer.
    let cold_answered = pairs
        .iter()
        .enumerate()
        .filter(|(_, pair)| pair.class == Class::Cold)
        .filter_map(|(index, _)| {
            records
                .iter()
                .find(|r| r.pair == index && r.status == 200)
                .map(|r| r.received)
        })
        .max()
        .expect("cold pairs answered");
    let tally = tally(&pairs, &records, &revocations, t0);

    // Which pairs L1 held fresh when Postgres died: answered (200) after the last thing that
    // invalidated them that the origin knew of (group 0's revocation) and before the kill.
    let fresh_since = |pair: &Pair, at: Instant| -> Option<Instant> {
        // The latest invalidation the origin knew of by `at`: a revocation of the pair's
        // group (from when it was applied; one not applied yet leaves nothing fresh) and the
        // listener's reconnect (it raises the floor: everything older is stale).
        let mut since = t0;
        if let Truth::Revocable(group) = pair.truth {
            for revocation in revocations.iter().filter(|r| r.group == group) {
                if revocation.started <= at {
                    since = since.max(revocation.applied?);
                }
            }
        }
        if relistened <= at {
            since = since.max(relistened);
        }
        Some(since)
    };
    let cached_at = |index: usize, at: Instant| -> bool {
        fresh_since(&pairs[index], at).is_some_and(|since| {
            records
                .iter()
                .any(|r| r.pair == index && r.status == 200 && r.sent >= since && r.received <= at)
        })
    };
    let mut cached_not_served = Vec::new();
    let mut unexcused_5xx = Vec::new();
    let mut cold_answered_while_down = 0usize;
    let mut cached_served = 0usize;
    for record in &records {
        let pair = &pairs[record.pair];
        let during = record.sent >= killed && record.received <= restart_started;
        if during && pair.class == Class::Cold && record.status == 200 {
            cold_answered_while_down += 1;
        }
        if during && pair.class != Class::Cold && cached_at(record.pair, kill_started) {
            if acceptable(pair, record, &revocations) && record.source.as_deref() == Some("l1") {
                cached_served += 1;
            } else if cached_not_served.len() < 10 {
                cached_not_served.push(format!(
                    "{} at +{} ms: {} {:?} {:?}",
                    pair.body,
                    millis(record.sent - t0),
                    record.status,
                    record.granted,
                    record.source
                ));
            }
        }
        if record.status >= 500 && cached_at(record.pair, record.sent) {
            unexcused_5xx.push(format!(
                "{} at +{} ms: {} {:?}",
                pair.body,
                millis(record.sent - t0),
                record.status,
                record.code
            ));
        }
    }
    let down = sources_between(&records, killed, restart_started);
    let after_restart: Vec<&Record> = records
        .iter()
        .filter(|r| r.sent >= restarted && r.status >= 500)
        .collect();
    let last_5xx_after_restart = after_restart
        .iter()
        .map(|r| r.sent - restarted)
        .max()
        .map(millis);
    Report {
        test: TEST,
        tally: &tally,
        revocations: &revocations,
        t0,
        recovery: recovered,
        fault_window: restarted - kill_started,
        notes: format!(
            "pg_ctl stop -m immediate at +{} ms under {CLIENTS} clients (L1 only, stale on error \
             `all`), {} cold pairs asked from then on; listener noticed in {} ms; restart begun \
             {} ms after the kill, accepting {} ms later; listener back {} ms after that; every \
             cold pair answered {} ms after the restart; {cached_served} answers of cached pairs \
             during the outage, all from l1; every 5xx on a pair no cache held fresh: {}; group \
             0 revoked before the kill, group 1 right after the restart (bound {} ms); \
             recovery = restart to the first correct answer from db",
            millis(kill_started - t0),
            2 * COLD,
            millis(noticed - killed),
            millis(restart_started - kill_started),
            millis(restarted - restart_started),
            millis(relistened - restarted),
            millis(cold_answered - restarted),
            unexcused_5xx.is_empty(),
            millis(HEALTHY_BOUND)
        ),
        details: json!({
            "answers_during_outage": down,
            "cached_answers_during_outage": cached_served,
            "cached_not_served": cached_not_served.len(),
            "cold_answered_while_down": cold_answered_while_down,
            "status_5xx_sent_after_restart": after_restart.len(),
            "last_5xx_sent_after_restart_ms": last_5xx_after_restart,
            "unexcused_5xx": unexcused_5xx.len(),
            "listener_noticed_ms": millis(noticed - killed),
            "postgres_start_ms": millis(restarted - restart_started),
            "listener_back_after_restart_ms": millis(relistened - restarted),
        }),
    }
    .publish();
    assert_correct(&tally);
    assert!(
        unexcused_5xx.is_empty(),
        "5xx for pairs a cache held fresh: {unexcused_5xx:#?}"
    );
    assert!(
        cached_not_served.is_empty(),
        "cached pairs not served from L1 while Postgres was down: {cached_not_served:#?}"
    );
    assert!(
        cached_served > 100,
        "cached pairs were asked during the outage"
    );
    assert_eq!(
        cold_answered_while_down, 0,
        "a pair never cached was answered without Postgres"
    );
    assert!(tally.status_5xx > 0, "the cold pairs met the outage (503s)");
    assert!(recovered.is_some());
    origin.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The listener's connection killed

/// The change listener's backend is terminated under load and a revocation commits right
/// after, before the listener is back, so its notice is lost. Caches are bypassed while the
/// listener is away (every answer in the gap comes from Postgres), the reconnect raises the
/// floor, and the lost revocation is honoured within [`LISTENER_GAP_BOUND`]; a revocation
/// after the reconnect within the healthy bound. Postgres answers throughout: no 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_killed_mid_load() {
    const TEST: &str = "listener_killed_mid_load";
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let client = support::connect(&format!(
        "{}?application_name={}",
        db.url,
        faults::TEST_APPLICATION
    ))
    .await;
    support::load(&client, &dataset(), 0).await;
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let invalidation = &origin.state.invalidation;
    let pairs = Arc::new(pairs());
    let load = Load::start(&origin.base, &pairs);
    let t0 = load.started;
    load.wait_until("every pair answered from L1", |records| {
        every_hot_pair_answered(&pairs, records, t0, Some("l1"))
    })
    .await;
    Load::run_for(STEADY).await;

    // The kill and the revocation in one round trip: the listener's backend is signalled,
    // then the revocation commits at once, long before the listener's first reconnect (50 ms
    // backoff), so its notice is lost. The commit does not wait for the WAL flush, which on a
    // busy disk can take longer than the reconnect.
    // The quiet pairs, cached (L1 and Redis) before the kill, are asked again only after the
    // reconnect: what answers them then is what the gap left in the caches.
    load.set_quiet(false);
    let pid = faults::listener_backend(&client, &db.name).await;
    let reconnects_before = invalidation.reconnects();
    let mut revocations = vec![
        revoke_with(
            &client,
            0,
            LISTENER_GAP_BOUND,
            &format!("SET LOCAL synchronous_commit = off; SELECT pg_terminate_backend({pid});"),
        )
        .await,
    ];
    let killed = revocations[0].started;
    let connected_at_commit = invalidation.is_connected();
    // Poll the gap: when the origin is first seen disconnected, and the last instant it is
    // seen not yet reconnected.
    let mut noticed = None;
    let mut still_out = killed;
    let mut revision_while_out = 0;
    let relistened = loop {
        let now = Instant::now();
        let newest = invalidation.newest_revision();
        if invalidation.reconnects() > reconnects_before && invalidation.is_connected() {
            break now;
        }
        if !invalidation.is_connected() {
            noticed.get_or_insert(now);
        }
        still_out = now;
        revision_while_out = newest;
        assert!(
            killed.elapsed() < PATIENCE,
            "the listener never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let noticed = noticed.unwrap_or(relistened);
    // A reconnect after the commit reads a floor at or above the revocation's revision, so
    // the revision just below it is stale whatever it depends on; a reconnect before the
    // commit would have heard the notice and the gap would not have been tested.
    let back_before_commit = invalidation.is_fresh_at(revocations[0].revision - 1, &[]);
    load.set_quiet(true);
    revocations.push(revoke(&client, 1, HEALTHY_BOUND).await);
    let seen = load
        .wait_until("a correct answer from L1 after the reconnect", |records| {
            first_correct(&pairs, records, &revocations, relistened, "l1").is_some()
        })
        .await;
    Load::run_past(seen, &revocations).await;
    let records = load.stop().await;

    // The origin had not learnt the revision by its last look before the reconnect: the
    // notice was lost with the connection, and only the reconnect's floor covers it.
    let notice_lost = revision_while_out < revocations[0].revision;
    let recovered = first_correct(&pairs, &records, &revocations, relistened, "l1")
        .map(|record| record.received - relistened);
    let tally = tally(&pairs, &records, &revocations, t0);
    // Requests wholly inside the gap (sent after the origin was seen disconnected, answered
    // before it was last seen not reconnected) bypass every cache.
    let gap = sources_between(&records, noticed, still_out);
    let cached_in_gap: usize = gap
        .iter()
        .filter(|(source, _)| source.as_str() != "db")
        .map(|(_, count)| count)
        .sum();
    // The revoked quiet pairs after the reconnect: L1 and Redis held their grants from before
    // the kill, and only the reconnect's floor tells that they are stale.
    let quiet_after: Vec<&Record> = records
        .iter()
        .filter(|r| {
            let pair = &pairs[r.pair];
            pair.class == Class::Quiet && pair.truth == Truth::Revocable(0) && r.sent >= relistened
        })
        .collect();
    let quiet_granted = quiet_after
        .iter()
        .filter(|r| r.granted == Some(true))
        .count();
    Report {
        test: TEST,
        tally: &tally,
        revocations: &revocations,
        t0,
        recovery: recovered,
        fault_window: relistened - killed,
        notes: format!(
            "pg_terminate_backend(listener) at +{} ms under {CLIENTS} clients (L1 and Redis), \
             group 0 revoked in the same transaction, committed {} ms after it (origin still \
             connected then: {connected_at_commit}; its notice lost: {notice_lost}), bound {} \
             ms (two heartbeats); disconnect seen after {} ms, \
             listener back after {} ms; answers wholly inside the gap by tier {gap:?}; group 1 \
             revoked after the reconnect (bound {} ms); recovery = reconnect to the first \
             correct answer from l1",
            millis(killed - t0),
            millis(revocations[0].committed - killed),
            millis(LISTENER_GAP_BOUND),
            millis(noticed - killed),
            millis(relistened - killed),
            millis(HEALTHY_BOUND)
        ),
        details: json!({
            "answers_in_gap": gap,
            "connected_at_commit": connected_at_commit,
            "notice_lost": notice_lost,
            "revoked_quiet_answers_after_reconnect": quiet_after.len(),
            "revoked_quiet_grants_after_reconnect": quiet_granted,
            "disconnect_seen_after_ms": millis(noticed - killed),
        }),
    }
    .publish();
    assert_correct(&tally);
    assert_eq!(
        tally.status_5xx, 0,
        "Postgres answers while the listener is away"
    );
    assert!(
        !back_before_commit,
        "the listener was back before the revocation committed: its floor is below it"
    );
    assert_eq!(cached_in_gap, 0, "caches answered in the gap: {gap:?}");
    assert!(
        quiet_after.len() >= 10,
        "the revoked quiet pairs were asked after the reconnect"
    );
    assert_eq!(
        quiet_granted, 0,
        "a grant cached before the lost notice survived the reconnect"
    );
    assert!(
        invalidation.newest_revision() >= revocations[1].revision,
        "the reconnected listener hears notices again"
    );
    assert!(recovered.is_some());
    origin.stop().await;
}
