//! The cache tiers' health: L1 (in process) and each Redis tier (reachable, ping latency,
//! mean command latency, hit rate, errors, breaker state), and the gauges the sampler
//! publishes from them and from the window (hit rates per tier, windowed latency
//! percentiles, the performance tier).

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::cache::{BreakerState, Ownership};
use crate::config::RedisTierName;
use crate::monitoring::Handles;
use crate::monitoring::measure::tier::{PerformanceTier, tier_of};
use crate::monitoring::measure::window::unix_now;

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The cache health document: `l1` and each of the four Redis tiers.
pub async fn health(state: &Handles) -> Value {
    let summary = state
        .monitoring
        .window()
        .summary(state.monitoring.config().alert_window, unix_now());
    let pings = join_all(
        state
            .redis_tiers
            .values()
            .map(|tier| async move { (tier.name(), tier.ping().await) }),
    )
    .await;
    let mut tiers = serde_json::Map::new();
    tiers.insert(
        "l1".to_owned(),
        json!({
            "kind": "in_process",
            "enabled": state.config.l1_capacity > 0,
            "reachable": true,
            "latency_ms": null,
            "entries": state.decider.l1_entries(),
            "capacity": state.config.l1_capacity,
            "hit_rate": summary.l1_hit_rate,
            "breaker": null,
        }),
    );
    for name in RedisTierName::ALL {
        let Some(tier) = state.redis_tiers.get(&name) else {
            tiers.insert(
                name.as_str().to_owned(),
                json!({ "kind": "redis", "enabled": false, "reachable": false }),
            );
            continue;
        };
        let stats = tier.stats().snapshot();
        let ping = pings
            .iter()
            .find(|(tier_name, _)| *tier_name == name)
            .and_then(|(_, ping)| *ping);
        let mut entry = json!({
            "kind": "redis",
            "enabled": true,
            "reachable": ping.is_some(),
            "latency_ms": ping.map(|d| d.as_secs_f64() * 1_000.0),
            "command_latency_ms_avg": ratio(stats.command_micros_total, stats.commands)
                .map(|micros| micros / 1_000.0),
            "hit_rate": ratio(stats.hits, stats.hits + stats.misses),
            "hits": stats.hits,
            "misses": stats.misses,
            "commands": stats.commands,
            "errors": stats.errors,
            "breaker": tier.breaker_state().as_str(),
            "owner": tier.ownership().as_str(),
        });
        if name == RedisTierName::Authorization {
            // The decision tier's share of the L1 misses it answered, over the window.
            entry["window_hit_rate"] = json!(summary.l2_hit_rate);
        }
        tiers.insert(name.as_str().to_owned(), entry);
    }
    let healthy = state.redis_tiers.values().all(|tier| {
        tier.breaker_state() == BreakerState::Closed
            && matches!(tier.ownership(), Ownership::Claimed { .. })
    }) && pings.iter().all(|(_, ping)| ping.is_some());
    json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "redis_enabled": !state.redis_tiers.is_empty(),
        "window_seconds": state.monitoring.config().alert_window.as_secs(),
        "cache_hit_rate": summary.cache_hit_rate,
        "edge": { "hit_rate": null, "note": "measured by the edge worker, not the origin" },
        "tiers": tiers,
    })
}

/// Publishes the breaker, hit-rate, window and tier gauges.
pub fn publish(state: &Handles) {
    for tier in state.redis_tiers.values() {
        let name = tier.name().as_str();
        let current = tier.breaker_state();
        for breaker in [
            BreakerState::Closed,
            BreakerState::Open,
            BreakerState::HalfOpen,
        ] {
            metrics::gauge!("authz_redis_breaker_state", "tier" => name, "state" => breaker.as_str())
                .set(if breaker == current { 1.0 } else { 0.0 });
        }
        let stats = tier.stats().snapshot();
        if let Some(rate) = ratio(stats.hits, stats.hits + stats.misses) {
            metrics::gauge!("authz_redis_hit_ratio", "tier" => name).set(rate);
        }
    }
    let summary = state
        .monitoring
        .window()
        .summary(state.monitoring.config().alert_window, unix_now());
    for (tier, rate) in [
        ("l1", summary.l1_hit_rate),
        ("l2", summary.l2_hit_rate),
        ("any", summary.cache_hit_rate),
    ] {
        if let Some(rate) = rate {
            metrics::gauge!("authz_cache_hit_ratio", "tier" => tier).set(rate);
        }
    }
    for (quantile, value) in [
        ("0.5", summary.p50_ms),
        ("0.95", summary.p95_ms),
        ("0.99", summary.p99_ms),
    ] {
        if let Some(value) = value {
            metrics::gauge!("authz_window_latency_ms", "quantile" => quantile).set(value);
        }
    }
    metrics::gauge!("authz_window_throughput_rps").set(summary.throughput_rps);
    if let Some(rate) = summary.error_rate {
        metrics::gauge!("authz_window_error_ratio").set(rate);
    }
    let current = tier_of(&summary);
    for tier in PerformanceTier::ALL {
        metrics::gauge!("authz_performance_tier", "tier" => tier.as_str())
            .set(if current == Some(tier) { 1.0 } else { 0.0 });
    }
}
