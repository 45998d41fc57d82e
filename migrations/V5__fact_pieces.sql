-- Facts in two cacheable pieces (authz_core::pieces): what a user is, and what a resource is,
-- independent of each other. The origin reads both for a batch of questions in ONE statement
-- (so they share one snapshot with the revision), caches them in its Redis `user` and
-- `generation` tiers, and composes a question's facts from them; composing gives exactly what
-- authz_decision_facts gives (the origin's corpus and differential tests check it).
-- Shapes (serde form of authz_core::pieces):
--   user piece:     {"is_active": bool, "memberships": [{"team_id","role","is_active"}...]} | null
--   resource piece: {"type":"generation","owner_id","status","project": PROJECT|null,
--                    "shares":[{"user_id","level","expires_at","is_active"}...]}
--                 | {"type":"project", ...PROJECT} | {"type":"team","is_active"} | null
--   PROJECT:        {"id","owner_id","visibility","teams":[{"team_id","access_level","team_is_active"}...]}

CREATE OR REPLACE FUNCTION authz_user_piece(p_user_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
               'is_active', u.is_active,
               'memberships', coalesce((
                   SELECT jsonb_agg(jsonb_build_object('team_id', m.team_id, 'role', m.role,
                                                       'is_active', m.is_active)
                                    ORDER BY m.team_id)
                     FROM team_members m
                    WHERE m.user_id = u.id), '[]'::jsonb))
      FROM users u
     WHERE u.id = p_user_id
$$;

CREATE OR REPLACE FUNCTION authz_project_piece(p_project_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
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
     WHERE p.id = p_project_id
$$;

CREATE OR REPLACE FUNCTION authz_resource_piece(p_resource_type text, p_resource_id uuid)
RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT CASE p_resource_type
        WHEN 'generation' THEN (
            SELECT jsonb_build_object(
                       'type', 'generation',
                       'owner_id', g.user_id,
                       'status', g.status,
                       'project', CASE WHEN g.project_id IS NULL THEN NULL
                                       ELSE authz_project_piece(g.project_id) END,
                       'shares', coalesce((
                           SELECT jsonb_agg(jsonb_build_object(
                                      'user_id', s.shared_with_user_id,
                                      'level', s.permission_level,
                                      'expires_at', authz_rfc3339(s.expires_at),
                                      'is_active', s.is_active)
                                  ORDER BY s.shared_with_user_id, s.expires_at DESC NULLS FIRST)
                             FROM generation_shares s
                            WHERE s.generation_id = g.id), '[]'::jsonb))
              FROM generations g
             WHERE g.id = p_resource_id)
        WHEN 'project' THEN jsonb_build_object('type', 'project') || authz_project_piece(p_resource_id)
        WHEN 'team' THEN (
            SELECT jsonb_build_object('type', 'team', 'is_active', t.is_active)
              FROM teams t
             WHERE t.id = p_resource_id)
    END
$$;
