//! Revoking writes interleaved with the load: shares of the questions' generations are
//! deactivated one at a time at a steady rate and each is reactivated a second later, so that
//! the questions read during the run really change answers and the origin really invalidates.
//! Every share is restored at the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use authz_core::ResourceType;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::questions::Question;

const RESTORE_SQL: &str = "UPDATE generation_shares SET is_active = true WHERE generation_id = $1 AND shared_with_user_id = $2";
const REVOKE_SQL: &str = "UPDATE generation_shares SET is_active = false WHERE generation_id = $1 AND shared_with_user_id = $2";

/// Writes `per_second` revocations (and as many restorations) until `stop`; returns how many
/// revocations were committed.
pub async fn run(
    database_url: &str,
    questions: &[Question],
    per_second: f64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let (db, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting the writer")?;
    tokio::spawn(connection);
    let generations: Vec<Uuid> = questions
        .iter()
        .filter(|question| question.resource_type == ResourceType::Generation)
        .map(|question| question.resource_id)
        .collect();
    let shares: Vec<(Uuid, Uuid)> = db
        .query(
            "SELECT generation_id, shared_with_user_id FROM generation_shares \
             WHERE is_active AND generation_id = ANY($1) ORDER BY md5(generation_id::text) LIMIT 2000",
            &[&generations],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    if shares.is_empty() {
        bail!("no active share among the questions' generations: nothing to revoke");
    }
    let revoke = db.prepare(REVOKE_SQL).await?;
    let restore = db.prepare(RESTORE_SQL).await?;
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.001));
    let keep = (per_second.ceil() as usize).max(1); // about a second's worth stays revoked
    let mut revoked: VecDeque<(Uuid, Uuid)> = VecDeque::new();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut writes = 0u64;
    let mut next = 0usize;
    let result = async {
        while !stop.load(Ordering::Acquire) {
            ticker.tick().await;
            let share = shares[next % shares.len()];
            next += 1;
            if revoked.contains(&share) {
                continue;
            }
            db.execute(&revoke, &[&share.0, &share.1]).await?;
            writes += 1;
            revoked.push_back(share);
            while revoked.len() > keep {
                if let Some((generation, user)) = revoked.pop_front() {
                    db.execute(&restore, &[&generation, &user]).await?;
                }
            }
        }
        anyhow::Ok(())
    }
    .await;
    for (generation, user) in revoked {
        db.execute(&restore, &[&generation, &user]).await?;
    }
    result.map(|()| writes)
}
