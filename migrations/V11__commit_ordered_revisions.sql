-- V11: commit-ordered revisions without one global write lock.
--
-- BEFORE. Every statement on a decision table first updated the one row of authz_revision
-- (V2) and kept its lock until commit, and every statement sent a NOTIFY, whose commit takes a
-- database-wide lock until the commit is flushed. Writers serialized for the length of their
-- transactions: 255 writes/s at 32 writers where the same insert without the triggers made
-- 6,064 (BENCHMARKS.md, "Writes").
--
-- NOW. A writer's triggers only record what it changed: one row in authz_change_log per
-- statement (the ids it touched), with no revision yet, plus its piece rows (V9), with a lock
-- per piece key (below). Nothing a writer does waits for another writer unless both touch the
-- same piece key. A revision is given to changes only after they committed, by a SEQUENCER:
--
--     authz_sequence_changes()  (called by every origin every AUTHZ_SEQUENCER_INTERVAL_MS, and
--                                by authz_current_revision(), so writers that ask for their
--                                revision never wait for an origin)
--       1. takes the sequencer lock (a transaction-level advisory lock), so sequencers run one
--          after the other and their commits are in revision order;
--       2. with a new snapshot, takes the log rows that have no revision: exactly the changes
--          that committed before this snapshot;
--       3. gives all of them one new revision (nextval), stores it in authz_revision, and sends
--          one notice naming their ids;
--       4. commits.
--
-- WHY IT IS SAFE (DOMAIN.md, Consistency). A reader still takes authz_revision.value in the same
-- statement as its facts. If it reads value R, the sequencer transaction that wrote R had
-- committed before the reader's snapshot, and every change numbered <= R had committed before
-- that sequencer's snapshot: the reader sees all of them. A change it sees but that is not yet
-- numbered will be numbered above R, so its notice invalidates the reader's entry (one needless
-- miss, never a stale grant). The trap (values handed out before commit, commits in the other
-- order) cannot happen: a revision is handed out only to changes that have already committed,
-- and sequencers commit one at a time, in revision order.
--
-- WHAT A WRITER SEES. authz_current_revision(), called after commit, numbers whatever committed
-- and is not numbered yet (its own change included) and returns the revision: the token its
-- clients pass as min_revision. Called inside a transaction that has changed decision data, it
-- fails (SQLSTATE 55000): no revision can cover a change that has not committed, and a too-low
-- token would let caches answer without the change. Revisions stay bigints; the values issued
-- before this migration stay valid (the same sequence continues).
--
-- THE PIECES (V9) under concurrent writers. Two writers that refresh the same piece from their
-- own snapshots would each miss the other's change (a lost update). Each refresh therefore first
-- takes a transaction-level advisory lock per piece key, then recomputes the piece in a new
-- statement, so under READ COMMITTED it sees every writer that held the key before. A project's
-- piece embeds its linked teams' is_active: a write to project_teams locks those teams' keys
-- before the project's, and a team's refresh finds its projects only after locking the team, so
-- the two orders meet on the team key. Under REPEATABLE READ and SERIALIZABLE the refresh reads
-- the transaction's snapshot: a piece row written by a writer that committed since then makes the
-- refresh fail with 40001 (or 23505 for a key that did not exist), never lose the other's change.
--
-- BULK STATEMENTS. A statement's row holds every id it touched (up to 50,000; more, or TRUNCATE,
-- is "everything"). A batch of more than 100 ids is announced as {"r": R, "log": N}: listeners
-- read the N ids of revision R from the log, so a 1,000-share insert invalidates 1,000 ids
-- instead of every cache. Numbered rows are kept 15 minutes.

CREATE TABLE IF NOT EXISTS authz_change_log (
    -- The writing transaction (for diagnosis; never compared).
    xid          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    ids          uuid[]      NOT NULL DEFAULT '{}',
    all_ids      boolean     NOT NULL DEFAULT false,
    -- NULL until a sequencer numbers the row (after its writer committed).
    revision     bigint      NULL,
    sequenced_at timestamptz NULL
);
-- The sequencer's "anything pending?" and the caller's "have I pending changes?".
CREATE INDEX IF NOT EXISTS authz_change_log_pending ON authz_change_log (xid)
    WHERE revision IS NULL;
-- A listener reading a revision's ids; pruning by age.
CREATE INDEX IF NOT EXISTS authz_change_log_revision ON authz_change_log (revision)
    WHERE revision IS NOT NULL;
CREATE INDEX IF NOT EXISTS authz_change_log_sequenced ON authz_change_log (sequenced_at)
    WHERE revision IS NOT NULL;

-- The writers no longer bump the revision.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'teams', 'team_members', 'projects', 'project_teams',
                             'generations', 'generation_shares']
    LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS authz_revision_bump ON %I', t);
    END LOOP;
END
$$;
DROP FUNCTION IF EXISTS authz_bump_revision();

-- Records a statement's change (V2's notice function, same signature: the notify triggers call
-- it). The notice itself is sent by the sequencer once the change has committed.
CREATE OR REPLACE FUNCTION authz_send_change_notice(p_ids uuid[], p_all boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT p_all AND coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    IF p_all OR cardinality(p_ids) > 50000 THEN
        INSERT INTO authz_change_log (all_ids) VALUES (true);
    ELSE
        INSERT INTO authz_change_log (ids) VALUES (p_ids);
    END IF;
END;
$$;

-- V2's collector, without the 101-id cut-off (a bulk statement names every id it touched, up to
-- 50,001: enough to know it is "everything").
CREATE OR REPLACE FUNCTION authz_notify_changes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_relations text[];
    v_relation  text;
    v_column    text;
    v_parts     text[] := '{}';
    v_ids       uuid[];
BEGIN
    v_relations := CASE TG_OP
        WHEN 'INSERT' THEN ARRAY['new_rows']
        WHEN 'DELETE' THEN ARRAY['old_rows']
        ELSE ARRAY['old_rows', 'new_rows']
    END;
    FOREACH v_relation IN ARRAY v_relations LOOP
        FOREACH v_column IN ARRAY TG_ARGV LOOP
            v_parts := v_parts || format('SELECT %I FROM %I', v_column, v_relation);
        END LOOP;
    END LOOP;
    EXECUTE format(
        'SELECT array_agg(x) FROM (SELECT DISTINCT x FROM (%s) AS s(x) '
        'WHERE x IS NOT NULL LIMIT 50001) AS d',
        array_to_string(v_parts, ' UNION ALL '))
      INTO v_ids;
    PERFORM authz_send_change_notice(v_ids);
    RETURN NULL;
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
    v_count    bigint;
    v_payload  text;
BEGIN
    IF pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'
       OR NOT EXISTS (SELECT 1 FROM authz_change_log WHERE revision IS NULL) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    -- One sequencer at a time, until its commit: their commits are in revision order.
    PERFORM pg_advisory_xact_lock(hashtext('authz_sequencer'), 0);
    -- The sequencer that held the lock may have numbered everything (a new snapshot sees it).
    IF NOT EXISTS (SELECT 1 FROM authz_change_log WHERE revision IS NULL) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    UPDATE authz_revision SET value = nextval('authz_revision_seq') WHERE id = 1
    RETURNING value INTO v_revision;
    IF NOT FOUND THEN
        -- Fail closed: changes that cannot be numbered are never announced as seen.
        RAISE EXCEPTION 'authz_revision has no row: the revision cannot advance'
            USING ERRCODE = 'P0001';
    END IF;
    WITH numbered AS (
        UPDATE authz_change_log
           SET revision = v_revision, sequenced_at = clock_timestamp()
         WHERE revision IS NULL
        RETURNING ids, all_ids
    )
    SELECT coalesce(bool_or(all_ids), false),
           (SELECT array_agg(DISTINCT x ORDER BY x) FROM numbered n, unnest(n.ids) AS u(x))
      INTO v_all, v_ids
      FROM numbered;
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

-- One advisory lock per piece key, in one order (see the top of this file).
CREATE OR REPLACE FUNCTION authz_lock_pieces(p_kind text, p_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('authz_pieces:' || p_kind), k)
       FROM (SELECT DISTINCT hashtext(x::text) AS k FROM unnest(p_ids) AS u(x) ORDER BY 1) AS s;
END;
$$;

-- V9's refreshes, each locking its keys before reading the base tables (a new statement, so a
-- new snapshot under READ COMMITTED).
CREATE OR REPLACE FUNCTION authz_refresh_user_pieces(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_lock_pieces('user', p_ids);
    DELETE FROM authz_user_pieces WHERE user_id = ANY (p_ids);
    INSERT INTO authz_user_pieces (user_id, piece)
    SELECT s.user_id, s.piece FROM authz_user_pieces_source s WHERE s.user_id = ANY (p_ids);
END;
$$;

CREATE OR REPLACE FUNCTION authz_refresh_resource_pieces(p_type text, p_ids uuid[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_lock_pieces(p_type, p_ids);
    DELETE FROM authz_resource_pieces WHERE resource_type = p_type AND resource_id = ANY (p_ids);
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

-- The distinct non-NULL values of one column of the firing statement's transition tables.
-- Transition tables are visible only to the trigger function itself, so this returns the query's
-- text, which the trigger function runs with EXECUTE.
CREATE OR REPLACE FUNCTION authz_transition_query(p_op text, p_column text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('SELECT array_agg(DISTINCT x) FROM (%s) AS s(x) WHERE x IS NOT NULL',
                  CASE p_op
                      WHEN 'INSERT' THEN format('SELECT %I FROM new_rows', p_column)
                      WHEN 'DELETE' THEN format('SELECT %I FROM old_rows', p_column)
                      ELSE format('SELECT %I FROM old_rows UNION SELECT %I FROM new_rows',
                                  p_column, p_column)
                  END)
$$;

-- V9's trigger function, with the team keys of project_teams rows locked before the project's,
-- and a team's projects looked up only once the team is locked (inside the team's refresh).
CREATE OR REPLACE FUNCTION authz_maintain_pieces() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_kind   text := TG_ARGV[0];
    v_column text := TG_ARGV[1];
    v_ids    uuid[];
    v_teams  uuid[];
BEGIN
    EXECUTE authz_transition_query(TG_OP, v_column) INTO v_ids;
    IF v_ids IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_kind = 'user' THEN
        PERFORM authz_refresh_user_pieces(v_ids);
    ELSE
        IF TG_TABLE_NAME = 'project_teams' THEN
            EXECUTE authz_transition_query(TG_OP, 'team_id') INTO v_teams;
            PERFORM authz_lock_pieces('team', v_teams);
            -- Under REPEATABLE READ, a team refreshed since this snapshot fails here (40001)
            -- instead of leaving the project's piece with its old is_active.
            PERFORM 1 FROM authz_resource_pieces
              WHERE resource_type = 'team' AND resource_id = ANY (v_teams)
              FOR KEY SHARE;
        END IF;
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

-- After a bulk load with triggers disabled: the pieces are rebuilt and "everything changed" is
-- recorded, both in the caller's transaction. The revision comes after commit, from
-- authz_current_revision(); this returns the revision before the load (V9 returned the new one,
-- which no longer exists before commit).
CREATE OR REPLACE FUNCTION authz_bump_all() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_rebuild_pieces();
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
        'authz_notify_changes()',
        'authz_sequence_changes()',
        'authz_changed_ids(bigint)',
        'authz_current_revision()',
        'authz_lock_pieces(text, uuid[])',
        'authz_refresh_user_pieces(uuid[])',
        'authz_refresh_resource_pieces(text, uuid[])',
        'authz_maintain_pieces()',
        'authz_bump_all()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       v_function, current_schema());
    END LOOP;
END;
$$;

REVOKE ALL ON FUNCTION authz_lock_pieces(text, uuid[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_bump_all() FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_send_change_notice(uuid[], boolean) FROM PUBLIC;
