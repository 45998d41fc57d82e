//! The edge worker (skeleton until the edge issue): it will verify the end-user JWT with the
//! core, answer from Workers KV and call the origin on a miss. It only translates I/O; every
//! rule and format lives in `authz-core`.

pub use authz_core::cache::CacheKey;
