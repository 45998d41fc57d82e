//! Cache invalidation: which cached decisions are still fresh.
//!
//! Writers record their changes in `authz_change_log`; a sequencer (`authz_sequence_changes()`,
//! which this module's listener calls every `AUTHZ_SEQUENCER_INTERVAL_MS`) numbers the changes
//! that have committed with one new revision and announces them on the channel `authz_changes`
//! (migrations/README.md, V11). A revision is handed out only to committed changes and
//! sequencers commit one at a time, so a change with revision `r` is newer than a decision
//! computed at revision `e` exactly when `r > e`. This module keeps, per id, the newest revision
//! that touched it, and a floor below which everything is stale (after a gap in the listener,
//! after an `all` notice, or when the map is trimmed). An entry is fresh when its revision is at
//! or above the floor and none of its dependencies changed after it. Each change costs O(ids in
//! the notice); nothing scans keys, and every origin process listens itself, so several
//! processes sharing Redis all judge shared entries by the same notices. A notice of more than
//! 100 ids says `{"r": R, "log": N}`; its ids are read from the log (`authz_changed_ids(R)`),
//! and if they are not the N announced, everything older than `R` is treated as changed.
//!
//! Any database role may `NOTIFY` the channel, so a notice's revision is believed only once the
//! database has reached it (one sequencer round, whose answer is the revision, per revision not
//! yet confirmed): a forged `{"r": 9e18, "all": true}` is ignored instead of raising the floor
//! forever. An unreadable notice ends the connection; caches are bypassed until a new one
//! listens and raises the floor to the revision it reads. A sequencer round that fails or does
//! not answer within the heartbeat ends the connection too: changes nobody numbers are changes
//! nobody announces.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use authz_core::CacheEntry;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

/// The channel the revision triggers notify.
pub const CHANNEL: &str = "authz_changes";

/// Ids remembered before the map is folded into the floor.
const MAX_TRACKED_IDS: usize = 200_000;

/// A change notice as sent by the triggers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notice {
    /// The revision the change produced.
    pub r: u64,
    /// The ids it touched.
    #[serde(default)]
    pub ids: Vec<Uuid>,
    /// Whether everything must be treated as changed.
    #[serde(default)]
    pub all: bool,
    /// How many ids the change log holds for this revision (a notice too large to name them).
    #[serde(default)]
    pub log: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    floor: u64,
    changed: HashMap<Uuid, u64>,
}

/// The freshness oracle shared by every cache tier of one origin process.
#[derive(Debug)]
pub struct Invalidation {
    state: RwLock<State>,
    connected: AtomicBool,
    newest_revision: AtomicU64,
    notices: AtomicU64,
    reconnects: AtomicU64,
}

impl Default for Invalidation {
    fn default() -> Self {
        Self::new()
    }
}

impl Invalidation {
    /// A disconnected oracle: until the listener connects, caches are bypassed while Postgres
    /// answers.
    pub fn new() -> Self {
        Self {
            state: RwLock::new(State::default()),
            connected: AtomicBool::new(false),
            newest_revision: AtomicU64::new(0),
            notices: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    /// Whether the listener is connected, so that every committed change reaches this process.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// The newest revision seen (from a notice or at connect).
    pub fn newest_revision(&self) -> u64 {
        self.newest_revision.load(Ordering::Acquire)
    }

    /// Notices applied since start.
    pub fn notices(&self) -> u64 {
        self.notices.load(Ordering::Relaxed)
    }

    /// Listener (re)connections since start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Whether no known change is newer than `entry` for anything it depends on.
    pub fn is_fresh(&self, entry: &CacheEntry) -> bool {
        self.is_fresh_at(entry.decision.revision, &entry.dependencies)
    }

    /// Whether no known change newer than `revision` touched any of `dependencies`.
    pub fn is_fresh_at(&self, revision: u64, dependencies: &[Uuid]) -> bool {
        let Ok(state) = self.state.read() else {
            return false;
        };
        revision >= state.floor
            && dependencies.iter().all(|id| {
                state
                    .changed
                    .get(id)
                    .is_none_or(|changed| *changed <= revision)
            })
    }

    /// Applies one notice.
    pub fn apply(&self, notice: &Notice) {
        self.notices.fetch_add(1, Ordering::Relaxed);
        let Ok(mut state) = self.state.write() else {
            return;
        };
        // The newest revision is published only once the change is applied: whoever sees it
        // (health, tests waiting for a revision) sees its effect too.
        if notice.all {
            state.floor = state.floor.max(notice.r);
            state.changed.retain(|_, changed| *changed > notice.r);
            self.newest_revision.fetch_max(notice.r, Ordering::AcqRel);
            return;
        }
        for id in &notice.ids {
            let changed = state.changed.entry(*id).or_insert(0);
            *changed = (*changed).max(notice.r);
        }
        if state.changed.len() > MAX_TRACKED_IDS {
            // Forgetting which ids changed is safe only by declaring everything older stale.
            let newest = state.changed.values().copied().max().unwrap_or(0);
            state.floor = state.floor.max(newest);
            state.changed.clear();
        }
        self.newest_revision.fetch_max(notice.r, Ordering::AcqRel);
    }

    /// The listener is connected and the revision was `revision` right after `LISTEN`: every
    /// entry computed before is stale unless computed at that revision (no change since).
    pub fn connected_at(&self, revision: u64) {
        if let Ok(mut state) = self.state.write() {
            state.floor = state.floor.max(revision);
            state.changed.retain(|_, changed| *changed > revision);
        }
        self.newest_revision.fetch_max(revision, Ordering::AcqRel);
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.connected.store(true, Ordering::Release);
    }

    /// The listener lost its connection: until it is back, nothing tells us about changes.
    pub fn disconnected(&self) {
        self.connected.store(false, Ordering::Release);
    }
}

/// The sequencer round: numbers what committed since the last one and returns the revision.
const SEQUENCE_SQL: &str = "SELECT authz_sequence_changes()";

/// Listens on [`CHANNEL`] for as long as the process runs, reconnecting with exponential
/// backoff (50 ms to 2 s) after any failure. Every `sequencer` interval (and at least every
/// `heartbeat`) the connection runs a sequencer round, which must answer within `heartbeat`: a
/// connection that went silent (a cut network path sends no error) is dropped and
/// caches are bypassed until a new one listens, so a lost notice can never keep a revoked grant
/// cached for longer than about two heartbeats.
pub async fn listen_forever(
    target: crate::postgres_tls::Target,
    invalidation: Arc<Invalidation>,
    heartbeat: Duration,
    sequencer: Duration,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let started = Instant::now();
        match listen_once(&target, &invalidation, heartbeat, sequencer).await {
            Ok(()) => tracing::warn!("invalidation listener connection closed"),
            Err(error) => tracing::warn!(%error, "invalidation listener failed"),
        }
        invalidation.disconnected();
        metrics::counter!("authz_listener_disconnects_total").increment(1);
        if started.elapsed() > Duration::from_secs(10) {
            backoff = Duration::from_millis(50);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Why one listening connection ended.
#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error("{0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no answer within {0:?}")]
    Silent(Duration),
    #[error("unreadable change notice: {0}")]
    Unreadable(String),
}

/// One sequencer round on `client` (`round` is [`SEQUENCE_SQL`] prepared), within `deadline`:
/// the revision it returns.
async fn sequence(
    client: &tokio_postgres::Client,
    round: &tokio_postgres::Statement,
    deadline: Duration,
) -> Result<u64, ListenError> {
    let row = tokio::time::timeout(deadline, client.query_one(round, &[]))
        .await
        .map_err(|_| ListenError::Silent(deadline))??;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// A `log` notice's ids, read from the change log; `all` when they are not the `count`
/// announced (pruned, or a forged count), so nothing is ever missed.
async fn read_logged_ids(
    client: &tokio_postgres::Client,
    notice: &mut Notice,
    count: u64,
    deadline: Duration,
) -> Result<(), ListenError> {
    let revision = i64::try_from(notice.r).unwrap_or(i64::MAX);
    let rows = tokio::time::timeout(
        deadline,
        client.query("SELECT authz_changed_ids($1)", &[&revision]),
    )
    .await
    .map_err(|_| ListenError::Silent(deadline))??;
    notice.ids = rows.iter().map(|row| row.get::<_, Uuid>(0)).collect();
    if u64::try_from(notice.ids.len()).unwrap_or(u64::MAX) != count {
        tracing::warn!(
            revision = notice.r,
            count,
            found = notice.ids.len(),
            "a logged change is not the size announced; treating everything as changed"
        );
        notice.all = true;
        notice.ids.clear();
    }
    Ok(())
}

async fn listen_once(
    target: &crate::postgres_tls::Target,
    invalidation: &Invalidation,
    heartbeat: Duration,
    sequencer: Duration,
) -> Result<(), ListenError> {
    let deadline = heartbeat.max(Duration::from_secs(1));
    let mut config = target.config.clone();
    config
        .application_name("authz-origin/listener")
        .connect_timeout(deadline);
    let (client, mut connection) =
        tokio::time::timeout(deadline, config.connect(target.tls.clone()))
            .await
            .map_err(|_| ListenError::Silent(deadline))??;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let pump = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    if sender.send(Ok(notification.payload().to_owned())).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = sender.send(Err(error));
                    break;
                }
            }
        }
    });
    let result = async {
        let setup = async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            client.prepare(SEQUENCE_SQL).await
        };
        let round = tokio::time::timeout(deadline, setup)
            .await
            .map_err(|_| ListenError::Silent(deadline))??;
        // Listening before this round: every change it does not number is announced later.
        let mut confirmed = sequence(&client, &round, deadline).await?;
        invalidation.connected_at(confirmed);
        tracing::info!(revision = confirmed, "invalidation listener connected");
        // The round is also the heartbeat: at least one every `heartbeat`.
        let mut rounds =
            tokio::time::interval(sequencer.min(heartbeat).max(Duration::from_millis(1)));
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                message = receiver.recv() => message,
                _ = rounds.tick() => {
                    confirmed = confirmed.max(sequence(&client, &round, heartbeat).await?);
                    continue;
                }
            };
            let Some(message) = message else {
                break;
            };
            let payload = message?;
            let mut notice = match serde_json::from_str::<Notice>(&payload) {
                Ok(notice) => notice,
                Err(error) => {
                    // A change we cannot attribute: drop the connection, so caches are bypassed
                    // until a new one listens and sets the floor to the revision it reads then,
                    // which covers whatever this notice was about.
                    tracing::error!(%error, %payload, "unreadable change notice; re-listening");
                    metrics::counter!("authz_unreadable_notices_total").increment(1);
                    return Err(ListenError::Unreadable(error.to_string()));
                }
            };
            if notice.r > confirmed {
                // Any role may NOTIFY: a revision is believed only once the database has
                // reached it (one round covers every notice up to the revision it reads).
                confirmed = confirmed.max(sequence(&client, &round, deadline).await?);
                if notice.r > confirmed {
                    tracing::error!(%payload, confirmed, "change notice ahead of the database; ignored");
                    metrics::counter!("authz_forged_notices_total").increment(1);
                    continue;
                }
            }
            if let (Some(count), false) = (notice.log, notice.all) {
                read_logged_ids(&client, &mut notice, count, deadline).await?;
            }
            invalidation.apply(&notice);
        }
        Ok::<(), ListenError>(())
    }
    .await;
    pump.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use authz_core::cache::TtlPolicy;
    use authz_core::{Decision, DenyReason, Timestamp};

    fn entry(revision: u64, dependencies: &[u128]) -> CacheEntry {
        CacheEntry::new(
            Decision::deny(DenyReason::NoRelationship, revision, None),
            Timestamp(0),
            &TtlPolicy::default(),
            dependencies.iter().map(|id| Uuid::from_u128(*id)).collect(),
        )
    }

    fn notice(r: u64, ids: &[u128]) -> Notice {
        Notice {
            r,
            ids: ids.iter().map(|id| Uuid::from_u128(*id)).collect(),
            all: false,
            log: None,
        }
    }

    #[test]
    fn a_change_invalidates_only_older_entries_that_depend_on_it() {
        let invalidation = Invalidation::new();
        invalidation.connected_at(5);
        assert!(
            !invalidation.is_fresh(&entry(4, &[1])),
            "older than the floor"
        );
        assert!(invalidation.is_fresh(&entry(5, &[1, 2])));
        invalidation.apply(&notice(6, &[2]));
        assert!(!invalidation.is_fresh(&entry(5, &[1, 2])));
        assert!(invalidation.is_fresh(&entry(5, &[1, 3])));
        assert!(invalidation.is_fresh(&entry(6, &[2])));
        // Notices may name a revision lower than one already seen for the same id only if
        // commit order broke; the newest one is kept either way.
        invalidation.apply(&notice(3, &[2]));
        assert!(!invalidation.is_fresh(&entry(5, &[2])));
    }

    #[test]
    fn all_and_reconnects_raise_the_floor() {
        let invalidation = Invalidation::new();
        invalidation.connected_at(1);
        invalidation.apply(&Notice {
            r: 9,
            ids: vec![],
            all: true,
            log: None,
        });
        assert!(!invalidation.is_fresh(&entry(8, &[])));
        assert!(invalidation.is_fresh(&entry(9, &[])));
        invalidation.disconnected();
        assert!(!invalidation.is_connected());
        invalidation.connected_at(12);
        assert!(!invalidation.is_fresh(&entry(11, &[])));
        assert!(invalidation.is_connected());
    }

    #[test]
    fn notices_parse() {
        let parsed: Notice =
            serde_json::from_str(r#"{"r":42,"ids":["a0000000-0000-4000-8000-000000000001"]}"#)
                .unwrap();
        assert_eq!(parsed.r, 42);
        assert_eq!(parsed.ids.len(), 1);
        let parsed: Notice = serde_json::from_str(r#"{"r":43,"all":true}"#).unwrap();
        assert!(parsed.all);
        let parsed: Notice = serde_json::from_str(r#"{"r":44,"log":150}"#).unwrap();
        assert_eq!(parsed.log, Some(150));
    }
}
