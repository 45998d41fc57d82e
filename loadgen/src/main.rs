//! `authz-bench`: measurement tools that drive a real origin over HTTP and a real Postgres.
//!
//! `revocation`: the time from a revoking write's commit (as its writer sees it) to the first
//! deny from the origin, over many rounds, with the grant cached in the origin beforehand.
//!
//! `hit-rate`: which tier answers a fixed sequence of questions (cache warming's effect).

mod hitrate;
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
    /// Revocation lag: commit of a revoking write to the first deny.
    Revocation(revocation::Options),
    /// Hit rate of a fixed sequence of questions, by answering tier.
    HitRate(hitrate::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Revocation(options) => revocation::run(options).await,
        Command::HitRate(options) => hitrate::run(options).await,
    }
}
