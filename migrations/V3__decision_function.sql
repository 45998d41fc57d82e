-- V3: DOMAIN.md's rules in SQL.
--
-- Three layers, so that the SQL path and the Rust core provably read the same facts:
--   authz_decision_facts(user, type, id)  -> jsonb    every raw fact one decision needs, read
--                                                     in one snapshot together with the
--                                                     revision (what the Rust origin calls)
--   authz_evaluate(user, type, op, facts, now)        the rules, a pure function of the facts
--   check_user_authorization_enterprise(...)          validation + facts + evaluate
-- The jsonb shape is the serde form of authz_core::facts::Facts (documented in
-- migrations/README.md); extra keys ("id", a team's "owner_id") are ignored by serde.
--
-- Snapshot: these functions are STABLE, and a STABLE function runs every query it makes
-- against the snapshot of the statement that called it, so the revision and the facts always
-- come from one snapshot even though they are read by several queries.
--
-- No schema is named: objects resolve through the caller's search_path.

-- ---------------------------------------------------------------------------------------------
-- Vocabulary helpers (DOMAIN.md, "Rules"). Small SQL functions, inlined by the planner.
-- ---------------------------------------------------------------------------------------------

-- Roles, weakest to strongest: viewer 1 < editor 2 < admin 3 < owner 4. NULL for anything else.
CREATE OR REPLACE FUNCTION authz_role_rank(p_role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_role WHEN 'viewer' THEN 1 WHEN 'editor' THEN 2
                       WHEN 'admin'  THEN 3 WHEN 'owner'  THEN 4 END
$$;

CREATE OR REPLACE FUNCTION authz_role_of_rank(p_rank integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_rank WHEN 1 THEN 'viewer' WHEN 2 THEN 'editor'
                       WHEN 3 THEN 'admin'  WHEN 4 THEN 'owner' END
$$;

-- The role table: viewer reads; editor also downloads and writes; admin also deletes and
-- shares; owner also administers.
CREATE OR REPLACE FUNCTION authz_role_allows(p_role text, p_operation text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(CASE p_role
        WHEN 'viewer' THEN p_operation = 'read'
        WHEN 'editor' THEN p_operation IN ('read', 'download', 'write')
        WHEN 'admin'  THEN p_operation IN ('read', 'download', 'write', 'delete', 'share')
        WHEN 'owner'  THEN p_operation IN ('read', 'download', 'write', 'delete', 'share', 'admin')
    END, false)
$$;

-- A team link's level caps the member's role: read -> viewer, write -> editor, admin -> admin.
CREATE OR REPLACE FUNCTION authz_level_cap_rank(p_access_level text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_access_level WHEN 'read' THEN 1 WHEN 'write' THEN 2 WHEN 'admin' THEN 3 END
$$;

-- What a share level allows: read -> read; download -> read, download; edit -> read,
-- download, write. Its role: editor for edit, else viewer.
CREATE OR REPLACE FUNCTION authz_share_allows(p_level text, p_operation text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(CASE p_level
        WHEN 'read'     THEN p_operation = 'read'
        WHEN 'download' THEN p_operation IN ('read', 'download')
        WHEN 'edit'     THEN p_operation IN ('read', 'download', 'write')
    END, false)
$$;

CREATE OR REPLACE FUNCTION authz_share_role(p_level text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_level WHEN 'edit' THEN 'editor'
                        WHEN 'read' THEN 'viewer' WHEN 'download' THEN 'viewer' END
$$;

-- A timestamptz as the RFC 3339 text the Rust core parses: UTC, 'Z', exactly 6 fraction
-- digits (timestamptz's own precision, so nothing is rounded). Instants the core cannot
-- represent are mapped to what they mean: +infinity and anything from year 10000 on never
-- expire (NULL), -infinity and anything before year 1 is long expired (0001-01-01).
CREATE OR REPLACE FUNCTION authz_rfc3339(p_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_at IS NULL THEN NULL
        WHEN p_at >= '10000-01-01 00:00:00+00'::timestamptz THEN NULL
        WHEN p_at < '0001-01-01 00:00:00+00'::timestamptz THEN '0001-01-01T00:00:00.000000Z'
        ELSE to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    END
$$;

-- Rejects what DOMAIN.md calls a 400: never a deny, never a grant. SQLSTATE 22023
-- (invalid_parameter_value); the message names the field and what was expected.
CREATE OR REPLACE FUNCTION authz_validate_question(p_resource_type text, p_operation text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_resource_type IS NULL OR p_resource_type NOT IN ('generation', 'project', 'team') THEN
        RAISE EXCEPTION 'invalid resource_type %: expected one of generation, project, team',
            coalesce(quote_literal(p_resource_type), 'null')
            USING ERRCODE = '22023', HINT = 'field: resource_type';
    END IF;
    IF p_operation IS NOT NULL
       AND p_operation NOT IN ('read', 'download', 'write', 'delete', 'share', 'admin') THEN
        RAISE EXCEPTION 'invalid operation %: expected one of read, download, write, delete, share, admin',
            quote_literal(p_operation)
            USING ERRCODE = '22023', HINT = 'field: operation';
    END IF;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- Facts.
-- ---------------------------------------------------------------------------------------------

-- A project with every team linked to it and the principal's membership in each (NULL when
-- the principal has no row in that team, or is anonymous). NULL when the project is missing.
CREATE OR REPLACE FUNCTION authz_project_facts(p_project_id uuid, p_user_id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT jsonb_build_object(
            'id', p.id,
            'owner_id', p.user_id,
            'visibility', p.visibility,
            'teams', coalesce((
                SELECT jsonb_agg(jsonb_build_object(
                           'team_id', pt.team_id,
                           'access_level', pt.access_level,
                           'team_is_active', t.is_active,
                           'membership', CASE WHEN m.user_id IS NULL THEN NULL
                                              ELSE jsonb_build_object('role', m.role,
                                                                      'is_active', m.is_active)
                                         END)
                       ORDER BY pt.team_id)
                  FROM project_teams pt
                  JOIN teams t ON t.id = pt.team_id
                  LEFT JOIN team_members m ON m.user_id = p_user_id AND m.team_id = pt.team_id
                 WHERE pt.project_id = p.id), '[]'::jsonb))
          FROM projects p
         WHERE p.id = p_project_id);
END;
$$;

-- Every raw fact one decision needs, and the revision, from one snapshot. See README.md for
-- the exact shape. p_user_id NULL means anonymous (then "user" is null and memberships and
-- shares are empty). Raises 22023 for an unknown resource type.
CREATE OR REPLACE FUNCTION authz_decision_facts(p_user_id uuid, p_resource_type text,
                                                p_resource_id uuid)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_revision bigint;
    v_user     jsonb;
    v_resource jsonb;
    v_gen      record;
BEGIN
    PERFORM authz_validate_question(p_resource_type, NULL);

    SELECT r.value INTO v_revision FROM authz_revision r WHERE r.id = 1;

    IF p_user_id IS NOT NULL THEN
        SELECT jsonb_build_object('is_active', u.is_active) INTO v_user
          FROM users u WHERE u.id = p_user_id;
    END IF;

    IF p_resource_type = 'generation' THEN
        SELECT g.id, g.user_id, g.status, g.project_id INTO v_gen
          FROM generations g WHERE g.id = p_resource_id;
        IF FOUND THEN
            v_resource := jsonb_build_object(
                'type', 'generation',
                'id', v_gen.id,
                'owner_id', v_gen.user_id,
                'status', v_gen.status,
                'project', CASE WHEN v_gen.project_id IS NULL THEN NULL
                                ELSE authz_project_facts(v_gen.project_id, p_user_id) END,
                'shares', coalesce((
                    SELECT jsonb_agg(jsonb_build_object(
                               'level', s.permission_level,
                               'expires_at', authz_rfc3339(s.expires_at),
                               'is_active', s.is_active)
                           ORDER BY s.expires_at DESC NULLS FIRST, s.permission_level)
                      FROM generation_shares s
                     WHERE s.generation_id = v_gen.id
                       AND s.shared_with_user_id = p_user_id), '[]'::jsonb));
        END IF;
    ELSIF p_resource_type = 'project' THEN
        v_resource := jsonb_build_object('type', 'project')
                      || authz_project_facts(p_resource_id, p_user_id);
    ELSE
        SELECT jsonb_build_object(
                   'type', 'team',
                   'id', t.id,
                   'owner_id', t.owner_id,
                   'is_active', t.is_active,
                   'membership', (
                       SELECT jsonb_build_object('role', m.role, 'is_active', m.is_active)
                         FROM team_members m
                        WHERE m.user_id = p_user_id AND m.team_id = t.id))
          INTO v_resource
          FROM teams t WHERE t.id = p_resource_id;
    END IF;

    RETURN jsonb_build_object('revision', v_revision, 'user', v_user, 'resource', v_resource);
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- The rules (DOMAIN.md "Rules", plus the project decisions recorded in README.md), as a pure
-- function of the facts. Same answers as authz_core::decide for the same facts and now.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION authz_evaluate(p_user_id uuid, p_resource_type text,
                                          p_operation text, p_facts jsonb, p_now timestamptz)
RETURNS TABLE (granted boolean, access_method text, effective_role text, reason text,
               valid_until timestamptz, revision bigint)
LANGUAGE plpgsql IMMUTABLE ROWS 1 AS $$
DECLARE
    v_resource     jsonb := p_facts -> 'resource';
    v_project      jsonb;
    v_holds_role   boolean := false;  -- some role through ownership, a team or a valid share
    v_has_expired  boolean := false;  -- an active share that has expired
    v_has_valid    boolean := false;  -- an active, unexpired share
    v_team_rank    integer;
    v_member       jsonb;
    v_share        record;
BEGIN
    PERFORM authz_validate_question(p_resource_type, p_operation);
    IF p_operation IS NULL THEN
        RAISE EXCEPTION 'invalid operation null: expected one of read, download, write, delete, share, admin'
            USING ERRCODE = '22023', HINT = 'field: operation';
    END IF;
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'invalid now: a timestamp is required' USING ERRCODE = '22023';
    END IF;

    -- Every row starts as a deny; a grant overwrites the first three columns.
    granted := false;
    access_method := NULL;
    effective_role := NULL;
    valid_until := NULL;
    revision := (p_facts ->> 'revision')::bigint;

    -- 1. The principal.
    IF p_user_id IS NOT NULL THEN
        IF jsonb_typeof(p_facts -> 'user') IS DISTINCT FROM 'object' THEN
            reason := 'user_not_found'; RETURN NEXT; RETURN;
        END IF;
        IF NOT coalesce((p_facts -> 'user' ->> 'is_active')::boolean, false) THEN
            reason := 'user_inactive'; RETURN NEXT; RETURN;
        END IF;
    END IF;

    -- 2. The resource (facts about another type than asked are a caller's bug: fail closed).
    IF jsonb_typeof(v_resource) IS DISTINCT FROM 'object'
       OR v_resource ->> 'type' IS DISTINCT FROM p_resource_type THEN
        reason := 'resource_not_found'; RETURN NEXT; RETURN;
    END IF;

    v_project := CASE p_resource_type
        WHEN 'generation' THEN nullif(v_resource -> 'project', 'null'::jsonb)
        WHEN 'project' THEN v_resource
    END;

    -- 3. The rules, strongest method first; the first that grants the operation is reported.
    IF p_user_id IS NOT NULL THEN
        -- direct_owner: the generation's or the project's owner.
        IF p_resource_type IN ('generation', 'project')
           AND (v_resource ->> 'owner_id')::uuid = p_user_id THEN
            granted := true; access_method := 'direct_owner'; effective_role := 'owner';
            RETURN NEXT; RETURN;
        END IF;

        -- project_owner: the owner of a generation's project, whatever its visibility.
        IF p_resource_type = 'generation' AND v_project IS NOT NULL
           AND (v_project ->> 'owner_id')::uuid = p_user_id THEN
            granted := true; access_method := 'project_owner'; effective_role := 'owner';
            RETURN NEXT; RETURN;
        END IF;

        -- team_owner / team_member on a team: an active membership of an active team.
        IF p_resource_type = 'team' THEN
            v_member := nullif(v_resource -> 'membership', 'null'::jsonb);
            IF coalesce((v_resource ->> 'is_active')::boolean, false)
               AND v_member IS NOT NULL
               AND coalesce((v_member ->> 'is_active')::boolean, false)
               AND authz_role_rank(v_member ->> 'role') IS NOT NULL THEN
                v_holds_role := true;
                IF authz_role_allows(v_member ->> 'role', p_operation) THEN
                    granted := true;
                    access_method := CASE WHEN v_member ->> 'role' = 'owner'
                                          THEN 'team_owner' ELSE 'team_member' END;
                    effective_role := v_member ->> 'role';
                    RETURN NEXT; RETURN;
                END IF;
            END IF;
        END IF;

        -- team_member through the project: only on team-only and public projects; active
        -- teams, active memberships; the member's role capped by the link's level; the best
        -- over all linked teams.
        IF v_project IS NOT NULL
           AND v_project ->> 'visibility' IN ('team-only', 'public') THEN
            SELECT max(least(authz_role_rank(lt.membership ->> 'role'),
                             authz_level_cap_rank(lt.access_level)))
              INTO v_team_rank
              FROM jsonb_to_recordset(coalesce(v_project -> 'teams', '[]'::jsonb))
                   AS lt(access_level text, team_is_active boolean, membership jsonb)
             WHERE lt.team_is_active
               AND jsonb_typeof(lt.membership) = 'object'
               AND (lt.membership ->> 'is_active')::boolean;
            IF v_team_rank IS NOT NULL THEN
                v_holds_role := true;
                IF authz_role_allows(authz_role_of_rank(v_team_rank), p_operation) THEN
                    granted := true; access_method := 'team_member';
                    effective_role := authz_role_of_rank(v_team_rank);
                    RETURN NEXT; RETURN;
                END IF;
            END IF;
        END IF;

        -- explicit_share: each active share with now < expires_at (or no expiry) is a
        -- candidate; among those granting the operation, the strongest role, then the latest
        -- expiry (NULL = never = latest). An active share at or past expires_at only counts
        -- for the share_expired reason.
        IF p_resource_type = 'generation' THEN
            SELECT coalesce(bool_or(NOT x.valid), false), coalesce(bool_or(x.valid), false)
              INTO v_has_expired, v_has_valid
              FROM (SELECT s.expires_at IS NULL OR p_now < s.expires_at::timestamptz AS valid
                      FROM jsonb_to_recordset(coalesce(v_resource -> 'shares', '[]'::jsonb))
                           AS s(level text, expires_at text, is_active boolean)
                     WHERE s.is_active AND authz_share_role(s.level) IS NOT NULL) AS x;
            v_holds_role := v_holds_role OR v_has_valid;
            SELECT authz_share_role(s.level) AS role, s.expires_at::timestamptz AS expires_at
              INTO v_share
              FROM jsonb_to_recordset(coalesce(v_resource -> 'shares', '[]'::jsonb))
                   AS s(level text, expires_at text, is_active boolean)
             WHERE s.is_active
               AND (s.expires_at IS NULL OR p_now < s.expires_at::timestamptz)
               AND authz_share_allows(s.level, p_operation)
             ORDER BY authz_role_rank(authz_share_role(s.level)) DESC,
                      s.expires_at::timestamptz DESC NULLS FIRST
             LIMIT 1;
            IF FOUND THEN
                granted := true; access_method := 'explicit_share';
                effective_role := v_share.role; valid_until := v_share.expires_at;
                RETURN NEXT; RETURN;
            END IF;
        END IF;
    END IF;

    -- public_access: anyone, anonymous included, may read a public project, and a completed
    -- generation of a public project. It is not a relationship (it never makes
    -- insufficient_role).
    IF p_operation = 'read' AND v_project IS NOT NULL
       AND v_project ->> 'visibility' = 'public'
       AND (p_resource_type = 'project' OR v_resource ->> 'status' = 'completed') THEN
        granted := true; access_method := 'public_access'; effective_role := 'viewer';
        RETURN NEXT; RETURN;
    END IF;

    -- Nothing grants.
    reason := CASE
        WHEN p_user_id IS NULL THEN 'anonymous_not_allowed'
        WHEN v_holds_role THEN 'insufficient_role'
        WHEN v_has_expired THEN 'share_expired'
        ELSE 'no_relationship'
    END;
    RETURN NEXT;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- The decision function of the deployment guide: may p_user_id (NULL = anonymous) perform
-- p_operation on the p_resource_type p_resource_id, at p_now? One row; see README.md.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION check_user_authorization_enterprise(
    p_user_id       uuid,
    p_resource_type text,
    p_resource_id   uuid,
    p_operation     text,
    p_now           timestamptz DEFAULT now())
RETURNS TABLE (granted boolean, access_method text, effective_role text, reason text,
               valid_until timestamptz, revision bigint)
LANGUAGE plpgsql STABLE ROWS 1 AS $$
BEGIN
    PERFORM authz_validate_question(p_resource_type, p_operation);
    IF p_operation IS NULL THEN
        RAISE EXCEPTION 'invalid operation null: expected one of read, download, write, delete, share, admin'
            USING ERRCODE = '22023', HINT = 'field: operation';
    END IF;
    IF p_resource_id IS NULL THEN
        RAISE EXCEPTION 'invalid resource_id null: expected a uuid'
            USING ERRCODE = '22023', HINT = 'field: resource_id';
    END IF;
    RETURN QUERY
        SELECT e.granted, e.access_method, e.effective_role, e.reason, e.valid_until, e.revision
          FROM authz_evaluate(p_user_id, p_resource_type, p_operation,
                              authz_decision_facts(p_user_id, p_resource_type, p_resource_id),
                              p_now) AS e;
END;
$$;
