//! The origin's integration tests, against real Postgres and Redis. Each test gets its own
//! database (cloned from a migrated template) and its own Redis key prefix, so they run in
//! parallel.

mod api;
mod consistency;
mod corpus;
mod differential;
mod faults;
mod faults_load;
mod jwks;
mod monitoring;
mod openapi;
mod pieces;
mod rate_limit;
mod redis_cluster;
mod redis_owner;
mod refresh;
mod replica;
mod schema;
mod support;
mod tls;
mod warming;
mod writes;
