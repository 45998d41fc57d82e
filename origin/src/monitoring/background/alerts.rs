//! Thresholds and alerts. Every `AUTHZ_ALERT_INTERVAL_SECONDS` the evaluator reloads the
//! enabled rows of `performance_thresholds` and compares each metric of the window's last
//! `AUTHZ_ALERT_WINDOW_SECONDS` with them (`gt`: breached above, `lt`: below; `critical`
//! beyond the critical value, else `warning` beyond the warning value), through the write pool:
//!
//! - breached: the metric's one open `performance_alerts` row is upserted (the partial unique
//!   index keeps it single, so an alert that stays open is never duplicated: only its value,
//!   `last_seen_at` and `occurrences` move); an `opened` or `level_changed` event is logged and
//!   sent to the webhook;
//! - within bounds: the open row gets `resolved_at`, and a `resolved` event goes out;
//! - no data (no decisions in the window, or a metric not measured in process such as
//!   `revocation_lag_p99_ms`): the row is left as it is, as `check_performance_thresholds()`
//!   does;
//! - an open alert whose threshold was disabled or deleted is resolved.
//!
//! The evaluator's last view (thresholds, open alerts, values) is kept for the dashboard, so
//! pages and endpoints never query Postgres for it.
//!
//! Several origin processes: one of them judges, the one holding the evaluator's advisory lock
//! ([`super::evaluator`]); the others read the open alerts it wrote. So one condition is one
//! alert across the fleet, opened and resolved once, and one webhook call per event. Where
//! `pg_cron` runs V4's `check_performance_thresholds()` on the persisted rows, it writes the
//! same rows too.

use std::sync::Mutex;

use serde::Serialize;
use serde_json::json;

use crate::monitoring::Handles;
use crate::monitoring::background::webhook::{AlertEvent, AlertView};
use crate::monitoring::measure::window::{Summary, unix_now};

/// One row of `performance_thresholds`.
#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    /// The metric.
    pub metric_name: String,
    /// The warning limit.
    pub warning_value: f64,
    /// The critical limit.
    pub critical_value: f64,
    /// `gt` (breached above) or `lt` (breached below).
    pub comparison: String,
    /// `ms`, `ratio`, ...
    pub unit: String,
    /// What it measures.
    pub description: String,
}

/// How a value compares with a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Within bounds.
    Ok,
    /// Beyond the warning value.
    Warning,
    /// Beyond the critical value.
    Critical,
    /// Nothing to compare.
    NoData,
}

impl Level {
    /// The level's name in JSON and in `performance_alerts.level`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::NoData => "no_data",
        }
    }
}

impl Threshold {
    fn beyond(&self, value: f64, limit: f64) -> bool {
        if self.comparison == "lt" {
            value < limit
        } else {
            value > limit
        }
    }

    /// The level of `value`.
    pub fn level(&self, value: Option<f64>) -> Level {
        match value {
            None => Level::NoData,
            Some(value) if self.beyond(value, self.critical_value) => Level::Critical,
            Some(value) if self.beyond(value, self.warning_value) => Level::Warning,
            Some(_) => Level::Ok,
        }
    }

    /// The limit that `level` was judged against.
    pub fn limit(&self, level: Level) -> f64 {
        if level == Level::Critical {
            self.critical_value
        } else {
            self.warning_value
        }
    }

    fn message(&self, level: Level, value: f64) -> String {
        let sign = if self.comparison == "lt" { "<" } else { ">" };
        format!(
            "{} is {} {} ({} threshold {sign} {} {})",
            self.metric_name,
            (value * 10_000.0).round() / 10_000.0,
            self.unit,
            level.as_str(),
            self.limit(level),
            self.unit
        )
    }
}

/// An open alert, as the dashboard shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAlert {
    /// `performance_alerts.id`.
    pub id: i64,
    /// The metric.
    pub metric_name: String,
    /// `warning` or `critical`.
    pub level: String,
    /// The last value seen.
    pub value: f64,
    /// The limit crossed.
    pub threshold: f64,
    /// A sentence.
    pub message: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub last_seen_at: String,
    /// Evaluations that saw it.
    pub occurrences: i32,
}

/// The evaluator's last view.
#[derive(Debug, Default, Clone)]
pub struct BoardView {
    /// The enabled thresholds.
    pub thresholds: Vec<Threshold>,
    /// The open alerts.
    pub open: Vec<OpenAlert>,
    /// When (Unix seconds), if ever.
    pub evaluated_at: Option<f64>,
    /// Why the last evaluation failed, if it did.
    pub last_error: Option<String>,
    /// Who judged: this process, or another one (this one only read the alerts).
    pub evaluator: Option<Evaluator>,
}

/// Which process judges the thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evaluator {
    /// This process holds the evaluator's lock.
    ThisProcess,
    /// Another process holds it; this one shows what it wrote.
    AnotherProcess,
}

/// The evaluator's last view, shared with the dashboard.
#[derive(Debug, Default)]
pub struct AlertBoard {
    view: Mutex<BoardView>,
}

impl AlertBoard {
    /// A copy of the last view.
    pub fn view(&self) -> BoardView {
        self.view
            .lock()
            .map(|view| view.clone())
            .unwrap_or_default()
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut BoardView)) {
        if let Ok(mut view) = self.view.lock() {
            f(&mut view);
        }
    }
}

const RFC3339: &str = r#"'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'"#;

/// Reads the enabled thresholds.
pub async fn load_thresholds(
    client: &tokio_postgres::Client,
) -> Result<Vec<Threshold>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT metric_name, warning_value, critical_value, comparison, unit, description \
               FROM performance_thresholds WHERE enabled ORDER BY metric_name",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Threshold {
            metric_name: row.get(0),
            warning_value: row.get(1),
            critical_value: row.get(2),
            comparison: row.get(3),
            unit: row.get(4),
            description: row.get(5),
        })
        .collect())
}

fn upsert_sql() -> String {
    format!(
        "WITH previous AS (
             SELECT level FROM performance_alerts WHERE metric_name = $1 AND resolved_at IS NULL)
         INSERT INTO performance_alerts AS a (metric_name, level, value, threshold, message, details)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (metric_name) WHERE resolved_at IS NULL DO UPDATE
            SET level = EXCLUDED.level, value = EXCLUDED.value, threshold = EXCLUDED.threshold,
                message = EXCLUDED.message, details = EXCLUDED.details,
                last_seen_at = now(), occurrences = a.occurrences + 1
         RETURNING a.id, (SELECT level FROM previous),
                   to_char(a.started_at AT TIME ZONE 'UTC', {RFC3339})"
    )
}

fn resolve_sql() -> String {
    format!(
        "UPDATE performance_alerts SET resolved_at = greatest(now(), started_at)
          WHERE resolved_at IS NULL AND (metric_name = $1 OR ($1 IS NULL AND NOT metric_name = ANY($2)))
         RETURNING id, metric_name, level, value, threshold, message,
                   to_char(started_at AT TIME ZONE 'UTC', {RFC3339}),
                   to_char(resolved_at AT TIME ZONE 'UTC', {RFC3339})"
    )
}

fn open_sql() -> String {
    format!(
        "SELECT id, metric_name, level, value, threshold, message,
                to_char(started_at AT TIME ZONE 'UTC', {RFC3339}),
                to_char(last_seen_at AT TIME ZONE 'UTC', {RFC3339}), occurrences
           FROM performance_alerts WHERE resolved_at IS NULL ORDER BY started_at"
    )
}

/// One evaluation on `client` (the evaluator's own connection): the events it produced.
pub(super) async fn evaluate_on(
    client: &tokio_postgres::Client,
    state: &Handles,
    summary: &Summary,
) -> Result<Vec<AlertEvent>, tokio_postgres::Error> {
    let window_seconds = state.monitoring.config().alert_window.as_secs();
    let thresholds = load_thresholds(client).await?;
    let mut events = Vec::new();
    for threshold in &thresholds {
        let value = summary.metric(&threshold.metric_name);
        let level = threshold.level(value);
        match (level, value) {
            (Level::Warning | Level::Critical, Some(value)) => {
                let message = threshold.message(level, value);
                let details = json!({
                    "window_seconds": window_seconds,
                    "decisions": summary.counts.decisions(),
                    "comparison": threshold.comparison,
                    "unit": threshold.unit,
                });
                let row = client
                    .query_one(
                        &upsert_sql(),
                        &[
                            &threshold.metric_name,
                            &level.as_str(),
                            &value,
                            &threshold.limit(level),
                            &message,
                            &details,
                        ],
                    )
                    .await?;
                let previous: Option<String> = row.get(1);
                let event = match previous.as_deref() {
                    None => "opened",
                    Some(previous) if previous != level.as_str() => "level_changed",
                    Some(_) => continue,
                };
                events.push(AlertEvent::new(
                    event,
                    AlertView {
                        id: row.get(0),
                        metric_name: threshold.metric_name.clone(),
                        level: level.as_str().to_owned(),
                        value,
                        threshold: threshold.limit(level),
                        comparison: threshold.comparison.clone(),
                        unit: threshold.unit.clone(),
                        message,
                        started_at: row.get(2),
                        resolved_at: None,
                        window_seconds,
                    },
                ));
            }
            (Level::Ok, _) => {
                let rows = client
                    .query(
                        &resolve_sql(),
                        &[&Some(threshold.metric_name.as_str()), &Vec::<&str>::new()],
                    )
                    .await?;
                events.extend(resolved(&rows, Some(threshold), value, window_seconds));
            }
            _ => {}
        }
    }
    // Alerts whose threshold was disabled or deleted resolve.
    let names: Vec<&str> = thresholds.iter().map(|t| t.metric_name.as_str()).collect();
    let rows = client
        .query(&resolve_sql(), &[&None::<&str>, &names])
        .await?;
    events.extend(resolved(&rows, None, None, window_seconds));

    let open = read_open(client).await?;
    metrics::gauge!("authz_alerts_open").set(open.len() as f64);
    state.monitoring.alerts().update(|view| {
        view.thresholds = thresholds;
        view.open = open;
        view.evaluated_at = Some(unix_now());
        view.last_error = None;
        view.evaluator = Some(Evaluator::ThisProcess);
    });
    Ok(events)
}

/// The open alerts, oldest first.
pub(super) async fn read_open(
    client: &tokio_postgres::Client,
) -> Result<Vec<OpenAlert>, tokio_postgres::Error> {
    Ok(client
        .query(&open_sql(), &[])
        .await?
        .iter()
        .map(|row| OpenAlert {
            id: row.get(0),
            metric_name: row.get(1),
            level: row.get(2),
            value: row.get(3),
            threshold: row.get(4),
            message: row.get(5),
            started_at: row.get(6),
            last_seen_at: row.get(7),
            occurrences: row.get(8),
        })
        .collect())
}

fn resolved(
    rows: &[tokio_postgres::Row],
    threshold: Option<&Threshold>,
    value: Option<f64>,
    window_seconds: u64,
) -> Vec<AlertEvent> {
    rows.iter()
        .map(|row| {
            let fallback = Threshold {
                metric_name: row.get(1),
                warning_value: row.get(4),
                critical_value: row.get(4),
                comparison: String::new(),
                unit: String::new(),
                description: String::new(),
            };
            let threshold = threshold.unwrap_or(&fallback);
            let message = match value {
                Some(value) => format!(
                    "{} is back within bounds at {} {}",
                    threshold.metric_name,
                    (value * 10_000.0).round() / 10_000.0,
                    threshold.unit
                ),
                None => format!("{}: threshold disabled", threshold.metric_name),
            };
            AlertEvent::new(
                "resolved",
                AlertView {
                    id: row.get(0),
                    metric_name: threshold.metric_name.clone(),
                    level: row.get(2),
                    value: value.unwrap_or_else(|| row.get(3)),
                    threshold: row.get(4),
                    comparison: threshold.comparison.clone(),
                    unit: threshold.unit.clone(),
                    message,
                    started_at: row.get(6),
                    resolved_at: Some(row.get(7)),
                    window_seconds,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threshold(comparison: &str, warning_value: f64, critical_value: f64) -> Threshold {
        Threshold {
            metric_name: "m".to_owned(),
            warning_value,
            critical_value,
            comparison: comparison.to_owned(),
            unit: "ms".to_owned(),
            description: String::new(),
        }
    }

    #[test]
    fn levels_follow_the_comparison() {
        let latency = threshold("gt", 50.0, 100.0);
        assert_eq!(latency.level(None), Level::NoData);
        assert_eq!(latency.level(Some(50.0)), Level::Ok);
        assert_eq!(latency.level(Some(50.1)), Level::Warning);
        assert_eq!(latency.level(Some(100.1)), Level::Critical);
        let hit_rate = threshold("lt", 0.95, 0.80);
        assert_eq!(hit_rate.level(Some(0.96)), Level::Ok);
        assert_eq!(hit_rate.level(Some(0.9)), Level::Warning);
        assert_eq!(hit_rate.level(Some(0.5)), Level::Critical);
        assert_eq!(hit_rate.limit(Level::Critical), 0.80);
        assert_eq!(
            latency.message(Level::Warning, 61.23456),
            "m is 61.2346 ms (warning threshold > 50 ms)"
        );
    }
}
