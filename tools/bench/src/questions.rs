//! The questions a load asks: sampled from a seeded database by the tools' one sampler (the load
//! mix: owners, members of linked teams, holders of shares, strangers; all six operations), or
//! read from a file of JSON bodies.
//! The order is a fixed pseudo-random one, so rank 1 of a Zipf workload is the same question
//! in every run on the same data.

use anyhow::Context;
use authz_tools_common::questions::{self, LOAD_MIX};
use tokio_postgres::NoTls;

pub use authz_tools_common::questions::Question;

/// Options of `authz-bench questions`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The seeded database.
    #[arg(long, env = "POSTGRES_PRIMARY_URL")]
    database_url: String,
    /// How many questions (at most; a small seed may hold fewer pairs of some kind).
    #[arg(long, default_value_t = 5_000)]
    count: usize,
}

/// Samples about `count` questions of the load mix from a seeded database (no salt: the
/// same questions in the same order on the same data, run after run).
pub async fn sample(database_url: &str, count: usize) -> anyhow::Result<Vec<Question>> {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting to the database to sample questions")?;
    tokio::spawn(connection);
    questions::sample(&db, LOAD_MIX, count, "")
        .await
        .map_err(anyhow::Error::msg)
}

/// Reads questions from a file of JSON bodies, one a line.
pub fn read(path: &std::path::Path) -> anyhow::Result<Vec<Question>> {
    questions::read(path).map_err(anyhow::Error::msg)
}

/// Prints sampled questions as JSON lines.
pub async fn run(options: Options) -> anyhow::Result<()> {
    for question in sample(&options.database_url, options.count).await? {
        println!("{}", serde_json::to_string(&question)?);
    }
    Ok(())
}
