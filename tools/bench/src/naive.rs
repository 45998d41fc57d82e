//! The naive baseline: what an authorization check costs with no cache and no pool. Each
//! question opens its own Postgres connection, runs the tools' one naive baseline on it
//! (`authz_tools_common::baseline`: sequential `SELECT`s, decided by the core) and closes the
//! connection, `connections` workers back to back. It skips HTTP altogether, so the comparison
//! flatters the baseline, never us.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use authz_tools_common::baseline::{Naive, timestamp};
use tokio_postgres::NoTls;

use crate::client::Answer;
use crate::load::Picks;
use crate::load::record::Recorder;
use crate::questions::Question;

/// Options of `authz-bench naive`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The seeded database.
    #[arg(long, env = "POSTGRES_PRIMARY_URL")]
    database_url: String,
    #[command(flatten)]
    picks: Picks,
    /// Concurrent workers.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// One question on a connection of its own: connect, prepare the baseline's statements, ask
/// them one after the other, decide, disconnect.
async fn ask(database_url: &str, question: &Question) -> anyhow::Result<bool> {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let naive = Naive::prepare(&db).await?;
    let granted = naive
        .decide(&db, question, timestamp(SystemTime::now()))
        .await
        .map_err(anyhow::Error::msg)?;
    drop(db);
    let _ = driver.await;
    Ok(granted)
}

/// Runs the baseline and prints its summary.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let questions: Arc<Vec<Question>> =
        Arc::new(options.picks.questions(Some(&options.database_url)).await?);
    // One check that the function answers at all, before timing.
    let Some(first) = questions.first() else {
        bail!("no questions");
    };
    ask(&options.database_url, first)
        .await
        .context("the decision function does not answer")?;
    options.picks.picker(questions.len(), 0)?;
    let start = Instant::now();
    let end = start + Duration::from_secs(options.duration);
    let recorder = Arc::new(Mutex::new(Recorder::new(start, Duration::ZERO)));
    let mut workers = Vec::new();
    for index in 0..options.connections.max(1) {
        let (questions, recorder, url) = (
            Arc::clone(&questions),
            Arc::clone(&recorder),
            options.database_url.clone(),
        );
        let mut picker = options.picks.picker(questions.len(), index as u64)?;
        workers.push(tokio::spawn(async move {
            while Instant::now() < end {
                let question = &questions[picker.next()];
                let sent = Instant::now();
                let answer = match ask(&url, question).await {
                    Ok(granted) => Answer::Decision {
                        granted,
                        tier: "naive".to_owned(),
                        ttl_ms: 0,
                    },
                    Err(error) => Answer::Failed(error.to_string()),
                };
                if let Ok(mut recorder) = recorder.lock() {
                    recorder.record(sent, sent, Instant::now(), &answer, false);
                }
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let summary = recorder
        .lock()
        .map_err(|_| anyhow::anyhow!("a worker panicked"))?
        .summary(start.elapsed());
    let mut value = serde_json::to_value(&summary)?;
    if let Some(object) = value.as_object_mut() {
        object.remove("timeline");
        object.remove("spectrum");
        object.insert("connections".to_owned(), options.connections.into());
    }
    let text = serde_json::to_string_pretty(&value)?;
    println!("{text}");
    if let Some(path) = &options.json {
        std::fs::write(path, text)?;
    }
    Ok(())
}
