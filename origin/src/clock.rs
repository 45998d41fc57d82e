//! The process clock, in the core's representation. The one place the origin reads the
//! system time for decisions, tokens and entry lifetimes; the core never reads a clock.

use std::time::{SystemTime, UNIX_EPOCH};

use authz_core::Timestamp;

/// The current instant from the system clock.
pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
        });
    Timestamp::from_micros(micros)
}
