//! The authorization decision core.
//!
//! This crate owns the rules of `DOMAIN.md` and every format that more than one component must
//! agree on: the UUID standard, the validated request types, the decision function, the cache
//! key and cache entry, the TTL policy and the end-user JWT check.
//!
//! It must not do I/O, read a clock or depend on `worker`, `axum`, `tokio`, `tokio-postgres` or
//! `redis`: time is passed in, and the edge and the origin translate their I/O to and from it.
//! It builds for `wasm32-unknown-unknown` and natively, with or without `std`.
//!
//! # Crate features
//!
//! - `std` (default): implements `std::error::Error` for the error types and enables `std` in
//!   the dependencies. Turn it off with `default-features = false` for `no_std` targets.
//! - `proptest`: exports `strategies`, generators of datasets and questions for property and
//!   differential tests. Off by default.
//! - `alloc`: required (the facts hold vectors and entries encode to strings); `std` implies it.
#![no_std]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod cache;
pub mod dataset;
pub mod decide;
pub mod error;
pub mod facts;
pub mod id;
pub mod jwt;
pub mod model;
pub mod pieces;
pub mod question;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod time;
pub mod wire;

pub use cache::{CacheEntry, CacheKey, TtlPolicy, servable};
pub use decide::{Decision, decide};
pub use error::ParseError;
pub use facts::Facts;
pub use id::{GenerationId, ProjectId, TeamId, UserId};
pub use model::{
    AccessLevel, AccessMethod, DenyReason, GenerationStatus, Operation, Principal, ResourceType,
    Role, ShareLevel, Visibility,
};
pub use question::{Question, Resource};
pub use time::Timestamp;
