//! Pure measurement: the rolling window of decision samples, its latency histogram and the
//! performance tier of a window. No I/O and no task: the request path records here under one
//! short mutex, and everything else reads.

pub mod histogram;
pub mod tier;
pub mod window;
