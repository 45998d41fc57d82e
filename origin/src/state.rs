//! The state shared by every request: configuration, the decider, the Redis tiers, the
//! invalidation oracle and the metrics handle. Built once at start.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::cache::{Breaker, PieceCache, RedisTier};
use crate::config::{Config, RedisTierName};
use crate::db::Pools;
use crate::decision::Decider;
use crate::invalidation::Invalidation;

/// Shared application state: one `Arc`, so each request clones a single pointer (axum clones
/// the state for the middleware and for every handler).
#[derive(Clone, Debug)]
pub struct AppState(Arc<AppStateInner>);

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct AppStateInner {
    /// The configuration.
    pub config: Arc<Config>,
    /// The decider.
    pub decider: Arc<Decider>,
    /// Every configured Redis tier.
    pub redis_tiers: Arc<BTreeMap<RedisTierName, Arc<RedisTier>>>,
    /// The invalidation oracle.
    pub invalidation: Arc<Invalidation>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// When the process started.
    pub started_at: Instant,
    /// The monitoring window, alerts and dashboard state.
    pub monitoring: Arc<crate::monitoring::Monitoring>,
    /// The rate limits of `/v1/*`.
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The session tier, when Redis is configured.
    pub sessions: Option<crate::cache::SessionTier>,
    /// The last cache-warming pass, once one ran.
    pub last_warming: Arc<std::sync::Mutex<Option<crate::warming::WarmReport>>>,
    /// The refresh-ahead queue, until the background task takes it.
    pub refresh_queue: std::sync::Mutex<Option<crate::decision::RefreshQueue>>,
    /// The last status anonymous health callers were given, with when it was probed (one
    /// probe at a time: callers wait on the lock rather than probing again).
    pub health_summary: tokio::sync::Mutex<Option<(Instant, axum::http::StatusCode, &'static str)>>,
}

/// The process-wide Prometheus recorder (installed once, even when tests build several states).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // A recorder may already be installed by an embedding process; keep ours readable.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

impl axum::extract::FromRef<AppState> for crate::monitoring::Handles {
    fn from_ref(state: &AppState) -> Self {
        Self {
            config: Arc::clone(&state.config),
            monitoring: Arc::clone(&state.monitoring),
            decider: Arc::clone(&state.decider),
            redis_tiers: Arc::clone(&state.redis_tiers),
            started_at: state.started_at,
        }
    }
}

impl AppState {
    /// Builds the state: pools (lazy connections), Redis tiers (lazy), the decider. Does not
    /// start the listener; see [`AppState::spawn_background`].
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The recorder first: the pools register their metric handles with it.
        let metrics = metrics_handle();
        // An identity provider's key set is fetched now; if that fails the origin still starts
        // (service callers do not need it), public-key tokens are refused until a fetch
        // succeeds, and the refresh task retries.
        if let Some(store) = &config.jwks
            && let crate::jwks::Source::Url { url, .. } = store.source()
        {
            match store.fetch().await {
                Ok(keys) => tracing::info!(%url, keys, "fetched the JWKS"),
                Err(error) => tracing::warn!(%url, %error, "fetching the JWKS at start failed"),
            }
        }
        let pools = Pools::connect(&config).await?;
        let mut redis_tiers = BTreeMap::new();
        for (name, url) in &config.redis_urls {
            let breaker = Breaker::new(config.breaker_failures, config.breaker_probe);
            let tier = RedisTier::new(
                *name,
                url,
                config.redis_ca_pem.as_deref(),
                config.redis_prefix.as_deref(),
                config.redis_timeout,
                breaker,
            )?;
            redis_tiers.insert(*name, tier);
        }
        if !redis_tiers.is_empty() {
            crate::cache::owner::claim_at_start(&pools, redis_tiers.values()).await?;
        }
        let invalidation = Arc::new(Invalidation::new());
        let pieces = PieceCache::new(
            redis_tiers.get(&RedisTierName::User).cloned(),
            redis_tiers.get(&RedisTierName::Generation).cloned(),
            Arc::clone(&invalidation),
            config.ttl.grant_ttl_ms.max(config.ttl.deny_ttl_ms),
        );
        let decider = Decider::new(
            pools,
            config.l1_capacity,
            redis_tiers.get(&RedisTierName::Authorization).cloned(),
            pieces,
            Arc::clone(&invalidation),
            config.ttl,
        )
        .with_stale_on_error(config.serve_stale_on_error);
        let (decider, refresh_queue) = decider.with_refresh_ahead(config.refresh_ahead_percent);
        let rate_limits = crate::rate_limit::RateLimits::new(config.rate_limit);
        let monitoring = Arc::new(crate::monitoring::Monitoring::new(
            config.monitoring.clone(),
        ));
        let sessions = redis_tiers
            .get(&RedisTierName::Session)
            .map(|tier| crate::cache::SessionTier::new(Arc::clone(tier), 100_000));
        Ok(Self(Arc::new(AppStateInner {
            sessions,
            monitoring,
            config: Arc::new(config),
            decider: Arc::new(decider),
            redis_tiers: Arc::new(redis_tiers),
            invalidation,
            metrics,
            started_at: Instant::now(),
            rate_limits,
            last_warming: Arc::new(std::sync::Mutex::new(None)),
            refresh_queue: std::sync::Mutex::new(refresh_queue),
            health_summary: tokio::sync::Mutex::new(None),
        })))
    }

    /// Starts the background work: monitoring, the invalidation listener, warming, the
    /// refresh-ahead task and the maintenance jobs.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let handles = axum::extract::FromRef::from_ref(self);
        let mut tasks = crate::monitoring::spawn(&handles);
        let refresh_queue = self
            .refresh_queue
            .lock()
            .ok()
            .and_then(|mut queue| queue.take());
        if let Some(queue) = refresh_queue {
            tasks.push(tokio::spawn(crate::decision::refresh_forever(
                Arc::clone(&self.decider),
                queue,
            )));
        }
        if let Some(store) = &self.config.jwks {
            tasks.push(tokio::spawn(Arc::clone(store).refresh_forever()));
        }
        let unclaimed: Vec<_> = self
            .redis_tiers
            .values()
            .filter(|tier| tier.ownership() == crate::cache::Ownership::Unclaimed)
            .cloned()
            .collect();
        if !unclaimed.is_empty() {
            tasks.push(tokio::spawn(crate::cache::owner::claim_forever(
                self.decider.pools().clone(),
                unclaimed,
            )));
        }
        tasks.extend([
            tokio::spawn(crate::invalidation::listen_forever(
                self.config.postgres_primary.clone(),
                Arc::clone(&self.invalidation),
                self.config.listener_heartbeat,
                self.config.sequencer_interval,
            )),
            tokio::spawn(crate::warming::run_forever(
                Arc::clone(&self.decider),
                Arc::clone(&self.invalidation),
                self.config.warming_interval,
                Arc::clone(&self.last_warming),
            )),
            tokio::spawn(crate::maintenance::run_forever(
                self.decider.pools().clone(),
                self.config.view_refresh_interval,
            )),
            tokio::spawn(crate::maintenance::vacuum_change_log_forever(
                self.decider.pools().clone(),
            )),
        ]);
        tasks
    }
}
