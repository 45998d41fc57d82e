//! Fault injection against real components: Redis killed and restarted, Postgres stopped and
//! restarted, and the change listener's backend terminated. Tests that stop a server start
//! their own (redis-server, or a Postgres cluster made with initdb) on a free port bound to
//! 127.0.0.1, never the machine's; Drop guards kill them and remove their directories even when
//! an assertion fails. Measured figures are printed (run with `--nocapture`). The same faults
//! under concurrent load are in `faults_load.rs`, which reuses the servers and helpers marked
//! `pub(crate)` here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authz_core::dataset::Dataset;
use serde_json::{Value, json};

use crate::support::{self, TestDb, TestOrigin, TestRedis};

pub(crate) const OWNER: &str = "a0000000-0000-4000-8000-000000000001";
pub(crate) const READER: &str = "a0000000-0000-4000-8000-000000000002";
pub(crate) const STRANGER: &str = "a0000000-0000-4000-8000-000000000003";
const OPERATIONS: [&str; 6] = ["read", "download", "write", "delete", "share", "admin"];
/// The slowest answer tolerated while a dependency is down.
const SLOW: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------------
// Fixtures

pub(crate) fn generation(n: usize) -> String {
    format!("d0000000-0000-4000-8000-{n:012}")
}

/// OWNER owns generations 1..=count; READER holds a `download` share of generation 1;
/// STRANGER has nothing.
pub(crate) fn dataset(count: usize) -> Dataset {
    let generations: Vec<Value> = (1..=count)
        .map(|n| json!({"id": generation(n), "user_id": OWNER, "status": "completed"}))
        .collect();
    serde_json::from_value(json!({
        "users": [{"id": OWNER}, {"id": READER}, {"id": STRANGER}],
        "generations": generations,
        "generation_shares": [{
            "generation_id": generation(1),
            "shared_with_user_id": READER,
            "permission_level": "download",
        }],
    }))
    .expect("dataset")
}

pub(crate) fn question(user: &str, n: usize, operation: &str) -> Value {
    json!({
        "user_id": user,
        "resource_type": "generation",
        "resource_id": generation(n),
        "operation": operation,
    })
}

/// One HTTP answer and its round trip.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    elapsed: Duration,
}

impl Reply {
    pub(crate) fn granted(&self) -> Option<bool> {
        self.body["granted"].as_bool()
    }

    pub(crate) fn source(&self) -> Option<&str> {
        self.body["source"].as_str()
    }
}

pub(crate) async fn ask(origin: &TestOrigin, body: Value) -> Reply {
    let started = Instant::now();
    let (status, body) = origin.authorize(body).await;
    Reply {
        status,
        body,
        elapsed: started.elapsed(),
    }
}

async fn ask_batch(origin: &TestOrigin, checks: Vec<Value>) -> Reply {
    let started = Instant::now();
    let (status, body) = origin
        .post(
            "/v1/authorize/batch",
            Some(support::SERVICE_TOKEN),
            json!({ "checks": checks }),
        )
        .await;
    Reply {
        status,
        body,
        elapsed: started.elapsed(),
    }
}

/// The health details (the admin token's view, probed for each call).
async fn health(origin: &TestOrigin) -> (u16, Value) {
    origin
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await
}

/// Counts of one phase: requests, wrong answers (a 200 whose `granted` is not the truth),
/// 5xx, latencies.
#[derive(Default)]
pub(crate) struct Tally {
    sent: usize,
    pub(crate) wrong: usize,
    pub(crate) server_errors: usize,
    latencies: Vec<Duration>,
}

impl Tally {
    /// Records `reply` to a question whose true answer is `expected`.
    pub(crate) fn record(&mut self, reply: &Reply, expected: bool) {
        self.sent += 1;
        self.latencies.push(reply.elapsed);
        if reply.status >= 500 {
            self.server_errors += 1;
        } else if reply.status != 200 || reply.granted() != Some(expected) {
            self.wrong += 1;
        }
    }

    fn max(&self) -> Duration {
        self.latencies.iter().copied().max().unwrap_or_default()
    }

    fn percentile(&self, fraction: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "requests {}, wrong answers {}, 5xx {}, latency p50 {:?} p99 {:?} max {:?}",
            self.sent,
            self.wrong,
            self.server_errors,
            self.percentile(0.5),
            self.percentile(0.99),
            self.max()
        )
    }
}

/// The decision keys (the `authorization` tier's) under the test prefix; the other tiers'
/// keys (fact pieces) are left out.
async fn decision_keys(redis: &TestRedis) -> Vec<String> {
    let tier = format!("{}authorization:", redis.prefix);
    let mut keys = redis.keys().await;
    keys.retain(|key| key.starts_with(&tier));
    keys
}

/// Waits until at least `count` decision keys exist under the test prefix.
async fn wait_for_keys(redis: &TestRedis, count: usize) -> Vec<String> {
    let keys = redis.wait_for_keys(count, ":authorization:").await;
    assert!(
        keys.len() >= count,
        "expected {count} decision keys under {}, found {keys:?} among {:?}",
        redis.prefix,
        redis.keys().await
    );
    keys
}

// ---------------------------------------------------------------------------------------------
// Servers of our own

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it right after).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port()
}

/// A directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(tag: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let path = std::env::temp_dir().join(format!("authz-faults-{tag}-{}", &id[..12]));
        std::fs::create_dir_all(&path).expect("scratch dir");
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn redis_ping(url: &str) -> redis::RedisResult<String> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut connection).await
}

/// A redis-server child process on a fixed free port, killed (SIGKILL) on drop.
pub(crate) struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
}

impl RedisServer {
    pub(crate) async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            child: None,
            dir: ScratchDir::new("redis"),
        };
        server.spawn().await;
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts redis-server on the port (again), without persistence, and waits for PONG.
    pub(crate) async fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir.0)
            .arg("--logfile")
            .arg(self.dir.0.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        let url = self.url();
        loop {
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), redis_ping(&url)).await
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {url} did not answer: {}",
                std::fs::read_to_string(self.dir.0.join("redis.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no goodbye to clients, nothing saved.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A Postgres program, run as `postgres` when we are root (initdb refuses root).
fn postgres_command(program: &str) -> Command {
    let binary = std::env::var_os("AUTHZ_PG_BIN")
        .map_or_else(
            || PathBuf::from("/usr/lib/postgresql/15/bin"),
            PathBuf::from,
        )
        .join(program);
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(binary);
        command
    } else {
        Command::new(binary)
    }
}

/// Runs `command` to completion; panics with its output (and `log`, if any) when it fails.
async fn run(command: Command, log: Option<&PathBuf>) {
    let description = format!("{command:?}");
    let output = tokio::process::Command::from(command)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|error| panic!("{description}: {error}"));
    assert!(
        output.status.success(),
        "{description}: {}\n{}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        log.and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    );
}

/// A throwaway Postgres cluster (initdb, trust auth) on a free port, its socket in its own
/// directory; stopped (immediate) and removed on drop.
pub(crate) struct PgCluster {
    port: u16,
    dir: ScratchDir,
    /// Extra `postgres` options (`-c ...`).
    options: String,
}

impl PgCluster {
    pub(crate) async fn start() -> Self {
        let cluster = Self::init("").await;
        cluster.pg_start().await;
        cluster
    }

    /// A cluster serving TLS (`ssl=on`) with `certificate` and `key` (PEM) as the server's.
    pub(crate) async fn start_with_tls(certificate: &str, key: &str) -> Self {
        let cluster = Self::init("-c ssl=on").await;
        for (name, content) in [("server.crt", certificate), ("server.key", key)] {
            let path = cluster.data().join(name);
            std::fs::write(&path, content).expect("write the server's certificate");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod");
            if running_as_root() {
                let mut chown = Command::new("chown");
                chown.arg("postgres:postgres").arg(&path);
                run(chown, None).await;
            }
        }
        cluster.pg_start().await;
        cluster
    }

    async fn init(options: &str) -> Self {
        let cluster = Self {
            port: free_port(),
            dir: ScratchDir::new("pg"),
            options: options.to_owned(),
        };
        if running_as_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&cluster.dir.0);
            run(chown, None).await;
        }
        let mut initdb = postgres_command("initdb");
        initdb
            .arg("-D")
            .arg(cluster.data())
            .args(["--auth=trust", "-U", "postgres", "--no-sync", "--no-locale"])
            .args(["-E", "UTF8"]);
        run(initdb, None).await;
        cluster
    }

    /// A streaming replica of this cluster (`pg_basebackup -R -X stream`), started on a port
    /// of its own. Its `primary_conninfo` names this cluster's port.
    pub(crate) async fn start_replica(&self) -> Self {
        let replica = Self {
            port: free_port(),
            dir: ScratchDir::new("pg-replica"),
            options: String::new(),
        };
        if running_as_root() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:postgres").arg(&replica.dir.0);
            run(chown, None).await;
        }
        let mut backup = postgres_command("pg_basebackup");
        backup
            .arg("-D")
            .arg(replica.data())
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-R", "-X", "stream", "--no-sync", "--checkpoint=fast"]);
        run(backup, Some(&self.log())).await;
        replica.pg_start().await;
        replica
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.0.join("postgres.log")
    }

    /// The cluster's port.
    pub(crate) const fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// `pg_ctl start -w` on the cluster's port.
    pub(crate) async fn pg_start(&self) {
        let mut start = postgres_command("pg_ctl");
        start
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "20", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {}",
                self.port,
                self.dir.0.display(),
                self.options
            ))
            .arg("start");
        run(start, Some(&self.log())).await;
    }

    fn stop_command(&self) -> Command {
        let mut stop = postgres_command("pg_ctl");
        stop.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        stop
    }

    /// `pg_ctl stop -m immediate`: every backend is killed, no goodbye to clients.
    pub(crate) async fn stop_immediate(&self) {
        run(self.stop_command(), Some(&self.log())).await;
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .stop_command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A test origin's environment on the database at `url` (no Redis).
pub(crate) fn vars_on(url: &str) -> HashMap<String, String> {
    [
        ("POSTGRES_PRIMARY_URL", url),
        ("AUTHZ_SERVICE_TOKEN", support::SERVICE_TOKEN),
        ("AUTHZ_ADMIN_TOKEN", support::ADMIN_TOKEN),
        ("AUTHZ_JWT_SECRET", support::JWT_SECRET),
        ("AUTHZ_LISTEN", "127.0.0.1:0"),
        // As in support::origin_vars: warming's first pass would put the questions a fault
        // test asks into L1 before it asks them, depending on how fast it runs.
        ("AUTHZ_WARMING_INTERVAL_SECONDS", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub(crate) fn set(vars: &mut HashMap<String, String>, pairs: &[(&str, &str)]) {
    for (key, value) in pairs {
        vars.insert((*key).to_owned(), (*value).to_owned());
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Redis dies and comes back

/// What the health endpoint said while Redis was down.
struct DownHealth {
    since: Instant,
    checks: usize,
    degraded_after: Option<Duration>,
    breaker_open_after: Option<Duration>,
}

impl DownHealth {
    const fn new(since: Instant) -> Self {
        Self {
            since,
            checks: 0,
            degraded_after: None,
            breaker_open_after: None,
        }
    }

    fn observe(&mut self, code: u16, body: &Value) {
        self.checks += 1;
        assert_eq!(code, 200, "Postgres is up: degraded, not down: {body}");
        assert_ne!(body["status"], "ok", "Redis is dead: {body}");
        if body["status"] == "degraded" && self.degraded_after.is_none() {
            self.degraded_after = Some(self.since.elapsed());
        }
        if body["redis"]["tiers"]["authorization"]["breaker"] == "open"
            && self.breaker_open_after.is_none()
        {
            self.breaker_open_after = Some(self.since.elapsed());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_answers_stay_correct_health_degrades_and_redis_comes_back() {
    const GENERATIONS: usize = 12;
    // Generation GENERATIONS + 1 is asked only after Redis is back.
    let mut server = RedisServer::start().await;
    let redis = TestRedis::on(&server.url());
    let db = TestDb::new().await;
    let client = db.client().await;
    support::load(&client, &dataset(GENERATIONS + 1), 0).await;
    let mut vars = support::origin_vars(&db, Some(&redis));
    set(
        &mut vars,
        &[
            ("AUTHZ_BREAKER_FAILURES", "2"),
            ("AUTHZ_REDIS_TIMEOUT_MS", "50"),
        ],
    );
    let origin = TestOrigin::start(vars.clone()).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;

    // Warm: computed from Postgres, then from L1, and written to Redis.
    let shared = question(READER, 1, "download");
    let stranger = question(STRANGER, 1, "read");
    for (body, expected) in [(&shared, true), (&stranger, false)] {
        let first = ask(&origin, body.clone()).await;
        assert_eq!(
            (first.status, first.granted()),
            (200, Some(expected)),
            "{}",
            first.body
        );
        assert!(
            matches!(first.source(), Some("db" | "l2")),
            "{}",
            first.body
        );
        let second = ask(&origin, body.clone()).await;
        assert_eq!(
            (second.granted(), second.source()),
            (Some(expected), Some("l1")),
            "{}",
            second.body
        );
    }
    let keys = wait_for_keys(&redis, 2).await;
    let tier_prefix = format!("{}authorization:a1/", redis.prefix);
    assert!(
        keys.iter().all(|key| key.starts_with(&tier_prefix)),
        "{keys:?}"
    );
    let (code, body) = health(&origin).await;
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")), "{body}");

    // Kill Redis.
    server.kill();
    let killed = Instant::now();
    let mut tally = Tally::default();
    let mut seen = DownHealth::new(killed);
    // Questions never asked before miss L1 and go to Redis first; the breaker must route
    // around it and Postgres must answer.
    for n in 1..=GENERATIONS {
        for operation in OPERATIONS {
            let reply = ask(&origin, question(OWNER, n, operation)).await;
            tally.record(&reply, true);
        }
        if n > 1 {
            let reply = ask(&origin, question(STRANGER, n, "read")).await;
            tally.record(&reply, false);
        }
        for (body, expected) in [(&shared, true), (&stranger, false)] {
            let reply = ask(&origin, body.clone()).await;
            tally.record(&reply, expected);
        }
        let (code, body) = health(&origin).await;
        seen.observe(code, &body);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while seen.breaker_open_after.is_none() && Instant::now() < deadline {
        let (code, body) = health(&origin).await;
        seen.observe(code, &body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A revocation while Redis is down: correctness comes from Postgres and the notices.
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let revision = support::current_revision(&client).await;
    origin.wait_revision(revision).await;
    let revoked = ask(&origin, shared.clone()).await;
    tally.record(&revoked, false);
    assert_eq!(
        (
            revoked.status,
            revoked.granted(),
            revoked.body["reason"].as_str(),
            revoked.source()
        ),
        (200, Some(false), Some("no_relationship"), Some("db")),
        "{}",
        revoked.body
    );
    for _ in 0..5 {
        let reply = ask(&origin, shared.clone()).await;
        tally.record(&reply, false);
    }
    let (code, body) = health(&origin).await;
    seen.observe(code, &body);
    let down_for = killed.elapsed();

    println!(
        "[faults/redis-down] {}; health checks {}, degraded seen after {:?}, authorization \
         breaker open seen after {:?} (Redis down {down_for:?})",
        tally.summary(),
        seen.checks,
        seen.degraded_after,
        seen.breaker_open_after
    );
    assert_eq!(tally.server_errors, 0, "no 5xx while only Redis is down");
    assert_eq!(tally.wrong, 0, "no wrong answer while Redis is down");
    assert!(
        tally.max() < SLOW,
        "a request took {:?} with Redis down",
        tally.max()
    );
    assert!(seen.degraded_after.is_some(), "health never said degraded");
    assert!(
        seen.breaker_open_after.is_some(),
        "the authorization tier's breaker was never reported open"
    );

    // Redis comes back (empty: no persistence) on the same port.
    server.spawn().await;
    let restarted = Instant::now();
    let mut polls = 0usize;
    let body = loop {
        polls += 1;
        let (code, body) = health(&origin).await;
        if code == 200 && body["status"] == "ok" {
            break body;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "health did not return to ok after Redis came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let recovered_after = restarted.elapsed();
    assert_eq!(
        body["redis"]["tiers"]["authorization"]["breaker"], "closed",
        "{body}"
    );
    let leftover = decision_keys(&redis).await;
    assert!(
        leftover.is_empty(),
        "a restarted Redis is empty: {leftover:?}"
    );

    // New decisions are written to Redis again.
    let fresh = GENERATIONS + 1;
    let mut after = Tally::default();
    let mut fresh_questions: Vec<(Value, bool)> = OPERATIONS
        .iter()
        .map(|operation| (question(OWNER, fresh, operation), true))
        .collect();
    fresh_questions.push((question(STRANGER, fresh, "read"), false));
    for (body, expected) in &fresh_questions {
        let reply = ask(&origin, body.clone()).await;
        after.record(&reply, *expected);
        // Computed, not a cached decision (its facts may come from Postgres or from the fact
        // pieces just written to Redis).
        assert!(
            matches!(reply.source(), Some("db" | "l2")),
            "{}",
            reply.body
        );
    }
    let written_after = Instant::now();
    let keys = wait_for_keys(&redis, fresh_questions.len()).await;
    let written_in = written_after.elapsed();
    assert!(
        keys.iter().all(|key| key.starts_with(&tier_prefix)),
        "{keys:?}"
    );

    // An origin that never computed them finds them in Redis.
    let second = TestOrigin::start(vars).await;
    for (body, expected) in &fresh_questions {
        let reply = ask(&second, body.clone()).await;
        after.record(&reply, *expected);
        assert_eq!(
            (reply.status, reply.granted(), reply.source()),
            (200, Some(*expected), Some("l2")),
            "{}",
            reply.body
        );
    }
    println!(
        "[faults/redis-back] health ok {recovered_after:?} after restart ({polls} polls, probe 300 ms); \
         {} keys written again within {written_in:?}; second origin served from l2; {}",
        keys.len(),
        after.summary()
    );
    assert_eq!((after.wrong, after.server_errors), (0, 0));
    second.stop().await;
    origin.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Postgres dies and comes back

/// A Postgres cluster of the test's own, migrated and holding `data`, and an origin on it
/// without Redis, with 60 s TTLs and `extra` settings, its listener connected. The setup
/// connections are closed before it returns, so stopping the cluster stops only the origin's.
pub(crate) async fn origin_on_own_cluster(
    data: &Dataset,
    extra: &[(&str, &str)],
) -> (PgCluster, TestOrigin) {
    let cluster = PgCluster::start().await;
    let admin = support::connect(&cluster.url("postgres")).await;
    admin
        .batch_execute("CREATE DATABASE authz")
        .await
        .expect("create database");
    let url = cluster.url("authz");
    authz_origin::db::migrate::run(&url).await.expect("migrate");
    let client = support::connect(&url).await;
    support::load(&client, data, 0).await;
    let revision = support::current_revision(&client).await;
    let mut vars = vars_on(&url);
    set(
        &mut vars,
        &[
            ("AUTHZ_GRANT_TTL_MS", "60000"),
            ("AUTHZ_DENY_TTL_MS", "60000"),
        ],
    );
    set(&mut vars, extra);
    let origin = TestOrigin::start(vars).await;
    origin.wait_revision(revision).await;
    (cluster, origin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_cached_answers_continue_misses_get_503_and_nothing_is_granted_from_an_error()
 {
    // No Redis: the only cache is L1, so what survives the outage is exactly what L1 holds.
    let (cluster, origin) = origin_on_own_cluster(&dataset(2), &[]).await;

    let granted = question(OWNER, 1, "read");
    let denied = question(STRANGER, 1, "read");
    // Never asked before the outage; its true answer is a grant (OWNER owns generation 2).
    let missing = question(OWNER, 2, "read");
    for (body, expected) in [(&granted, true), (&denied, false)] {
        let first = ask(&origin, body.clone()).await;
        assert_eq!(
            (first.status, first.granted(), first.source()),
            (200, Some(expected), Some("db")),
            "{}",
            first.body
        );
        let second = ask(&origin, body.clone()).await;
        assert_eq!(second.source(), Some("l1"), "{}", second.body);
    }
    let reconnects_before = origin.state.invalidation.reconnects();

    // Stop Postgres: every backend dies at once, the listener's too.
    cluster.stop_immediate().await;
    let stopped = Instant::now();
    while origin.state.invalidation.is_connected() {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the listener did not notice Postgres stopping"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let noticed_in = stopped.elapsed();

    let mut cached = Tally::default();
    let mut miss_503 = 0usize;
    let mut grants_from_error = 0usize;
    let mut batch_503 = 0usize;
    let mut down_503 = 0usize;
    let mut misses_sent = 0usize;
    let mut unexpected = Vec::new();
    for _ in 0..10 {
        for (body, expected) in [(&granted, true), (&denied, false)] {
            let reply = ask(&origin, body.clone()).await;
            cached.record(&reply, expected);
            if reply.source() != Some("l1") {
                unexpected.push(format!("cached question answered {}", reply.body));
            }
        }
        let reply = ask(&origin, missing.clone()).await;
        misses_sent += 1;
        if reply.status == 503 && reply.body["error"]["code"] == "unavailable" {
            miss_503 += 1;
        } else {
            unexpected.push(format!("miss answered {} {}", reply.status, reply.body));
        }
        if reply.granted() == Some(true) {
            grants_from_error += 1;
        }
        let batch = ask_batch(&origin, vec![granted.clone(), missing.clone()]).await;
        if batch.status == 503 && batch.body["error"]["code"] == "unavailable" {
            batch_503 += 1;
        } else {
            unexpected.push(format!(
                "batch with a miss answered {} {}",
                batch.status, batch.body
            ));
        }
        if batch.body.to_string().contains("\"granted\":true") && batch.status == 200 {
            grants_from_error += 1;
        }
        // A batch of cached questions is still answered, in order, from L1.
        let batch = ask_batch(&origin, vec![granted.clone(), denied.clone()]).await;
        let results: Vec<(Option<bool>, Option<&str>)> = batch.body["results"]
            .as_array()
            .map(|results| {
                results
                    .iter()
                    .map(|r| (r["granted"].as_bool(), r["source"].as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if (batch.status, results.as_slice())
            != (
                200,
                [(Some(true), Some("l1")), (Some(false), Some("l1"))].as_slice(),
            )
        {
            unexpected.push(format!(
                "cached batch answered {} {}",
                batch.status, batch.body
            ));
        }
        let (code, body) = health(&origin).await;
        if code == 503 && body["status"] == "down" {
            down_503 += 1;
        } else {
            unexpected.push(format!("health while Postgres is down: {code} {body}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down_for = stopped.elapsed();

    // Postgres comes back on the same port.
    cluster.pg_start().await;
    let restarted = Instant::now();
    let mut recovery_503 = 0usize;
    let answered_after = loop {
        let reply = ask(&origin, missing.clone()).await;
        if reply.status == 200 {
            assert_eq!(reply.granted(), Some(true), "{}", reply.body);
            // Computed from the database once it is back: by this request, or by an earlier
            // attempt whose answer lost a race with the 503 path (then it is served from L1).
            assert!(
                matches!(reply.source(), Some("db" | "l1")),
                "{}",
                reply.body
            );
            break restarted.elapsed();
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        recovery_503 += 1;
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "the miss was never answered after Postgres came back: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let health_ok_after = loop {
        let (code, body) = health(&origin).await;
        if code == 200 && body["status"] == "ok" {
            break restarted.elapsed();
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "health did not return to ok: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(origin.state.invalidation.is_connected());
    assert!(origin.state.invalidation.reconnects() > reconnects_before);
    let mut after = Tally::default();
    for (body, expected) in [(&granted, true), (&denied, false), (&missing, true)] {
        let reply = ask(&origin, body.clone()).await;
        after.record(&reply, expected);
    }

    println!(
        "[faults/postgres-down] listener noticed the stop in {noticed_in:?}; Postgres down {down_for:?}; \
         cached questions: {}; misses sent {misses_sent}, 503 {miss_503}, batches with a miss 503 \
         {batch_503}/10, health down(503) {down_503}/10, grants from an error {grants_from_error}",
        cached.summary()
    );
    println!(
        "[faults/postgres-back] miss answered {answered_after:?} after restart ({recovery_503} 503s \
         meanwhile), health ok after {health_ok_after:?}, listener reconnects {}; after: {}",
        origin.state.invalidation.reconnects(),
        after.summary()
    );
    assert_eq!(grants_from_error, 0, "a grant was made from an error");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!((cached.wrong, cached.server_errors), (0, 0));
    assert_eq!(miss_503, misses_sent);
    assert_eq!((after.wrong, after.server_errors), (0, 0));
    origin.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. The listener's backend is terminated

/// The application_name of the test's own connections, so they are never taken for the
/// listener.
pub(crate) const TEST_APPLICATION: &str = "authz-faults-test";

/// The listener's backend: the client backend on `database` named `authz-origin/listener`, or
/// (for a listener that sets no application_name) one that is neither ours nor one of the
/// origin's pools (`authz-origin/<pool>`) whose last statement is the listener's (`LISTEN
/// authz_changes`, then `SELECT authz_current_revision()`).
pub(crate) async fn listener_backend(client: &tokio_postgres::Client, database: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = client
            .query(
                "SELECT pid, application_name, state, query FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend' \
                   AND application_name <> $2 \
                   AND (application_name = 'authz-origin/listener' \
                        OR (application_name NOT LIKE 'authz-origin/%' \
                            AND (query ILIKE 'LISTEN%' \
                                 OR query ILIKE '%authz_current_revision()%')))",
                &[&database, &TEST_APPLICATION],
            )
            .await
            .expect("pg_stat_activity");
        if let [row] = rows.as_slice() {
            let pid: i32 = row.get(0);
            let application: String = row.get(1);
            let state: Option<String> = row.get(2);
            let query: Option<String> = row.get(3);
            println!(
                "[faults/listener] pg_stat_activity shows the listener as pid {pid}, \
                 application_name {application:?}, state {state:?}, query {query:?}"
            );
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "expected one listener backend, found {}",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `pg_terminate_backend(pid)`: signals the backend and returns without waiting for it to exit
/// (with a timeout argument Postgres would poll in 100 ms steps, long enough for the listener
/// to be back before the revocation below).
pub(crate) async fn terminate(client: &tokio_postgres::Client, pid: i32) {
    let terminated: bool = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .expect("pg_terminate_backend")
        .get(0);
    assert!(terminated, "backend {pid} was not terminated");
}

async fn warm_grant(origin: &TestOrigin, body: &Value) {
    let first = ask(origin, body.clone()).await;
    assert_eq!(
        (first.status, first.granted()),
        (200, Some(true)),
        "{}",
        first.body
    );
    let second = ask(origin, body.clone()).await;
    assert_eq!(
        (second.granted(), second.source()),
        (Some(true), Some("l1")),
        "{}",
        second.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_listener_killed_with_pg_terminate_backend_reconnects_and_flushes() {
    let db = TestDb::new().await;
    let redis = TestRedis::new();
    let client = support::connect(&format!("{}?application_name={TEST_APPLICATION}", db.url)).await;
    let admin = support::connect(&support::admin_url()).await;
    support::load(&client, &dataset(1), 0).await;
    let origin = TestOrigin::start(support::origin_vars(&db, Some(&redis))).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let invalidation = &origin.state.invalidation;
    let shared = question(READER, 1, "download");

    // Round 1: terminate the listener and revoke as soon as the origin has seen its
    // connection drop (`pg_terminate_backend` returns before the backend is gone; a revocation
    // committed before the origin notices is bounded by the notice lag, not by this test; the
    // in-one-transaction variant is `faults_load::listener_killed_mid_load`). The notice is
    // lost; the listener reconnects by itself.
    warm_grant(&origin, &shared).await;
    wait_for_keys(&redis, 1).await; // Redis holds the grant too.
    let pid = listener_backend(&client, &db.name).await;
    let reconnects_before = invalidation.reconnects();
    let killed = Instant::now();
    terminate(&client, pid).await;
    while invalidation.is_connected() && invalidation.reconnects() == reconnects_before {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the origin never noticed the terminated listener"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let committed = killed.elapsed();
    let disconnected_at_commit = !invalidation.is_connected();
    let revision = support::current_revision(&client).await;
    let mut tally = Tally::default();
    let mut reconnected_after = None;
    let mut while_disconnected = 0usize;
    let mut not_from_db = Vec::new();
    let mut after_reconnect = 0usize;
    while after_reconnect < 50 {
        let (connected_before, reconnects) =
            (invalidation.is_connected(), invalidation.reconnects());
        let reply = ask(&origin, shared.clone()).await;
        tally.record(&reply, false);
        let reconnected = invalidation.reconnects() > reconnects_before;
        if !connected_before
            && !invalidation.is_connected()
            && reconnects == invalidation.reconnects()
        {
            while_disconnected += 1;
            if reply.source() != Some("db") {
                not_from_db.push(reply.body.clone());
            }
        }
        if reconnected && invalidation.is_connected() {
            reconnected_after.get_or_insert_with(|| killed.elapsed());
            after_reconnect += 1;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "the listener never reconnected"
        );
    }
    println!(
        "[faults/listener-terminated] revocation committed {committed:?} after the kill (origin had \
         noticed the disconnect: {disconnected_at_commit}); listener reconnected after \
         {reconnected_after:?}; {}; {while_disconnected} requests wholly while disconnected, all \
         from db: {}",
        tally.summary(),
        not_from_db.is_empty()
    );
    assert!(
        invalidation.newest_revision() >= u64::try_from(revision).expect("revision"),
        "the reconnect read the revision of the revocation"
    );
    assert_eq!(
        tally.wrong, 0,
        "a revoked grant was served after the commit"
    );
    assert_eq!(tally.server_errors, 0);
    assert!(not_from_db.is_empty(), "{not_from_db:#?}");

    // Round 2: keep the listener out (the database refuses new connections) for a while, so
    // the disconnected window is long: every answer in it comes from Postgres through the
    // pool's existing connection, and none from a cache.
    client
        .execute("UPDATE generation_shares SET is_active = true", &[])
        .await
        .expect("restore");
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    warm_grant(&origin, &shared).await;
    let pid = listener_backend(&client, &db.name).await;
    let reconnects_before = invalidation.reconnects();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            db.name
        ))
        .await
        .expect("refuse connections");
    terminate(&client, pid).await;
    // As in round 1: a revocation committed before the origin has seen the drop is bounded by
    // the notice lag; this round is about what is answered while the listener is out.
    let killed = Instant::now();
    while invalidation.is_connected() {
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "the origin never noticed the terminated listener"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let held = Instant::now();
    let mut held_tally = Tally::default();
    let mut held_sources: HashMap<String, usize> = HashMap::new();
    while held.elapsed() < Duration::from_millis(500) {
        let reply = ask(&origin, shared.clone()).await;
        held_tally.record(&reply, false);
        *held_sources
            .entry(reply.source().unwrap_or("none").to_owned())
            .or_default() += 1;
        assert!(!invalidation.is_connected(), "the listener got back in");
    }
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            db.name
        ))
        .await
        .expect("allow connections");
    let allowed = Instant::now();
    while !(invalidation.is_connected() && invalidation.reconnects() > reconnects_before) {
        assert!(
            allowed.elapsed() < Duration::from_secs(10),
            "the listener never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let reconnected_in = allowed.elapsed();
    let mut after = Tally::default();
    for _ in 0..20 {
        let reply = ask(&origin, shared.clone()).await;
        after.record(&reply, false);
    }
    let (code, body) = health(&origin).await;
    println!(
        "[faults/listener-held-off] disconnected {:?}: {}, sources {held_sources:?}; listener back \
         {reconnected_in:?} after connections were allowed again (backoff); after: {}",
        allowed.duration_since(held),
        held_tally.summary(),
        after.summary()
    );
    assert_eq!((held_tally.wrong, held_tally.server_errors), (0, 0));
    assert_eq!(
        held_sources.keys().collect::<Vec<_>>(),
        vec!["db"],
        "while disconnected every answer comes from Postgres"
    );
    assert_eq!((after.wrong, after.server_errors), (0, 0));
    assert_eq!((code, body["status"].as_str()), (200, Some("ok")), "{body}");
    origin.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. The path to Postgres goes silent (no FIN, no RST): a black-holing proxy

/// Copies `from` to `to`, holding every chunk while `frozen` is set.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0_u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 {
            return;
        }
        while frozen.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// A TCP proxy to the shared Postgres that can stop forwarding without closing anything: what
/// a network partition or a dead host looks like to the origin.
struct BlackHole {
    port: u16,
    frozen: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&frozen);
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, Arc::clone(&flag)));
                tokio::spawn(pump(out_read, in_write, Arc::clone(&flag)));
            }
        });
        Self { port, frozen, task }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.frozen.store(false, Ordering::Release);
        self.task.abort();
    }
}

/// A connection that goes silent sends no error: only the listener's heartbeat (its sequencer
/// round, with a deadline, at least every `AUTHZ_LISTENER_HEARTBEAT_MS`) notices it. Until then L1
/// serves the grant the lost notice would have revoked; after it, caches are bypassed and the
/// black-holed Postgres gets the request timeout's 503, never a grant. (Without a heartbeat
/// the revoked grant was served for its whole TTL, 30 s by default, while /api/v1/health
/// already said `down`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_path_to_postgres_stops_cached_grants_within_seconds() {
    const BOUND: Duration = Duration::from_secs(3);
    let db = TestDb::new().await;
    let client = db.client().await;
    support::load(&client, &dataset(1), 0).await;
    let admin: tokio_postgres::Config = support::admin_url().parse().expect("admin url");
    let upstream = format!(
        "127.0.0.1:{}",
        admin.get_ports().first().copied().unwrap_or(5432)
    );
    let proxy = BlackHole::start(upstream).await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let mut vars = vars_on(&url);
    set(&mut vars, &[("AUTHZ_REQUEST_TIMEOUT_MS", "1000")]);
    let origin = TestOrigin::start(vars).await;
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let shared = question(READER, 1, "download");
    warm_grant(&origin, &shared).await;

    proxy.frozen.store(true, Ordering::Release);
    client
        .execute("UPDATE generation_shares SET is_active = false", &[])
        .await
        .expect("revoke");
    let revoked = Instant::now();
    let mut tally = Tally::default();
    let mut last_grant = None;
    let mut other = Vec::new();
    while revoked.elapsed() < BOUND + Duration::from_secs(2) {
        let reply = ask(&origin, shared.clone()).await;
        tally.record(&reply, false);
        if reply.granted() == Some(true) {
            last_grant = Some(revoked.elapsed());
        } else if !(reply.status == 503 && reply.body["error"]["code"] == "unavailable") {
            other.push(format!("{} {}", reply.status, reply.body));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, body) = health(&origin).await;
    println!(
        "[faults/silent-path] {}; last revoked grant served {last_grant:?} after the revocation (the rest \
         503); listener connected: {}; health {code} {}",
        tally.summary(),
        origin.state.invalidation.is_connected(),
        body["status"]
    );
    assert!(
        last_grant.is_none_or(|at| at < BOUND),
        "a revoked grant was still served {last_grant:?} after the revocation"
    );
    assert!(!origin.state.invalidation.is_connected());
    assert!(other.is_empty(), "only the stale grant or a 503: {other:?}");
    proxy.frozen.store(false, Ordering::Release);
    origin.stop().await;
}

/// `AUTHZ_SERVE_STALE_ON_ERROR=denies`: while Postgres is unreachable, cached denies are still
/// served but a cached grant is not (503), so a partition can never prolong a revoked grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_stale_on_error_denies_only_cached_denies_outlive_postgres() {
    let (cluster, origin) =
        origin_on_own_cluster(&dataset(1), &[("AUTHZ_SERVE_STALE_ON_ERROR", "denies")]).await;
    let granted = question(OWNER, 1, "read");
    let denied = question(STRANGER, 1, "read");
    for body in [&granted, &denied] {
        ask(&origin, body.clone()).await;
        let cached = ask(&origin, body.clone()).await;
        assert_eq!(cached.source(), Some("l1"), "{}", cached.body);
    }
    cluster.stop_immediate().await;
    let stopped = Instant::now();
    while origin.state.invalidation.is_connected() {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "listener never noticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..5 {
        let reply = ask(&origin, granted.clone()).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(reply.body["error"]["code"], "unavailable");
        let reply = ask(&origin, denied.clone()).await;
        assert_eq!(
            (reply.status, reply.granted(), reply.source()),
            (200, Some(false), Some("l1")),
            "{}",
            reply.body
        );
    }
    origin.stop().await;
}

/// Single checks and batches share one fallback: with Postgres stopped and L1 off, the Redis
/// entry of each check answers both (the batch path once tried L1 alone and failed whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_redis_answers_single_checks_and_batches_alike() {
    let redis = TestRedis::new();
    let (cluster, origin) = origin_on_own_cluster(
        &dataset(1),
        &[
            ("REDIS_URL", redis.url.as_str()),
            ("AUTHZ_REDIS_PREFIX", redis.prefix.as_str()),
            ("AUTHZ_L1_CAPACITY", "0"),
        ],
    )
    .await;
    let granted = question(OWNER, 1, "read");
    let denied = question(STRANGER, 1, "read");
    for body in [&granted, &denied] {
        let first = ask(&origin, body.clone()).await;
        assert_eq!(first.source(), Some("db"), "{}", first.body);
    }
    wait_for_keys(&redis, 2).await;
    cluster.stop_immediate().await;
    let stopped = Instant::now();
    while origin.state.invalidation.is_connected() {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "listener never noticed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (body, expected) in [(&granted, true), (&denied, false)] {
        let reply = ask(&origin, body.clone()).await;
        assert_eq!(
            (reply.status, reply.granted(), reply.source()),
            (200, Some(expected), Some("l2")),
            "{}",
            reply.body
        );
    }
    let batch = ask_batch(&origin, vec![granted.clone(), denied.clone()]).await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    let results: Vec<(Value, Value)> = batch.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| (result["granted"].clone(), result["source"].clone()))
        .collect();
    assert_eq!(
        results,
        vec![(json!(true), json!("l2")), (json!(false), json!("l2"))],
        "{}",
        batch.body
    );
    // A check that no cache holds still fails the batch: never a guess.
    let unknown = ask_batch(&origin, vec![granted.clone(), question(OWNER, 2, "read")]).await;
    assert_eq!(unknown.status, 503, "{}", unknown.body);
    origin.stop().await;
}
