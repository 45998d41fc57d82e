//! Revocation lag. Each round: a share is (re)activated and the service is polled until it
//! grants (so the grant is cached); then the share is revoked with plain SQL on a separate
//! connection, and `pollers` concurrent requesters ask the same question back to back until
//! one is denied. The lag is from the moment the revoking `UPDATE` returned to its writer
//! (its commit acknowledged) to the first deny received. Any grant *received* after that
//! moment counts as stale. Right after the commit, the question is also asked once with
//! `min_revision` set to the database's revision: that answer must be a deny.
//!
//! `authz-bench revocation` runs rounds back to back on an otherwise idle service;
//! `authz-bench load --probe-interval-ms` runs them while the load runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use authz_core::jwt::JwtKey;
use authz_core::{Operation, ResourceType};
use authz_tools_common::latency::Latency;
use serde_json::json;
use tokio_postgres::NoTls;

use crate::client::{self, Target};
use crate::questions::Question;
use crate::report::LagSummary;

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
    /// Ask for the writer's revision only after the first deny: the lag then includes waiting
    /// for the origin's sequencer round (V11), as for a writer that never asks for its token.
    #[arg(long)]
    revision_after_deny: bool,
    /// Write the result as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Another origin of the same database (repeatable): each round also warms the grant
    /// there and polls it after the same commit, so one revocation is timed at every origin.
    #[arg(long = "also-origin")]
    also_origins: Vec<String>,
}

/// One measured round.
#[derive(Debug, Clone)]
pub struct Round {
    /// Commit acknowledged to first deny.
    pub lag_ms: f64,
    /// The revoking `UPDATE`'s round trip, as its writer saw it.
    pub commit_ms: f64,
    /// Grants received after the commit (all within the lag).
    pub stale: u64,
    /// Grants answered to a question asked with `min_revision` at the revoking revision.
    pub stale_with_min_revision: u64,
    /// Commit acknowledged to the first deny at each `--also-origin`, in order.
    pub also_lag_ms: Vec<f64>,
}

/// Summarises rounds (percentiles from the tools' one histogram, `authz_tools_common::latency`).
pub fn summarise(rounds: &[Round]) -> LagSummary {
    let of = |ms: fn(&Round) -> f64| {
        let samples: Vec<Duration> = rounds
            .iter()
            .map(|round| Duration::from_secs_f64(ms(round).max(0.0) / 1_000.0))
            .collect();
        Latency::of(&samples)
    };
    let lag = of(|round| round.lag_ms);
    let commit = of(|round| round.commit_ms);
    LagSummary {
        rounds: rounds.len(),
        lag_ms: json!({
            "p50": lag.p50_ms,
            "p90": lag.p90_ms,
            "p99": lag.p99_ms,
            "max": lag.max_ms,
        }),
        revoking_update_round_trip_ms: json!({
            "p50": commit.p50_ms,
            "p99": commit.p99_ms,
        }),
        stale_grants_received_after_commit: rounds.iter().map(|round| round.stale).sum(),
        stale_with_min_revision: rounds
            .iter()
            .map(|round| round.stale_with_min_revision)
            .sum(),
    }
}

/// A user, a generation owned by another user and a share between them, made for measuring.
pub struct Probe {
    db: tokio_postgres::Client,
    owner: uuid::Uuid,
    reader: uuid::Uuid,
    generation: uuid::Uuid,
    base_url: String,
    /// Further origins timed after the same commit.
    also: Vec<String>,
    target: Target,
    token: String,
    key: Option<JwtKey>,
    http: reqwest::Client,
}

impl Probe {
    /// Creates the probe's rows in the service's database.
    pub async fn create(
        database_url: &str,
        base_url: &str,
        target: Target,
        token: &str,
        key: Option<JwtKey>,
    ) -> anyhow::Result<Self> {
        let (db, connection) = tokio_postgres::connect(database_url, NoTls).await?;
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
        Ok(Self {
            db,
            owner,
            reader,
            generation,
            base_url: base_url.trim_end_matches('/').to_owned(),
            also: Vec::new(),
            target,
            token: token.to_owned(),
            key,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(5))
                .build()?,
        })
    }

    /// Deletes the probe's rows.
    pub async fn remove(self) -> anyhow::Result<()> {
        self.db
            .execute(
                "DELETE FROM users WHERE id = $1 OR id = $2",
                &[&self.owner, &self.reader],
            )
            .await?;
        Ok(())
    }

    /// Also times each round at these origins (plain questions, one poller each).
    #[must_use]
    pub fn with_also(mut self, origins: &[String]) -> Self {
        self.also = origins
            .iter()
            .map(|origin| origin.trim_end_matches('/').to_owned())
            .collect();
        self
    }

    /// Asks `base` (another origin of the same database) plainly.
    async fn ask_also(&self, base: &str) -> anyhow::Result<bool> {
        let question = Question {
            user_id: Some(self.reader),
            resource_type: ResourceType::Generation,
            resource_id: self.generation,
            operation: Operation::Read,
        };
        let response = self
            .http
            .post(format!("{base}/v1/authorize"))
            .bearer_auth(&self.token)
            .json(&question)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("{base} answered {}", response.status());
        }
        let answer: serde_json::Value = response.json().await?;
        answer["granted"].as_bool().context("no granted field")
    }

    async fn ask(&self, min_revision: Option<u64>) -> anyhow::Result<bool> {
        let question = Question {
            user_id: Some(self.reader),
            resource_type: ResourceType::Generation,
            resource_id: self.generation,
            operation: Operation::Read,
        };
        let response = match self.target {
            Target::Origin => {
                let mut body = serde_json::to_value(&question)?;
                if let (Some(revision), Some(object)) = (min_revision, body.as_object_mut()) {
                    object.insert("min_revision".to_owned(), revision.into());
                }
                self.http
                    .post(format!("{}/v1/authorize", self.base_url))
                    .bearer_auth(&self.token)
                    .json(&body)
                    .send()
                    .await?
            }
            Target::Edge => {
                let prepared = client::prepare(
                    &question,
                    Target::Edge,
                    &self.token,
                    self.key.as_ref(),
                    min_revision,
                )?;
                self.http
                    .get(format!("{}{}", self.base_url, prepared.path()))
                    .header("authorization", prepared.authorization())
                    .send()
                    .await?
            }
        };
        if !response.status().is_success() {
            bail!("the service answered {}", response.status());
        }
        let answer: serde_json::Value = response.json().await?;
        answer["granted"].as_bool().context("no granted field")
    }

    async fn revision(&self) -> anyhow::Result<u64> {
        let revision: i64 = self
            .db
            .query_one("SELECT authz_current_revision()", &[])
            .await?
            .get(0);
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    /// One round: grant, cache, revoke, measure.
    pub async fn round(
        self: &Arc<Self>,
        pollers: usize,
        revision_after_deny: bool,
    ) -> anyhow::Result<Round> {
        self.db
            .execute(
                "UPDATE generation_shares SET is_active = true WHERE generation_id = $1",
                &[&self.generation],
            )
            .await?;
        // The edge may hold the previous round's deny in KV until its TTL: ask past the
        // grant's revision there, so that the round does not wait for an expiry.
        let granted_at = self.revision().await?;
        let fresh = (self.target == Target::Edge).then_some(granted_at);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.ask(fresh).await? {
            if Instant::now() > deadline {
                bail!("the grant never appeared");
            }
        }
        // Twice more: the grant is now cached.
        self.ask(None).await?;
        self.ask(None).await?;
        for base in &self.also {
            while !self.ask_also(base).await? {
                if Instant::now() > deadline {
                    bail!("the grant never appeared at {base}");
                }
            }
            self.ask_also(base).await?;
        }

        let sent = Instant::now();
        self.db
            .execute(
                "UPDATE generation_shares SET is_active = false WHERE generation_id = $1",
                &[&self.generation],
            )
            .await?;
        let committed = Instant::now();
        let early_revision = if revision_after_deny {
            None
        } else {
            Some(self.revision().await?)
        };
        // At the origin, pollers ask plainly: the lag is the invalidation's. At the edge a
        // plain question may be answered from KV until the grant's TTL (published bound), so
        // pollers ask with `min_revision`, as a client that just revoked would.
        let poll_revision = early_revision.filter(|_| self.target == Target::Edge);
        let denied = Arc::new(AtomicBool::new(false));
        let stale = Arc::new(AtomicU64::new(0));
        let first_deny = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let mut tasks = Vec::new();
        for _ in 0..pollers.max(1) {
            let probe = Arc::clone(self);
            let (denied, stale, first_deny) = (
                Arc::clone(&denied),
                Arc::clone(&stale),
                Arc::clone(&first_deny),
            );
            tasks.push(tokio::spawn(async move {
                let deadline = committed + Duration::from_secs(5);
                while !denied.load(Ordering::Acquire) && Instant::now() < deadline {
                    match probe.ask(poll_revision).await {
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
        let also_tasks: Vec<_> = self
            .also
            .iter()
            .map(|base| {
                let (probe, base, stale) = (Arc::clone(self), base.clone(), Arc::clone(&stale));
                tokio::spawn(async move {
                    let deadline = committed + Duration::from_secs(5);
                    while Instant::now() < deadline {
                        match probe.ask_also(&base).await {
                            Ok(true) => {
                                stale.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(false) => return Some(Instant::now()),
                            Err(_) => {}
                        }
                    }
                    None
                })
            })
            .collect();
        let early_answer = match early_revision {
            Some(revision) => Some(self.ask(Some(revision)).await),
            None => None,
        };
        for task in tasks {
            task.await?;
        }
        let mut also_lag_ms = Vec::with_capacity(also_tasks.len());
        for (task, base) in also_tasks.into_iter().zip(&self.also) {
            let Some(at) = task.await? else {
                bail!("{base} still granted 5 s after the revocation");
            };
            also_lag_ms.push(at.duration_since(committed).as_secs_f64() * 1_000.0);
        }
        let with_min_revision = match early_answer {
            Some(answer) => answer,
            None => self.ask(Some(self.revision().await?)).await,
        };
        let Some(at) = first_deny.lock().ok().and_then(|first| *first) else {
            bail!("still granted 5 s after the revocation");
        };
        Ok(Round {
            lag_ms: at.duration_since(committed).as_secs_f64() * 1_000.0,
            commit_ms: committed.duration_since(sent).as_secs_f64() * 1_000.0,
            stale: stale.load(Ordering::Relaxed),
            // An error (the service could not decide) is not a grant.
            stale_with_min_revision: u64::from(matches!(with_min_revision, Ok(true))),
            also_lag_ms,
        })
    }
}

/// Runs the measurement and prints the summary.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let probe = Arc::new(
        Probe::create(
            &options.database_url,
            &options.origin,
            Target::Origin,
            &options.service_token,
            None,
        )
        .await?
        .with_also(&options.also_origins),
    );
    let mut rounds = Vec::with_capacity(options.rounds);
    for round in 0..options.rounds {
        rounds.push(
            probe
                .round(options.pollers, options.revision_after_deny)
                .await
                .with_context(|| format!("round {round}"))?,
        );
    }
    if let Ok(probe) = Arc::try_unwrap(probe) {
        probe.remove().await?;
    }
    let mut summary = serde_json::to_value(summarise(&rounds))?;
    summary["pollers"] = options.pollers.into();
    let also: Vec<serde_json::Value> = options
        .also_origins
        .iter()
        .enumerate()
        .map(|(index, origin)| {
            let samples: Vec<Duration> = rounds
                .iter()
                .filter_map(|round| round.also_lag_ms.get(index))
                .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1_000.0))
                .collect();
            let lag = Latency::of(&samples);
            json!({"origin": origin, "rounds": samples.len(),
                   "lag_ms": {"p50": lag.p50_ms, "p90": lag.p90_ms, "p99": lag.p99_ms, "max": lag.max_ms}})
        })
        .collect();
    summary["also_origins"] = also.into();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(())
}
