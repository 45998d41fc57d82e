//! The alert webhook: each alert event is POSTed as JSON to `AUTHZ_ALERT_WEBHOOK_URL`, in
//! order, by one task reading a bounded queue. A call has `AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS`;
//! a failed one (transport error or non-2xx) is retried `AUTHZ_ALERT_WEBHOOK_RETRIES` times
//! with doubling pauses from 250 ms, then given up and counted. Without a URL the queue is
//! only drained (events are logged by the evaluator either way).
//!
//! The body: `{"event": "opened" | "level_changed" | "resolved", "service": "authz-origin",
//! "alert": {"id", "metric_name", "level", "value", "threshold", "comparison", "unit",
//! "message", "started_at", "resolved_at", "window_seconds"}}`.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::MonitoringConfig;

/// Events waiting for delivery at most.
pub const QUEUE_CAPACITY: usize = 256;
/// The first pause between attempts.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The alert an event is about.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    /// `performance_alerts.id`.
    pub id: i64,
    /// The metric.
    pub metric_name: String,
    /// `warning` or `critical`.
    pub level: String,
    /// The value that opened, changed or resolved it.
    pub value: f64,
    /// The limit crossed.
    pub threshold: f64,
    /// `gt` or `lt` (empty when the threshold is gone).
    pub comparison: String,
    /// The metric's unit.
    pub unit: String,
    /// A sentence.
    pub message: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, on `resolved` only.
    pub resolved_at: Option<String>,
    /// The evaluated window.
    pub window_seconds: u64,
}

/// One alert event.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent {
    /// `opened`, `level_changed` or `resolved`.
    pub event: &'static str,
    /// Always `authz-origin`.
    pub service: &'static str,
    /// The alert.
    pub alert: AlertView,
}

impl AlertEvent {
    /// An event about `alert`.
    pub const fn new(event: &'static str, alert: AlertView) -> Self {
        Self {
            event,
            service: "authz-origin",
            alert,
        }
    }
}

/// Delivers queued events, forever (until the queue closes).
pub async fn deliver_forever(config: MonitoringConfig, mut queue: mpsc::Receiver<AlertEvent>) {
    let client = reqwest::Client::builder()
        .timeout(config.alert_webhook_timeout)
        .build();
    let (Some(url), Ok(client)) = (config.alert_webhook_url.as_deref(), client) else {
        while queue.recv().await.is_some() {}
        return;
    };
    while let Some(event) = queue.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let outcome = client.post(url).json(&event).send().await;
            let failure = match outcome {
                Ok(response) if response.status().is_success() => None,
                Ok(response) => Some(format!("status {}", response.status().as_u16())),
                Err(error) => Some(error.to_string()),
            };
            let Some(failure) = failure else {
                metrics::counter!("authz_alert_webhook_deliveries_total", "result" => "ok")
                    .increment(1);
                break;
            };
            if attempt >= config.alert_webhook_retries {
                metrics::counter!("authz_alert_webhook_deliveries_total", "result" => "failed")
                    .increment(1);
                tracing::warn!(
                    error = %failure,
                    attempts = attempt + 1,
                    metric = %event.alert.metric_name,
                    event = event.event,
                    "alert webhook gave up"
                );
                break;
            }
            metrics::counter!("authz_alert_webhook_retries_total").increment(1);
            tracing::debug!(error = %failure, attempt, "alert webhook failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}
