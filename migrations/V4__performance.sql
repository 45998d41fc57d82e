-- V4: the deployment guide's "migration 013" objects, made to work: extensions, two
-- materialized views and their refresh, the Redis / connection-pool / cache-warming
-- configuration tables, the performance history tables, analytics and threshold checks.
--
-- None of this takes part in decisions: decisions read the 7 tables of V1 (the materialized
-- views lag behind the data by design). None of these tables has revision triggers.
-- No schema is named; everything resolves through the current search_path.

-- ---------------------------------------------------------------------------------------------
-- Extensions: created when the server has them, skipped (with a NOTICE) when it does not or
-- when creation fails (privileges, a concurrent creator). Nothing in this schema depends on
-- them. pg_stat_statements only collects when it is in shared_preload_libraries.
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    v_name text;
BEGIN
    FOREACH v_name IN ARRAY ARRAY['pg_stat_statements', 'pg_trgm', 'btree_gin'] LOOP
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = v_name) THEN
            BEGIN
                EXECUTE format('CREATE EXTENSION IF NOT EXISTS %I', v_name);
            EXCEPTION WHEN OTHERS THEN
                RAISE NOTICE 'extension %: not created (%), skipped', v_name, SQLERRM;
            END;
        ELSE
            RAISE NOTICE 'extension %: not available on this server, skipped', v_name;
        END IF;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Materialized views (analytics, cache warming, dashboards; never decisions). Each has a
-- UNIQUE index on its key so REFRESH ... CONCURRENTLY works (readers are not blocked).
-- ---------------------------------------------------------------------------------------------

-- One row per user: the active flag, the roles held through active memberships of active
-- teams, and what the user owns and has been shared.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_user_authorization_context AS
SELECT u.id                                    AS user_id,
       u.is_active,
       coalesce(m.teams, '[]'::jsonb)          AS teams,        -- [{"team_id", "role"}]
       coalesce(m.active_team_count, 0)        AS active_team_count,
       coalesce(m.owned_team_count, 0)         AS owned_team_count,
       coalesce(m.admin_team_count, 0)         AS admin_team_count,
       coalesce(p.owned_project_count, 0)      AS owned_project_count,
       coalesce(p.public_project_count, 0)     AS public_project_count,
       coalesce(g.owned_generation_count, 0)   AS owned_generation_count,
       coalesce(g.completed_generation_count, 0) AS completed_generation_count,
       coalesce(s.received_share_count, 0)     AS received_share_count,
       now()                                   AS refreshed_at
  FROM users u
  LEFT JOIN (
        SELECT tm.user_id,
               jsonb_agg(jsonb_build_object('team_id', tm.team_id, 'role', tm.role)
                         ORDER BY tm.team_id) AS teams,
               count(*)                                      AS active_team_count,
               count(*) FILTER (WHERE tm.role = 'owner')     AS owned_team_count,
               count(*) FILTER (WHERE tm.role = 'admin')     AS admin_team_count
          FROM team_members tm
          JOIN teams t ON t.id = tm.team_id
         WHERE tm.is_active AND t.is_active
         GROUP BY tm.user_id) m ON m.user_id = u.id
  LEFT JOIN (
        SELECT pr.user_id,
               count(*)                                          AS owned_project_count,
               count(*) FILTER (WHERE pr.visibility = 'public')  AS public_project_count
          FROM projects pr
         GROUP BY pr.user_id) p ON p.user_id = u.id
  LEFT JOIN (
        SELECT ge.user_id,
               count(*)                                          AS owned_generation_count,
               count(*) FILTER (WHERE ge.status = 'completed')   AS completed_generation_count
          FROM generations ge
         GROUP BY ge.user_id) g ON g.user_id = u.id
  LEFT JOIN (
        -- Active shares not expired at refresh time.
        SELECT gs.shared_with_user_id AS user_id, count(*) AS received_share_count
          FROM generation_shares gs
         WHERE gs.is_active AND (gs.expires_at IS NULL OR now() < gs.expires_at)
         GROUP BY gs.shared_with_user_id) s ON s.user_id = u.id
WITH DATA;

CREATE UNIQUE INDEX IF NOT EXISTS ux_mv_user_authorization_context_user_id
    ON mv_user_authorization_context (user_id);

-- One row per team: members per role (active memberships), inactive memberships, the projects
-- linked to it per access level and per visibility (links on private projects grant nothing),
-- and the generations reachable through those links.
CREATE MATERIALIZED VIEW IF NOT EXISTS mv_team_collaboration_patterns AS
SELECT t.id                                         AS team_id,
       t.owner_id,
       t.is_active,
       coalesce(m.active_member_count, 0)           AS active_member_count,
       coalesce(m.owner_count, 0)                   AS owner_count,
       coalesce(m.admin_count, 0)                   AS admin_count,
       coalesce(m.editor_count, 0)                  AS editor_count,
       coalesce(m.viewer_count, 0)                  AS viewer_count,
       coalesce(m.inactive_member_count, 0)         AS inactive_member_count,
       coalesce(l.linked_project_count, 0)          AS linked_project_count,
       coalesce(l.read_link_count, 0)               AS read_link_count,
       coalesce(l.write_link_count, 0)              AS write_link_count,
       coalesce(l.admin_link_count, 0)              AS admin_link_count,
       coalesce(l.effective_link_count, 0)          AS effective_link_count,
       coalesce(l.public_project_count, 0)          AS public_project_count,
       coalesce(g.linked_generation_count, 0)       AS linked_generation_count,
       now()                                        AS refreshed_at
  FROM teams t
  LEFT JOIN (
        SELECT tm.team_id,
               count(*) FILTER (WHERE tm.is_active)                          AS active_member_count,
               count(*) FILTER (WHERE tm.is_active AND tm.role = 'owner')    AS owner_count,
               count(*) FILTER (WHERE tm.is_active AND tm.role = 'admin')    AS admin_count,
               count(*) FILTER (WHERE tm.is_active AND tm.role = 'editor')   AS editor_count,
               count(*) FILTER (WHERE tm.is_active AND tm.role = 'viewer')   AS viewer_count,
               count(*) FILTER (WHERE NOT tm.is_active)                      AS inactive_member_count
          FROM team_members tm
         GROUP BY tm.team_id) m ON m.team_id = t.id
  LEFT JOIN (
        SELECT pt.team_id,
               count(*)                                                AS linked_project_count,
               count(*) FILTER (WHERE pt.access_level = 'read')        AS read_link_count,
               count(*) FILTER (WHERE pt.access_level = 'write')       AS write_link_count,
               count(*) FILTER (WHERE pt.access_level = 'admin')       AS admin_link_count,
               count(*) FILTER (WHERE p.visibility <> 'private')       AS effective_link_count,
               count(*) FILTER (WHERE p.visibility = 'public')         AS public_project_count
          FROM project_teams pt
          JOIN projects p ON p.id = pt.project_id
         GROUP BY pt.team_id) l ON l.team_id = t.id
  LEFT JOIN (
        SELECT pt.team_id, count(*) AS linked_generation_count
          FROM project_teams pt
          JOIN generations ge ON ge.project_id = pt.project_id
         GROUP BY pt.team_id) g ON g.team_id = t.id
WITH DATA;

CREATE UNIQUE INDEX IF NOT EXISTS ux_mv_team_collaboration_patterns_team_id
    ON mv_team_collaboration_patterns (team_id);

-- Refreshes both views, CONCURRENTLY when they are populated (readers keep reading the old
-- contents meanwhile), plainly when not (CONCURRENTLY refuses an unpopulated view). This works
-- inside a transaction and inside a function, unlike CREATE INDEX CONCURRENTLY. One row per
-- view. Scheduled every 15 minutes (pg_cron below, or the origin's scheduler).
CREATE OR REPLACE FUNCTION refresh_authorization_materialized_views()
RETURNS TABLE (view_name text, refreshed_at timestamptz, duration_ms double precision,
               row_count bigint, refreshed_concurrently boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_view     text;
    v_regclass regclass;
    v_started  timestamptz;
BEGIN
    FOREACH v_view IN ARRAY ARRAY['mv_user_authorization_context',
                                  'mv_team_collaboration_patterns'] LOOP
        v_regclass := to_regclass(v_view);
        IF v_regclass IS NULL THEN
            RAISE EXCEPTION 'materialized view % does not exist in the search_path', v_view;
        END IF;
        v_started := clock_timestamp();
        SELECT c.relispopulated INTO refreshed_concurrently FROM pg_class c WHERE c.oid = v_regclass;
        IF refreshed_concurrently THEN
            EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %s', v_regclass);
        ELSE
            EXECUTE format('REFRESH MATERIALIZED VIEW %s', v_regclass);
        END IF;
        EXECUTE format('SELECT count(*) FROM %s', v_regclass) INTO row_count;
        view_name := v_view;
        refreshed_at := clock_timestamp();
        duration_ms := extract(epoch FROM refreshed_at - v_started) * 1000.0;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Redis tiers. The origin reads this table for each tier's TTL, limits and key prefix; the
-- URL itself comes from the environment variable named here (API.md), never from the table.
-- cache_name is the guide's name for a tier ('authorization_cache', ...). db_index is used
-- when the tier's URL names no database (e.g. all four tiers falling back to one REDIS_URL).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS redis_cache_config (
    tier                      text        PRIMARY KEY
                                          CHECK (tier IN ('authorization', 'session',
                                                          'generation', 'user')),
    cache_name                text        GENERATED ALWAYS AS (tier || '_cache') STORED UNIQUE,
    url_env_var               text        NOT NULL DEFAULT '',
    redis_host                text        NOT NULL DEFAULT 'localhost',
    redis_port                integer     NOT NULL DEFAULT 6379 CHECK (redis_port BETWEEN 1 AND 65535),
    db_index                  integer     NOT NULL DEFAULT 0 CHECK (db_index BETWEEN 0 AND 15),
    key_prefix                text        NOT NULL DEFAULT 'authz:',
    default_ttl_seconds       integer     NOT NULL DEFAULT 30 CHECK (default_ttl_seconds > 0),
    max_memory_mb             integer     NOT NULL DEFAULT 128 CHECK (max_memory_mb > 0),
    eviction_policy           text        NOT NULL DEFAULT 'allkeys-lru',
    max_connections           integer     NOT NULL DEFAULT 4 CHECK (max_connections > 0),
    connection_timeout_ms     integer     NOT NULL DEFAULT 2000 CHECK (connection_timeout_ms > 0),
    command_timeout_ms        integer     NOT NULL DEFAULT 50 CHECK (command_timeout_ms > 0),
    retry_attempts            integer     NOT NULL DEFAULT 1 CHECK (retry_attempts >= 0),
    circuit_breaker_failures  integer     NOT NULL DEFAULT 5 CHECK (circuit_breaker_failures > 0),
    circuit_breaker_reset_ms  integer     NOT NULL DEFAULT 5000 CHECK (circuit_breaker_reset_ms > 0),
    enabled                   boolean     NOT NULL DEFAULT true,
    description               text        NOT NULL DEFAULT '',
    updated_at                timestamptz NOT NULL DEFAULT now()
);

INSERT INTO redis_cache_config (tier, url_env_var, redis_port, db_index, key_prefix,
                                default_ttl_seconds, max_memory_mb, max_connections,
                                command_timeout_ms, description)
VALUES
    ('authorization', 'REDIS_AUTHORIZATION_URL', 6379, 0, 'authz:dec:', 30,   512, 8, 50,
     'L2 decision cache; entries carry their revision and valid_until, and are invalidated by authz_changes notices'),
    ('session',       'REDIS_SESSION_URL',       6380, 1, 'authz:ses:', 900,  256, 4, 100,
     'verified end-user tokens and session data'),
    ('generation',    'REDIS_GENERATION_URL',    6381, 2, 'authz:gen:', 300,  256, 4, 100,
     'generation and project facts for warming and fact reuse'),
    ('user',          'REDIS_USER_URL',          6382, 3, 'authz:usr:', 300,  128, 4, 100,
     'user facts (active flag, memberships)')
ON CONFLICT (tier) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Postgres connection pools of the origin. Sizes for the 2-core machine this runs on: a
-- Postgres on 2 cores gains nothing from more than a handful of concurrently running queries,
-- so the pools add up to 26 connections at most (max_connections is 100 by default).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS connection_pool_config (
    pool_name            text        PRIMARY KEY
                                     CHECK (pool_name IN ('authorization_primary',
                                                          'authorization_replica',
                                                          'read_primary', 'read_replica',
                                                          'write_primary', 'maintenance')),
    pool_type            text        NOT NULL DEFAULT 'general'
                                     CHECK (pool_type IN ('authorization', 'read_heavy',
                                                          'write_heavy', 'general')),
    target               text        NOT NULL DEFAULT 'primary'
                                     CHECK (target IN ('primary', 'replica')),
    url_env_var          text        NOT NULL DEFAULT 'POSTGRES_PRIMARY_URL',
    min_size             integer     NOT NULL DEFAULT 1 CHECK (min_size >= 0),
    max_size             integer     NOT NULL DEFAULT 4 CHECK (max_size >= 1),
    connect_timeout_ms   integer     NOT NULL DEFAULT 2000 CHECK (connect_timeout_ms > 0),
    acquire_timeout_ms   integer     NOT NULL DEFAULT 1000 CHECK (acquire_timeout_ms > 0),
    statement_timeout_ms integer     NOT NULL DEFAULT 5000 CHECK (statement_timeout_ms >= 0),
    idle_timeout_ms      integer     NOT NULL DEFAULT 300000 CHECK (idle_timeout_ms >= 0),
    max_lifetime_ms      integer     NOT NULL DEFAULT 1800000 CHECK (max_lifetime_ms >= 0),
    enabled              boolean     NOT NULL DEFAULT true,
    description          text        NOT NULL DEFAULT '',
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT connection_pool_config_sizes CHECK (min_size <= max_size)
);

INSERT INTO connection_pool_config (pool_name, pool_type, target, url_env_var, min_size,
                                    max_size, connect_timeout_ms, acquire_timeout_ms,
                                    statement_timeout_ms, idle_timeout_ms, description)
VALUES
    ('authorization_primary', 'authorization', 'primary', 'POSTGRES_PRIMARY_URL', 2, 6, 2000,  250,   1000, 300000,
     'decision facts when min_revision demands the primary, and the LISTEN connection''s peers'),
    ('authorization_replica', 'authorization', 'replica', 'POSTGRES_REPLICA_URL', 2, 6, 2000,  250,   1000, 300000,
     'decision facts (falls back to the primary when no replica is configured)'),
    ('read_primary',          'read_heavy',    'primary', 'POSTGRES_PRIMARY_URL', 1, 4, 2000, 1000,   5000, 300000,
     'dashboards and analytics that must see the latest writes'),
    ('read_replica',          'read_heavy',    'replica', 'POSTGRES_REPLICA_URL', 1, 4, 2000, 1000,   5000, 300000,
     'dashboards, analytics, cache warming'),
    ('write_primary',         'write_heavy',   'primary', 'POSTGRES_PRIMARY_URL', 1, 4, 2000, 1000,  10000, 300000,
     'metrics, pool health and alert writes'),
    ('maintenance',           'general',       'primary', 'POSTGRES_PRIMARY_URL', 0, 2, 5000, 5000, 300000,  60000,
     'materialized view refresh, threshold checks, pruning')
ON CONFLICT (pool_name) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Cache warming: which questions the origin pre-computes, most important (lowest) first.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS cache_warming_patterns (
    id            serial      PRIMARY KEY,
    pattern_name  text        NOT NULL UNIQUE,
    resource_type text        NOT NULL CHECK (resource_type IN ('generation', 'project', 'team')),
    operation     text        NOT NULL CHECK (operation IN ('read', 'download', 'write', 'delete',
                                                            'share', 'admin')),
    priority      integer     NOT NULL DEFAULT 100,
    enabled       boolean     NOT NULL DEFAULT true,
    max_items     integer     NOT NULL DEFAULT 1000 CHECK (max_items > 0),
    lookback      interval    NOT NULL DEFAULT interval '1 hour',
    description   text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now()
);

INSERT INTO cache_warming_patterns (pattern_name, resource_type, operation, priority, max_items,
                                    lookback, description)
VALUES
    ('recent_generations_owner_read', 'generation', 'read',     10, 2000, interval '1 hour',
     'owners reading the generations they made in the last hour'),
    ('public_completed_generations',  'generation', 'read',     20, 1000, interval '6 hours',
     'anonymous reads of completed generations in public projects'),
    ('shared_generations_download',   'generation', 'download', 30,  500, interval '1 day',
     'sharees downloading generations shared with them (entries end at the share''s expires_at)'),
    ('team_projects_read',            'project',    'read',     40,  500, interval '1 day',
     'members of active teams reading linked team-only and public projects'),
    ('team_membership_read',          'team',       'read',     50,  500, interval '1 day',
     'active members reading their teams')
ON CONFLICT (pattern_name) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Thresholds. comparison 'gt': breached when the value is above the threshold (latencies,
-- rates of bad things); 'lt': breached when below (hit rates). Rates are ratios in [0, 1].
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS performance_thresholds (
    metric_name    text             PRIMARY KEY,
    warning_value  double precision NOT NULL,
    critical_value double precision NOT NULL,
    comparison     text             NOT NULL CHECK (comparison IN ('gt', 'lt')),
    unit           text             NOT NULL DEFAULT '',
    description    text             NOT NULL DEFAULT '',
    enabled        boolean          NOT NULL DEFAULT true,
    updated_at     timestamptz      NOT NULL DEFAULT now(),
    CONSTRAINT performance_thresholds_order CHECK (
        (comparison = 'gt' AND warning_value <= critical_value)
        OR (comparison = 'lt' AND warning_value >= critical_value))
);

INSERT INTO performance_thresholds (metric_name, warning_value, critical_value, comparison, unit,
                                    description)
VALUES
    ('avg_latency_ms',        25,    75,  'gt', 'ms',    'request-weighted mean decision latency at the origin (guide target: under 75 ms)'),
    ('p95_latency_ms',        40,   100,  'gt', 'ms',    '95th percentile decision latency (guide target: under 100 ms)'),
    ('p99_latency_ms',        50,   100,  'gt', 'ms',    '99th percentile decision latency'),
    ('cache_hit_rate',      0.95,  0.80,  'lt', 'ratio', 'share of decisions answered from L1 or L2 (guide target: 95%)'),
    ('error_rate',          0.01,  0.02,  'gt', 'ratio', 'share of requests answered with a 5xx (guide: under 2%)'),
    ('pool_utilization',    0.70,  0.80,  'gt', 'ratio', 'highest in_use / max_size over the pools (guide: under 80%)'),
    ('revocation_lag_p99_ms', 50,   100,  'gt', 'ms',    '99th percentile time from a revoking commit to the origin no longer granting (DOMAIN.md goal: under 100 ms)')
ON CONFLICT (metric_name) DO NOTHING;

-- ---------------------------------------------------------------------------------------------
-- Performance history, written by the origin once per window (e.g. every 60 s per instance).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS authorization_performance_metrics (
    id                    bigserial        PRIMARY KEY,
    recorded_at           timestamptz      NOT NULL DEFAULT now(),  -- end of the window
    window_seconds        integer          NOT NULL DEFAULT 60 CHECK (window_seconds > 0),
    source                text             NOT NULL DEFAULT 'origin',  -- instance or tier name
    requests              bigint           NOT NULL DEFAULT 0 CHECK (requests >= 0),
    errors                bigint           NOT NULL DEFAULT 0 CHECK (errors >= 0),
    grants                bigint           NOT NULL DEFAULT 0,
    denies                bigint           NOT NULL DEFAULT 0,
    avg_latency_ms        double precision NULL,
    p50_latency_ms        double precision NULL,
    p95_latency_ms        double precision NULL,
    p99_latency_ms        double precision NULL,
    max_latency_ms        double precision NULL,
    cache_hit_rate        double precision NULL CHECK (cache_hit_rate BETWEEN 0 AND 1),
    l1_hit_rate           double precision NULL CHECK (l1_hit_rate BETWEEN 0 AND 1),
    l2_hit_rate           double precision NULL CHECK (l2_hit_rate BETWEEN 0 AND 1),
    db_queries            bigint           NOT NULL DEFAULT 0,
    throughput_rps        double precision NULL,
    revocation_lag_p99_ms double precision NULL,
    details               jsonb            NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX IF NOT EXISTS idx_authorization_performance_metrics_recorded_at
    ON authorization_performance_metrics (recorded_at);

CREATE TABLE IF NOT EXISTS connection_pool_health (
    id          bigserial        PRIMARY KEY,
    recorded_at timestamptz      NOT NULL DEFAULT now(),
    -- The guide's queries filter on created_at: the same instant, kept in step.
    created_at  timestamptz      GENERATED ALWAYS AS (recorded_at) STORED,
    pool_name   text             NOT NULL,
    size        integer          NOT NULL DEFAULT 0,
    max_size    integer          NULL,
    in_use      integer          NOT NULL DEFAULT 0,
    idle        integer          NOT NULL DEFAULT 0,
    waiters     integer          NOT NULL DEFAULT 0,
    utilization double precision NULL CHECK (utilization >= 0),  -- in_use / max_size
    errors      bigint           NOT NULL DEFAULT 0
);

CREATE INDEX IF NOT EXISTS idx_connection_pool_health_recorded_at
    ON connection_pool_health (recorded_at);
CREATE INDEX IF NOT EXISTS idx_connection_pool_health_pool_recorded_at
    ON connection_pool_health (pool_name, recorded_at DESC);

CREATE TABLE IF NOT EXISTS performance_alerts (
    id                bigserial        PRIMARY KEY,
    metric_name       text             NOT NULL,
    level             text             NOT NULL CHECK (level IN ('warning', 'critical')),
    value             double precision NOT NULL,
    threshold         double precision NOT NULL,
    message           text             NOT NULL DEFAULT '',
    started_at        timestamptz      NOT NULL DEFAULT now(),
    last_seen_at      timestamptz      NOT NULL DEFAULT now(),
    occurrences       integer          NOT NULL DEFAULT 1,
    resolved_at       timestamptz      NULL,
    -- The guide's queries say alert_resolved_at: the same instant, kept in step.
    alert_resolved_at timestamptz      GENERATED ALWAYS AS (resolved_at) STORED,
    details           jsonb            NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT performance_alerts_resolved_after_start
        CHECK (resolved_at IS NULL OR resolved_at >= started_at)
);

-- At most one OPEN alert per metric: check_performance_thresholds() upserts into it.
CREATE UNIQUE INDEX IF NOT EXISTS ux_performance_alerts_open_metric
    ON performance_alerts (metric_name) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_performance_alerts_started_at
    ON performance_alerts (started_at);

-- ---------------------------------------------------------------------------------------------
-- Analytics over the last p_interval of authorization_performance_metrics. One row.
-- Averages and percentiles are request-weighted means of the windows' values (percentiles of
-- windows cannot be merged exactly); worst_p99_latency_ms is the worst window's p99.
-- throughput_rps = all requests / the time the windows cover, so several instances reporting
-- the same minute add up.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION get_authorization_performance_analytics(
    p_interval interval DEFAULT interval '1 hour')
RETURNS TABLE (window_start timestamptz, window_end timestamptz, samples bigint,
               requests bigint, errors bigint, error_rate double precision,
               avg_latency_ms double precision, p50_latency_ms double precision,
               p95_latency_ms double precision, p99_latency_ms double precision,
               worst_p99_latency_ms double precision, cache_hit_rate double precision,
               l1_hit_rate double precision, l2_hit_rate double precision,
               throughput_rps double precision, revocation_lag_p99_ms double precision)
LANGUAGE sql STABLE AS $$
    SELECT min(m.recorded_at - make_interval(secs => m.window_seconds)),
           max(m.recorded_at),
           count(*),
           coalesce(sum(m.requests), 0)::bigint,
           coalesce(sum(m.errors), 0)::bigint,
           sum(m.errors)::double precision / nullif(sum(m.requests), 0),
           sum(m.avg_latency_ms * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.avg_latency_ms IS NOT NULL), 0),
           sum(m.p50_latency_ms * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.p50_latency_ms IS NOT NULL), 0),
           sum(m.p95_latency_ms * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.p95_latency_ms IS NOT NULL), 0),
           sum(m.p99_latency_ms * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.p99_latency_ms IS NOT NULL), 0),
           max(m.p99_latency_ms),
           sum(m.cache_hit_rate * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.cache_hit_rate IS NOT NULL), 0),
           sum(m.l1_hit_rate * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.l1_hit_rate IS NOT NULL), 0),
           sum(m.l2_hit_rate * m.requests) / nullif(sum(m.requests) FILTER (WHERE m.l2_hit_rate IS NOT NULL), 0),
           sum(m.requests)::double precision
             / nullif(extract(epoch FROM max(m.recorded_at)
                                         - min(m.recorded_at - make_interval(secs => m.window_seconds))), 0),
           max(m.revocation_lag_p99_ms)
      FROM authorization_performance_metrics m
     WHERE m.recorded_at >= now() - p_interval
$$;

-- ---------------------------------------------------------------------------------------------
-- Compares the latest window against performance_thresholds, one row per enabled threshold,
-- and keeps performance_alerts in step: a breach opens (or updates) the metric's one open
-- alert; a value back within bounds resolves it. The latest window is every metrics row
-- recorded within window_seconds of the newest row (one per reporting instance); it counts
-- only when the newest row is at most p_max_age old, else the level is 'no_data' and alerts
-- are left as they are. pool_utilization is the highest utilization among each pool's latest
-- report of the last p_max_age. Scheduled every 2 minutes (pg_cron below or the origin).
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION check_performance_thresholds(
    p_record_alerts boolean DEFAULT true,
    p_max_age interval DEFAULT interval '15 minutes')
RETURNS TABLE (metric_name text, value double precision, threshold double precision,
               level text, breached boolean, warning_value double precision,
               critical_value double precision, comparison text, unit text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_latest   timestamptz;
    v_window   integer;
    v_values   jsonb;
    v_pool     double precision;
    v_t        record;
    v_value    double precision;
    v_level    text;
    v_limit    double precision;
BEGIN
    SELECT m.recorded_at, m.window_seconds INTO v_latest, v_window
      FROM authorization_performance_metrics m
     ORDER BY m.recorded_at DESC LIMIT 1;

    IF v_latest IS NOT NULL AND v_latest >= now() - p_max_age THEN
        SELECT jsonb_build_object(
                   'avg_latency_ms', sum(m.avg_latency_ms * m.requests)
                       / nullif(sum(m.requests) FILTER (WHERE m.avg_latency_ms IS NOT NULL), 0),
                   'p95_latency_ms', max(m.p95_latency_ms),
                   'p99_latency_ms', max(m.p99_latency_ms),
                   'cache_hit_rate', sum(m.cache_hit_rate * m.requests)
                       / nullif(sum(m.requests) FILTER (WHERE m.cache_hit_rate IS NOT NULL), 0),
                   'error_rate', sum(m.errors)::double precision / nullif(sum(m.requests), 0),
                   'revocation_lag_p99_ms', max(m.revocation_lag_p99_ms))
          INTO v_values
          FROM authorization_performance_metrics m
         WHERE m.recorded_at > v_latest - make_interval(secs => v_window);
    ELSE
        v_values := '{}'::jsonb;
    END IF;

    SELECT max(h.utilization) INTO v_pool
      FROM (SELECT DISTINCT ON (ph.pool_name) ph.utilization
              FROM connection_pool_health ph
             WHERE ph.recorded_at >= now() - p_max_age
             ORDER BY ph.pool_name, ph.recorded_at DESC) AS h;
    v_values := v_values || jsonb_build_object('pool_utilization', v_pool);

    FOR v_t IN
        SELECT t.metric_name AS name, t.warning_value AS warn, t.critical_value AS crit,
               t.comparison AS cmp, t.unit AS unit_text
          FROM performance_thresholds t
         WHERE t.enabled
         ORDER BY t.metric_name
    LOOP
        v_value := (v_values ->> v_t.name)::double precision;
        IF v_value IS NULL THEN
            v_level := 'no_data'; v_limit := v_t.warn;
        ELSIF (v_t.cmp = 'gt' AND v_value > v_t.crit) OR (v_t.cmp = 'lt' AND v_value < v_t.crit) THEN
            v_level := 'critical'; v_limit := v_t.crit;
        ELSIF (v_t.cmp = 'gt' AND v_value > v_t.warn) OR (v_t.cmp = 'lt' AND v_value < v_t.warn) THEN
            v_level := 'warning'; v_limit := v_t.warn;
        ELSE
            v_level := 'ok'; v_limit := v_t.warn;
        END IF;

        IF p_record_alerts AND v_level IN ('warning', 'critical') THEN
            INSERT INTO performance_alerts AS a (metric_name, level, value, threshold, message)
            VALUES (v_t.name, v_level, v_value, v_limit,
                    format('%s is %s %s (%s threshold %s %s %s)', v_t.name, round(v_value::numeric, 4)::double precision,
                           v_t.unit_text, v_level, CASE v_t.cmp WHEN 'gt' THEN '>' ELSE '<' END,
                           v_limit, v_t.unit_text))
            ON CONFLICT (metric_name) WHERE resolved_at IS NULL DO UPDATE
               SET level = EXCLUDED.level, value = EXCLUDED.value,
                   threshold = EXCLUDED.threshold, message = EXCLUDED.message,
                   last_seen_at = now(), occurrences = a.occurrences + 1;
        ELSIF p_record_alerts AND v_level = 'ok' THEN
            UPDATE performance_alerts AS a SET resolved_at = greatest(now(), a.started_at)
             WHERE a.metric_name = v_t.name AND a.resolved_at IS NULL;
        END IF;

        metric_name := v_t.name;
        value := v_value;
        threshold := v_limit;
        level := v_level;
        breached := v_level IN ('warning', 'critical');
        warning_value := v_t.warn;
        critical_value := v_t.crit;
        comparison := v_t.cmp;
        unit := v_t.unit_text;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- Deletes performance history older than p_keep (alerts: only resolved ones). Returns the
-- number of rows deleted. Scheduled daily.
CREATE OR REPLACE FUNCTION prune_performance_history(p_keep interval DEFAULT interval '14 days')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_total bigint := 0;
    v_count bigint;
BEGIN
    DELETE FROM authorization_performance_metrics WHERE recorded_at < now() - p_keep;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_total := v_total + v_count;
    DELETE FROM connection_pool_health WHERE recorded_at < now() - p_keep;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_total := v_total + v_count;
    DELETE FROM performance_alerts WHERE resolved_at < now() - p_keep;
    GET DIAGNOSTICS v_count = ROW_COUNT; v_total := v_total + v_count;
    RETURN v_total;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- pg_cron, when the server has it (it needs shared_preload_libraries and runs jobs in
-- cron.database_name): schedule the guide's two jobs plus pruning, calling the functions of
-- this schema by qualified name. Without pg_cron, the origin's scheduler runs the same calls.
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    v_suffix text := CASE WHEN current_schema() = 'public' THEN '' ELSE '-' || current_schema() END;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron') THEN
        RAISE NOTICE 'pg_cron: not available, jobs not scheduled (the origin schedules them)';
        RETURN;
    END IF;
    BEGIN
        CREATE EXTENSION IF NOT EXISTS pg_cron;
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING
            'cache-warming-job' || v_suffix, '*/15 * * * *',
            format('SELECT * FROM %I.refresh_authorization_materialized_views()', current_schema());
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING
            'performance-monitoring' || v_suffix, '*/2 * * * *',
            format('SELECT * FROM %I.check_performance_thresholds()', current_schema());
        EXECUTE 'SELECT cron.schedule($1, $2, $3)' USING
            'performance-history-pruning' || v_suffix, '17 3 * * *',
            format('SELECT %I.prune_performance_history()', current_schema());
    EXCEPTION WHEN OTHERS THEN
        RAISE NOTICE 'pg_cron: jobs not scheduled (%), the origin schedules them', SQLERRM;
    END;
END;
$$;
