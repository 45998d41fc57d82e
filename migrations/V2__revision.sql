-- V2: the data revision (DOMAIN.md, "Consistency") and change notifications.
--
-- THE TRAP. A sequence hands out values at nextval(), not at commit. If writers simply stamped
-- nextval() on their changes, T1 could take 5, T2 take 6, T2 commit first: a reader would then
-- see revision 6 while 5's change is still invisible, and a cache keyed on "I have seen up to
-- 6" would keep serving what 5 revokes once it commits.
--
-- THE DESIGN.
--   * authz_revision is a one-row table; authz_revision.value is "the" revision.
--   * Every statement on any of the 7 decision tables first runs a BEFORE ... FOR EACH
--     STATEMENT trigger, authz_bump_revision(), that does
--         UPDATE authz_revision SET value = nextval('authz_revision_seq') WHERE id = 1
--     That UPDATE takes the row lock of the only row, and a row lock is held until the
--     transaction ends. So every transaction that writes decision data holds the same lock
--     from its first write until its commit: such transactions serialize, and the one that
--     commits later took its (last) nextval later, i.e. revisions are handed out in commit
--     order. A transaction that waits for the lock gets its value only once the holder has
--     committed: under READ COMMITTED the blocked UPDATE re-evaluates its SET list (with a
--     fresh nextval) on the newly committed row version (EvalPlanQual), so its value is larger
--     than anything the holder took. (Tested: see migrations/README.md.)
--   * The lock is taken BEFORE the statement touches any row, so the lock order is always
--     "revision row first, then data rows" and the revision lock cannot take part in a
--     deadlock with the statement's own row locks or foreign-key checks.
--   * A reader that selects authz_revision.value in the same statement (same snapshot) as the
--     facts it decides on gets exactly the revision of that snapshot: the snapshot contains
--     every writer up to and including the one that wrote that value, and none after it.
--     (A STABLE function reuses its caller's snapshot, so all queries inside
--     authz_decision_facts() / check_user_authorization_enterprise() also qualify.)
--   * AFTER ... FOR EACH STATEMENT triggers with transition tables collect the ids the
--     statement touched and pg_notify('authz_changes', ...) once per statement. NOTIFY is
--     delivered at commit, in commit order, so a listener sees revisions in increasing order.
--
-- THE PRICE. Writers of decision data serialize on one row for the length of their
-- transactions: keep such transactions short. Writers at REPEATABLE READ or SERIALIZABLE that
-- meet a concurrent writer fail with SQLSTATE 40001 and must retry (as they must anyway).
-- A transaction that row-locks decision rows (SELECT ... FOR UPDATE) BEFORE its first write
-- can deadlock with another writer; Postgres detects it and aborts one of them (40P01).
-- Revisions have gaps (a waiting writer's first nextval is discarded; rolled-back writers burn
-- values): only their order means anything.
--
-- The sequence MUST be CACHE 1: with per-session caches two sessions would hand out values
-- from different blocks, and commit order would no longer follow value order.

CREATE SEQUENCE IF NOT EXISTS authz_revision_seq AS bigint CACHE 1 NO CYCLE;

-- fillfactor leaves room on the page so the constant updates of the only row stay HOT.
CREATE TABLE IF NOT EXISTS authz_revision (
    id    smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    value bigint   NOT NULL
) WITH (fillfactor = 20);

INSERT INTO authz_revision (id, value)
SELECT 1, nextval('authz_revision_seq')
WHERE NOT EXISTS (SELECT 1 FROM authz_revision);

-- ---------------------------------------------------------------------------------------------
-- The revision bump (BEFORE ... FOR EACH STATEMENT on every decision table).
-- SECURITY DEFINER so that any role allowed to write a decision table can bump the revision
-- without holding privileges on authz_revision itself; its search_path is pinned below.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION authz_bump_revision() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    UPDATE authz_revision SET value = nextval('authz_revision_seq') WHERE id = 1;
    IF NOT FOUND THEN
        -- Fail closed: a write that cannot advance the revision must not commit, or caches
        -- would never learn about it.
        RAISE EXCEPTION 'authz_revision has no row: the revision cannot advance'
            USING ERRCODE = 'P0001';
    END IF;
    RETURN NULL;
END;
$$;

-- The revision of the latest committed write visible to the caller's snapshot (or, inside a
-- writing transaction, that transaction's own latest bump). A writer calls it after commit (or
-- as the last statement before commit, which gives exactly its own revision) and hands the
-- value to its clients as min_revision.
CREATE OR REPLACE FUNCTION authz_current_revision() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT value FROM authz_revision WHERE id = 1
$$;

-- ---------------------------------------------------------------------------------------------
-- Change notifications. Channel 'authz_changes'; payload, compact JSON, one per statement:
--     {"r":<revision>,"ids":["<uuid>",...]}   ids sorted, distinct, at most 100
--     {"r":<revision>,"all":true}             more than 100 ids, TRUNCATE, authz_bump_all()
-- r is authz_revision.value as this transaction sees it when the statement ends, i.e. the
-- revision this statement produced (a later statement of the same transaction produces a
-- larger one, announced by its own notice). Statements that touch no row send nothing.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION authz_send_change_notice(p_ids uuid[], p_all boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_revision bigint;
    v_payload  text;
BEGIN
    IF NOT p_all AND coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    SELECT value INTO v_revision FROM authz_revision WHERE id = 1;
    IF p_all OR cardinality(p_ids) > 100 THEN
        -- 100 ids take about 4 kB; NOTIFY payloads must stay under 8000 bytes.
        v_payload := '{"r":' || v_revision || ',"all":true}';
    ELSE
        SELECT '{"r":' || v_revision || ',"ids":['
               || string_agg('"' || x::text || '"', ',' ORDER BY x) || ']}'
          INTO v_payload
          FROM unnest(p_ids) AS u(x);
    END IF;
    PERFORM pg_notify('authz_changes', v_payload);
END;
$$;

-- AFTER INSERT / UPDATE / DELETE ... FOR EACH STATEMENT, with transition tables new_rows and/or
-- old_rows. TG_ARGV names the uuid columns whose old and new values are announced. The query
-- stops after 101 distinct ids: that is enough to know whether to send "all".
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
        'WHERE x IS NOT NULL LIMIT 101) AS d',
        array_to_string(v_parts, ' UNION ALL '))
      INTO v_ids;
    PERFORM authz_send_change_notice(v_ids);
    RETURN NULL;
END;
$$;

-- AFTER TRUNCATE ... FOR EACH STATEMENT: everything may have changed.
CREATE OR REPLACE FUNCTION authz_notify_truncate() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    PERFORM authz_send_change_notice(NULL, true);
    RETURN NULL;
END;
$$;

-- Bumps the revision and tells every listener that anything may have changed. For use after
-- bulk loads done with triggers disabled (session_replication_role = replica, or ALTER TABLE
-- ... DISABLE TRIGGER). Returns the new revision.
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
    PERFORM authz_send_change_notice(NULL, true);
    RETURN v_revision;
END;
$$;

-- Only trusted roles may force a global invalidation.
REVOKE ALL ON FUNCTION authz_bump_all() FROM PUBLIC;
REVOKE ALL ON FUNCTION authz_send_change_notice(uuid[], boolean) FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- The triggers: on each of the 7 decision tables, one BEFORE statement trigger for every event
-- (the bump), and one AFTER statement trigger per event (transition tables allow only one event
-- per trigger) plus one for TRUNCATE (the notices). Row-level triggers run before statement
-- ones, so the team-owner membership trigger of V1 has run (and bumped, and notified for
-- team_members) by the time teams' own notice is sent.
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    v_spec record;
BEGIN
    FOR v_spec IN
        SELECT * FROM (VALUES
            ('users',             ARRAY['id']),
            ('teams',             ARRAY['id', 'owner_id']),
            ('team_members',      ARRAY['team_id', 'user_id']),
            ('projects',          ARRAY['id', 'user_id']),
            ('project_teams',     ARRAY['project_id', 'team_id']),
            ('generations',       ARRAY['id', 'user_id', 'project_id']),
            ('generation_shares', ARRAY['generation_id', 'shared_with_user_id'])
        ) AS t(table_name, id_columns)
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_revision_bump '
            'BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_bump_revision()',
            v_spec.table_name);
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_notify_insert AFTER INSERT ON %I '
            'REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_notify_changes(%s)',
            v_spec.table_name,
            (SELECT string_agg(quote_literal(c), ', ') FROM unnest(v_spec.id_columns) AS c));
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_notify_update AFTER UPDATE ON %I '
            'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_notify_changes(%s)',
            v_spec.table_name,
            (SELECT string_agg(quote_literal(c), ', ') FROM unnest(v_spec.id_columns) AS c));
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_notify_delete AFTER DELETE ON %I '
            'REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_notify_changes(%s)',
            v_spec.table_name,
            (SELECT string_agg(quote_literal(c), ', ') FROM unnest(v_spec.id_columns) AS c));
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER authz_notify_truncate AFTER TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION authz_notify_truncate()',
            v_spec.table_name);
    END LOOP;
END;
$$;

-- Pin the search_path of the SECURITY DEFINER functions to this schema, pg_temp last (so a
-- temporary table cannot stand in for authz_revision). Computed, so no schema name is written.
DO $$
DECLARE
    v_function text;
BEGIN
    FOREACH v_function IN ARRAY ARRAY[
        'authz_bump_revision()',
        'authz_send_change_notice(uuid[], boolean)',
        'authz_notify_changes()',
        'authz_notify_truncate()',
        'authz_bump_all()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp',
                       v_function, current_schema());
    END LOOP;
END;
$$;
