//! What the tools (`authz-bench`, `authz-validate`) share, so that each exists once: the
//! question type and its sampler ([`questions`]), the naive baseline ([`baseline`]) and latency
//! statistics over `hdrhistogram` ([`latency`]).
//!
//! It depends on the core only; the service never depends on it.

pub mod baseline;
pub mod latency;
pub mod questions;
