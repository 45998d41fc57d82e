//! The Workers clock, the one place the worker reads the time.

use authz_core::Timestamp;

/// Now, from the Workers clock (milliseconds; it only advances across I/O inside a request, so
/// an instant read after the last I/O of a request is the instant its answer is sent back).
pub fn now() -> Timestamp {
    let millis = i64::try_from(worker::Date::now().as_millis()).unwrap_or(i64::MAX);
    Timestamp::from_millis(millis)
}
