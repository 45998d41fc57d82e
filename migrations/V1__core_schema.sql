-- V1: the decision tables of DOMAIN.md, their integrity rules and the indexes the decision
-- query reads through.
--
-- Table and column names are fixed by DOMAIN.md: other systems write these tables directly.
-- Every column added beyond DOMAIN.md's has a default, so a writer that sets only DOMAIN.md's
-- columns succeeds. Nothing here names a schema: objects are created in, and resolved through,
-- the current search_path (the test suite gives each test its own schema). Trigger functions
-- pin their search_path to the schema they were created in (see the block at the end), so they
-- work for writers whose search_path does not include it.
--
-- Applied by refinery inside one transaction; nothing here needs to run outside one.

-- ---------------------------------------------------------------------------------------------
-- users
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS users (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- NOT NULL and unique, yet optional for writers: a BEFORE trigger fills a missing email
    -- with '<id>@users.invalid' (unique because the id is; .invalid is reserved by RFC 2606).
    email       text        NOT NULL UNIQUE,
    is_active   boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION authz_users_fill_email() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Column defaults (including id's) are applied before BEFORE ROW triggers run, so NEW.id
    -- is already set here. An UPDATE that sets email to NULL gets the same placeholder back.
    IF NEW.email IS NULL THEN
        NEW.email := NEW.id::text || '@users.invalid';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE TRIGGER users_fill_email
    BEFORE INSERT OR UPDATE OF email ON users
    FOR EACH ROW EXECUTE FUNCTION authz_users_fill_email();

-- ---------------------------------------------------------------------------------------------
-- teams and their members
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS teams (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text        NOT NULL DEFAULT '',
    owner_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    is_active   boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS team_members (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id     uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No default: a writer must say which role it grants.
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'viewer')),
    is_active   boolean     NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT team_members_team_id_user_id_key UNIQUE (team_id, user_id)
);

-- Creating a team makes its owner a member with role 'owner' (DOMAIN.md). An existing row for
-- (team, owner) is left alone (none can exist when the team is created, but a writable CTE
-- could race one in). Statement-level with a transition table: a bulk insert of N teams makes
-- one INSERT into team_members (one revision bump, one change notice), not N.
CREATE OR REPLACE FUNCTION authz_teams_owner_membership_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO team_members (team_id, user_id, role, is_active)
    SELECT n.id, n.owner_id, 'owner', true FROM new_teams n
    ON CONFLICT (team_id, user_id) DO NOTHING;
    RETURN NULL;
END;
$$;

-- Changing teams.owner_id transfers ownership: the new owner is upserted as an active 'owner'
-- member (an existing membership of theirs is promoted and re-activated), and the previous
-- owner, if their membership still says 'owner', is demoted to 'admin' (kept active). Decisions
-- about a team read team_members only, so without this the transfer would not take effect and
-- the previous owner would keep the 'admin' operation.
CREATE OR REPLACE FUNCTION authz_teams_owner_membership_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_teams o JOIN new_teams n ON n.id = o.id
                    WHERE o.owner_id IS DISTINCT FROM n.owner_id) THEN
        RETURN NULL;  -- no owner changed: touch nothing (and bump nothing)
    END IF;

    INSERT INTO team_members (team_id, user_id, role, is_active)
    SELECT n.id, n.owner_id, 'owner', true
      FROM old_teams o JOIN new_teams n ON n.id = o.id
     WHERE o.owner_id IS DISTINCT FROM n.owner_id
    ON CONFLICT (team_id, user_id) DO UPDATE SET role = 'owner', is_active = true
    WHERE team_members.role IS DISTINCT FROM 'owner' OR NOT team_members.is_active;

    UPDATE team_members m SET role = 'admin'
      FROM old_teams o JOIN new_teams n ON n.id = o.id
     WHERE o.owner_id IS DISTINCT FROM n.owner_id
       AND m.team_id = n.id AND m.user_id = o.owner_id AND m.role = 'owner';
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER teams_owner_membership_insert
    AFTER INSERT ON teams
    REFERENCING NEW TABLE AS new_teams
    FOR EACH STATEMENT EXECUTE FUNCTION authz_teams_owner_membership_on_insert();

-- (Transition tables do not allow a column list, hence AFTER UPDATE rather than UPDATE OF.)
CREATE OR REPLACE TRIGGER teams_owner_membership_update
    AFTER UPDATE ON teams
    REFERENCING OLD TABLE AS old_teams NEW TABLE AS new_teams
    FOR EACH STATEMENT EXECUTE FUNCTION authz_teams_owner_membership_on_update();

-- ---------------------------------------------------------------------------------------------
-- projects and their team links
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS projects (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text        NOT NULL DEFAULT '',
    visibility  text        NOT NULL DEFAULT 'private'
                            CHECK (visibility IN ('private', 'team-only', 'public')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS project_teams (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    project_id   uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    team_id      uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    access_level text        NOT NULL DEFAULT 'read'
                             CHECK (access_level IN ('read', 'write', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT project_teams_project_id_team_id_key UNIQUE (project_id, team_id)
);

-- ---------------------------------------------------------------------------------------------
-- generations and their shares
-- ---------------------------------------------------------------------------------------------
CREATE TABLE IF NOT EXISTS generations (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A deleted project leaves its generations with project_id NULL (DOMAIN.md).
    project_id  uuid        NULL REFERENCES projects (id) ON DELETE SET NULL,
    status      text        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'processing', 'completed', 'failed',
                                              'cancelled')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS generation_shares (
    id                  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    generation_id       uuid        NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    shared_with_user_id uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- No default: a writer must say what it shares. Several rows per (generation, user) are
    -- allowed (each active, unexpired one is a candidate; see V3).
    permission_level    text        NOT NULL CHECK (permission_level IN ('read', 'download', 'edit')),
    -- NULL = never expires. A share is valid while now < expires_at (expired AT expires_at).
    expires_at          timestamptz NULL,
    is_active           boolean     NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Composite authorization indexes (the deployment guide's migration 013 "authorization
-- indexes"). Each is shaped for one lookup of the decision query; the INCLUDE columns make
-- those lookups index-only scans. The rest serve foreign-key cascades and owner lookups.
-- ---------------------------------------------------------------------------------------------

-- "The principal's membership in team T": (user_id, team_id) -> role, is_active.
CREATE INDEX IF NOT EXISTS idx_team_members_user_team_auth
    ON team_members (user_id, team_id) INCLUDE (role, is_active);

-- "The teams linked to project P": project_id -> team_id, access_level.
CREATE INDEX IF NOT EXISTS idx_project_teams_project_auth
    ON project_teams (project_id) INCLUDE (team_id, access_level);

-- "The principal's shares on generation G": (generation_id, user) -> level, expiry, active.
CREATE INDEX IF NOT EXISTS idx_generation_shares_generation_user_auth
    ON generation_shares (generation_id, shared_with_user_id)
    INCLUDE (permission_level, expires_at, is_active);

-- Owner and parent lookups; also what ON DELETE CASCADE / SET NULL scan when a parent goes.
CREATE INDEX IF NOT EXISTS idx_generations_project_id ON generations (project_id);
CREATE INDEX IF NOT EXISTS idx_generations_user_id    ON generations (user_id);
CREATE INDEX IF NOT EXISTS idx_projects_user_id       ON projects (user_id);
CREATE INDEX IF NOT EXISTS idx_teams_owner_id         ON teams (owner_id);
-- Cascades from deleting a user or a team (the unique constraints lead with the other column).
CREATE INDEX IF NOT EXISTS idx_generation_shares_shared_with_user_id
    ON generation_shares (shared_with_user_id);
CREATE INDEX IF NOT EXISTS idx_project_teams_team_id  ON project_teams (team_id);

-- ---------------------------------------------------------------------------------------------
-- Pin the trigger functions' search_path to this schema (plus pg_temp last, so a temporary
-- table cannot shadow ours). Computed here rather than written out so that no schema name is
-- hard-coded: the schema is whichever one this migration ran in.
-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'authz_users_fill_email()',
        'authz_teams_owner_membership_on_insert()',
        'authz_teams_owner_membership_on_update()'
    ] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', fn, current_schema());
    END LOOP;
END;
$$;
