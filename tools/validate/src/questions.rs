//! Questions sampled from the database, and asking them of a running origin.
//!
//! The mix, of `n` questions (`authz_tools_common::questions::VALIDATE_MIX`): 30 % owners of a
//! generation, 15 % sharees of a generation, 15 % members of a team linked to a project (about
//! the project), 10 % members of a team (about the team), 5 % anonymous readers of a
//! generation, 25 % a random user and a random generation (almost always a deny). Sampling is
//! the tools' one sampler, deterministic for a given seed and dataset.

use std::time::{Duration, Instant};

use authz_tools_common::questions::{self, VALIDATE_MIX};
use serde_json::Value;
use tokio_postgres::Client;

pub use authz_tools_common::questions::Question;

/// Samples `n` questions of the validation mix (fewer only when the tables are smaller than the
/// mix asks for). `stream` separates the samples of different phases under one seed.
pub async fn sample(
    client: &Client,
    n: usize,
    seed: u64,
    stream: u64,
) -> Result<Vec<Question>, String> {
    questions::sample(client, VALIDATE_MIX, n, &format!("{seed}:{stream}:")).await
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Asked {
    /// How long the request took, end to end.
    pub elapsed: Duration,
    /// The decision's `granted`, on a 200.
    pub granted: Option<bool>,
    /// The decision's `source`, on a 200.
    pub source: Option<String>,
    /// What went wrong otherwise: the status and error code, or the transport error.
    pub error: Option<String>,
    /// The origin's own answer latency, from its `Server-Timing: decide;dur=<ms>` header.
    pub server_ms: Option<f64>,
}

/// The `dur` of the `decide` metric of a `Server-Timing` header value.
pub fn decide_duration_ms(header: &str) -> Option<f64> {
    header.split(',').find_map(|metric| {
        let mut parts = metric.split(';').map(str::trim);
        (parts.next() == Some("decide"))
            .then(|| parts.find_map(|part| part.strip_prefix("dur=")))
            .flatten()
            .and_then(|value| value.parse().ok())
    })
}

/// Asks `question` of the origin at `origin` with the service token.
pub async fn ask(http: &reqwest::Client, origin: &str, token: &str, question: &Question) -> Asked {
    let started = Instant::now();
    let response = http
        .post(format!("{origin}/v1/authorize"))
        .bearer_auth(token)
        .json(&question.body())
        .send()
        .await;
    let mut server_ms = None;
    let outcome = match response {
        Ok(response) => {
            let status = response.status();
            server_ms = response
                .headers()
                .get("server-timing")
                .and_then(|value| value.to_str().ok())
                .and_then(decide_duration_ms);
            match response.json::<Value>().await {
                Ok(body) if status.is_success() => Ok(body),
                Ok(body) => Err(format!(
                    "{} {}",
                    status.as_u16(),
                    body["error"]["code"].as_str().unwrap_or("?")
                )),
                Err(error) => Err(format!("{} unreadable body: {error}", status.as_u16())),
            }
        }
        Err(error) => Err(if error.is_connect() {
            format!("cannot connect to {origin}")
        } else if error.is_timeout() {
            "timed out".to_owned()
        } else {
            error.to_string()
        }),
    };
    let elapsed = started.elapsed();
    match outcome {
        Ok(body) => Asked {
            elapsed,
            granted: body["granted"].as_bool(),
            source: body["source"].as_str().map(str::to_owned),
            error: None,
            server_ms,
        },
        Err(error) => Asked {
            elapsed,
            granted: None,
            source: None,
            error: Some(error),
            server_ms,
        },
    }
}

/// Counts of `source` among answers, as "l1 700, db 300".
pub fn sources(answers: &[Asked]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for source in answers.iter().filter_map(|answer| answer.source.as_deref()) {
        match counts.iter_mut().find(|(name, _)| name == source) {
            Some((_, count)) => *count += 1,
            None => counts.push((source.to_owned(), 1)),
        }
    }
    counts.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    counts
        .iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The distinct errors among answers and their counts, as "503 unavailable ×3".
pub fn errors(answers: &[Asked]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for error in answers.iter().filter_map(|answer| answer.error.as_deref()) {
        match counts.iter_mut().find(|(name, _)| name == error) {
            Some((_, count)) => *count += 1,
            None => counts.push((error.to_owned(), 1)),
        }
    }
    counts
        .iter()
        .map(|(name, count)| format!("{name} ×{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_timing_decide_duration() {
        assert_eq!(decide_duration_ms("decide;dur=0.125"), Some(0.125));
        assert_eq!(
            decide_duration_ms("db;dur=3, decide;desc=\"x\";dur=2.5"),
            Some(2.5)
        );
        assert_eq!(decide_duration_ms("db;dur=3"), None);
        assert_eq!(decide_duration_ms("decide"), None);
    }
}
