//! The Redis tiers on a real Redis Cluster (issue 16): three masters and three replicas started
//! by the test (`redis-server --cluster-enabled yes`, `redis-cli --cluster create`), the tier
//! URL `redis+cluster://seed,seed`. Keys spread over the masters; a master killed mid-load
//! fails over while the origin keeps answering; the whole cluster down is one Redis down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use authz_origin::config::RedisTierName;
use serde_json::Value;

use crate::faults::{OWNER, STRANGER, Tally, ask, dataset, question};
use crate::support::{self, TestDb, TestOrigin};

/// Generations in the data set; the questions are each one's owner read and stranger read.
const GENERATIONS: usize = 50;

/// A port whose cluster bus port (+10,000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        if port > 55_000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Six cluster nodes (three masters, a replica each), killed and removed on drop.
struct RedisCluster {
    dir: PathBuf,
    nodes: Vec<(u16, Option<Child>)>,
}

impl RedisCluster {
    async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("authz-cluster-{}", &id[..12]));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        for _ in 0..6 {
            let port = cluster_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                // A replica must have synchronised before its master may die: no 5 s wait
                // for more replicas before a diskless transfer.
                .args(["--repl-diskless-sync-delay", "0"])
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(["--daemonize", "no", "--loglevel", "warning"])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            cluster.nodes.push((port, Some(child)));
        }
        for (port, _) in &cluster.nodes {
            wait_until(Duration::from_secs(5), || async {
                node_command(*port, redis::cmd("PING")).await.is_ok()
            })
            .await
            .unwrap_or_else(|| panic!("node {port} did not start"));
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let output = tokio::process::Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("redis-cli on PATH");
        assert!(
            output.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let ports: Vec<u16> = cluster.nodes.iter().map(|(port, _)| *port).collect();
        wait_until(Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    if !cluster_ok(port).await {
                        return false;
                    }
                }
                true
            }
        })
        .await
        .expect("the cluster never reached cluster_state:ok");
        wait_until(Duration::from_secs(20), || {
            let ports = ports.clone();
            async move {
                for port in ports {
                    let Ok(info) =
                        node_command(port, redis::cmd("INFO").arg("replication").clone()).await
                    else {
                        return false;
                    };
                    if info.contains("role:slave") && !info.contains("master_link_status:up") {
                        return false;
                    }
                }
                true
            }
        })
        .await
        .expect("the replicas never synchronised");
        cluster
    }

    fn url(&self) -> String {
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            self.nodes[0].0, self.nodes[1].0
        )
    }

    /// The running masters, by port.
    async fn masters(&self) -> Vec<u16> {
        let alive = self.alive();
        for port in &alive {
            let Ok(text) = node_command(*port, redis::cmd("CLUSTER").arg("NODES").clone()).await
            else {
                continue;
            };
            return text
                .lines()
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    let port = fields.get(1)?.split('@').next()?.rsplit(':').next()?;
                    let port: u16 = port.parse().ok()?;
                    let flags = fields.get(2)?;
                    (flags.contains("master") && !flags.contains("fail") && alive.contains(&port))
                        .then_some(port)
                })
                .collect();
        }
        Vec::new()
    }

    fn alive(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    fn kill(&mut self, port: u16) {
        for (node, child) in &mut self.nodes {
            if *node == port
                && let Some(mut child) = child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn kill_all(&mut self) {
        for port in self.alive() {
            self.kill(port);
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn node_command(port: u16, command: redis::Cmd) -> redis::RedisResult<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = tokio::time::timeout(
        Duration::from_millis(500),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from((redis::ErrorKind::IoError, "timed out")))??;
    let value: redis::Value = command.query_async(&mut connection).await?;
    Ok(match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::SimpleString(text) => text,
        other => format!("{other:?}"),
    })
}

async fn cluster_ok(port: u16) -> bool {
    node_command(port, redis::cmd("CLUSTER").arg("INFO").clone())
        .await
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// Polls `check` every 20 ms until it holds (`Some(elapsed)`) or `limit` passes (`None`).
async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Every question with its true answer.
fn questions() -> Vec<(Value, bool)> {
    (1..=GENERATIONS)
        .flat_map(|n| {
            [
                (question(OWNER, n, "read"), true),
                (question(STRANGER, n, "read"), false),
            ]
        })
        .collect()
}

/// Asks every question once; the sources of the answers, and the tally.
async fn full_pass(origin: &TestOrigin) -> (HashMap<String, usize>, Tally) {
    let mut sources = HashMap::new();
    let mut tally = Tally::default();
    for (body, expected) in questions() {
        let reply = ask(origin, body).await;
        tally.record(&reply, expected);
        *sources
            .entry(reply.source().unwrap_or("none").to_owned())
            .or_default() += 1;
    }
    (sources, tally)
}

/// Waits (up to `limit`) until a full pass is answered wholly from the decision tier.
async fn wait_all_from_redis(origin: &TestOrigin, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (sources, tally) = full_pass(origin).await;
        assert_eq!(
            (tally.wrong, tally.server_errors),
            (0, 0),
            "{}",
            tally.summary()
        );
        if sources.get("l2") == Some(&(2 * GENERATIONS)) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_tier_spreads_keys_survives_a_master_failover_and_a_whole_outage() {
    let mut cluster = RedisCluster::start().await;
    let db = TestDb::new().await;
    let client = db.client().await;
    support::load(&client, &dataset(GENERATIONS), 0).await;
    // A prefix of the test's own; its keys go when the cluster does.
    let prefix = format!("authz_cluster:{}:", uuid::Uuid::new_v4().simple());
    let mut vars = support::origin_vars(&db, None);
    for (key, value) in [
        ("REDIS_URL", cluster.url().as_str()),
        ("AUTHZ_REDIS_PREFIX", prefix.as_str()),
        // Every answer past L1 comes from the decision tier or Postgres.
        ("AUTHZ_L1_CAPACITY", "0"),
        ("AUTHZ_GRANT_TTL_MS", "120000"),
        ("AUTHZ_DENY_TTL_MS", "120000"),
    ] {
        vars.insert(key.to_owned(), value.to_owned());
    }
    let origin = Arc::new(TestOrigin::start(vars).await);
    origin
        .wait_revision(support::current_revision(&client).await)
        .await;
    let tier = &origin.state.redis_tiers[&RedisTierName::Authorization];
    assert!(
        matches!(
            tier.ownership(),
            authz_origin::cache::Ownership::Claimed { .. }
        ),
        "{:?}",
        tier.ownership()
    );

    // The decisions are written and then read back from the cluster.
    let filled = wait_all_from_redis(&origin, Duration::from_secs(20)).await;
    assert!(
        filled.is_some(),
        "the decisions never all came from the cluster"
    );
    // Spread over the masters.
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3, "{masters:?}");
    let mut keys_per_master = Vec::new();
    for port in &masters {
        let keys = node_command(*port, redis::cmd("DBSIZE"))
            .await
            .expect("dbsize");
        keys_per_master.push((*port, keys));
    }
    println!("[cluster] keys per master {keys_per_master:?}");
    assert!(
        keys_per_master.iter().all(|(_, keys)| keys != "int(0)"),
        "every master holds keys: {keys_per_master:?}"
    );

    // A master killed mid-load: three askers keep asking.
    let stop = Arc::new(AtomicBool::new(false));
    let askers: Vec<_> = (0..3)
        .map(|n| {
            let (origin, stop) = (Arc::clone(&origin), Arc::clone(&stop));
            tokio::spawn(async move {
                let questions = questions();
                let mut tally = Tally::default();
                let mut i = n * 17;
                while !stop.load(Ordering::Relaxed) {
                    let (body, expected) = &questions[i % questions.len()];
                    tally.record(&ask(&origin, body.clone()).await, *expected);
                    i += 1;
                }
                tally
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let victim = masters[0];
    cluster.kill(victim);
    let killed = Instant::now();
    let survivor = cluster.alive()[0];
    // A replica is promoted (three running masters again) and the cluster says it is whole.
    let failed_over = wait_until(Duration::from_secs(20), || async {
        cluster.masters().await.len() == 3 && cluster_ok(survivor).await
    })
    .await;
    assert!(
        failed_over.is_some(),
        "the cluster never failed over: {:?}",
        node_command(survivor, redis::cmd("CLUSTER").arg("NODES").clone()).await
    );
    // Back: a full pass answered wholly from the cluster again.
    let back = wait_all_from_redis(&origin, Duration::from_secs(60)).await;
    let back_after = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut load = Tally::default();
    for asker in askers {
        let tally = asker.await.expect("asker");
        println!("[cluster/master-killed] asker: {}", tally.summary());
        load.wrong += tally.wrong;
        load.server_errors += tally.server_errors;
    }
    println!(
        "[cluster/master-killed] master {victim} killed; cluster_state:ok again after \
         {failed_over:?}; every decision from the cluster again {back_after:?} after the kill; \
         tier errors {}, breaker {}",
        tier.stats().snapshot().errors,
        tier.breaker_state().as_str()
    );
    assert!(back.is_some(), "the tier never came back");
    assert_eq!((load.wrong, load.server_errors), (0, 0));
    assert_eq!(cluster.masters().await.len(), 3, "a replica was promoted");

    // The whole cluster down: answers from Postgres, the breaker opens, nothing is wrong.
    cluster.kill_all();
    let mut tally = Tally::default();
    let mut sources: HashMap<String, usize> = HashMap::new();
    for _ in 0..2 {
        let (pass, pass_tally) = full_pass(&origin).await;
        for (source, count) in pass {
            *sources.entry(source).or_default() += count;
        }
        tally.wrong += pass_tally.wrong;
        tally.server_errors += pass_tally.server_errors;
    }
    println!(
        "[cluster/down] two passes: sources {sources:?}, wrong {}, 5xx {}",
        tally.wrong, tally.server_errors
    );
    assert_eq!((tally.wrong, tally.server_errors), (0, 0));
    assert_eq!(sources.get("db"), Some(&(4 * GENERATIONS)), "{sources:?}");
    assert_eq!(tier.breaker_state().as_str(), "open");
    let (_, health) = origin
        .get("/api/v1/health", Some(support::ADMIN_TOKEN))
        .await;
    assert_eq!(health["status"], "degraded", "{health}");
    if let Ok(origin) = Arc::try_unwrap(origin) {
        origin.stop().await;
    }
}
