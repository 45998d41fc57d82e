//! Hit rate of a fixed sequence of questions: each JSON body of a file (one a line) is posted
//! once, in order, by `concurrency` workers, and the answering tier (`source`) is tallied.
//! Used to show what cache warming changes just after a restart.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use serde_json::{Value, json};

/// Options of `authz-bench hit-rate`.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The origin's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    origin: String,
    /// The origin's service token.
    #[arg(long, env = "AUTHZ_SERVICE_TOKEN")]
    service_token: String,
    /// A file of request bodies, one JSON object a line.
    #[arg(long)]
    questions: std::path::PathBuf,
    /// Concurrent workers.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Posts every question once and prints the tally as JSON.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&options.questions)
        .with_context(|| format!("reading {}", options.questions.display()))?;
    let bodies: Arc<Vec<Value>> = Arc::new(
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?,
    );
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let (client, bodies, next) = (client.clone(), Arc::clone(&bodies), Arc::clone(&next));
        let (origin, token) = (options.origin.clone(), options.service_token.clone());
        workers.push(tokio::spawn(async move {
            let mut tally: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else {
                    break;
                };
                let answer: Value = match client
                    .post(format!("{origin}/v1/authorize"))
                    .bearer_auth(&token)
                    .json(body)
                    .send()
                    .await
                {
                    Ok(response) => response.json().await.unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                let source = answer["source"].as_str().unwrap_or("error").to_owned();
                *tally.entry(source).or_default() += 1;
            }
            tally
        }));
    }
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for worker in workers {
        for (source, count) in worker.await? {
            *total.entry(source).or_default() += count;
        }
    }
    let requests: u64 = total.values().sum();
    let hits = total.get("l1").copied().unwrap_or(0) + total.get("l2").copied().unwrap_or(0);
    let summary = json!({
        "requests": requests,
        "sources": total,
        "hit_rate": if requests == 0 { 0.0 } else { hits as f64 / requests as f64 },
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
