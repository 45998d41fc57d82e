//! One alert evaluator across the fleet. Every origin process ticks every
//! `AUTHZ_ALERT_INTERVAL_SECONDS`; the one holding a session advisory lock on the primary
//! (`pg_try_advisory_lock`, on a connection of its own named `authz-origin/alerts`) judges the
//! thresholds and sends the webhook events ([`super::alerts`]); the others only read the open
//! alerts for their dashboards, and try for the lock at each tick. The lock goes with the
//! connection: a leader that stops, crashes or loses Postgres releases it, and the next
//! process to tick takes over. The leader judges its own window: processes behind one load
//! balancer see the same traffic, so its figures stand for the fleet's.

use std::time::Duration;

use tokio::sync::mpsc;

use super::alerts::{Evaluator, evaluate_on, load_thresholds, read_open};
use crate::db::Workload;
use crate::monitoring::Handles;
use crate::monitoring::background::webhook::AlertEvent;
use crate::monitoring::measure::window::unix_now;

/// The advisory lock's key: `hashtext('authz_alert_evaluator')` computed by Postgres.
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('authz_alert_evaluator'))";

/// The leader's connection, which holds the lock.
struct Leader {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        // Closing the session releases the lock.
        self.driver.abort();
    }
}

/// Opens a connection of its own and tries for the lock; `None` when another process has it
/// (or Postgres cannot be reached).
async fn try_lead(state: &Handles, deadline: Duration) -> Option<Leader> {
    let attempt = async {
        let mut config = state.config.postgres_primary.config.clone();
        config
            .application_name("authz-origin/alerts")
            .connect_timeout(deadline);
        let (client, connection) = config
            .connect(state.config.postgres_primary.tls.clone())
            .await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "the alert evaluator's connection closed");
            }
        });
        let leader = Leader { client, driver };
        let locked: bool = leader.client.query_one(TRY_LOCK, &[]).await?.get(0);
        Ok::<_, tokio_postgres::Error>(locked.then_some(leader))
    };
    match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(leader)) => leader,
        Ok(Err(error)) => {
            tracing::debug!(%error, "trying for the alert evaluator's lock failed");
            None
        }
        Err(_) => None,
    }
}

/// What a process that does not judge shows: the thresholds and the open alerts as the
/// evaluator left them.
async fn follow(state: &Handles) -> Result<(), String> {
    let client = state
        .decider
        .pools()
        .named(Workload::Read)
        .get()
        .await
        .map_err(|error| error.to_string())?;
    let thresholds = load_thresholds(&client)
        .await
        .map_err(|error| error.to_string())?;
    let open = read_open(&client)
        .await
        .map_err(|error| error.to_string())?;
    state.monitoring.alerts().update(|view| {
        view.thresholds = thresholds;
        view.open = open;
        view.evaluated_at = Some(unix_now());
        view.last_error = None;
        view.evaluator = Some(Evaluator::AnotherProcess);
    });
    Ok(())
}

/// Logs an event: opened and changed alerts as warnings (critical ones as errors), resolved
/// ones as information.
fn log(event: &AlertEvent) {
    let alert = &event.alert;
    match (event.event, alert.level.as_str()) {
        ("resolved", _) => tracing::info!(
            metric = %alert.metric_name, level = %alert.level, "performance alert resolved: {}",
            alert.message
        ),
        (_, "critical") => tracing::error!(
            metric = %alert.metric_name, event = event.event, "CRITICAL performance alert: {}",
            alert.message
        ),
        _ => tracing::warn!(
            metric = %alert.metric_name, event = event.event, "performance alert: {}",
            alert.message
        ),
    }
}

/// Ticks every `AUTHZ_ALERT_INTERVAL_SECONDS`, forever: judges while this process holds the
/// lock (events go to the log and to the webhook queue, dropped and counted when it is full),
/// else follows.
pub async fn evaluate_forever(state: Handles, events: mpsc::Sender<AlertEvent>) {
    let interval = state.monitoring.config().alert_interval;
    let deadline = interval.max(Duration::from_secs(5));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leader: Option<Leader> = None;
    loop {
        ticks.tick().await;
        if leader.as_ref().is_some_and(|l| l.client.is_closed()) {
            leader = None;
        }
        if leader.is_none() {
            leader = try_lead(&state, deadline).await;
            if leader.is_some() {
                tracing::info!("this process evaluates the alerts");
            }
        }
        let outcome = match &leader {
            Some(lead) => {
                metrics::counter!("authz_alert_evaluations_total").increment(1);
                let summary = state
                    .monitoring
                    .window()
                    .summary(state.monitoring.config().alert_window, unix_now());
                match tokio::time::timeout(deadline, evaluate_on(&lead.client, &state, &summary))
                    .await
                {
                    Ok(Ok(produced)) => {
                        for event in produced {
                            log(&event);
                            metrics::counter!("authz_alert_events_total", "event" => event.event)
                                .increment(1);
                            if events.try_send(event).is_err() {
                                metrics::counter!("authz_alert_webhook_dropped_total").increment(1);
                            }
                        }
                        Ok(())
                    }
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                }
            }
            None => follow(&state).await,
        };
        if let Err(error) = outcome {
            metrics::counter!("authz_alert_evaluation_failures_total").increment(1);
            tracing::warn!(%error, "alert evaluation failed");
            // A leader whose evaluation failed gives the lock up: its connection may be the
            // problem, and another process may do better.
            leader = None;
            state
                .monitoring
                .alerts()
                .update(|view| view.last_error = Some(error));
        }
    }
}
