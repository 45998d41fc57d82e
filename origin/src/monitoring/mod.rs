//! Monitoring: what every decision cost and who answered it, the pools' and Redis tiers'
//! health, thresholds and alerts, the admin JSON endpoints and the dashboard page, in three
//! parts: `measure` (pure: window, histogram, tier), `background` (the tasks doing I/O:
//! sampler, persister, alerts, webhook) and `web` (the admin endpoints and the page).
//!
//! The request path only calls [`Monitoring::record_decision`] and
//! [`Monitoring::record_error`]: one short mutex, no I/O, no await. Everything else runs in the
//! background tasks of [`spawn`]: a sampler (pool and cache gauges every 2 s), the persister
//! (one batched write to the performance tables per interval, through a bounded queue that
//! drops and counts rather than blocks), the alert evaluator and the webhook sender.
//!
//! Prometheus families (all labels are closed vocabularies or configuration names, never ids):
//! `authz_decisions_total{source,granted}`, `authz_decision_duration_seconds{source}`,
//! `authz_errors_total{code}`, `authz_http_request*{route,status}`, `authz_pool_*{pool}`,
//! `authz_redis_*{tier}`, `authz_cache_hit_ratio{tier}`, `authz_window_latency_ms{quantile}`,
//! `authz_performance_tier{tier}`, `authz_metrics_persist_*`, `authz_alert*`.

pub mod background;
pub mod measure;
pub mod web;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use authz_core::wire::Source;
use axum::extract::FromRef;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::cache::RedisTier;
use crate::config::{Config, MonitoringConfig, RedisTierName};
use crate::decision::Decider;
use alerts::AlertBoard;
use background::{alerts, evaluator, persist, pools, webhook};
use measure::window::{Window, unix_now};
use web::session::LoginLinks;
use web::{dashboard, login, page};

/// What monitoring reads of the process: handed over by the state (`FromRef`), so monitoring
/// depends on the pieces it measures and not on the state that holds them.
#[derive(Clone, Debug)]
pub struct Handles {
    /// The configuration.
    pub config: Arc<Config>,
    /// The monitoring window, alerts and login links.
    pub monitoring: Arc<Monitoring>,
    /// The decider (its pools and L1).
    pub decider: Arc<Decider>,
    /// Every configured Redis tier.
    pub redis_tiers: Arc<BTreeMap<RedisTierName, Arc<RedisTier>>>,
    /// When the process started.
    pub started_at: Instant,
}

/// How often the sampler reads the pools and the Redis tiers.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// The monitoring state of one origin process.
#[derive(Debug)]
pub struct Monitoring {
    config: MonitoringConfig,
    window: Window,
    alerts: AlertBoard,
    login_links: LoginLinks,
}

impl Monitoring {
    /// Empty monitoring with `config`.
    pub fn new(config: MonitoringConfig) -> Self {
        Self {
            config,
            window: Window::new(unix_now()),
            alerts: AlertBoard::default(),
            login_links: LoginLinks::default(),
        }
    }

    /// The settings.
    pub const fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    /// The rolling window.
    pub const fn window(&self) -> &Window {
        &self.window
    }

    /// What the alert evaluator last saw.
    pub const fn alerts(&self) -> &AlertBoard {
        &self.alerts
    }

    /// The one-time login links of the dashboard page.
    pub const fn login_links(&self) -> &LoginLinks {
        &self.login_links
    }

    /// Records one decision: who answered, grant or deny, and how long it took.
    pub fn record_decision(&self, source: Source, granted: bool, latency: Duration) {
        self.window
            .record_decision(source, granted, latency, unix_now());
    }

    /// Records one error response of a decision route with its API.md code.
    pub fn record_error(&self, code: &'static str, server_error: bool) {
        self.window.record_error(code, server_error, unix_now());
    }
}

/// Starts the background tasks: the sampler, the persister (two tasks), the alert evaluator
/// and the webhook sender.
pub fn spawn(state: &Handles) -> Vec<JoinHandle<()>> {
    let config = state.monitoring.config().clone();
    let mut tasks = vec![tokio::spawn(pools::sample_forever(state.clone()))];
    if !config.persist_interval.is_zero() {
        tasks.extend(persist::spawn(state.clone()));
    }
    if !config.alert_interval.is_zero() {
        let (events, queue) = mpsc::channel(webhook::QUEUE_CAPACITY);
        tasks.push(tokio::spawn(webhook::deliver_forever(config, queue)));
        tasks.push(tokio::spawn(evaluator::evaluate_forever(
            state.clone(),
            events,
        )));
    }
    tasks
}

/// The admin JSON endpoints and the dashboard page (each checks the admin credentials), and
/// the page's login routes, each with its OpenAPI operation.
pub fn routes<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Handles: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(dashboard::performance_dashboard))
        .routes(routes!(dashboard::performance_targets))
        .routes(routes!(dashboard::cache_health))
        .routes(routes!(dashboard::database_health))
        .routes(routes!(dashboard::admin_performance_dashboard))
        .routes(routes!(page::page))
        .routes(routes!(login::login_form, login::login))
        .routes(routes!(login::login_link))
        .routes(routes!(login::logout))
}
