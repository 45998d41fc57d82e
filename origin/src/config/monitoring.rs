//! The monitoring settings: persistence, alerting, the webhook and the admin session.

use std::time::Duration;

use super::{ConfigError, Env, invalid};

/// The monitoring settings (see `monitoring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringConfig {
    /// `AUTHZ_METRICS_PERSIST_SECONDS`: how often one batched write of the aggregates and the
    /// pools' health goes to the performance tables (default 10; 0 turns persistence off).
    pub persist_interval: Duration,
    /// `AUTHZ_ALERT_INTERVAL_SECONDS`: how often `performance_thresholds` are evaluated
    /// (default 30; 0 turns alerting off).
    pub alert_interval: Duration,
    /// `AUTHZ_ALERT_WINDOW_SECONDS`: the span they are evaluated over, 10 to 3,600
    /// (default 300).
    pub alert_window: Duration,
    /// `AUTHZ_ALERT_WEBHOOK_URL`: an `http://` URL that receives each alert event as JSON
    /// (default none: alerts are only logged and written).
    pub alert_webhook_url: Option<String>,
    /// `AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS`: the deadline of one webhook call (default 5,000).
    pub alert_webhook_timeout: Duration,
    /// `AUTHZ_ALERT_WEBHOOK_RETRIES`: further attempts after a failed call, with doubling
    /// pauses from 250 ms (default 3, at most 10).
    pub alert_webhook_retries: u32,
    /// `AUTHZ_ADMIN_SESSION_SECONDS`: the lifetime of the dashboard page's login cookie
    /// (default 28,800, 8 hours).
    pub admin_session: Duration,
}

impl MonitoringConfig {
    /// Reads the monitoring variables of `env`.
    pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
        let alert_webhook_url = env
            .get("AUTHZ_ALERT_WEBHOOK_URL")
            .map(|url| {
                let parsed = reqwest::Url::parse(url).map_err(|_| {
                    invalid("AUTHZ_ALERT_WEBHOOK_URL", format!("not a url: \"{url}\""))
                })?;
                match parsed.scheme() {
                    "http" if parsed.host_str().is_some() => Ok(url.to_owned()),
                    "https" => Err(invalid(
                        "AUTHZ_ALERT_WEBHOOK_URL",
                        "https is not supported (the origin is built without TLS); \
                         point it at an http relay",
                    )),
                    _ => Err(invalid(
                        "AUTHZ_ALERT_WEBHOOK_URL",
                        format!("expected an http:// url, got \"{url}\""),
                    )),
                }
            })
            .transpose()?;
        let seconds = |name, min, max| env.number_in(name, min, max).map(Duration::from_secs);
        Ok(Self {
            persist_interval: seconds("AUTHZ_METRICS_PERSIST_SECONDS", 0, 3_600)?,
            alert_interval: seconds("AUTHZ_ALERT_INTERVAL_SECONDS", 0, 3_600)?,
            alert_window: seconds("AUTHZ_ALERT_WINDOW_SECONDS", 10, 3_600)?,
            alert_webhook_url,
            alert_webhook_timeout: Duration::from_millis(env.number_in(
                "AUTHZ_ALERT_WEBHOOK_TIMEOUT_MS",
                1,
                600_000,
            )?),
            alert_webhook_retries: u32::try_from(env.number_in(
                "AUTHZ_ALERT_WEBHOOK_RETRIES",
                0,
                10,
            )?)
            .unwrap_or(3),
            admin_session: seconds("AUTHZ_ADMIN_SESSION_SECONDS", 60, 604_800)?,
        })
    }
}
