-- V12: an INSERT logs its change with a row-level trigger (V11's statement-level trigger with a
-- transition table costs about twice as much per single-row INSERT, the commonest write: a
-- generation created, a share granted). See migrations/README.md, "V12".
--
-- V11's INSERT trigger on each decision table collected the statement's keys from a transition
-- table and wrote one change-log row per statement. For a one-row INSERT most of that cost is
-- the machinery (the transition table's tuplestore, a query over it, DISTINCT and array_agg),
-- not the log row. Here each inserted row writes its own log row, with its key taken from NEW:
-- AFTER the row is stored, so it is the row as written (other BEFORE triggers have run).
-- UPDATE and DELETE keep V11's statement-level triggers (a cascade over thousands of rows stays
-- one log row). A bulk INSERT now writes one log row per row: the round numbers them together
-- (one revision for all the rows its writer committed), and a round that names more than
-- 50,000 ids announces "everything" and rebuilds the pieces, as V11's statement trigger did.

DO $$
DECLARE
    v_spec record;
    v_function text;
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
        v_function := format('authz_log_%s_insert', v_spec.table_name);
        EXECUTE format('DROP TRIGGER IF EXISTS authz_log_insert ON %I', v_spec.table_name);
        EXECUTE format('DROP FUNCTION IF EXISTS %I()', v_function);
        EXECUTE format($f$
            CREATE OR REPLACE FUNCTION %I() RETURNS trigger
            LANGUAGE plpgsql SECURITY DEFINER SET search_path = %I, pg_temp AS $body$
            BEGIN
                IF NEW.%I IS NOT NULL THEN
                    INSERT INTO authz_change_log (ids, piece_kind) VALUES (ARRAY[NEW.%I], %L);
                END IF;
                RETURN NULL;
            END;
            $body$
        $f$,
            v_function, current_schema(), v_spec.key_column, v_spec.key_column,
            v_spec.piece_kind);
        EXECUTE format('CREATE TRIGGER authz_log_insert AFTER INSERT ON %I '
                       'FOR EACH ROW EXECUTE FUNCTION %I()',
                       v_spec.table_name, v_function);
    END LOOP;
END
$$;

-- The sequencer: V11's, with one change: a round whose changes name more than 50,000 ids
-- (now possible through many rows, where V11 capped each statement's row) is "everything".
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
    -- Pending rows all have xids at or above the last round's horizon (V11).
    SELECT horizon INTO v_horizon FROM authz_revision WHERE id = 1;
    IF NOT EXISTS (SELECT 1 FROM authz_change_log
                    WHERE revision IS NULL AND xid >= coalesce(v_horizon, '0'::xid8)) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    -- One sequencer at a time, until its commit: their commits are in revision order.
    PERFORM pg_advisory_xact_lock(hashtext('authz_sequencer'), 0);
    SELECT horizon INTO v_horizon FROM authz_revision WHERE id = 1;
    v_horizon := coalesce(v_horizon, '0'::xid8);
    IF NOT EXISTS (SELECT 1 FROM authz_change_log
                    WHERE revision IS NULL AND xid >= v_horizon) THEN
        RETURN (SELECT value FROM authz_revision WHERE id = 1);
    END IF;
    UPDATE authz_revision
       SET value = nextval('authz_revision_seq'),
           horizon = pg_snapshot_xmin(pg_current_snapshot())
     WHERE id = 1
    RETURNING value INTO v_revision;
    IF NOT FOUND THEN
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
    v_count := coalesce(cardinality(v_ids), 0);
    IF v_count > 50000 THEN
        v_all := true;
    END IF;
    IF v_all THEN
        PERFORM authz_rebuild_pieces();
    ELSE
        PERFORM authz_refresh_pieces('user', v_users);
        PERFORM authz_refresh_pieces('generation', v_generations);
        PERFORM authz_refresh_pieces('team', v_teams);
        PERFORM authz_refresh_pieces('project', v_projects);
    END IF;
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
    IF v_revision % 64 = 0 THEN
        DELETE FROM authz_change_log
         WHERE revision IS NOT NULL AND sequenced_at < clock_timestamp() - interval '15 minutes';
    END IF;
    RETURN v_revision;
END;
$$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION authz_sequence_changes() SET search_path = %I, pg_temp',
                   current_schema());
END;
$$;
