-- One question's pieces in one inlinable statement. The origin's batch statement (V5/V7:
-- `authz_current_revision()` plus `jsonb_agg(authz_user_piece(..))` and
-- `jsonb_agg(authz_resource_piece(..))` over `unnest(..) WITH ORDINALITY`) runs a SQL-language
-- function (re-planned at every call) and nested PL/pgSQL functions (one executor start per
-- inner query). For a single check the origin now runs
--     SELECT revision, user_piece, resource_piece FROM authz_question_pieces($1, $2, $3)
-- instead: a LANGUAGE sql, STABLE, non-strict set-returning function whose body is one SELECT,
-- which the planner inlines into the caller's statement, so a prepared statement keeps one
-- plan of InitPlans and index scans (the origin asks for the generic plan on its
-- authorization pools: the CASE on the resource type makes the custom plan look cheaper, and
-- custom planning costs milliseconds). Measured with pgbench, one check on the medium seed:
-- about 40 % less than the batch form (BENCHMARKS.md, "Origin over HTTP").
--
-- Same snapshot rule as the batch form: the revision and both pieces come from one statement.
-- Same shapes as authz_user_piece / authz_resource_piece (V5, V7), as json rather than jsonb
-- (cheaper to build; keys in the order written; the origin reads both): NULL for a missing row,
-- a NULL user id (anonymous) or an unknown resource type.

CREATE OR REPLACE FUNCTION authz_question_pieces(p_user_id uuid, p_resource_type text,
                                                 p_resource_id uuid)
RETURNS TABLE (revision bigint, user_piece json, resource_piece json)
LANGUAGE sql STABLE AS $$
    SELECT
        (SELECT r.value FROM authz_revision r WHERE r.id = 1),
        (SELECT json_build_object(
                    'is_active', u.is_active,
                    'memberships', coalesce((
                        SELECT json_agg(json_build_object('team_id', m.team_id, 'role', m.role,
                                                           'is_active', m.is_active)
                                         ORDER BY m.team_id)
                          FROM team_members m
                         WHERE m.user_id = u.id), '[]'::json))
           FROM users u
          WHERE u.id = p_user_id),
        CASE p_resource_type
            WHEN 'generation' THEN (
                SELECT json_build_object(
                           'type', 'generation',
                           'owner_id', g.user_id,
                           'status', g.status,
                           'project', (
                               SELECT json_build_object(
                                          'id', p.id,
                                          'owner_id', p.user_id,
                                          'visibility', p.visibility,
                                          'teams', coalesce((
                                              SELECT json_agg(json_build_object(
                                                         'team_id', pt.team_id,
                                                         'access_level', pt.access_level,
                                                         'team_is_active', t.is_active)
                                                     ORDER BY pt.team_id)
                                                FROM project_teams pt
                                                JOIN teams t ON t.id = pt.team_id
                                               WHERE pt.project_id = p.id), '[]'::json))
                                 FROM projects p
                                WHERE p.id = g.project_id),
                           'shares', coalesce((
                               SELECT json_agg(json_build_object(
                                          'user_id', s.shared_with_user_id,
                                          'level', s.permission_level,
                                          'expires_at', authz_rfc3339(s.expires_at),
                                          'is_active', s.is_active)
                                      ORDER BY s.shared_with_user_id, s.expires_at DESC NULLS FIRST)
                                 FROM generation_shares s
                                WHERE s.generation_id = g.id), '[]'::json))
                  FROM generations g
                 WHERE g.id = p_resource_id)
            WHEN 'project' THEN (
                SELECT json_build_object(
                           'type', 'project',
                           'id', p.id,
                           'owner_id', p.user_id,
                           'visibility', p.visibility,
                           'teams', coalesce((
                               SELECT json_agg(json_build_object(
                                          'team_id', pt.team_id,
                                          'access_level', pt.access_level,
                                          'team_is_active', t.is_active)
                                      ORDER BY pt.team_id)
                                 FROM project_teams pt
                                 JOIN teams t ON t.id = pt.team_id
                                WHERE pt.project_id = p.id), '[]'::json))
                  FROM projects p
                 WHERE p.id = p_resource_id)
            WHEN 'team' THEN (
                SELECT json_build_object('type', 'team', 'is_active', t.is_active)
                  FROM teams t
                 WHERE t.id = p_resource_id)
        END
$$;
