//! The integration tests of the `authz-origin` binary and the tools it runs, against real
//! Postgres and Redis. They share the origin's test support (a fresh database per test cloned
//! from a migrated template, a Redis key prefix per test, an in-process origin), so they run in
//! parallel like the origin's own.

#[allow(
    dead_code,
    reason = "the origin's test support, shared; these tests use part of it"
)]
#[path = "../../../tests/integration/support.rs"]
mod support;
mod validate;
