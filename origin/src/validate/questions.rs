//! Questions sampled from the database, and asking them of a running origin.
//!
//! The mix, of `n` questions: 30 % owners of a generation, 15 % sharees of a generation,
//! 15 % members of a team linked to a project (about the project), 10 % members of a team
//! (about the team), 5 % anonymous readers of a generation, 25 % a random user and a random
//! generation (almost always a deny). Each gets a random operation. Sampling is deterministic
//! for a given seed and dataset (`setseed`, then `ORDER BY random()`).

use std::time::{Duration, Instant};

use authz_core::{Operation, ResourceType};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use tokio_postgres::Client;
use uuid::Uuid;

/// One question, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The principal (`None`: anonymous).
    pub user: Option<Uuid>,
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource.
    pub resource_id: Uuid,
    /// The operation.
    pub operation: Operation,
}

impl Question {
    /// The `POST /v1/authorize` body.
    pub fn body(&self) -> Value {
        json!({
            "user_id": self.user.map(|user| user.to_string()),
            "resource_type": self.resource_type.as_str(),
            "resource_id": self.resource_id.to_string(),
            "operation": self.operation.as_str(),
        })
    }
}

/// The shares of the mix: (per mille, query returning (user, resource id), resource type).
const MIX: [(u32, &str, ResourceType); 6] = [
    (
        300,
        "SELECT g.user_id, g.id FROM generations g ORDER BY random() LIMIT $1",
        ResourceType::Generation,
    ),
    (
        150,
        "SELECT s.shared_with_user_id, s.generation_id FROM generation_shares s \
          ORDER BY random() LIMIT $1",
        ResourceType::Generation,
    ),
    (
        150,
        "SELECT m.user_id, pt.project_id FROM project_teams pt \
           JOIN team_members m ON m.team_id = pt.team_id ORDER BY random() LIMIT $1",
        ResourceType::Project,
    ),
    (
        100,
        "SELECT m.user_id, m.team_id FROM team_members m ORDER BY random() LIMIT $1",
        ResourceType::Team,
    ),
    (
        50,
        "SELECT NULL::uuid, g.id FROM generations g ORDER BY random() LIMIT $1",
        ResourceType::Generation,
    ),
    (
        250,
        "SELECT u.id, g.id \
           FROM (SELECT id, row_number() OVER (ORDER BY random()) AS n FROM users) u \
           JOIN (SELECT id, row_number() OVER (ORDER BY random()) AS n FROM generations \
                  ORDER BY random() LIMIT $1) g ON g.n = u.n",
        ResourceType::Generation,
    ),
];

/// Samples `n` questions (fewer only when the tables are smaller than the mix asks for).
/// `stream` separates the samples of different phases under one seed.
pub async fn sample(
    client: &Client,
    n: usize,
    seed: u64,
    stream: u64,
) -> Result<Vec<Question>, String> {
    let mut rng = SmallRng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let setseed: f64 = rng.random_range(-1.0..1.0);
    client
        .execute("SELECT setseed($1)", &[&setseed])
        .await
        .map_err(|error| format!("cannot sample questions: {error}"))?;
    let mut questions = Vec::with_capacity(n);
    for (share, sql, resource_type) in MIX {
        let wanted = i64::try_from((n * share as usize).div_ceil(1_000)).unwrap_or(i64::MAX);
        let rows = client
            .query(sql, &[&wanted])
            .await
            .map_err(|error| format!("cannot sample questions: {error}"))?;
        for row in rows {
            let operation = Operation::ALL
                .get(rng.random_range(0..Operation::ALL.len()))
                .copied()
                .unwrap_or(Operation::Read);
            questions.push(Question {
                user: row.get(0),
                resource_type,
                resource_id: row.get(1),
                operation,
            });
        }
    }
    questions.shuffle(&mut rng);
    questions.truncate(n);
    if questions.is_empty() {
        return Err("the database holds no data to ask about: seed it first \
                    (authz-origin seed --scale small)"
            .to_owned());
    }
    Ok(questions)
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
