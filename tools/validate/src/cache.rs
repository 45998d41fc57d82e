//! `cache_infrastructure`: every Redis tier the origin is configured with (the same
//! environment rules as `Config`), probed directly: `PING`, then ten `SET`+`GET` round trips
//! of a scratch key under the origin's prefix (deleted afterwards). The bar is the origin's
//! Redis deadline (`AUTHZ_REDIS_TIMEOUT_MS`, default 50 ms: a slower answer is a miss when
//! serving): the `PING` and the median round trip must be within it; the slowest is reported
//! (one stall on a busy machine is not a broken tier).

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Check, Context, Latency, Phase, ms};
use authz_origin::cache::redis_connection::TierClient;
use authz_origin::config::{Config, RedisTierName};

const PHASE: Phase = Phase::CacheInfrastructure;

/// Round trips per tier.
const ROUND_TRIPS: usize = 10;

/// The longest a probe may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A URL without its password, for reports.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

struct Probe {
    ping: Duration,
    round_trips: Vec<Duration>,
}

async fn probe(
    url: &str,
    ca_pem: Option<&[u8]>,
    key: &str,
    deadline: Duration,
) -> Result<Probe, String> {
    // The origin's own client: one server or a `redis+cluster://` URL alike.
    let patience = deadline.max(Duration::from_secs(1));
    let client =
        TierClient::open(url, ca_pem, patience).map_err(|error| format!("bad url: {error}"))?;
    let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, client.connect(patience))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|error| format!("unreachable: {error}"))?;
    let started = Instant::now();
    let pong: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(|error| format!("PING failed: {error}"))?;
    let ping = started.elapsed();
    if pong != "PONG" {
        return Err(format!("PING answered \"{pong}\""));
    }
    let mut round_trips = Vec::with_capacity(ROUND_TRIPS);
    for attempt in 0..ROUND_TRIPS {
        let value = format!("validate-{attempt}-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        redis::cmd("SET")
            .arg(key)
            .arg(&value)
            .arg("PX")
            .arg(10_000)
            .query_async::<()>(&mut connection)
            .await
            .map_err(|error| format!("SET failed: {error}"))?;
        let read: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut connection)
            .await
            .map_err(|error| format!("GET failed: {error}"))?;
        round_trips.push(started.elapsed());
        if read.as_deref() != Some(value.as_str()) {
            return Err(format!("GET returned {read:?} after SET \"{value}\""));
        }
    }
    let _: Result<(), _> = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut connection)
        .await;
    Ok(Probe { ping, round_trips })
}

async fn tier(config: &Config, tier: RedisTierName, url: &str) -> Check {
    let name = format!("redis_{}_tier", tier.as_str());
    let deadline = config.redis_timeout;
    let key = format!(
        "{}{}:validate:{}",
        config.redis_prefix.as_deref().unwrap_or("authz:"),
        tier.as_str(),
        uuid::Uuid::new_v4().simple()
    );
    match probe(url, config.redis_ca_pem.as_deref(), &key, deadline).await {
        Ok(probe) => {
            let latency = Latency::of(&probe.round_trips);
            let deadline_ms = super::millis(deadline);
            let passed = probe.ping <= deadline && latency.p50_ms <= deadline_ms;
            let detail = format!(
                "{} PING {}, {ROUND_TRIPS} SET+GET round trips under a scratch key: median {}, \
                 slowest {} (bar: PING and median within the origin's {} Redis deadline)",
                redacted(url),
                ms(super::millis(probe.ping)),
                ms(latency.p50_ms),
                ms(latency.max_ms),
                ms(deadline_ms)
            );
            Check::new(PHASE, &name, passed, detail).with(json!({
                "ping_ms": super::millis(probe.ping),
                "set_get": latency,
                "deadline_ms": super::millis(deadline),
            }))
        }
        Err(error) => Check::new(PHASE, &name, false, format!("{} {error}", redacted(url))),
    }
}

/// Runs the phase.
pub async fn run(context: &Context<'_>) -> Vec<Check> {
    let Ok(config) = &context.config else {
        return vec![Check::new(
            PHASE,
            "redis_tiers_configured",
            false,
            "no configuration",
        )];
    };
    let configured: Vec<RedisTierName> = RedisTierName::ALL
        .into_iter()
        .filter(|tier| config.redis_urls.contains_key(tier))
        .collect();
    let missing: Vec<&str> = RedisTierName::ALL
        .into_iter()
        .filter(|tier| !config.redis_urls.contains_key(tier))
        .map(RedisTierName::as_str)
        .collect();
    let names: Vec<&str> = configured.iter().map(|tier| tier.as_str()).collect();
    let mut detail = format!(
        "{}/4 Redis tiers configured: {}",
        configured.len(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    if !missing.is_empty() {
        detail.push_str(&format!(
            "; without a URL (REDIS_<TIER>_URL or REDIS_URL): {}",
            missing.join(", ")
        ));
    }
    let mut checks = vec![Check::new(
        PHASE,
        "redis_tiers_configured",
        missing.is_empty(),
        detail,
    )];
    let probes = configured.iter().map(|name| {
        let url = config.redis_urls.get(name).map_or("", String::as_str);
        tier(config, *name, url)
    });
    checks.extend(futures_util::future::join_all(probes).await);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_reported() {
        assert_eq!(
            redacted("redis://user:secret@127.0.0.1:6379/0"),
            "redis://***@127.0.0.1:6379/0"
        );
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
