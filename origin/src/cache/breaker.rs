//! A circuit breaker per Redis tier: after `threshold` consecutive failures or timeouts it
//! opens and every call goes around Redis; after `probe_after` one call probes, and its success
//! closes the breaker again. So a dead or slow Redis never stalls a decision.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A breaker's state, as reported by the health endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls go around until the probe time.
    Open,
    /// One probe is in flight.
    HalfOpen,
}

impl BreakerState {
    /// The state's name in JSON and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    /// When open: the instant a probe may go. When half-open: when the probe is given up on.
    until: Option<Instant>,
}

/// One breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    probe_after: Duration,
    consecutive_failures: AtomicU32,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures, probing after
    /// `probe_after`.
    pub fn new(threshold: u32, probe_after: Duration) -> Self {
        Self {
            threshold,
            probe_after,
            consecutive_failures: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                until: None,
            }),
        }
    }

    /// Whether a call may go to Redis now. An open breaker past its probe time lets exactly
    /// one call through (half-open).
    pub fn allow(&self) -> bool {
        let Ok(mut inner) = self.inner.lock() else {
            return false;
        };
        let now = Instant::now();
        match inner.state {
            BreakerState::Closed => true,
            BreakerState::Open | BreakerState::HalfOpen
                if inner.until.is_some_and(|until| now >= until) =>
            {
                // Past the probe time (or a probe that never reported): probe once more.
                inner.state = BreakerState::HalfOpen;
                inner.until = Some(now + self.probe_after);
                true
            }
            BreakerState::Open | BreakerState::HalfOpen => false,
        }
    }

    /// A call succeeded.
    pub fn success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock()
            && inner.state != BreakerState::Closed
        {
            inner.state = BreakerState::Closed;
            inner.until = None;
            tracing::info!("redis breaker closed");
        }
    }

    /// A call failed or timed out.
    pub fn failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if inner.state == BreakerState::HalfOpen || failures >= self.threshold {
            if inner.state != BreakerState::Open {
                tracing::warn!(failures, "redis breaker opened");
            }
            inner.state = BreakerState::Open;
            inner.until = Some(Instant::now() + self.probe_after);
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.inner
            .lock()
            .map_or(BreakerState::Open, |inner| inner.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let breaker = Breaker::new(3, Duration::from_millis(20));
        for _ in 0..2 {
            assert!(breaker.allow());
            breaker.failure();
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert!(breaker.allow(), "one probe after the wait");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(!breaker.allow(), "only one probe at a time");
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(25));
        assert!(breaker.allow());
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(breaker.allow());
    }
}
