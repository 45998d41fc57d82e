-- Ids the UUID standard refuses (the nil and the max UUID, shared/src/id.rs) cannot be stored:
-- the origin's core could not decode a piece naming one, and would answer 503 where the SQL
-- function still decides. A CHECK on each of the seven primary keys is enough, since every
-- other id column is a foreign key to one of them. Adding a CHECK validates the existing rows:
-- on a database that holds such a row this migration fails naming the constraint, and nothing
-- is changed until the row is fixed.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'teams', 'team_members', 'projects', 'project_teams',
                             'generations', 'generation_shares']
    LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conname = t || '_id_standard'
              AND conrelid = to_regclass(quote_ident(current_schema()) || '.' || quote_ident(t))
        ) THEN
            EXECUTE format(
                'ALTER TABLE %I ADD CONSTRAINT %I CHECK (id <> %L::uuid AND id <> %L::uuid)',
                t, t || '_id_standard',
                '00000000-0000-0000-0000-000000000000',
                'ffffffff-ffff-ffff-ffff-ffffffffffff');
        END IF;
    END LOOP;
END
$$;
