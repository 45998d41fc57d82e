//! The questions a load asks: sampled from a seeded database (owners, members of linked teams,
//! holders of shares, strangers; all six operations), or read from a file of JSON bodies.
//! The order is a fixed pseudo-random one, so rank 1 of a Zipf workload is the same question
//! in every run on the same data.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;
use uuid::Uuid;

/// One question: the body of `POST /v1/authorize` without `min_revision`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Question {
    /// The principal.
    pub user_id: Uuid,
    /// `generation`, `project` or `team`.
    pub resource_type: String,
    /// The resource.
    pub resource_id: Uuid,
    /// One of the six operations.
    pub operation: String,
}

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

// Shares: 10 %, owners: 40 %, team members: 25 %, strangers: 25 %. Each kind is ordered by a
// hash so that the sample is the same on the same data, then the kinds are interleaved by
// hash too, so that the first questions (a Zipf workload's hottest) mix every kind.
const SAMPLE_SQL: &str = "
WITH shares AS (
  SELECT s.shared_with_user_id AS u, s.generation_id AS r FROM generation_shares s
  ORDER BY md5(s.generation_id::text || s.shared_with_user_id::text) LIMIT $1::bigint / 10
), owners AS (
  SELECT g.user_id AS u, g.id AS r FROM generations g ORDER BY md5(g.id::text) LIMIT $1::bigint * 4 / 10
), members AS (
  SELECT m.user_id AS u, g.id AS r FROM generations g
  JOIN project_teams pt ON pt.project_id = g.project_id
  JOIN team_members m ON m.team_id = pt.team_id
  ORDER BY md5(g.id::text || m.user_id::text) LIMIT $1::bigint / 4
), strangers AS (
  SELECT u.id AS u, g.id AS r
  FROM (SELECT id, row_number() OVER (ORDER BY md5(id::text)) AS n FROM users
        ORDER BY md5(id::text) LIMIT $1::bigint / 4) u
  JOIN (SELECT id, row_number() OVER (ORDER BY md5(id::text || 'x')) AS n FROM generations
        ORDER BY md5(id::text || 'x') LIMIT $1::bigint / 4) g ON g.n = u.n
), pairs AS (
  SELECT * FROM shares UNION ALL SELECT * FROM owners
  UNION ALL SELECT * FROM members UNION ALL SELECT * FROM strangers
)
SELECT u, r, (ARRAY['read','download','write','delete','share','admin'])[1 + (abs(hashtext(u::text || r::text)) % 6)]
FROM pairs ORDER BY md5(u::text || r::text)";

/// Samples about `count` questions from a seeded database.
pub async fn sample(database_url: &str, count: usize) -> anyhow::Result<Vec<Question>> {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting to the database to sample questions")?;
    tokio::spawn(connection);
    let rows = db
        .query(SAMPLE_SQL, &[&i64::try_from(count).unwrap_or(i64::MAX)])
        .await
        .context("sampling questions")?;
    if rows.is_empty() {
        bail!("the database holds no generations: seed it first (authz-origin seed)");
    }
    Ok(rows
        .iter()
        .map(|row| Question {
            user_id: row.get(0),
            resource_type: "generation".to_owned(),
            resource_id: row.get(1),
            operation: row.get(2),
        })
        .collect())
}

/// Reads questions from a file of JSON bodies, one a line.
pub fn read(path: &std::path::Path) -> anyhow::Result<Vec<Question>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let questions: Vec<Question> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    if questions.is_empty() {
        bail!("{} holds no questions", path.display());
    }
    Ok(questions)
}

/// Prints sampled questions as JSON lines.
pub async fn run(options: Options) -> anyhow::Result<()> {
    for question in sample(&options.database_url, options.count).await? {
        println!("{}", serde_json::to_string(&question)?);
    }
    Ok(())
}
