//! The origin's cache tiers: the Redis tiers behind circuit breakers, the fact pieces kept in
//! the `user` and `generation` tiers, and verified sessions published to the `session` tier.
//! (L1, the in-process decision cache, lives with the decider, which owns its coalescing.)

pub mod breaker;
pub mod pieces;
pub mod redis_tier;
pub mod sessions;

pub use breaker::{Breaker, BreakerState};
pub use pieces::PieceCache;
pub use redis_tier::{RedisTier, TierStatsSnapshot};
pub use sessions::SessionTier;
