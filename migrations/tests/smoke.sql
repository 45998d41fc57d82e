-- Smoke test of V1..V3: a small hand-made dataset and hand-checked decisions.
--
-- Run on a database (or schema, via search_path) where V1..V4 are applied:
--     psql -X -v ON_ERROR_STOP=1 -f migrations/tests/smoke.sql
-- Everything runs in one transaction that is rolled back, so the database is left as it was.
-- Every question's expected answer is in the "expected" rows below (worked out by hand from
-- DOMAIN.md and migrations/README.md); the script prints each question with ok / FAIL and ends
-- with a line "smoke: N passed, M failed". It exits non-zero (ON_ERROR_STOP) on any failure.
--
-- All questions are asked at a fixed instant, now = 2026-06-01 12:00:00+00, except where a
-- row says otherwise.
--
-- The dataset, for checking the expectations by hand:
--   users     owner, editor, admin, viewer, stranger, sharee, asleep, t2admin, genowner, multi
--             (all active), inactive (is_active false); missing has no row.
--   teams     t1 (owner: owner)  members editor:editor, admin:admin, viewer:viewer,
--                                multi:viewer, asleep:viewer (membership inactive)
--             t2 (owner: owner, team INACTIVE)  member t2admin:admin
--             t3 (owner: owner)  member multi:admin
--             (the owner's 'owner' memberships come from the V1 trigger)
--   projects  p_team (owner, team-only)  links t1 write, t2 admin, t3 admin
--             p_pub  (owner, public)     link  t1 read (the default level)
--             p_priv (owner, private)    link  t1 admin (counts as nothing: private)
--   gens      g1 owner/p_team/completed   g2 genowner/p_pub/completed  g3 owner/p_pub/processing
--             g4 owner/p_priv/completed   g5 owner/no project/completed
--             g6 inactive/no project      g7 genowner/p_priv/completed
--   shares    g5->sharee: read until 07-01, download until 06-15 12:00, edit until exactly now,
--                         edit without expiry but inactive
--             g4->sharee: edit expired 05-01;   g4->stranger: read, inactive
--             g1->sharee: edit and read, no expiry;   g1->viewer: edit until 12-31
--             g2->sharee: download, no expiry
-- Capped roles on p_team: editor (t1 editor, cap write), admin -> editor (t1 admin, cap write),
-- multi -> max(viewer via t1, admin via t3) = admin; t2 members get nothing (inactive team).
--
-- Expected output: one row per check, every one "ok", then the line
--     smoke: 87 passed, 0 failed
-- (69 decisions, 6 invalid questions, 5 facts shapes, 7 trigger/cascade checks). Each decision
-- row's detail shows what the function returned: granted/method/role/reason/valid_until and
-- the revision, which must equal authz_revision.value in the same transaction
-- (authz_current_revision() is for after commit: it refuses a transaction that changed
-- decision data).

\set QUIET on
\pset pager off
BEGIN;
SET LOCAL TimeZone = 'UTC';

-- ---------------------------------------------------------------------------------------------
-- Names
-- ---------------------------------------------------------------------------------------------
\set u_owner     '''10000000-0000-0000-0000-000000000001'''
\set u_inactive  '''10000000-0000-0000-0000-000000000002'''
\set u_editor    '''10000000-0000-0000-0000-000000000003'''
\set u_admin     '''10000000-0000-0000-0000-000000000004'''
\set u_viewer    '''10000000-0000-0000-0000-000000000005'''
\set u_stranger  '''10000000-0000-0000-0000-000000000006'''
\set u_sharee    '''10000000-0000-0000-0000-000000000007'''
\set u_asleep    '''10000000-0000-0000-0000-000000000008'''
\set u_t2admin   '''10000000-0000-0000-0000-000000000009'''
\set u_genowner  '''10000000-0000-0000-0000-00000000000a'''
\set u_multi     '''10000000-0000-0000-0000-00000000000b'''
\set u_missing   '''10000000-0000-0000-0000-0000000000ff'''
\set t1          '''20000000-0000-0000-0000-000000000001'''
\set t2          '''20000000-0000-0000-0000-000000000002'''
\set t3          '''20000000-0000-0000-0000-000000000003'''
\set t_missing   '''20000000-0000-0000-0000-0000000000ff'''
\set p_team      '''30000000-0000-0000-0000-000000000001'''
\set p_pub       '''30000000-0000-0000-0000-000000000002'''
\set p_priv      '''30000000-0000-0000-0000-000000000003'''
\set p_missing   '''30000000-0000-0000-0000-0000000000ff'''
\set g1          '''40000000-0000-0000-0000-000000000001'''
\set g2          '''40000000-0000-0000-0000-000000000002'''
\set g3          '''40000000-0000-0000-0000-000000000003'''
\set g4          '''40000000-0000-0000-0000-000000000004'''
\set g5          '''40000000-0000-0000-0000-000000000005'''
\set g6          '''40000000-0000-0000-0000-000000000006'''
\set g7          '''40000000-0000-0000-0000-000000000007'''
\set g_missing   '''40000000-0000-0000-0000-0000000000ff'''

-- ---------------------------------------------------------------------------------------------
-- Data, written as another system would: only DOMAIN.md's columns, no email, defaults relied on.
-- ---------------------------------------------------------------------------------------------
INSERT INTO users (id) VALUES (:u_owner), (:u_editor), (:u_admin), (:u_viewer), (:u_stranger),
    (:u_sharee), (:u_asleep), (:u_t2admin), (:u_genowner), (:u_multi);
INSERT INTO users (id, is_active) VALUES (:u_inactive, false);

-- Each team's owner becomes its 'owner' member through the V1 trigger.
INSERT INTO teams (id, owner_id) VALUES (:t1, :u_owner), (:t3, :u_owner);
INSERT INTO teams (id, owner_id, is_active) VALUES (:t2, :u_owner, false);
INSERT INTO team_members (team_id, user_id, role) VALUES
    (:t1, :u_editor, 'editor'), (:t1, :u_admin, 'admin'), (:t1, :u_viewer, 'viewer'),
    (:t1, :u_multi, 'viewer'), (:t3, :u_multi, 'admin'), (:t2, :u_t2admin, 'admin');
INSERT INTO team_members (team_id, user_id, role, is_active) VALUES (:t1, :u_asleep, 'viewer', false);

INSERT INTO projects (id, user_id, visibility) VALUES
    (:p_team, :u_owner, 'team-only'), (:p_pub, :u_owner, 'public');
INSERT INTO projects (id, user_id) VALUES (:p_priv, :u_owner);           -- default: private
INSERT INTO project_teams (project_id, team_id, access_level) VALUES
    (:p_team, :t1, 'write'), (:p_team, :t2, 'admin'), (:p_team, :t3, 'admin'),
    (:p_priv, :t1, 'admin');
INSERT INTO project_teams (project_id, team_id) VALUES (:p_pub, :t1);    -- default: read

INSERT INTO generations (id, user_id, project_id, status) VALUES
    (:g1, :u_owner,    :p_team, 'completed'),
    (:g2, :u_genowner, :p_pub,  'completed'),
    (:g3, :u_owner,    :p_pub,  'processing'),
    (:g4, :u_owner,    :p_priv, 'completed'),
    (:g5, :u_owner,    NULL,    'completed'),
    (:g6, :u_inactive, NULL,    'completed'),
    (:g7, :u_genowner, :p_priv, 'completed');

INSERT INTO generation_shares (generation_id, shared_with_user_id, permission_level, expires_at, is_active) VALUES
    -- g5 / sharee: two valid viewer shares (read until 07-01, download until 06-15), an edit
    -- share expiring exactly at now (so expired), an inactive edit share without expiry.
    (:g5, :u_sharee,   'read',     '2026-07-01 00:00:00+00', true),
    (:g5, :u_sharee,   'download', '2026-06-15 12:00:00+00', true),
    (:g5, :u_sharee,   'edit',     '2026-06-01 12:00:00+00', true),
    (:g5, :u_sharee,   'edit',     NULL,                     false),
    -- g4 / sharee: only an expired one.  g4 / stranger: only an inactive one.
    (:g4, :u_sharee,   'edit',     '2026-05-01 00:00:00+00', true),
    (:g4, :u_stranger, 'read',     NULL,                     false),
    -- g1 / sharee: edit and read, no expiry.  g1 / viewer (a T1 viewer): edit until year end.
    (:g1, :u_sharee,   'edit',     NULL,                     true),
    (:g1, :u_sharee,   'read',     NULL,                     true),
    (:g1, :u_viewer,   'edit',     '2026-12-31 00:00:00+00', true),
    -- g2 (public, completed) / sharee: download, no expiry.
    (:g2, :u_sharee,   'download', NULL,                     true);

-- ---------------------------------------------------------------------------------------------
-- Schema behaviour
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE results (n serial, label text, ok boolean, detail text) ON COMMIT DROP;

INSERT INTO results (label, ok, detail)
SELECT 'email defaults to <id>@users.invalid', email = id::text || '@users.invalid', email
  FROM users WHERE id = :u_owner;
INSERT INTO results (label, ok, detail)
SELECT 'team owner trigger: owner is an active owner member of t1, t2, t3',
       count(*) = 3, count(*)::text
  FROM team_members WHERE user_id = :u_owner AND role = 'owner' AND is_active;

-- ---------------------------------------------------------------------------------------------
-- Decisions. Columns: label, user, type, id, operation, now (NULL = the default instant),
-- then the expected granted, access_method, effective_role, reason, valid_until.
-- ---------------------------------------------------------------------------------------------
CREATE TEMP TABLE expected (
    n serial, label text, user_id uuid, rtype text, rid uuid, op text, at timestamptz,
    e_granted boolean, e_method text, e_role text, e_reason text, e_until timestamptz
) ON COMMIT DROP;

INSERT INTO expected (label, user_id, rtype, rid, op, at, e_granted, e_method, e_role, e_reason, e_until) VALUES
-- Generations: ownership.
('gen owner reads own',                       :u_owner,    'generation', :g1, 'read',     NULL, true,  'direct_owner',   'owner',  NULL, NULL),
('project owner administers another''s gen',  :u_owner,    'generation', :g2, 'admin',    NULL, true,  'project_owner',  'owner',  NULL, NULL),
('gen owner beats project owner',             :u_genowner, 'generation', :g2, 'admin',    NULL, true,  'direct_owner',   'owner',  NULL, NULL),
('owner of a gen without project',            :u_owner,    'generation', :g5, 'delete',   NULL, true,  'direct_owner',   'owner',  NULL, NULL),
('owner of own gen in private project',       :u_owner,    'generation', :g4, 'share',    NULL, true,  'direct_owner',   'owner',  NULL, NULL),
('project owner whatever the visibility',     :u_owner,    'generation', :g7, 'admin',    NULL, true,  'project_owner',  'owner',  NULL, NULL),
('team link on private project, other owner', :u_admin,    'generation', :g7, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
-- Generations: teams through the project (team-only p_team: t1 write, t2 admin (inactive), t3 admin).
('t1 editor writes (cap write)',              :u_editor,   'generation', :g1, 'write',    NULL, true,  'team_member',    'editor', NULL, NULL),
('t1 editor may not delete',                  :u_editor,   'generation', :g1, 'delete',   NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('t1 admin capped to editor by write link',   :u_admin,    'generation', :g1, 'delete',   NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('t1 admin writes as capped editor',          :u_admin,    'generation', :g1, 'write',    NULL, true,  'team_member',    'editor', NULL, NULL),
('best over teams: t3 admin beats t1 viewer', :u_multi,    'generation', :g1, 'delete',   NULL, true,  'team_member',    'admin',  NULL, NULL),
('admin role lacks admin op',                 :u_multi,    'generation', :g1, 'admin',    NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('inactive team grants nothing',              :u_t2admin,  'generation', :g1, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('inactive membership counts as nothing',     :u_asleep,   'generation', :g1, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('links of a private project count nothing',  :u_editor,   'generation', :g4, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('team access whatever the status',           :u_editor,   'generation', :g3, 'read',     NULL, true,  'team_member',    'viewer', NULL, NULL),
('gen without project: teams irrelevant',     :u_editor,   'generation', :g5, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
-- Generations: shares.
('two viewer shares: later expiry reported',  :u_sharee,   'generation', :g5, 'read',     NULL, true,  'explicit_share', 'viewer', NULL, '2026-07-01 00:00:00+00'),
('download share grants download',            :u_sharee,   'generation', :g5, 'download', NULL, true,  'explicit_share', 'viewer', NULL, '2026-06-15 12:00:00+00'),
('edit expiring exactly now is expired',      :u_sharee,   'generation', :g5, 'write',    NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('download share 1 us before expiry',         :u_sharee,   'generation', :g5, 'download', '2026-06-15 11:59:59.999999+00', true, 'explicit_share', 'viewer', NULL, '2026-06-15 12:00:00+00'),
('download share at expiry: read share only', :u_sharee,   'generation', :g5, 'download', '2026-06-15 12:00:00+00', false, NULL,    NULL,     'insufficient_role', NULL),
('read still valid after download expired',   :u_sharee,   'generation', :g5, 'read',     '2026-06-15 12:00:00+00', true,  'explicit_share', 'viewer', NULL, '2026-07-01 00:00:00+00'),
('all active shares expired',                 :u_sharee,   'generation', :g5, 'read',     '2026-07-02 00:00:00+00', false, NULL,    NULL,     'share_expired', NULL),
('only an expired share',                     :u_sharee,   'generation', :g4, 'read',     NULL, false, NULL,             NULL,     'share_expired', NULL),
('only an inactive share',                    :u_stranger, 'generation', :g4, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('edit beats read: strongest role reported',  :u_sharee,   'generation', :g1, 'read',     NULL, true,  'explicit_share', 'editor', NULL, NULL),
('edit share writes',                         :u_sharee,   'generation', :g1, 'write',    NULL, true,  'explicit_share', 'editor', NULL, NULL),
('edit share cannot delete',                  :u_sharee,   'generation', :g1, 'delete',   NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('team_member beats share',                   :u_viewer,   'generation', :g1, 'read',     NULL, true,  'team_member',    'viewer', NULL, NULL),
('share grants what team role does not',      :u_viewer,   'generation', :g1, 'write',    NULL, true,  'explicit_share', 'editor', NULL, '2026-12-31 00:00:00+00'),
('share beats public access',                 :u_sharee,   'generation', :g2, 'read',     NULL, true,  'explicit_share', 'viewer', NULL, NULL),
-- Generations: public.
('anyone reads a public completed gen',       :u_stranger, 'generation', :g2, 'read',     NULL, true,  'public_access',  'viewer', NULL, NULL),
('anonymous reads a public completed gen',    NULL,        'generation', :g2, 'read',     NULL, true,  'public_access',  'viewer', NULL, NULL),
('public is not a relationship',              :u_stranger, 'generation', :g2, 'write',    NULL, false, NULL,             NULL,     'no_relationship', NULL),
('anonymous may not download public',         NULL,        'generation', :g2, 'download', NULL, false, NULL,             NULL,     'anonymous_not_allowed', NULL),
('public but processing: not public',         NULL,        'generation', :g3, 'read',     NULL, false, NULL,             NULL,     'anonymous_not_allowed', NULL),
('stranger, public but processing',           :u_stranger, 'generation', :g3, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
-- Principal and resource checks, in that order.
('unknown user',                              :u_missing,  'generation', :g1, 'read',     NULL, false, NULL,             NULL,     'user_not_found', NULL),
('inactive user, even on own gen',            :u_inactive, 'generation', :g6, 'read',     NULL, false, NULL,             NULL,     'user_inactive', NULL),
('inactive user before missing resource',     :u_inactive, 'generation', :g_missing, 'read', NULL, false, NULL,          NULL,     'user_inactive', NULL),
('unknown user before missing resource',      :u_missing,  'project',    :p_missing, 'read', NULL, false, NULL,          NULL,     'user_not_found', NULL),
('missing generation',                        :u_owner,    'generation', :g_missing, 'read', NULL, false, NULL,          NULL,     'resource_not_found', NULL),
('anonymous, missing generation',             NULL,        'generation', :g_missing, 'read', NULL, false, NULL,          NULL,     'resource_not_found', NULL),
('missing project',                           :u_owner,    'project',    :p_missing, 'read', NULL, false, NULL,          NULL,     'resource_not_found', NULL),
('a team id is not a project',                :u_owner,    'project',    :t1,        'read', NULL, false, NULL,          NULL,     'resource_not_found', NULL),
-- Projects.
('project owner',                             :u_owner,    'project',    :p_team, 'admin',    NULL, true,  'direct_owner',   'owner',  NULL, NULL),
('t3 admin on team-only project',             :u_multi,    'project',    :p_team, 'share',    NULL, true,  'team_member',    'admin',  NULL, NULL),
('t1 editor on public project, cap read',     :u_editor,   'project',    :p_pub,  'read',     NULL, true,  'team_member',    'viewer', NULL, NULL),
('capped viewer cannot write public project', :u_editor,   'project',    :p_pub,  'write',    NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('stranger reads public project',             :u_stranger, 'project',    :p_pub,  'read',     NULL, true,  'public_access',  'viewer', NULL, NULL),
('stranger writes public project',            :u_stranger, 'project',    :p_pub,  'write',    NULL, false, NULL,             NULL,     'no_relationship', NULL),
('anonymous reads public project',            NULL,        'project',    :p_pub,  'read',     NULL, true,  'public_access',  'viewer', NULL, NULL),
('anonymous writes public project',           NULL,        'project',    :p_pub,  'write',    NULL, false, NULL,             NULL,     'anonymous_not_allowed', NULL),
('anonymous reads team-only project',         NULL,        'project',    :p_team, 'read',     NULL, false, NULL,             NULL,     'anonymous_not_allowed', NULL),
('team link on private project',              :u_editor,   'project',    :p_priv, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('shares do not reach projects',              :u_sharee,   'project',    :p_team, 'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
-- Teams.
('team owner member',                         :u_owner,    'team',       :t1,     'admin',    NULL, true,  'team_owner',     'owner',  NULL, NULL),
('team admin shares',                         :u_admin,    'team',       :t1,     'share',    NULL, true,  'team_member',    'admin',  NULL, NULL),
('team admin cannot administer',              :u_admin,    'team',       :t1,     'admin',    NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('team viewer cannot write',                  :u_viewer,   'team',       :t1,     'write',    NULL, false, NULL,             NULL,     'insufficient_role', NULL),
('team editor downloads',                     :u_editor,   'team',       :t1,     'download', NULL, true,  'team_member',    'editor', NULL, NULL),
('inactive membership of a team',             :u_asleep,   'team',       :t1,     'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('member of inactive team',                   :u_t2admin,  'team',       :t2,     'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('owner of inactive team',                    :u_owner,    'team',       :t2,     'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('stranger on a team',                        :u_stranger, 'team',       :t1,     'read',     NULL, false, NULL,             NULL,     'no_relationship', NULL),
('anonymous on a team',                       NULL,        'team',       :t1,     'read',     NULL, false, NULL,             NULL,     'anonymous_not_allowed', NULL),
('anonymous, missing team',                   NULL,        'team',       :t_missing, 'read',  NULL, false, NULL,             NULL,     'resource_not_found', NULL);

INSERT INTO results (label, ok, detail)
SELECT e.label,
       (d.granted, d.access_method, d.effective_role, d.reason, d.valid_until, d.revision)
         IS NOT DISTINCT FROM
       (e.e_granted, e.e_method, e.e_role, e.e_reason, e.e_until, (SELECT value FROM authz_revision WHERE id = 1)),
       format('%s %s %s %s: got %s/%s/%s/%s/%s r%s', coalesce(e.user_id::text, 'anonymous'),
              e.op, e.rtype, e.rid, d.granted, d.access_method, d.effective_role, d.reason,
              d.valid_until, d.revision)
  FROM expected e
  CROSS JOIN LATERAL check_user_authorization_enterprise(
      e.user_id, e.rtype, e.rid, e.op, coalesce(e.at, '2026-06-01 12:00:00+00')) AS d
 ORDER BY e.n;

-- The default p_now is now() (the transaction's start): the sharee's read share on g5 expires
-- 2026-07-01; the test only checks that the call works and is deterministic given the data.
INSERT INTO results (label, ok, detail)
SELECT 'default p_now works', d.granted IS NOT NULL, d.reason
  FROM check_user_authorization_enterprise(:u_owner, 'generation', :g1, 'read') AS d;

-- ---------------------------------------------------------------------------------------------
-- Invalid questions raise SQLSTATE 22023: never a deny, never a grant.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION pg_temp.raises_22023(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE p_sql;
    RETURN 'no error';
EXCEPTION WHEN SQLSTATE '22023' THEN
    RETURN '22023: ' || SQLERRM;
END;
$$;

INSERT INTO results (label, ok, detail)
SELECT label, r LIKE '22023:%', r
  FROM (VALUES
    ('invalid resource type',   pg_temp.raises_22023(format('SELECT * FROM check_user_authorization_enterprise(%L, %L, %L, %L)', :u_owner, 'folder', :g1, 'read'))),
    ('invalid operation',       pg_temp.raises_22023(format('SELECT * FROM check_user_authorization_enterprise(%L, %L, %L, %L)', :u_owner, 'generation', :g1, 'fly'))),
    ('operation is case-exact', pg_temp.raises_22023(format('SELECT * FROM check_user_authorization_enterprise(%L, %L, %L, %L)', :u_owner, 'generation', :g1, 'READ'))),
    ('null resource type',      pg_temp.raises_22023(format('SELECT * FROM check_user_authorization_enterprise(%L, NULL, %L, %L)', :u_owner, :g1, 'read'))),
    ('null operation',          pg_temp.raises_22023(format('SELECT * FROM check_user_authorization_enterprise(%L, %L, %L, NULL)', :u_owner, 'generation', :g1))),
    ('facts: invalid type',     pg_temp.raises_22023(format('SELECT authz_decision_facts(%L, %L, %L)', :u_owner, 'folder', :g1)))
  ) AS t(label, r);

-- ---------------------------------------------------------------------------------------------
-- Facts (the exact jsonb the Rust origin deserializes into authz_core::facts::Facts).
-- ---------------------------------------------------------------------------------------------
INSERT INTO results (label, ok, detail)
SELECT 'facts: generation (viewer on g1)', f = jsonb_build_object(
    'revision', (SELECT value FROM authz_revision WHERE id = 1),
    'user', '{"is_active": true}'::jsonb,
    'resource', jsonb_build_object(
        'type', 'generation', 'id', :g1, 'owner_id', :u_owner, 'status', 'completed',
        'project', jsonb_build_object(
            'id', :p_team, 'owner_id', :u_owner, 'visibility', 'team-only',
            'teams', jsonb_build_array(
                jsonb_build_object('team_id', :t1, 'access_level', 'write', 'team_is_active', true,
                                   'membership', '{"role": "viewer", "is_active": true}'::jsonb),
                jsonb_build_object('team_id', :t2, 'access_level', 'admin', 'team_is_active', false,
                                   'membership', NULL),
                jsonb_build_object('team_id', :t3, 'access_level', 'admin', 'team_is_active', true,
                                   'membership', NULL))),
        'shares', '[{"level": "edit", "expires_at": "2026-12-31T00:00:00.000000Z", "is_active": true}]'::jsonb)),
    f::text
  FROM authz_decision_facts(:u_viewer, 'generation', :g1) AS f;

INSERT INTO results (label, ok, detail)
SELECT 'facts: generation shares (sharee on g5), latest expiry first', f -> 'resource' -> 'shares' =
    '[{"level": "edit",     "expires_at": null,                          "is_active": false},
      {"level": "read",     "expires_at": "2026-07-01T00:00:00.000000Z", "is_active": true},
      {"level": "download", "expires_at": "2026-06-15T12:00:00.000000Z", "is_active": true},
      {"level": "edit",     "expires_at": "2026-06-01T12:00:00.000000Z", "is_active": true}]'::jsonb
    AND f -> 'resource' -> 'project' = 'null'::jsonb,
    f::text
  FROM authz_decision_facts(:u_sharee, 'generation', :g5) AS f;

INSERT INTO results (label, ok, detail)
SELECT 'facts: project, anonymous', f = jsonb_build_object(
    'revision', (SELECT value FROM authz_revision WHERE id = 1), 'user', NULL,
    'resource', jsonb_build_object(
        'type', 'project', 'id', :p_pub, 'owner_id', :u_owner, 'visibility', 'public',
        'teams', jsonb_build_array(jsonb_build_object(
            'team_id', :t1, 'access_level', 'read', 'team_is_active', true, 'membership', NULL)))),
    f::text
  FROM authz_decision_facts(NULL, 'project', :p_pub) AS f;

INSERT INTO results (label, ok, detail)
SELECT 'facts: team, inactive membership', f = jsonb_build_object(
    'revision', (SELECT value FROM authz_revision WHERE id = 1), 'user', '{"is_active": true}'::jsonb,
    'resource', jsonb_build_object(
        'type', 'team', 'id', :t1, 'owner_id', :u_owner, 'is_active', true,
        'membership', '{"role": "viewer", "is_active": false}'::jsonb)),
    f::text
  FROM authz_decision_facts(:u_asleep, 'team', :t1) AS f;

INSERT INTO results (label, ok, detail)
SELECT 'facts: unknown user, missing resource', f = jsonb_build_object(
    'revision', (SELECT value FROM authz_revision WHERE id = 1), 'user', NULL, 'resource', NULL),
    f::text
  FROM authz_decision_facts(:u_missing, 'generation', :g_missing) AS f;

-- ---------------------------------------------------------------------------------------------
-- Ownership transfer (V1): the new owner becomes an active 'owner' member, the old one 'admin'.
-- ---------------------------------------------------------------------------------------------
UPDATE team_members SET is_active = false WHERE team_id = :t3 AND user_id = :u_multi;
UPDATE teams SET owner_id = :u_multi WHERE id = :t3;
INSERT INTO results (label, ok, detail)
SELECT 'owner transfer: members of t3 after', s = 'multi:owner:t,owner:admin:t', s
  FROM (SELECT string_agg(CASE user_id WHEN :u_multi THEN 'multi' ELSE 'owner' END || ':' || role
                          || ':' || CASE WHEN is_active THEN 't' ELSE 'f' END, ',' ORDER BY role DESC) AS s
          FROM team_members WHERE team_id = :t3) AS x;
INSERT INTO results (label, ok, detail)
SELECT 'owner transfer: decisions follow', d1.access_method = 'team_owner' AND d2.effective_role = 'admin',
       d1.access_method || ' / ' || d2.effective_role
  FROM check_user_authorization_enterprise(:u_multi, 'team', :t3, 'admin', '2026-06-01 12:00:00+00') AS d1,
       check_user_authorization_enterprise(:u_owner, 'team', :t3, 'share', '2026-06-01 12:00:00+00') AS d2;

-- Cascades: deleting a project leaves its generations without project; deleting a user takes
-- their teams, projects, generations, memberships and shares (g2's share to the sharee stays:
-- neither g2 nor the sharee is deleted).
DELETE FROM projects WHERE id = :p_pub;
INSERT INTO results (label, ok, detail)
SELECT 'project delete sets generations.project_id null', count(*) = 2, count(*)::text
  FROM generations WHERE id IN (:g2, :g3) AND project_id IS NULL;
DELETE FROM users WHERE id = :u_owner;
INSERT INTO results (label, ok, detail)
SELECT 'user delete cascades',
       -- t3 survives: its ownership was transferred to u_multi above.
       (SELECT string_agg(id::text, ',') FROM teams WHERE id IN (:t1, :t2, :t3)) = :t3
       AND (SELECT count(*) FROM projects WHERE id IN (:p_team, :p_priv)) = 0
       AND (SELECT string_agg(id::text, ',' ORDER BY id) FROM generations
             WHERE id IN (:g1, :g2, :g3, :g4, :g5, :g6, :g7)) = concat_ws(',', :g2, :g6, :g7)
       AND (SELECT string_agg(user_id::text || ':' || role, ',') FROM team_members
             WHERE team_id IN (:t1, :t2, :t3)) = :u_multi || ':owner'
       AND (SELECT count(*) FROM generation_shares WHERE generation_id IN (:g1, :g2, :g3, :g4, :g5, :g6, :g7)) = 1,
       (SELECT string_agg(id::text, ',' ORDER BY id) FROM generations
         WHERE id IN (:g1, :g2, :g3, :g4, :g5, :g6, :g7)) || ' left';

-- ---------------------------------------------------------------------------------------------
-- Report
-- ---------------------------------------------------------------------------------------------
\pset format aligned
\pset tuples_only off
SELECT n, CASE WHEN ok THEN 'ok' ELSE 'FAIL' END AS result, label, detail FROM results ORDER BY n;
\pset tuples_only on
\pset format unaligned
SELECT 'smoke: ' || count(*) FILTER (WHERE ok) || ' passed, ' || count(*) FILTER (WHERE ok IS NOT TRUE) || ' failed'
  FROM results;
SELECT count(*) FILTER (WHERE ok IS NOT TRUE) > 0 AS failed FROM results \gset
ROLLBACK;
\if :failed
-- Make psql exit non-zero (ON_ERROR_STOP turns this error into exit status 3).
DO $$ BEGIN RAISE EXCEPTION 'smoke: some checks failed (see FAIL rows above)'; END $$;
\endif
