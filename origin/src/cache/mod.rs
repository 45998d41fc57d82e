//! The origin's cache tiers: the Redis tiers behind circuit breakers, and the fact pieces
//! kept in two of them. (L1, the in-process
//! decision cache, lives with the decider, which owns its coalescing.)

pub mod breaker;
pub mod pieces;
pub mod redis_tier;

pub use breaker::{Breaker, BreakerState};
pub use pieces::PieceCache;
pub use redis_tier::{RedisTier, TierStatsSnapshot};
