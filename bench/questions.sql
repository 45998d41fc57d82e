-- Questions sampled from a seeded database, one JSON body a line: owners, team members and
-- strangers, all operations. psql variables: owners, members, strangers (how many of each).
-- Used by scripts/bench-origin.sh and scripts/bench-writes.sh.
WITH owners AS (
  SELECT g.user_id AS u, g.id AS r FROM generations g ORDER BY md5(g.id::text) LIMIT :owners
), members AS (
  SELECT m.user_id AS u, g.id AS r FROM generations g
  JOIN project_teams pt ON pt.project_id = g.project_id
  JOIN team_members m ON m.team_id = pt.team_id ORDER BY md5(g.id::text || m.user_id::text) LIMIT :members
), strangers AS (
  SELECT u.id AS u, g.id AS r
  FROM (SELECT id, row_number() OVER (ORDER BY md5(id::text)) AS n FROM users LIMIT :strangers) u
  JOIN (SELECT id, row_number() OVER (ORDER BY md5(id::text || 'x')) AS n FROM generations LIMIT :strangers) g
    ON g.n = u.n
), pairs AS (SELECT * FROM owners UNION ALL SELECT * FROM members UNION ALL SELECT * FROM strangers)
SELECT json_build_object('user_id', u, 'resource_type', 'generation', 'resource_id', r,
       'operation', (ARRAY['read','download','write','delete','share','admin'])[1 + (abs(hashtext(u::text || r::text)) % 6)])
FROM pairs;
