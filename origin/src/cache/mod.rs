//! The origin's cache tiers: the Redis tiers behind circuit breakers, each under a prefix
//! claimed for one database, the fact pieces kept in the `user` and `generation` tiers, and
//! verified sessions published to the `session` tier.
//! (L1, the in-process decision cache, lives with the decider, which owns its coalescing.)

pub mod breaker;
pub mod owner;
pub mod pieces;
pub mod redis_connection;
pub mod redis_tier;
pub mod sessions;

pub use breaker::{Breaker, BreakerState};
pub use owner::{DatabaseIdentity, Ownership};
pub use pieces::PieceCache;
pub use redis_tier::{RedisTier, TierStatsSnapshot};
pub use sessions::SessionTier;
