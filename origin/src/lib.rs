//! The origin service: the source of every decision the edge caches.
//!
//! It owns the Postgres pools, the Redis tiers, the in-process cache, invalidation from the
//! database's change notices, and the HTTP API of API.md. It only translates I/O: every rule and
//! format lives in `authz-core`. The `authz-origin` binary (package
//! `authz-origin-cli`, in `origin/cli`) is the CLI over this library, which the integration
//! tests also drive in-process.

pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod connection;
pub mod db;
pub mod decision;
pub mod error;
pub mod invalidation;
pub mod jwks;
pub mod maintenance;
pub mod monitoring;
pub mod openapi;
pub mod postgres_tls;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod state;
pub mod warming;
