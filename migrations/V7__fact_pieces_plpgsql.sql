-- The fact-piece functions of V5, as PL/pgSQL: a non-inlinable SQL-language function is planned
-- again at every execution of the calling statement, which cost ~0.3 ms per decision miss;
-- PL/pgSQL caches each query's plan for the session (measured with pgbench on the medium seed:
-- see BENCHMARKS.md). Same shapes and semantics as V5.

CREATE OR REPLACE FUNCTION authz_user_piece(p_user_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
                   'is_active', u.is_active,
                   'memberships', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('team_id', m.team_id, 'role', m.role,
                                                           'is_active', m.is_active)
                                        ORDER BY m.team_id)
                         FROM team_members m
                        WHERE m.user_id = u.id), '[]'::jsonb))
          FROM users u
         WHERE u.id = p_user_id);
END;
$$;

CREATE OR REPLACE FUNCTION authz_project_piece(p_project_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
                   'id', p.id,
                   'owner_id', p.user_id,
                   'visibility', p.visibility,
                   'teams', coalesce((
                       SELECT jsonb_agg(jsonb_build_object('team_id', pt.team_id,
                                                           'access_level', pt.access_level,
                                                           'team_is_active', t.is_active)
                                        ORDER BY pt.team_id)
                         FROM project_teams pt
                         JOIN teams t ON t.id = pt.team_id
                        WHERE pt.project_id = p.id), '[]'::jsonb))
          FROM projects p
         WHERE p.id = p_project_id);
END;
$$;

CREATE OR REPLACE FUNCTION authz_resource_piece(p_resource_type text, p_resource_id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_generation record;
BEGIN
    IF p_resource_type = 'generation' THEN
        SELECT g.id, g.user_id, g.status, g.project_id INTO v_generation
          FROM generations g
         WHERE g.id = p_resource_id;
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
        RETURN jsonb_build_object(
                   'type', 'generation',
                   'owner_id', v_generation.user_id,
                   'status', v_generation.status,
                   'project', CASE WHEN v_generation.project_id IS NULL THEN NULL
                                   ELSE authz_project_piece(v_generation.project_id) END,
                   'shares', coalesce((
                       SELECT jsonb_agg(jsonb_build_object(
                                  'user_id', s.shared_with_user_id,
                                  'level', s.permission_level,
                                  'expires_at', authz_rfc3339(s.expires_at),
                                  'is_active', s.is_active)
                              ORDER BY s.shared_with_user_id, s.expires_at DESC NULLS FIRST)
                         FROM generation_shares s
                        WHERE s.generation_id = p_resource_id), '[]'::jsonb));
    ELSIF p_resource_type = 'project' THEN
        RETURN jsonb_build_object('type', 'project') || authz_project_piece(p_resource_id);
    ELSIF p_resource_type = 'team' THEN
        RETURN (SELECT jsonb_build_object('type', 'team', 'is_active', t.is_active)
                  FROM teams t
                 WHERE t.id = p_resource_id);
    END IF;
    RETURN NULL;
END;
$$;
