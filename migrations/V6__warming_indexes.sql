-- Indexes for the cache-warming queries (origin/src/warming.rs): "recent" rows of the large
-- tables, newest first. Plain CREATE INDEX (refinery runs each migration in a transaction);
-- on a large live table, create them CONCURRENTLY by hand first and this becomes a no-op.
CREATE INDEX IF NOT EXISTS generations_created_at_idx ON generations (created_at DESC);
CREATE INDEX IF NOT EXISTS projects_created_at_idx ON projects (created_at DESC);
CREATE INDEX IF NOT EXISTS generation_shares_created_at_idx ON generation_shares (created_at DESC);
