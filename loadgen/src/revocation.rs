//! Revocation lag. Each round: a share is (re)activated and the origin is polled until it
//! grants (so the grant is cached in L1 and Redis); then the share is revoked with plain SQL on
//! a separate connection, and `pollers` concurrent requesters ask the same question back to
//! back until one is denied. The lag is from the moment the revoking `UPDATE` returned to its
//! writer (its commit acknowledged) to the first deny received. Any grant *received* after
//! that moment counts as stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

/// Options of `authz-bench revocation`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The origin's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    origin: String,
    /// The origin's service token.
    #[arg(long, env = "AUTHZ_SERVICE_TOKEN")]
    service_token: String,
    /// The origin's database (the tool creates its own users, generation and share there).
    #[arg(long, env = "POSTGRES_PRIMARY_URL")]
    database_url: String,
    /// Rounds to measure.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Concurrent pollers after each revocation.
    #[arg(long, default_value_t = 4)]
    pollers: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn ask(client: &reqwest::Client, options: &Options, body: &Value) -> anyhow::Result<bool> {
    let response = client
        .post(format!("{}/v1/authorize", options.origin))
        .bearer_auth(&options.service_token)
        .json(body)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("origin answered {}", response.status());
    }
    let answer: Value = response.json().await?;
    answer["granted"].as_bool().context("no granted field")
}

/// Runs the measurement and prints the summary.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let (db, connection) = tokio_postgres::connect(&options.database_url, NoTls).await?;
    tokio::spawn(connection);
    let owner = uuid::Uuid::new_v4();
    let reader = uuid::Uuid::new_v4();
    let generation = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO users (id, email) VALUES ($1, $2), ($3, $4)",
        &[
            &owner,
            &format!("{owner}@bench.invalid"),
            &reader,
            &format!("{reader}@bench.invalid"),
        ],
    )
    .await?;
    db.execute(
        "INSERT INTO generations (id, user_id, status) VALUES ($1, $2, 'completed')",
        &[&generation, &owner],
    )
    .await?;
    db.execute(
        "INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, is_active) VALUES ($1, $2, 'read', false)",
        &[&generation, &reader],
    )
    .await?;
    let body = json!({
        "user_id": reader, "resource_type": "generation",
        "resource_id": generation, "operation": "read",
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(5))
        .build()?;
    let options = Arc::new(options);
    let mut lags_ms = Vec::with_capacity(options.rounds);
    let mut commit_ms = Vec::with_capacity(options.rounds);
    let mut stale_total = 0u64;
    for round in 0..options.rounds {
        db.execute(
            "UPDATE generation_shares SET is_active = true WHERE generation_id = $1",
            &[&generation],
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ask(&client, &options, &body).await? {
            if Instant::now() > deadline {
                bail!("round {round}: the grant never appeared");
            }
        }
        // Twice more: the grant is now cached.
        ask(&client, &options, &body).await?;
        ask(&client, &options, &body).await?;

        let sent = Instant::now();
        db.execute(
            "UPDATE generation_shares SET is_active = false WHERE generation_id = $1",
            &[&generation],
        )
        .await?;
        let committed = Instant::now();
        commit_ms.push(committed.duration_since(sent).as_secs_f64() * 1_000.0);
        let denied = Arc::new(AtomicBool::new(false));
        let stale = Arc::new(AtomicU64::new(0));
        let first_deny = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let mut tasks = Vec::new();
        for _ in 0..options.pollers {
            let (client, options, body) = (client.clone(), Arc::clone(&options), body.clone());
            let (denied, stale, first_deny) = (
                Arc::clone(&denied),
                Arc::clone(&stale),
                Arc::clone(&first_deny),
            );
            tasks.push(tokio::spawn(async move {
                let deadline = committed + Duration::from_secs(5);
                while !denied.load(Ordering::Acquire) && Instant::now() < deadline {
                    match ask(&client, &options, &body).await {
                        Ok(true) => {
                            stale.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {
                            let at = Instant::now();
                            if let Ok(mut first) = first_deny.lock() {
                                *first = Some(first.map_or(at, |t: Instant| t.min(at)));
                            }
                            denied.store(true, Ordering::Release);
                        }
                        Err(_) => {}
                    }
                }
            }));
        }
        for task in tasks {
            task.await?;
        }
        let Some(at) = first_deny.lock().ok().and_then(|first| *first) else {
            bail!("round {round}: still granted 5 s after the revocation");
        };
        lags_ms.push(at.duration_since(committed).as_secs_f64() * 1_000.0);
        stale_total += stale.load(Ordering::Relaxed);
    }
    db.execute(
        "DELETE FROM users WHERE id = $1 OR id = $2",
        &[&owner, &reader],
    )
    .await?;
    let mut sorted = lags_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let mut commits = commit_ms.clone();
    commits.sort_by(f64::total_cmp);
    let summary = json!({
        "rounds": options.rounds,
        "pollers": options.pollers,
        "lag_ms": {
            "p50": percentile(&sorted, 50.0),
            "p90": percentile(&sorted, 90.0),
            "p99": percentile(&sorted, 99.0),
            "max": sorted.last().copied().unwrap_or(f64::NAN),
        },
        "revoking_update_round_trip_ms": { "p50": percentile(&commits, 50.0), "p99": percentile(&commits, 99.0) },
        "stale_grants_received_after_commit": stale_total,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(())
}
