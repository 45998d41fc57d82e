//! Rate limits on `/v1/authorize` and `/v1/authorize/batch`: keyed GCRA limiters
//! (`governor`) per end user, per client IP and, optionally, per trusted-service client IP.
//!
//! This module owns the limits and their configuration; it must not authenticate (the
//! handlers call [`RateLimits::check`] with an already authenticated [`Caller`]) and must not
//! read the environment (its configuration, [`RateLimitConfig`], is `config`'s).
//!
//! # Decisions
//!
//! * **Who is limited.** Callers presenting an end-user JWT: per user
//!   (`AUTHZ_RATE_LIMIT_USER_PER_MINUTE`, default 100, the original service's figure) and per
//!   client IP (`AUTHZ_RATE_LIMIT_IP_PER_MINUTE`, default 500). Callers presenting the service
//!   token (the edge, backend services) are **exempt by default**: an authorization service
//!   must never throttle the edge that fronts all users, and the edge limits end users itself.
//!   `AUTHZ_RATE_LIMIT_SERVICE_PER_MINUTE` gives them their own, much higher limit, keyed by
//!   the service's client IP (so one runaway backend instance cannot starve the others).
//!   `AUTHZ_RATE_LIMIT=off` turns every limit off.
//! * **What a request costs.** One per question: a single check costs 1, a batch costs its
//!   number of checks (an empty batch costs 1). A batch is as much work as its checks, and
//!   counting requests would let a user ask 100 times their limit through batches. A batch
//!   holding more checks than a whole minute's allowance (possible only when a limit is set
//!   below 100/min) can never pass: it is answered 429 with `Retry-After` of the full period
//!   (60 s); clients should split it.
//! * **When.** After authentication and after the body parsed (the cost of a batch is its
//!   number of checks), before any cache or database work. Unauthenticated (401) and
//!   malformed (400) requests are not counted: they are refused before doing any work. The
//!   client-IP limit is checked first, then the user's: a request refused for its IP does not
//!   consume the user's allowance (users behind a busy NAT are not penalised twice), while a
//!   request refused for its user has consumed one unit of its IP's allowance.
//! * **The algorithm.** GCRA, i.e. a token bucket: `N` per minute means a burst of `N`, then one
//!   more every `60/N` seconds. A refusal answers API.md's 429 `rate_limited` with
//!   `Retry-After`: the whole seconds (rounded up, at least 1) until the request would pass.
//! * **The client IP** is the socket peer address (`ConnectInfo<SocketAddr>`, see
//!   `server::serve`). `X-Forwarded-For` and `Forwarded` are **not** trusted: any client can
//!   write them. Behind a reverse proxy every end user therefore shares the proxy's IP
//!   allowance; raise `AUTHZ_RATE_LIMIT_IP_PER_MINUTE` there (trusting a proxy header would
//!   need a configured list of trusted proxies, which the origin does not have). IPv6 peers are
//!   keyed by their /64 (one host usually owns a whole /64, so keying by address would let it
//!   rotate addresses freely); IPv4-mapped IPv6 addresses count as their IPv4 address.
//! * **Bounded memory.** The limiters keep one small state per key (DashMap). A background task
//!   evicts every [`PRUNE_INTERVAL`] the keys whose bucket has refilled (`retain_recent`, then
//!   `shrink_to_fit`), so the state holds at most the keys seen in the last minute plus one
//!   interval: it grows with the request rate, never with history. The key count is exported
//!   as the gauge `authz_rate_limit_keys`.
//! * **Per process.** Each origin instance limits on its own; with `K` instances behind a load
//!   balancer a user can reach up to `K` times the limit. A shared (Redis) limiter would cost a
//!   round trip per request on the hot path; the limits are abuse protection, not billing.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use authz_core::UserId;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::Caller;
use crate::config::RateLimitConfig;
use crate::error::AppError;

/// How often the limiters drop the keys whose bucket has refilled.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);

/// The period every limit is expressed over; also the `Retry-After` of a batch that can never
/// pass.
const PERIOD_SECONDS: u64 = 60;

/// A client address as a rate-limit key: IPv4 as is, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    /// The key of `address`.
    pub fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1_u128 << 64) - 1);
                Self(IpAddr::V6(Ipv6Addr::from(bits)))
            }
        }
    }
}

/// Which limit refused a request (the `scope` label of `authz_rate_limited_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The end user's own limit.
    User,
    /// The end user's client IP.
    Ip,
    /// A service-token caller's client IP.
    Service,
}

impl Scope {
    /// The metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Ip => "ip",
            Self::Service => "service",
        }
    }
}

/// The process's rate limiters.
pub struct RateLimits {
    config: RateLimitConfig,
    users: DefaultKeyedRateLimiter<UserId>,
    ips: DefaultKeyedRateLimiter<IpKey>,
    services: Option<DefaultKeyedRateLimiter<IpKey>>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("config", &self.config)
            .field("keys", &self.tracked_keys())
            .finish()
    }
}

impl RateLimits {
    /// Builds the limiters and, inside a Tokio runtime, starts their pruning task (it stops
    /// when the limiters are dropped).
    pub fn new(config: RateLimitConfig) -> Arc<Self> {
        let limits = Arc::new(Self {
            config,
            users: DefaultKeyedRateLimiter::dashmap(Quota::per_minute(config.user_per_minute)),
            ips: DefaultKeyedRateLimiter::dashmap(Quota::per_minute(config.ip_per_minute)),
            services: config
                .service_per_minute
                .map(|limit| DefaultKeyedRateLimiter::dashmap(Quota::per_minute(limit))),
        });
        if config.enabled
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(prune_forever(Arc::downgrade(&limits)));
        }
        limits
    }

    /// The configuration.
    pub const fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Charges `cost` questions (at least 1) to `caller` coming from `client`, or refuses
    /// with 429 `rate_limited` and the seconds to wait. `client` is `None` when the server
    /// does not know the peer address; then only the per-user limit applies.
    pub fn check(
        &self,
        caller: Caller,
        client: Option<IpAddr>,
        cost: usize,
    ) -> Result<(), AppError> {
        if !self.config.enabled {
            return Ok(());
        }
        let cost =
            NonZeroU32::new(u32::try_from(cost).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        match caller {
            Caller::Service => {
                let Some(services) = &self.services else {
                    return Ok(());
                };
                // Without a peer address every service caller shares one key.
                let key = IpKey::of(client.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
                charge(services, &key, cost, Scope::Service)
            }
            Caller::EndUser(user) => {
                if let Some(client) = client {
                    charge(&self.ips, &IpKey::of(client), cost, Scope::Ip)?;
                }
                charge(&self.users, &user, cost, Scope::User)
            }
        }
    }

    /// Drops the keys whose bucket has refilled and releases the memory they held.
    pub fn prune(&self) {
        self.users.retain_recent();
        self.users.shrink_to_fit();
        self.ips.retain_recent();
        self.ips.shrink_to_fit();
        if let Some(services) = &self.services {
            services.retain_recent();
            services.shrink_to_fit();
        }
    }

    /// The number of keys the limiters hold.
    pub fn tracked_keys(&self) -> usize {
        self.users.len() + self.ips.len() + self.services.as_ref().map_or(0, |s| s.len())
    }
}

fn charge<K>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
    cost: NonZeroU32,
    scope: Scope,
) -> Result<(), AppError>
where
    K: Clone + std::hash::Hash + Eq,
{
    let retry_after_seconds = match limiter.check_key_n(key, cost) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(not_until)) => {
            let wait = not_until.wait_time_from(limiter.clock().now());
            // Whole seconds, rounded up so that a client waiting that long passes; at least 1.
            wait.as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0))
                .max(1)
        }
        // More than the whole allowance at once: it can never pass.
        Err(_) => PERIOD_SECONDS,
    };
    metrics::counter!("authz_rate_limited_total", "scope" => scope.as_str()).increment(1);
    Err(AppError::RateLimited {
        retry_after_seconds,
    })
}

async fn prune_forever(limits: Weak<RateLimits>) {
    let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(limits) = limits.upgrade() else {
            return;
        };
        limits.prune();
        #[expect(
            clippy::cast_precision_loss,
            reason = "a gauge; key counts are far below 2^52"
        )]
        metrics::gauge!("authz_rate_limit_keys").set(limits.tracked_keys() as f64);
    }
}

/// The client's IP address: the socket peer (never a forwarding header), or `None` when the
/// server was not started with connect info (e.g. a router driven by `oneshot` in a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
                .await
                .ok()
                .map(|ConnectInfo(address)| address.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(user: u32, ip: u32, service: Option<u32>) -> Arc<RateLimits> {
        RateLimits::new(RateLimitConfig {
            enabled: true,
            user_per_minute: NonZeroU32::new(user).unwrap(),
            ip_per_minute: NonZeroU32::new(ip).unwrap(),
            service_per_minute: service.map(|s| NonZeroU32::new(s).unwrap()),
        })
    }

    fn user(n: u8) -> UserId {
        UserId::parse(
            &format!("a0000000-0000-4000-8000-0000000000{n:02x}"),
            "user",
        )
        .unwrap()
    }

    fn retry_after(result: Result<(), AppError>) -> u64 {
        match result {
            Err(AppError::RateLimited {
                retry_after_seconds,
            }) => retry_after_seconds,
            other => panic!("expected rate_limited, got {other:?}"),
        }
    }

    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::of(a), IpKey::of(b));
        assert_ne!(IpKey::of(a), IpKey::of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(IpKey::of(mapped), IpKey::of("192.0.2.7".parse().unwrap()));
    }

    #[tokio::test]
    async fn user_limit_then_retry_after() {
        let limits = limits(5, 1_000, None);
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..5 {
            limits.check(Caller::EndUser(user(1)), ip, 1).unwrap();
        }
        // 5 per minute: one more every 12 s.
        let wait = retry_after(limits.check(Caller::EndUser(user(1)), ip, 1));
        assert!((11..=12).contains(&wait), "{wait}");
        limits.check(Caller::EndUser(user(2)), ip, 1).unwrap();
        // The service token is exempt by default.
        for _ in 0..100 {
            limits.check(Caller::Service, ip, 100).unwrap();
        }
    }

    #[tokio::test]
    async fn a_batch_costs_its_checks() {
        let limits = limits(10, 1_000, Some(20));
        limits.check(Caller::EndUser(user(1)), None, 8).unwrap();
        retry_after(limits.check(Caller::EndUser(user(1)), None, 3));
        assert_eq!(
            retry_after(limits.check(Caller::EndUser(user(2)), None, 11)),
            60
        );
        limits.check(Caller::Service, None, 20).unwrap();
        retry_after(limits.check(Caller::Service, None, 1));
    }

    #[tokio::test]
    async fn pruning_forgets_refilled_keys() {
        let limits = limits(600_000, 600_000, None);
        limits
            .check(
                Caller::EndUser(user(1)),
                Some("192.0.2.1".parse().unwrap()),
                1,
            )
            .unwrap();
        assert_eq!(limits.tracked_keys(), 2);
        // 600,000 per minute refills one unit every 100 µs.
        std::thread::sleep(Duration::from_millis(5));
        limits.prune();
        assert_eq!(limits.tracked_keys(), 0);
    }
}
