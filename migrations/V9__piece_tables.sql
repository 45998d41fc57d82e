-- V9: the decision pieces, kept in tables by the writers' own transactions.
--
-- WHY. A decision miss read its facts with V8's authz_question_pieces: eight index probes in
-- seven tables (the revision, the user and their memberships, the generation, its project, the
-- project's team links and their teams, the shares) and the JSON of both pieces built at every
-- read. Reads outnumber writes by orders of magnitude, so the pieces are now built when the
-- data changes, and a decision miss reads four rows by primary key: the revision, the user's
-- piece, the resource's piece and (for a generation in a project) the project's piece
-- (BENCHMARKS.md, "Origin over HTTP").
--
-- FRESHNESS. A piece row is written by triggers in the same transaction as the change it
-- reflects, after the statement that made it (AFTER ... FOR EACH STATEMENT, with transition
-- tables), and every writer of decision data holds the revision row lock until it commits
-- (V2): a reader that takes the revision and the pieces in one statement sees pieces exactly as
-- fresh as that revision. These tables are not materialized views: nothing refreshes them
-- later, nothing is stale in between.
--
-- SHAPES. The pieces of V5/V7 (authz_user_piece, authz_resource_piece), as json text, with one
-- difference: a generation's piece does not embed its project. The row keeps the project's id
-- in project_id and the reader joins the project's own piece, so a change to a project, its
-- team links or a linked team rewrites one project row, never the project's generations.
--
-- WHAT REBUILDS EVERYTHING. TRUNCATE of any decision table, and authz_bump_all() (which bulk
-- loads made with triggers disabled must call; `authz-origin seed` does). A writer that
-- disables triggers and does not call authz_bump_all() leaves the caches AND these tables
-- stale; `authz-origin validate` compares a sample of them with the source views.
--
-- The V5/V7 functions stay: they are the reference the tests compare these tables with, and
-- check_user_authorization_enterprise() (V3) still reads the base tables.

CREATE TABLE IF NOT EXISTS authz_user_pieces (
    user_id uuid PRIMARY KEY,
    piece   json NOT NULL
);

CREATE TABLE IF NOT EXISTS authz_resource_pieces (
    resource_type text NOT NULL CHECK (resource_type IN ('generation', 'project', 'team')),
    resource_id   uuid NOT NULL,
    -- A generation's project (its piece is the row ('project', project_id)); NULL otherwise.
    project_id    uuid NULL,
    piece         json NOT NULL,
    PRIMARY KEY (resource_type, resource_id)
);

-- What the tables must hold, computed from the base tables. Refreshes select from these views
-- with a key filter, which the planner pushes down to index scans of the base tables.
CREATE OR REPLACE VIEW authz_user_pieces_source AS
SELECT u.id AS user_id,
       json_build_object(
           'is_active', u.is_active,
           'memberships', coalesce((
               SELECT json_agg(json_build_object('team_id', m.team_id, 'role', m.role,
                                                 'is_active', m.is_active)
                               ORDER BY m.team_id)
                 FROM team_members m
                WHERE m.user_id = u.id), '[]'::json)) AS piece
  FROM users u;

CREATE OR REPLACE VIEW authz_resource_pieces_source AS
SELECT 'generation'::text AS resource_type,
       g.id AS resource_id,
       g.project_id,
       json_build_object(
           'type', 'generation',
           'owner_id', g.user_id,
           'status', g.status,
           'shares', coalesce((
               SELECT json_agg(json_build_object(
                          'user_id', s.shared_with_user_id,
                          'level', s.permission_level,
                          'expires_at', authz_rfc3339(s.expires_at),
                          'is_active', s.is_active)
                      ORDER BY s.shared_with_user_id, s.expires_at DESC NULLS FIRST)
                 FROM generation_shares s
                WHERE s.generation_id = g.id), '[]'::json)) AS piece
  FROM generations g
UNION ALL
SELECT 'project'::text,
       p.id,
       NULL::uuid,
       json_build_object(
           'type', 'project',
           'id', p.id,
           'owner_id', p.user_id,
           'visibility', p.visibility,
           'teams', coalesce((
               SELECT json_agg(json_build_object('team_id', pt.team_id,
                                                 'access_level', pt.access_level,
                                                 'team_is_active', t.is_active)
                               ORDER BY pt.team_id)
                 FROM project_teams pt
                 JOIN teams t ON t.id = pt.team_id
                WHERE pt.project_id = p.id), '[]'::json))
  FROM projects p
UNION ALL
SELECT 'team'::text,
       t.id,
       NULL::uuid,
       json_build_object('type', 'team', 'is_active', t.is_active)
  FROM teams t;

-- Rewrites the pieces of the given users (a deleted user's row goes).
CREATE OR REPLACE FUNCTION authz_refresh_user_pieces(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    DELETE FROM authz_user_pieces WHERE user_id = ANY (p_ids);
    INSERT INTO authz_user_pieces (user_id, piece)
    SELECT s.user_id, s.piece FROM authz_user_pieces_source s WHERE s.user_id = ANY (p_ids);
END;
$$;

-- Rewrites the pieces of the given resources of one type (a deleted resource's row goes).
CREATE OR REPLACE FUNCTION authz_refresh_resource_pieces(p_type text, p_ids uuid[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    DELETE FROM authz_resource_pieces WHERE resource_type = p_type AND resource_id = ANY (p_ids);
    -- One branch per type, each a plain key lookup (the view's UNION ALL, filtered by a
    -- parameter, would keep all three branches in a generic plan).
    IF p_type = 'generation' THEN
        INSERT INTO authz_resource_pieces
        SELECT * FROM authz_resource_pieces_source s
         WHERE s.resource_type = 'generation' AND s.resource_id = ANY (p_ids);
    ELSIF p_type = 'project' THEN
        INSERT INTO authz_resource_pieces
        SELECT * FROM authz_resource_pieces_source s
         WHERE s.resource_type = 'project' AND s.resource_id = ANY (p_ids);
    ELSIF p_type = 'team' THEN
        INSERT INTO authz_resource_pieces
        SELECT * FROM authz_resource_pieces_source s
         WHERE s.resource_type = 'team' AND s.resource_id = ANY (p_ids);
    ELSE
        RAISE EXCEPTION 'unknown resource type %', p_type USING ERRCODE = 'P0001';
    END IF;
END;
$$;

-- Rebuilds both tables from the base tables. TRUNCATE takes an exclusive lock until commit:
-- decisions that miss every cache wait for the rebuilding transaction (and time out into 503,
-- never into a grant).
CREATE OR REPLACE FUNCTION authz_rebuild_pieces() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    TRUNCATE authz_user_pieces, authz_resource_pieces;
    INSERT INTO authz_user_pieces (user_id, piece)
    SELECT user_id, piece FROM authz_user_pieces_source;
    INSERT INTO authz_resource_pieces SELECT * FROM authz_resource_pieces_source;
END;
$$;

-- AFTER INSERT / UPDATE / DELETE ... FOR EACH STATEMENT, with transition tables.
-- TG_ARGV[0]: the piece kind the table feeds ('user', 'generation', 'project', 'team');
-- TG_ARGV[1]: the column naming that piece's key. Old and new keys are both refreshed (an
-- UPDATE may move a row from one key to another). A team also feeds the pieces of the projects
-- it is linked to (team_is_active).
CREATE OR REPLACE FUNCTION authz_maintain_pieces() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_kind   text := TG_ARGV[0];
    v_column text := TG_ARGV[1];
    v_source text;
    v_ids    uuid[];
BEGIN
    v_source := CASE TG_OP
        WHEN 'INSERT' THEN format('SELECT %I FROM new_rows', v_column)
        WHEN 'DELETE' THEN format('SELECT %I FROM old_rows', v_column)
        ELSE format('SELECT %I FROM old_rows UNION SELECT %I FROM new_rows', v_column, v_column)
    END;
    EXECUTE format('SELECT array_agg(DISTINCT x) FROM (%s) AS s(x) WHERE x IS NOT NULL',
                   v_source)
      INTO v_ids;
    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_kind = 'user' THEN
        PERFORM authz_refresh_user_pieces(v_ids);
    ELSE
        PERFORM authz_refresh_resource_pieces(v_kind, v_ids);
        IF v_kind = 'team' THEN
            PERFORM authz_refresh_resource_pieces('project', ARRAY(
                SELECT DISTINCT pt.project_id FROM project_teams pt
                 WHERE pt.team_id = ANY (v_ids)));
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

-- AFTER TRUNCATE ... FOR EACH STATEMENT.
CREATE OR REPLACE FUNCTION authz_rebuild_pieces_on_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_rebuild_pieces();
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    v_spec record;
BEGIN
    FOR v_spec IN
        SELECT * FROM (VALUES
            ('users',             'user',       'id'),
            ('team_members',      'user',       'user_id'),
            ('teams',             'team',       'id'),
            ('projects',          'project',    'id'),
            ('project_teams',     'project',    'project_id'),
            ('generations',       'generation', 'id'),
            ('generation_shares', 'generation', 'generation_id')
        ) AS t(table_name, kind, key_column)
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_pieces_insert AFTER INSERT ON %I '
            'REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_maintain_pieces(%L, %L)',
            v_spec.table_name, v_spec.kind, v_spec.key_column);
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_pieces_update AFTER UPDATE ON %I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_maintain_pieces(%L, %L)',
            v_spec.table_name, v_spec.kind, v_spec.key_column);
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_pieces_delete AFTER DELETE ON %I '
            'REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_maintain_pieces(%L, %L)',
            v_spec.table_name, v_spec.kind, v_spec.key_column);
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_pieces_truncate AFTER TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_rebuild_pieces_on_truncate()',
            v_spec.table_name);
    END LOOP;
END;
$$;

-- After a bulk load with triggers disabled, the pieces are rebuilt with the revision bump that
-- announces the load (same transaction, so readers see both or neither).
CREATE OR REPLACE FUNCTION authz_bump_all() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_revision bigint;
BEGIN
    UPDATE authz_revision SET value = nextval('authz_revision_seq') WHERE id = 1
    RETURNING value INTO v_revision;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'authz_revision has no row: the revision cannot advance'
            USING ERRCODE = 'P0001';
    END IF;
    PERFORM authz_rebuild_pieces();
    PERFORM authz_send_change_notice(NULL, true);
    RETURN v_revision;
END;
$$;

-- The pieces of the data already there.
SELECT authz_rebuild_pieces();

-- Pin the search_path of the new SECURITY DEFINER functions (as V2 does), pg_temp last.
DO $$
DECLARE
    v_function text;
BEGIN
    FOREACH v_function IN ARRAY ARRAY[
        'authz_refresh_user_pieces(uuid[])',
        'authz_refresh_resource_pieces(text, uuid[])',
        'authz_rebuild_pieces()',
        'authz_maintain_pieces()',
        'authz_rebuild_pieces_on_truncate()',
        'authz_bump_all()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       v_function, current_schema());
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION authz_rebuild_pieces() FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_refresh_user_pieces(uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_refresh_resource_pieces(text, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_bump_all() FROM PUBLIC;

ANALYZE authz_user_pieces, authz_resource_pieces;
