//! `database_structure`: the schema objects the origin and the guide rely on, checked for what
//! they are (an index by its table and columns, a view by its unique index), not only by name.

use std::time::Instant;

use serde_json::json;
use tokio_postgres::Client;

use super::{Check, Context, Phase, millis, ms};
use authz_origin::db::Pools;

const PHASE: Phase = Phase::DatabaseStructure;

/// The materialized views and the column of their unique index.
const VIEWS: [(&str, &str); 2] = [
    ("mv_user_authorization_context", "user_id"),
    ("mv_team_collaboration_patterns", "team_id"),
];

/// An index the decision query (or a cascade) reads through, by definition.
struct ExpectedIndex {
    /// The name the migrations give it (reported, not required).
    name: &'static str,
    table: &'static str,
    keys: &'static [&'static str],
    include: &'static [&'static str],
}

impl ExpectedIndex {
    fn describe(&self) -> String {
        let mut text = format!("{} ({})", self.table, self.keys.join(", "));
        if !self.include.is_empty() {
            text.push_str(&format!(" INCLUDE ({})", self.include.join(", ")));
        }
        text
    }
}

/// The composite authorization indexes of V1: each serves one lookup of the decision query,
/// as an index-only scan.
const AUTHORIZATION_INDEXES: [ExpectedIndex; 3] = [
    ExpectedIndex {
        name: "idx_team_members_user_team_auth",
        table: "team_members",
        keys: &["user_id", "team_id"],
        include: &["role", "is_active"],
    },
    ExpectedIndex {
        name: "idx_project_teams_project_auth",
        table: "project_teams",
        keys: &["project_id"],
        include: &["team_id", "access_level"],
    },
    ExpectedIndex {
        name: "idx_generation_shares_generation_user_auth",
        table: "generation_shares",
        keys: &["generation_id", "shared_with_user_id"],
        include: &["permission_level", "expires_at", "is_active"],
    },
];

/// The owner and foreign-key indexes of V1 (owner lookups and `ON DELETE` cascades).
const SUPPORTING_INDEXES: [ExpectedIndex; 6] = [
    ExpectedIndex {
        name: "idx_generations_project_id",
        table: "generations",
        keys: &["project_id"],
        include: &[],
    },
    ExpectedIndex {
        name: "idx_generations_user_id",
        table: "generations",
        keys: &["user_id"],
        include: &[],
    },
    ExpectedIndex {
        name: "idx_projects_user_id",
        table: "projects",
        keys: &["user_id"],
        include: &[],
    },
    ExpectedIndex {
        name: "idx_teams_owner_id",
        table: "teams",
        keys: &["owner_id"],
        include: &[],
    },
    ExpectedIndex {
        name: "idx_generation_shares_shared_with_user_id",
        table: "generation_shares",
        keys: &["shared_with_user_id"],
        include: &[],
    },
    ExpectedIndex {
        name: "idx_project_teams_team_id",
        table: "project_teams",
        keys: &["team_id"],
        include: &[],
    },
];

/// The performance tables of V4.
const PERFORMANCE_TABLES: [&str; 5] = [
    "authorization_performance_metrics",
    "connection_pool_health",
    "performance_alerts",
    "performance_thresholds",
    "cache_warming_patterns",
];

/// The functions the origin, the schedulers and the guide's commands call.
const FUNCTIONS: [&str; 10] = [
    "authz_current_revision",
    "authz_decision_facts",
    "authz_user_piece",
    "authz_resource_piece",
    "authz_rebuild_pieces",
    "check_user_authorization_enterprise",
    "refresh_authorization_materialized_views",
    "get_authorization_performance_analytics",
    "check_performance_thresholds",
    "prune_performance_history",
];

/// One index found in the catalog.
struct FoundIndex {
    name: String,
    table: String,
    keys: Vec<String>,
    include: Vec<String>,
    usable: bool,
}

async fn indexes(client: &Client, tables: &[&str]) -> Result<Vec<FoundIndex>, String> {
    let tables: Vec<String> = tables.iter().map(|table| (*table).to_owned()).collect();
    let rows = client
        .query(
            "SELECT ic.relname::text, tc.relname::text, i.indisvalid AND i.indisready, \
                    i.indnkeyatts::int, \
                    array(SELECT a.attname::text \
                            FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                            JOIN pg_attribute a ON a.attrelid = tc.oid AND a.attnum = k.attnum \
                           ORDER BY k.ord) \
               FROM pg_index i \
               JOIN pg_class ic ON ic.oid = i.indexrelid \
               JOIN pg_class tc ON tc.oid = i.indrelid \
              WHERE tc.relname = ANY($1) AND pg_table_is_visible(tc.oid)",
            &[&tables],
        )
        .await
        .map_err(|error| format!("cannot read pg_index: {error}"))?;
    Ok(rows
        .iter()
        .map(|row| {
            let columns: Vec<String> = row.get(4);
            let key_count = usize::try_from(row.get::<_, i32>(3)).unwrap_or(0);
            let (keys, include) = columns.split_at(key_count.min(columns.len()));
            FoundIndex {
                name: row.get(0),
                table: row.get(1),
                usable: row.get(2),
                keys: keys.to_vec(),
                include: include.to_vec(),
            }
        })
        .collect())
}

/// Finds an index serving `expected`: same table, same key columns in order, and at least the
/// expected INCLUDE columns (as included or key columns).
fn find<'a>(found: &'a [FoundIndex], expected: &ExpectedIndex) -> Option<&'a FoundIndex> {
    found.iter().find(|index| {
        index.usable
            && index.table == expected.table
            && index
                .keys
                .iter()
                .map(String::as_str)
                .eq(expected.keys.iter().copied())
            && expected
                .include
                .iter()
                .all(|column| index.include.iter().chain(&index.keys).any(|c| c == column))
    })
}

fn index_check(
    name: &str,
    label: &str,
    expected: &[ExpectedIndex],
    found: &Result<Vec<FoundIndex>, String>,
) -> Check {
    let found = match found {
        Ok(found) => found,
        Err(error) => return Check::new(PHASE, name, false, error.clone()),
    };
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for index in expected {
        match find(found, index) {
            Some(hit) => present.push(hit.name.clone()),
            None => missing.push(format!("{} (expected as {})", index.describe(), index.name)),
        }
    }
    let detail = if missing.is_empty() {
        format!(
            "Found {}/{} {label}, valid, with the expected columns: {}",
            present.len(),
            expected.len(),
            present.join(", ")
        )
    } else {
        format!(
            "Found {}/{} {label}; missing or invalid: {}",
            present.len(),
            expected.len(),
            missing.join("; ")
        )
    };
    Check::new(PHASE, name, missing.is_empty(), detail)
        .with(json!({ "present": present, "missing": missing }))
}

async fn views(client: &Client) -> Check {
    let name = "materialized_views_created";
    let mut problems = Vec::new();
    let mut found = Vec::new();
    for (view, key) in VIEWS {
        let row = client
            .query_opt(
                "SELECT m.ispopulated, \
                        EXISTS (SELECT 1 FROM pg_index i \
                                  JOIN pg_attribute a ON a.attrelid = i.indrelid \
                                                     AND a.attnum = i.indkey[0] \
                                 WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid \
                                   AND i.indnkeyatts = 1 AND a.attname = $2) \
                   FROM pg_matviews m \
                   JOIN pg_class c ON c.relname = m.matviewname \
                   JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = m.schemaname \
                  WHERE m.matviewname = $1 AND pg_table_is_visible(c.oid)",
                &[&view, &key],
            )
            .await;
        match row {
            Ok(Some(row)) => {
                let (populated, unique): (bool, bool) = (row.get(0), row.get(1));
                if !populated {
                    problems.push(format!("{view} is not populated"));
                }
                if !unique {
                    problems.push(format!(
                        "{view} has no unique index on ({key}), so REFRESH CONCURRENTLY fails"
                    ));
                }
                found.push(view);
            }
            Ok(None) => problems.push(format!("{view} does not exist")),
            Err(error) => problems.push(format!("{view}: {error}")),
        }
    }
    let detail = if problems.is_empty() {
        format!(
            "Found {}/{} materialized views, populated, each with a unique index (REFRESH \
             CONCURRENTLY works): {}",
            found.len(),
            VIEWS.len(),
            found.join(", ")
        )
    } else {
        format!(
            "Found {}/{} materialized views; {}",
            found.len(),
            VIEWS.len(),
            problems.join("; ")
        )
    };
    Check::new(PHASE, name, problems.is_empty(), detail)
}

/// The piece tables (V9) against what the base tables say, on a sample of keys, after one
/// sequencer round (V11: the round that numbers a change rewrites its pieces). A bulk load made
/// with triggers disabled and no `authz_bump_all()` after it leaves them stale, and decisions
/// would read the stale pieces.
const PIECE_SAMPLE: i64 = 2_000;

async fn pieces(client: &Client) -> Check {
    let name = "piece_tables_current";
    if let Err(error) = client
        .batch_execute("SELECT authz_current_revision()")
        .await
    {
        return Check::new(PHASE, name, false, error.to_string());
    }
    let row = client
        .query_one(
            "WITH users_sample AS (\
                 SELECT id FROM users ORDER BY random() LIMIT $1), \
             resources_sample AS (\
                 (SELECT 'generation'::text AS type, id FROM generations ORDER BY random() LIMIT $1) \
                 UNION ALL (SELECT 'project', id FROM projects ORDER BY random() LIMIT $1) \
                 UNION ALL (SELECT 'team', id FROM teams ORDER BY random() LIMIT $1)) \
             SELECT (SELECT count(*) FROM users_sample), \
                    (SELECT count(*) FROM users_sample x \
                       LEFT JOIN authz_user_pieces f ON f.user_id = x.id \
                       JOIN authz_user_pieces_source s ON s.user_id = x.id \
                      WHERE f.piece::jsonb IS DISTINCT FROM s.piece::jsonb), \
                    (SELECT count(*) FROM resources_sample), \
                    (SELECT count(*) FROM resources_sample x \
                       LEFT JOIN authz_resource_pieces f \
                              ON f.resource_type = x.type AND f.resource_id = x.id \
                       JOIN authz_resource_pieces_source s \
                              ON s.resource_type = x.type AND s.resource_id = x.id \
                      WHERE f.piece::jsonb IS DISTINCT FROM s.piece::jsonb \
                         OR f.project_id IS DISTINCT FROM s.project_id)",
            &[&PIECE_SAMPLE],
        )
        .await;
    match row {
        Ok(row) => {
            let (users, stale_users, resources, stale_resources): (i64, i64, i64, i64) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            let passed = stale_users == 0 && stale_resources == 0;
            let detail = if passed {
                format!(
                    "The piece tables match the base tables on a sample of {users} users and \
                     {resources} resources"
                )
            } else {
                format!(
                    "Stale pieces: {stale_users} of {users} sampled users, {stale_resources} of \
                     {resources} sampled resources (a bulk load with triggers disabled must end \
                     with SELECT authz_bump_all())"
                )
            };
            Check::new(PHASE, name, passed, detail)
        }
        Err(error) => Check::new(PHASE, name, false, error.to_string()),
    }
}

async fn count(client: &Client, sql: &str) -> Result<i64, String> {
    client
        .query_one(sql, &[])
        .await
        .map(|row| row.get(0))
        .map_err(|error| error.to_string())
}

async fn configuration(client: &Client) -> Vec<Check> {
    let mut checks = Vec::new();
    let redis = client
        .query(
            "SELECT tier FROM redis_cache_config WHERE enabled ORDER BY tier",
            &[],
        )
        .await;
    checks.push(match redis {
        Ok(rows) => {
            let tiers: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            Check::new(
                PHASE,
                "redis_cache_configs",
                tiers.len() == 4,
                format!(
                    "Found {} enabled Redis cache configurations of 4: {}",
                    tiers.len(),
                    tiers.join(", ")
                ),
            )
        }
        Err(error) => Check::new(PHASE, "redis_cache_configs", false, error.to_string()),
    });
    let pools = client
        .query(
            "SELECT pool_name, pool_type FROM connection_pool_config WHERE enabled \
              ORDER BY pool_name",
            &[],
        )
        .await;
    checks.push(match pools {
        Ok(rows) => {
            let mut types: Vec<String> = rows.iter().map(|row| row.get(1)).collect();
            types.sort();
            types.dedup();
            let all_types = ["authorization", "general", "read_heavy", "write_heavy"]
                .iter()
                .all(|kind| types.iter().any(|t| t == kind));
            Check::new(
                PHASE,
                "connection_pool_configs",
                rows.len() == 6 && all_types,
                format!(
                    "Found {} enabled connection pool configurations of 6; pool types: {}",
                    rows.len(),
                    types.join(", ")
                ),
            )
        }
        Err(error) => Check::new(PHASE, "connection_pool_configs", false, error.to_string()),
    });
    let thresholds = count(
        client,
        "SELECT count(*) FROM performance_thresholds WHERE enabled",
    )
    .await;
    checks.push(match thresholds {
        Ok(n) => Check::new(
            PHASE,
            "performance_thresholds",
            n >= 6,
            format!("Found {n} enabled performance thresholds (at least 6 required)"),
        ),
        Err(error) => Check::new(PHASE, "performance_thresholds", false, error),
    });
    let patterns = count(
        client,
        "SELECT count(*) FROM cache_warming_patterns WHERE enabled",
    )
    .await;
    checks.push(match patterns {
        Ok(n) => Check::new(
            PHASE,
            "cache_warming_patterns",
            n >= 5,
            format!("Found {n} enabled cache warming patterns (at least 5 required)"),
        ),
        Err(error) => Check::new(PHASE, "cache_warming_patterns", false, error),
    });
    checks
}

async fn tables_and_functions(client: &Client) -> Vec<Check> {
    let tables: Vec<String> = PERFORMANCE_TABLES.iter().map(|t| (*t).to_owned()).collect();
    let found = client
        .query(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
            &[&tables],
        )
        .await;
    let table_check = match found {
        Ok(rows) => {
            let present: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let missing: Vec<&str> = PERFORMANCE_TABLES
                .iter()
                .copied()
                .filter(|t| !present.iter().any(|p| p == t))
                .collect();
            let mut detail = format!(
                "Found {}/{} performance tables",
                present.len(),
                PERFORMANCE_TABLES.len()
            );
            if !missing.is_empty() {
                detail.push_str(&format!("; missing: {}", missing.join(", ")));
            }
            Check::new(
                PHASE,
                "performance_tables_created",
                missing.is_empty(),
                detail,
            )
        }
        Err(error) => Check::new(
            PHASE,
            "performance_tables_created",
            false,
            error.to_string(),
        ),
    };
    let functions: Vec<String> = FUNCTIONS.iter().map(|f| (*f).to_owned()).collect();
    let found = client
        .query(
            "SELECT DISTINCT p.proname::text FROM pg_proc p \
              WHERE p.proname = ANY($1) AND pg_function_is_visible(p.oid)",
            &[&functions],
        )
        .await;
    let function_check = match found {
        Ok(rows) => {
            let present: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            let missing: Vec<&str> = FUNCTIONS
                .iter()
                .copied()
                .filter(|f| !present.iter().any(|p| p == f))
                .collect();
            let mut detail = format!(
                "Found {}/{} functions (decision facts, pieces, refresh, analytics, thresholds, \
                 pruning)",
                present.len(),
                FUNCTIONS.len()
            );
            if !missing.is_empty() {
                detail.push_str(&format!("; missing: {}", missing.join(", ")));
            }
            Check::new(PHASE, "functions_created", missing.is_empty(), detail)
        }
        Err(error) => Check::new(PHASE, "functions_created", false, error.to_string()),
    };
    vec![table_check, function_check]
}

async fn pools(context: &Context<'_>, client: &Client) -> Check {
    let name = "connection_pools_connect";
    let Ok(config) = &context.config else {
        return Check::new(PHASE, name, false, "no configuration");
    };
    let pools = match Pools::connect(config).await {
        Ok(pools) => pools,
        Err(error) => {
            return Check::new(
                PHASE,
                name,
                false,
                format!("cannot build the pools: {error}"),
            );
        }
    };
    let mut connected = Vec::new();
    let mut failed = Vec::new();
    let mut total_max = 0;
    for named in pools.all() {
        total_max += named.settings.max_size;
        let started = Instant::now();
        let probe = async {
            let connection = named.pool.get().await.map_err(|error| error.to_string())?;
            connection
                .query_one("SELECT 1", &[])
                .await
                .map_err(|error| error.to_string())
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), probe).await {
            Ok(Ok(_)) => connected.push(format!(
                "{} {}",
                named.settings.name,
                ms(millis(started.elapsed()))
            )),
            Ok(Err(error)) => failed.push(format!("{}: {error}", named.settings.name)),
            Err(_) => failed.push(format!("{}: timed out", named.settings.name)),
        }
    }
    let limit = client
        .query_one(
            "SELECT current_setting('max_connections')::int \
                    - current_setting('superuser_reserved_connections')::int",
            &[],
        )
        .await
        .map(|row| row.get::<_, i32>(0))
        .ok();
    let fits =
        limit.is_none_or(|limit| usize::try_from(limit).is_ok_and(|limit| total_max <= limit));
    let limit_text = limit.map_or_else(
        || "the server's max_connections unknown".to_owned(),
        |limit| format!("{limit} connections available to non-superusers"),
    );
    let total = connected.len() + failed.len();
    let detail = if failed.is_empty() {
        format!(
            "{}/{total} pools connect ({}); their max sizes add up to {total_max} of {limit_text}",
            connected.len(),
            connected.join(", ")
        )
    } else {
        format!(
            "{}/{total} pools connect; failed: {}",
            connected.len(),
            failed.join("; ")
        )
    };
    let detail = if fits {
        detail
    } else {
        format!("{detail}: one origin instance alone can exhaust the server")
    };
    Check::new(PHASE, name, failed.is_empty() && fits, detail).with(json!({
        "connected": connected.len(),
        "failed": failed,
        "max_size_total": total_max,
        "server_connection_limit": limit,
    }))
}

/// Runs the phase.
pub async fn run(context: &Context<'_>) -> Vec<Check> {
    let client = match context.connect().await {
        Ok(client) => client,
        Err(error) => return vec![Check::new(PHASE, "database_reachable", false, error)],
    };
    let mut checks = vec![views(&client).await];
    let mut tables: Vec<&str> = AUTHORIZATION_INDEXES
        .iter()
        .map(|index| index.table)
        .collect();
    tables.extend(SUPPORTING_INDEXES.iter().map(|index| index.table));
    let found = indexes(&client, &tables).await;
    checks.push(index_check(
        "authorization_indexes_created",
        "composite authorization indexes",
        &AUTHORIZATION_INDEXES,
        &found,
    ));
    checks.push(index_check(
        "supporting_indexes_created",
        "owner and foreign-key indexes",
        &SUPPORTING_INDEXES,
        &found,
    ));
    checks.extend(configuration(&client).await);
    checks.extend(tables_and_functions(&client).await);
    checks.push(pieces(&client).await);
    checks.push(pools(context, &client).await);
    checks
}
