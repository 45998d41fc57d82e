-- V11: commit-ordered revisions without one global write lock.
--
-- BEFORE. Every statement on a decision table first updated the one row of authz_revision
-- (V2) and kept its lock until commit; every statement sent a NOTIFY, whose commit takes a
-- database-wide lock until the commit is flushed; and every statement rewrote its piece rows
-- (V9) in the writer's transaction. Writers serialized for the length of their transactions:
-- 255 inserts/s at 32 writers where the same insert without the triggers made 6,064.
--
-- NOW. A writer's triggers only record what it changed: one row in authz_change_log per
-- statement, with the keys of the pieces (V9) it changed, which are also the ids its notice
-- names, and no revision. Nothing a writer does waits for another writer. Revisions are given
-- after commit by a SEQUENCER, authz_sequence_changes(), called by every origin every
-- AUTHZ_SEQUENCER_INTERVAL_MS and by authz_current_revision():
--       1. it takes the sequencer lock (a transaction-level advisory lock), so sequencers run
--          one after the other and commit in revision order;
--       2. with a new snapshot, it takes the log rows that have no revision: exactly the
--          changes that committed before this snapshot;
--       3. it gives all of them one new revision (nextval) and stores it in authz_revision;
--       4. it rewrites the pieces of the keys they name, from the base tables as they are now;
--       5. it sends one notice naming their ids, and commits.
--
-- WHY IT IS SAFE (DOMAIN.md, Consistency). A reader takes authz_revision.value in the same
-- statement as its facts (the pieces). If it reads value R, the sequencer that wrote R had
-- committed before the reader's snapshot, and every change numbered <= R had committed before
-- that sequencer's snapshot: the reader sees all of them, in the base tables and in the pieces
-- (rewritten by the same sequencer transactions). The pieces may also hold changes committed
-- after that snapshot (step 4 reads the tables as they are): those are numbered above R later,
-- and their notices invalidate what was cached at R. The trap (values handed out before commit,
-- commits in the other order) cannot happen: a revision goes only to committed changes, and
-- sequencers commit one at a time, in revision order. Only sequencers write the piece tables,
-- one at a time, so two writers can never lose each other's change to a piece.
--
-- WHAT A WRITER SEES. authz_current_revision(), called after commit, numbers whatever committed
-- and is not numbered yet (its own change included) and returns the revision: the token its
-- clients pass as min_revision. Inside a transaction that has changed decision data it fails
-- (SQLSTATE 55000): no revision covers a change that has not committed, and a too-low token
-- would let caches answer without it. Revisions stay bigints; the values issued before this
-- migration stay valid (the same sequence continues).
--
-- BULK STATEMENTS. A statement's row holds every id it touched (up to 50,000; more, or TRUNCATE,
-- is "everything", which rebuilds the pieces). A round of more than 100 ids is announced as
-- {"r": R, "log": N}: listeners read the N ids of revision R from the log, so a 1,000-share
-- insert invalidates 1,000 ids instead of every cache. Numbered rows are kept 15 minutes.

CREATE TABLE IF NOT EXISTS authz_change_log (
    -- The writing transaction (for diagnosis, and a caller's "have I pending changes?").
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    -- The keys of the pieces (V9) the change feeds, announced to listeners.
    ids          uuid[]      NOT NULL DEFAULT '{}',
    -- Their kind: 'user', 'generation', 'project' or 'team'.
    piece_kind   text        NULL,
    -- Everything may have changed (TRUNCATE, authz_bump_all(), a statement over 50,000 ids).
    all_ids      boolean     NOT NULL DEFAULT false,
    -- NULL until a sequencer numbers the row (after its writer committed).
    revision     bigint      NULL,
    sequenced_at timestamptz NULL
);
-- The sequencer's horizon: every transaction older than it had ended before the last round
-- that numbered something took its snapshot (see authz_sequence_changes()).
ALTER TABLE authz_revision ADD COLUMN IF NOT EXISTS horizon xid8 NULL;
-- Rows are inserted, numbered once and deleted after 15 minutes: vacuum often, so the indexes
-- stay small.
ALTER TABLE authz_change_log SET (autovacuum_vacuum_scale_factor = 0,
                                  autovacuum_vacuum_threshold = 10000,
                                  autovacuum_vacuum_insert_scale_factor = 0,
                                  autovacuum_vacuum_insert_threshold = 10000);
-- The sequencer's "anything pending?" and the caller's "have I pending changes?".
CREATE INDEX IF NOT EXISTS authz_change_log_pending ON authz_change_log (xid)
    WHERE revision IS NULL;
-- A listener reading a revision's ids.
CREATE INDEX IF NOT EXISTS authz_change_log_revision ON authz_change_log (revision)
    WHERE revision IS NOT NULL;
-- Pruning by age.
CREATE INDEX IF NOT EXISTS authz_change_log_sequenced ON authz_change_log (sequenced_at)
    WHERE revision IS NOT NULL;

-- Records "everything may have changed" (V2's notice function, same signature: the TRUNCATE
-- triggers and authz_bump_all() call it; ids are recorded by the log triggers below).
CREATE OR REPLACE FUNCTION authz_send_change_notice(p_ids uuid[], p_all boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF p_all OR cardinality(p_ids) > 50000 THEN
        INSERT INTO authz_change_log (all_ids) VALUES (true);
    ELSIF coalesce(cardinality(p_ids), 0) > 0 THEN
        INSERT INTO authz_change_log (ids) VALUES (p_ids);
    END IF;
END;
$$;

-- The writers' triggers: per table and event, a function with its query written out (static
-- SQL, planned once per session, where V2's generic function built and planned its query at
-- every statement), recording the keys of the pieces the statement changed (V9's key column,
-- old and new rows). They are what a cached decision depends on (its principal, resource,
-- project and linked teams, shared/src/facts.rs): V2's notices also named owners and the other
-- side of each link, so sharing one generation with 1,000 users invalidated every cached
-- decision of those users. The BEFORE bump (V2), the notice triggers (V2) and the piece triggers
-- (V9) go.
DO $$
DECLARE
    v_spec      record;
    v_op        text;
    v_relations text[];
    v_keys      text;
    v_function  text;
    v_referencing text;
BEGIN
    FOR v_spec IN
        SELECT * FROM (VALUES
            ('users',             'user',       'id'),
            ('teams',             'team',       'id'),
            ('team_members',      'user',       'user_id'),
            ('projects',          'project',    'id'),
            ('project_teams',     'project',    'project_id'),
            ('generations',       'generation', 'id'),
            ('generation_shares', 'generation', 'generation_id')
        ) AS t(table_name, piece_kind, key_column)
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS authz_revision_bump ON %I', v_spec.table_name);
        FOREACH v_op IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', 'authz_notify_' || v_op,
                           v_spec.table_name);
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', 'authz_pieces_' || v_op,
                           v_spec.table_name);
            v_relations := CASE v_op
                WHEN 'insert' THEN ARRAY['new_rows']
                WHEN 'delete' THEN ARRAY['old_rows']
                ELSE ARRAY['old_rows', 'new_rows']
            END;
            v_referencing := CASE v_op
                WHEN 'insert' THEN 'REFERENCING NEW TABLE AS new_rows'
                WHEN 'delete' THEN 'REFERENCING OLD TABLE AS old_rows'
                ELSE 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows'
            END;
            SELECT string_agg(format('SELECT %I FROM %I', v_spec.key_column, r), ' UNION ALL ')
              INTO v_keys
              FROM unnest(v_relations) AS r;
            v_function := format('authz_log_%s_%s', v_spec.table_name, v_op);
            EXECUTE format($f$
                CREATE OR REPLACE FUNCTION %I() RETURNS trigger
                LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $body$
                DECLARE
                    v_ids uuid[];
                BEGIN
                    SELECT array_agg(x) INTO v_ids
                      FROM (SELECT DISTINCT x FROM (%s) AS s(x)
                             WHERE x IS NOT NULL LIMIT 50001) AS d;
                    IF v_ids IS NULL THEN
                        RETURN NULL;
                    ELSIF cardinality(v_ids) > 50000 THEN
                        INSERT INTO authz_change_log (all_ids) VALUES (true);
                    ELSE
                        INSERT INTO authz_change_log (ids, piece_kind) VALUES (v_ids, %L);
                    END IF;
                    RETURN NULL;
                END;
                $body$
            $f$,
                v_function, current_schema(), v_keys, v_spec.piece_kind);
            EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %I %s '
                           'FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                           'authz_log_' || v_op, upper(v_op), v_spec.table_name,
                           v_referencing, v_function);
        END LOOP;
        -- TRUNCATE: V2's notice trigger stays (it records "everything"); V9's rebuild goes to
        -- the sequencer.
        EXECUTE format('DROP TRIGGER IF EXISTS authz_pieces_truncate ON %I', v_spec.table_name);
    END LOOP;
END
$$;
DROP FUNCTION IF EXISTS authz_bump_revision();
DROP FUNCTION IF EXISTS authz_maintain_pieces();
DROP FUNCTION IF EXISTS authz_rebuild_pieces_on_truncate();

-- The pieces of the keys a round numbered (step 4). A team's piece also feeds the projects
-- linked to it (team_is_active), found after the team's rows are as they are now.
CREATE OR REPLACE FUNCTION authz_refresh_pieces(p_kind text, p_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    IF p_kind = 'user' THEN
        PERFORM authz_refresh_user_pieces(p_ids);
    ELSE
        PERFORM authz_refresh_resource_pieces(p_kind, p_ids);
        IF p_kind = 'team' THEN
            PERFORM authz_refresh_resource_pieces('project', ARRAY(
                SELECT DISTINCT pt.project_id FROM project_teams pt
                 WHERE pt.team_id = ANY (p_ids)));
        END IF;
    END IF;
END;
$$;

-- The sequencer (see the top of this file). Returns the revision, numbered or not. On a
-- standby or in a read-only transaction it only reads it.
CREATE OR REPLACE FUNCTION authz_sequence_changes() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
DECLARE
    v_revision bigint;
    v_all      boolean;
    v_ids      uuid[];
    v_users       uuid[];
    v_generations uuid[];
    v_projects    uuid[];
    v_teams       uuid[];
    v_count    bigint;
    v_payload  text;
    v_horizon  xid8;
BEGIN
    IF pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    -- Pending rows all have xids at or above the last round's horizon (below it, every
    -- transaction had ended before that round's snapshot, so its rows were numbered): the scan
    -- skips the numbered rows' dead index entries, which vacuum has not removed yet.
    SELECT horizon INTO v_horizon FROM authz_revision WHERE id = 1;
    IF NOT EXISTS (SELECT 1 FROM authz_change_log
                    WHERE revision IS NULL AND xid >= coalesce(v_horizon, '0'::xid8)) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    -- One sequencer at a time, until its commit: their commits are in revision order.
    PERFORM pg_advisory_xact_lock(hashtext('authz_sequencer'), 0);
    -- The sequencer that held the lock may have numbered everything (a new snapshot sees it).
    SELECT horizon INTO v_horizon FROM authz_revision WHERE id = 1;
    v_horizon := coalesce(v_horizon, '0'::xid8);
    IF NOT EXISTS (SELECT 1 FROM authz_change_log
                    WHERE revision IS NULL AND xid >= v_horizon) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    -- The next horizon: the oldest transaction still running now. The numbering below uses a
    -- later snapshot, which sees every row of every transaction older than this.
    UPDATE authz_revision
       SET value = nextval('authz_revision_seq'),
           horizon = pg_snapshot_xmin(pg_current_snapshot())
     WHERE id = 1
    RETURNING value INTO v_revision;
    IF NOT FOUND THEN
        -- Fail closed: changes that cannot be numbered are never announced as seen.
        RAISE EXCEPTION 'authz_revision has no row: the revision cannot advance'
            USING ERRCODE = 'P0001';
    END IF;
    WITH numbered AS (
        UPDATE authz_change_log
           SET revision = v_revision, sequenced_at = clock_timestamp()
         WHERE revision IS NULL AND xid >= v_horizon
        RETURNING ids, piece_kind, all_ids
    )
    SELECT coalesce(bool_or(all_ids), false),
           (SELECT array_agg(DISTINCT x ORDER BY x) FROM numbered n, unnest(n.ids) AS u(x)),
           (SELECT array_agg(DISTINCT x) FROM numbered n, unnest(n.ids) AS u(x)
             WHERE n.piece_kind = 'user'),
           (SELECT array_agg(DISTINCT x) FROM numbered n, unnest(n.ids) AS u(x)
             WHERE n.piece_kind = 'generation'),
           (SELECT array_agg(DISTINCT x) FROM numbered n, unnest(n.ids) AS u(x)
             WHERE n.piece_kind = 'project'),
           (SELECT array_agg(DISTINCT x) FROM numbered n, unnest(n.ids) AS u(x)
             WHERE n.piece_kind = 'team')
      INTO v_all, v_ids, v_users, v_generations, v_projects, v_teams
      FROM numbered;
    -- The pieces of what was numbered, from the tables as they are now (a new statement).
    IF v_all THEN
        PERFORM authz_rebuild_pieces();
    ELSE
        PERFORM authz_refresh_pieces('user', v_users);
        PERFORM authz_refresh_pieces('generation', v_generations);
        PERFORM authz_refresh_pieces('team', v_teams);
        PERFORM authz_refresh_pieces('project', v_projects);
    END IF;
    v_count := coalesce(cardinality(v_ids), 0);
    IF v_all THEN
        v_payload := '{"r":' || v_revision || ',"all":true}';
    ELSIF v_count > 100 THEN
        -- 100 ids take about 4 kB; NOTIFY payloads must stay under 8000 bytes.
        v_payload := '{"r":' || v_revision || ',"log":' || v_count || '}';
    ELSIF v_count > 0 THEN
        SELECT '{"r":' || v_revision || ',"ids":['
               || string_agg('"' || x::text || '"', ',' ORDER BY x) || ']}'
          INTO v_payload
          FROM unnest(v_ids) AS u(x);
    END IF;
    IF v_payload IS NOT NULL THEN
        PERFORM pg_notify('authz_changes', v_payload);
    END IF;
    -- Keep 15 minutes of numbered changes (listeners read a revision's ids right after its
    -- notice); pruned on one round in 64.
    IF v_revision % 64 = 0 THEN
        DELETE FROM authz_change_log
         WHERE revision IS NOT NULL AND sequenced_at < clock_timestamp() - interval '15 minutes';
    END IF;
    RETURN v_revision;
END;
$$;

-- The ids a "log" notice names: every id of the changes numbered `p_revision`.
CREATE OR REPLACE FUNCTION authz_changed_ids(p_revision bigint) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT DISTINCT x FROM authz_change_log l, unnest(l.ids) AS u(x)
     WHERE l.revision = p_revision
$$;

-- The revision to hand to clients as min_revision, called after commit: it covers every change
-- committed before the call, the caller's included.
CREATE OR REPLACE FUNCTION authz_current_revision() RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER AS $$
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL
       AND EXISTS (SELECT 1 FROM authz_change_log
                    WHERE revision IS NULL AND xid = pg_current_xact_id_if_assigned()) THEN
        RAISE EXCEPTION 'authz_current_revision() must be called after commit: this transaction has '
                        'changed decision data that no revision can cover before it commits'
            USING ERRCODE = '55000';
    END IF;
    RETURN authz_sequence_changes();
END;
$$;

-- After a bulk load with triggers disabled: record "everything changed", in the caller's
-- transaction. The round that numbers it rebuilds the pieces; the revision comes after commit,
-- from authz_current_revision(). Returns the revision before the load (V9 returned the new one,
-- which exists only after commit now).
CREATE OR REPLACE FUNCTION authz_bump_all() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_send_change_notice(NULL, true);
    RETURN (SELECT value FROM authz_revision WHERE id = 1);
END;
$$;

DO $$
DECLARE
    v_function text;
BEGIN
    FOREACH v_function IN ARRAY ARRAY[
        'authz_send_change_notice(uuid[], boolean)',
        'authz_refresh_pieces(text, uuid[])',
        'authz_sequence_changes()',
        'authz_changed_ids(bigint)',
        'authz_current_revision()',
        'authz_bump_all()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       v_function, current_schema());
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION authz_refresh_pieces(text, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_bump_all() FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_send_change_notice(uuid[], boolean) FROM PUBLIC;
