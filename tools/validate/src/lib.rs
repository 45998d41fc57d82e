//! `authz-validate`, the deployment guide's validation suite (`authz-origin validate` runs it).
//!
//! A tool, not the service: it reads the origin's configuration (`authz-origin`) and shares the
//! question sampler, the naive baseline and the latency statistics with `authz-bench`
//! (`authz-tools-common`); the service never depends on it.
//!
//! This crate owns the checks and their report; it must not change the schema or the data it
//! validates (its only writes are scratch keys in Redis, deleted at once, and the reads of
//! the origin's caches that its requests cause).
//!
//! Five phases, each a list of ✅/❌ checks:
//!
//! * `database_structure` ([`database`]): the materialized views exist, are populated and
//!   have the unique index `REFRESH ... CONCURRENTLY` needs; the composite authorization
//!   indexes (and the supporting foreign-key indexes) exist, are valid and have the columns
//!   the decision query reads, checked by definition rather than by name; the configuration
//!   rows are present; the functions exist; every connection pool connects.
//! * `cache_infrastructure` ([`cache`]): each configured Redis tier answers `PING` and a
//!   `SET`/`GET` round trip under a scratch key, within the origin's Redis deadline.
//! * `performance` ([`load`]): `N` real `POST /v1/authorize` calls, one at a time, against a
//!   running origin, on questions sampled from the database; p50/p95/p99 against the warning
//!   levels of `performance_thresholds`.
//! * `concurrency` ([`load`]): `C` requests in flight at once over a total of `T`; passes only
//!   with zero errors **and** `C` requests measured in flight at the peak, so the bar printed
//!   and the load sent are the same thing (the guide's version claimed 1,000 concurrent
//!   requests after sending 100, to `/health`).
//! * `improvement` ([`baseline`]): the origin against a naive baseline measured in the same
//!   run on the same questions: the "before" design of the guide, several sequential queries
//!   per question over one plain connection, no cache. Both must give the same answers.
//!
//! Questions are sampled from the database by the tools' one sampler ([`questions`], the
//! validation mix): owners, sharees, team members of linked projects, team members of their
//! teams, random pairs (mostly denies) and anonymous readers, each with an operation drawn by a
//! hash; deterministic for a given `--seed`.
//!
//! The report is text (`✅ name: detail` / `❌ name: detail`, as in the guide, then a summary
//! line) or JSON (`--json`), and the command exits non-zero when any check fails.

pub mod baseline;
pub mod cache;
pub mod database;
pub mod load;
pub mod questions;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use authz_origin::config::Config;
pub use authz_tools_common::latency::{Latency, millis};

/// A phase of the validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Phase {
    /// Schema objects, configuration rows, functions and pools.
    DatabaseStructure,
    /// Every configured Redis tier.
    CacheInfrastructure,
    /// Sequential latency against the thresholds.
    Performance,
    /// Concurrent load, zero errors.
    Concurrency,
    /// The origin against the naive baseline.
    Improvement,
}

impl Phase {
    /// Every phase, in the order they run.
    pub const ALL: [Self; 5] = [
        Self::DatabaseStructure,
        Self::CacheInfrastructure,
        Self::Performance,
        Self::Concurrency,
        Self::Improvement,
    ];

    /// The phase's name on the command line and in the report.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DatabaseStructure => "database_structure",
            Self::CacheInfrastructure => "cache_infrastructure",
            Self::Performance => "performance",
            Self::Concurrency => "concurrency",
            Self::Improvement => "improvement",
        }
    }
}

/// What to validate and how hard.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// The environment the origin serves with (`POSTGRES_PRIMARY_URL`, `REDIS_*`,
    /// `AUTHZ_REDIS_PREFIX`, ...), read with the origin's own `Config::from_vars`.
    pub vars: HashMap<String, String>,
    /// The running origin, e.g. `http://127.0.0.1:8080`: needed by `performance`,
    /// `concurrency` and `improvement`.
    pub origin: Option<String>,
    /// The service token to call it with (`AUTHZ_SERVICE_TOKEN`).
    pub service_token: Option<String>,
    /// The phases to run; empty means all.
    pub phases: Vec<Phase>,
    /// `performance`: sequential requests.
    pub requests: usize,
    /// `concurrency`: requests in flight at once.
    pub concurrency: usize,
    /// `concurrency`: requests in all.
    pub concurrent_requests: usize,
    /// `improvement`: questions asked of both the baseline and the origin.
    pub samples: usize,
    /// `improvement`: the least improvement of the mean answer latency that passes, in
    /// percent (default 81, the guide's figure).
    pub improvement_bar_percent: f64,
    /// The sampling seed.
    pub seed: u64,
}

impl ValidateOptions {
    /// The defaults: 1,000 sequential requests, 200 in flight over 2,000, 300 baseline
    /// samples, an 81 % bar (see [`baseline`] for why), seed 42.
    pub fn new(vars: HashMap<String, String>) -> Self {
        Self {
            vars,
            origin: None,
            service_token: None,
            phases: Vec::new(),
            requests: 1_000,
            concurrency: 200,
            concurrent_requests: 2_000,
            samples: 300,
            improvement_bar_percent: baseline::DEFAULT_BAR_PERCENT,
            seed: 42,
        }
    }
}

/// One ✅ or ❌ line.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// The phase it belongs to.
    pub phase: Phase,
    /// A stable snake_case name (the guide's where it means the same thing).
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// What was found, with the bar it was held to.
    pub detail: String,
    /// The numbers behind the detail, for machines.
    pub measurements: serde_json::Value,
}

impl Check {
    /// A check.
    pub fn new(phase: Phase, name: &str, passed: bool, detail: impl Into<String>) -> Self {
        Self {
            phase,
            name: name.to_owned(),
            passed,
            detail: detail.into(),
            measurements: serde_json::Value::Null,
        }
    }

    /// With measurements.
    #[must_use]
    pub fn with(mut self, measurements: serde_json::Value) -> Self {
        self.measurements = measurements;
        self
    }

    /// The report line.
    pub fn line(&self) -> String {
        let mark = if self.passed { "✅" } else { "❌" };
        format!("{mark} {}: {}", self.name, self.detail)
    }
}

/// The outcome of a validation run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether every check passed.
    pub passed: bool,
    /// The phases that ran.
    pub phases: Vec<Phase>,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

impl Report {
    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The text report: one line per check, then a summary.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        for check in &self.checks {
            let _ = writeln!(text, "{}", check.line());
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|check| !check.passed)
            .map(|check| check.name.as_str())
            .collect();
        let phases: Vec<&str> = self.phases.iter().map(|phase| phase.as_str()).collect();
        let seconds = Duration::from_millis(self.elapsed_ms).as_secs_f64();
        if failed.is_empty() {
            let _ = writeln!(
                text,
                "validation passed: {} of {} checks ({}) in {seconds:.1} s",
                self.checks.len(),
                self.checks.len(),
                phases.join(", ")
            );
        } else {
            let _ = writeln!(
                text,
                "validation failed: {} of {} checks failed ({}) in {seconds:.1} s",
                failed.len(),
                self.checks.len(),
                failed.join(", ")
            );
        }
        text
    }
}

/// What every phase needs: the options, the origin's configuration read from them, and the
/// `performance_thresholds` rows (warning, critical) once read.
pub struct Context<'a> {
    /// The options.
    pub options: &'a ValidateOptions,
    /// The configuration, when the environment is valid.
    pub config: Result<Config, String>,
    /// The HTTP client for the origin.
    pub http: reqwest::Client,
}

impl Context<'_> {
    /// The primary database URL, or the configuration error.
    pub fn database_url(&self) -> Result<&str, String> {
        self.config
            .as_ref()
            .map(|config| config.postgres_primary_url.as_str())
            .map_err(Clone::clone)
    }

    /// A plain connection to the primary.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let config = self.config.as_ref().map_err(Clone::clone)?;
        let connect = authz_origin::postgres_tls::connect(&config.postgres_primary);
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok((client, _driver))) => Ok(client),
            Ok(Err(error)) => Err(format!("cannot connect to the database: {error}")),
            Err(_) => Err("cannot connect to the database: timed out".to_owned()),
        }
    }

    /// The origin URL and service token, or why the phase cannot run.
    pub fn origin(&self) -> Result<(&str, &str), String> {
        let origin = self
            .options
            .origin
            .as_deref()
            .ok_or("no origin to measure: pass --origin URL (a running authz-origin)")?;
        let token = self
            .options
            .service_token
            .as_deref()
            .ok_or("no service token: pass --service-token or set AUTHZ_SERVICE_TOKEN")?;
        Ok((origin.trim_end_matches('/'), token))
    }
}

/// Runs the selected phases and reports every check.
pub async fn run(options: &ValidateOptions) -> Report {
    let started = Instant::now();
    let phases: Vec<Phase> = if options.phases.is_empty() {
        Phase::ALL.to_vec()
    } else {
        Phase::ALL
            .into_iter()
            .filter(|phase| options.phases.contains(phase))
            .collect()
    };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(options.concurrency.max(16))
        .build()
        .unwrap_or_default();
    let context = Context {
        options,
        config: Config::from_vars(&options.vars).map_err(|error| error.to_string()),
        http,
    };
    let mut checks = Vec::new();
    if let Err(error) = &context.config {
        checks.push(Check::new(
            phases.first().copied().unwrap_or(Phase::DatabaseStructure),
            "configuration",
            false,
            format!("the origin's environment does not load: {error}"),
        ));
    }
    for phase in &phases {
        let found = match phase {
            Phase::DatabaseStructure => database::run(&context).await,
            Phase::CacheInfrastructure => cache::run(&context).await,
            Phase::Performance => load::performance(&context).await,
            Phase::Concurrency => load::concurrency(&context).await,
            Phase::Improvement => baseline::run(&context).await,
        };
        checks.extend(found);
    }
    Report {
        passed: checks.iter().all(|check| check.passed),
        phases,
        checks,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

/// Formats milliseconds for a report: microseconds under 0.1 ms, two decimals under 10 ms,
/// one under 100, none above.
pub fn ms(value: f64) -> String {
    if value < 0.1 {
        format!("{:.1} µs", value * 1_000.0)
    } else if value < 10.0 {
        format!("{value:.2} ms")
    } else if value < 100.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines() {
        let report = Report {
            passed: false,
            phases: vec![Phase::DatabaseStructure],
            checks: vec![
                Check::new(Phase::DatabaseStructure, "a", true, "fine"),
                Check::new(Phase::DatabaseStructure, "b", false, "broken"),
            ],
            elapsed_ms: 1_500,
        };
        assert_eq!(
            report.render_text(),
            "✅ a: fine\n❌ b: broken\nvalidation failed: 1 of 2 checks failed (b) in 1.5 s\n"
        );
    }
}
