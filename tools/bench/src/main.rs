//! `authz-bench`: measurement tools that drive a real origin or edge over HTTP and a real
//! Postgres.
//!
//! `load`: many connections, closed or open loop or a burst, uniform or Zipf questions,
//! revoking writes and a revocation-lag probe alongside; JSON and SVG charts.
//!
//! `revocation`: the time from a revoking write's commit (as its writer sees it) to the first
//! deny from the origin, over many rounds, with the grant cached in the origin beforehand.
//!
//! `hit-rate`: which tier answers a fixed sequence of questions (cache warming's effect).
//!
//! `questions`: sample questions from a seeded database. `chart`: draw saved reports.
//! `naive`: the uncached, unpooled baseline, for the improvement ratio.

mod chart;
mod client;
mod hitrate;
mod load;
mod naive;
mod questions;
mod report;
mod revocation;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "authz-bench", about = "Measure the authorization service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// HTTP load: many connections, workloads, writes, percentiles, hit rates, charts.
    Load(Box<load::Options>),
    /// Revocation lag: commit of a revoking write to the first deny.
    Revocation(revocation::Options),
    /// Hit rate of a fixed sequence of questions, by answering tier.
    HitRate(hitrate::Options),
    /// Sample questions (JSON lines) from a seeded database.
    Questions(questions::Options),
    /// Draw charts from saved load reports.
    Chart(chart::Options),
    /// The naive baseline: a new Postgres connection and the SQL decision per question.
    Naive(naive::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load(options) => load::run(*options).await,
        Command::Revocation(options) => revocation::run(options).await,
        Command::HitRate(options) => hitrate::run(options).await,
        Command::Questions(options) => questions::run(options).await,
        Command::Chart(options) => chart::run(&options),
        Command::Naive(options) => naive::run(options).await,
    }
}
