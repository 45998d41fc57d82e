//! Background I/O of monitoring: the sampler (pools and Redis tiers), the persister of
//! aggregates, the alert evaluator and the webhook sender. Each runs as its own task started
//! by `monitoring::spawn` and reads the process through `monitoring::Handles`.

pub mod alerts;
pub mod caches;
pub mod evaluator;
pub mod persist;
pub mod pools;
pub mod webhook;
