//! A circuit breaker per Redis tier: after `threshold` consecutive failures or timeouts it
//! opens and every call goes around Redis; after a wait one call probes, and its success closes
//! the breaker again. So a dead or slow Redis never stalls a decision. The wait starts at
//! [`FIRST_PROBE`] and grows by half after each failed probe, up to the configured maximum
//! (`AUTHZ_BREAKER_PROBE_MS`): a Redis back after a blip is used again within a fraction of a
//! second, and one that stays down is probed at most once per maximum wait.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The wait before the first probe after the breaker opens.
pub const FIRST_PROBE: Duration = Duration::from_millis(100);

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
    /// The wait before the next probe if this one fails (or the first, once it opens).
    wait: Duration,
}

/// One breaker.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    first_wait: Duration,
    max_wait: Duration,
    consecutive_failures: AtomicU32,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` consecutive failures, probing after
    /// [`FIRST_PROBE`], then half as long again after each failed probe, up to `max_wait`.
    pub fn new(threshold: u32, max_wait: Duration) -> Self {
        let first_wait = FIRST_PROBE.min(max_wait);
        Self {
            threshold,
            first_wait,
            max_wait,
            consecutive_failures: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                until: None,
                wait: first_wait,
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
                // Past the probe time (or a probe that never reported): probe once more, and
                // give it up after the current wait.
                inner.state = BreakerState::HalfOpen;
                inner.until = Some(now + inner.wait);
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
            inner.wait = self.first_wait;
            tracing::info!("redis breaker closed");
        }
    }

    /// A call failed or timed out.
    pub fn failure(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        match inner.state {
            BreakerState::HalfOpen => {
                // The probe failed: wait longer before the next one. Growing by half (not
                // doubling) keeps the recovery after an outage of t within about t / 2.
                inner.wait = (inner.wait * 3 / 2).min(self.max_wait);
                inner.state = BreakerState::Open;
                inner.until = Some(Instant::now() + inner.wait);
                tracing::debug!(
                    wait_ms = inner.wait.as_millis(),
                    "redis breaker probe failed"
                );
            }
            BreakerState::Closed if failures >= self.threshold => {
                tracing::warn!(failures, "redis breaker opened");
                inner.wait = self.first_wait;
                inner.state = BreakerState::Open;
                inner.until = Some(Instant::now() + inner.wait);
            }
            // Calls that were in flight when it opened: the wait already runs.
            BreakerState::Open | BreakerState::Closed => {}
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.inner
            .lock()
            .map_or(BreakerState::Open, |inner| inner.state)
    }

    /// The wait before the next probe (for tests and diagnosis).
    pub fn probe_wait(&self) -> Duration {
        self.inner.lock().map_or(self.max_wait, |inner| inner.wait)
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

    #[test]
    fn the_wait_starts_short_and_grows_to_the_maximum() {
        let breaker = Breaker::new(1, Duration::from_secs(30));
        assert!(breaker.allow());
        breaker.failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.probe_wait(), FIRST_PROBE);
        // A failure of a call that was in flight when it opened does not lengthen the wait.
        breaker.failure();
        assert_eq!(breaker.probe_wait(), FIRST_PROBE);
        assert!(!breaker.allow());
        std::thread::sleep(FIRST_PROBE + Duration::from_millis(10));
        assert!(
            breaker.allow(),
            "the first probe goes after 100 ms, not 30 s"
        );
        let mut waits = Vec::new();
        for _ in 0..16 {
            breaker.failure();
            waits.push(breaker.probe_wait().as_millis());
            // Let the next probe go without waiting for it.
            breaker.inner.lock().unwrap().until = Some(Instant::now());
            assert!(breaker.allow());
        }
        assert_eq!(
            waits,
            [
                150, 225, 337, 506, 759, 1_139, 1_708, 2_562, 3_844, 5_766, 8_649, 12_974, 19_461,
                29_192, 30_000, 30_000
            ]
        );
        breaker.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.probe_wait(), FIRST_PROBE, "a success starts over");
    }

    #[test]
    fn a_maximum_below_the_first_wait_caps_it() {
        let breaker = Breaker::new(1, Duration::from_millis(20));
        breaker.failure();
        assert_eq!(breaker.probe_wait(), Duration::from_millis(20));
    }
}
