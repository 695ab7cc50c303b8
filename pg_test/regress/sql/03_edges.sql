-- 03_edges: what each ON DELETE action does, and the options that change it
--   CASCADE, NO ACTION, RESTRICT   followed: the referencing rows join the family
--   SET NULL, SET DEFAULT          detached: the referencing rows stay, their FK columns change
--   follow_set_null => true        follows SET NULL / SET DEFAULT edges instead
--   respect_restrict => true       NO ACTION / RESTRICT edges with rows are an error
--   stop_at => tables              never entered; rows there that reference the family are an error
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA edges;
SET search_path = edges;

-- One parent, one child table per ON DELETE action. Parent 0 is the SET DEFAULT target.
CREATE TABLE parents (id int PRIMARY KEY);
CREATE TABLE by_cascade    (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE CASCADE);
CREATE TABLE by_no_action  (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE NO ACTION);
CREATE TABLE by_restrict   (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE RESTRICT);
CREATE TABLE by_set_null   (id int PRIMARY KEY, parent_id int REFERENCES parents ON DELETE SET NULL);
CREATE TABLE by_set_default(id int PRIMARY KEY, parent_id int DEFAULT 0 REFERENCES parents ON DELETE SET DEFAULT);
-- A grandchild under the SET NULL child: it stays as long as its parent row stays.
CREATE TABLE under_set_null(id int PRIMARY KEY, set_null_id int REFERENCES by_set_null);
CREATE INDEX ON by_cascade (parent_id);
CREATE INDEX ON by_no_action (parent_id);
CREATE INDEX ON by_restrict (parent_id);
CREATE INDEX ON by_set_null (parent_id);
CREATE INDEX ON by_set_default (parent_id);
CREATE INDEX ON under_set_null (set_null_id);

-- Parents 1, 2, 3; each has two rows in every child table (ids 10p+1, 10p+2);
-- every SET NULL row has one grandchild.
INSERT INTO parents VALUES (0), (1), (2), (3);
INSERT INTO by_cascade     SELECT 10 * p + n, p FROM generate_series(1, 3) p, generate_series(1, 2) n;
INSERT INTO by_no_action   SELECT 10 * p + n, p FROM generate_series(1, 3) p, generate_series(1, 2) n;
INSERT INTO by_restrict    SELECT 10 * p + n, p FROM generate_series(1, 3) p, generate_series(1, 2) n;
INSERT INTO by_set_null    SELECT 10 * p + n, p FROM generate_series(1, 3) p, generate_series(1, 2) n;
INSERT INTO by_set_default SELECT 10 * p + n, p FROM generate_series(1, 3) p, generate_series(1, 2) n;
INSERT INTO under_set_null SELECT id, id FROM by_set_null;

-- graph(): every edge with its ON DELETE action and what uproot does with it.
-- under_set_null hangs below a detached table, so it is not part of the family.
SELECT depth, child, parent, on_delete, disposition
  FROM uproot.graph('parents')
 ORDER BY depth, child::text;

-- Purging parent 1: the followed children go with it; the SET NULL and SET DEFAULT rows
-- are kept and detached, 2 of each.
SELECT depth, relation, action, rows, via
  FROM uproot.preview('parents', 1)
 ORDER BY depth, relation::text, action;
SELECT relation, action, rows FROM uproot.purge('parents', 1) ORDER BY relation::text, action;

-- Parent 1's followed children are gone; its SET NULL rows now hold NULL, its SET DEFAULT
-- rows hold 0, exactly what PostgreSQL's own ON DELETE actions would have written. The
-- grandchildren of the detached rows stay. Parents 2 and 3 are untouched.
SELECT 'by_cascade' AS t, id, parent_id FROM by_cascade WHERE id < 20
UNION ALL SELECT 'by_no_action', id, parent_id FROM by_no_action WHERE id < 20
UNION ALL SELECT 'by_restrict', id, parent_id FROM by_restrict WHERE id < 20
UNION ALL SELECT 'by_set_null', id, parent_id FROM by_set_null WHERE id < 20
UNION ALL SELECT 'by_set_default', id, parent_id FROM by_set_default WHERE id < 20
UNION ALL SELECT 'under_set_null', id, set_null_id FROM under_set_null WHERE id < 20
ORDER BY 1, 2;
SELECT (SELECT count(*) FROM parents) AS parents, (SELECT count(*) FROM by_cascade) AS by_cascade,
       (SELECT count(*) FROM by_no_action) AS by_no_action, (SELECT count(*) FROM by_restrict) AS by_restrict,
       (SELECT count(*) FROM by_set_null) AS by_set_null, (SELECT count(*) FROM by_set_default) AS by_set_default,
       (SELECT count(*) FROM under_set_null) AS under_set_null;

-- follow_set_null => true follows SET NULL and SET DEFAULT edges: those rows are deleted,
-- and with them the grandchildren below the SET NULL rows.
SELECT depth, child, parent, on_delete, disposition
  FROM uproot.graph('parents', follow_set_null => true)
 ORDER BY depth, child::text;
SELECT relation, action, rows
  FROM uproot.purge('parents', 2, follow_set_null => true)
 ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM by_set_null WHERE id BETWEEN 21 AND 22) AS set_null_rows_of_2,
       (SELECT count(*) FROM by_set_default WHERE id BETWEEN 21 AND 22) AS set_default_rows_of_2,
       (SELECT count(*) FROM under_set_null WHERE id BETWEEN 21 AND 22) AS grandchildren_of_2;

-- respect_restrict => true: a NO ACTION or RESTRICT edge that has rows is an error naming
-- the table, the constraint and the number of rows, and nothing changes.
-- preview reports such rows as 'blocked' instead of failing.
SELECT depth, child, on_delete, disposition
  FROM uproot.graph('parents', respect_restrict => true)
 ORDER BY depth, child::text;
SELECT relation, action, rows
  FROM uproot.preview('parents', 3, respect_restrict => true)
 ORDER BY relation::text, action;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('parents', 3, respect_restrict => true)$$);
\x off
SELECT (SELECT count(*) FROM parents WHERE id = 3) AS parent_3, (SELECT count(*) FROM by_cascade WHERE parent_id = 3) AS its_cascade_rows;
-- Once the restricting rows are gone, the same call succeeds.
DELETE FROM by_no_action WHERE parent_id = 3;
DELETE FROM by_restrict WHERE parent_id = 3;
SELECT relation, action, rows
  FROM uproot.purge('parents', 3, respect_restrict => true)
 ORDER BY relation::text, action;

-- stop_at: a table that is never entered. Rows there that reference the family make the
-- operation fail; without such rows the rest of the family goes as usual.
INSERT INTO parents VALUES (4), (5);
INSERT INTO by_cascade VALUES (41, 4), (51, 5);
INSERT INTO by_no_action VALUES (42, 4);
SELECT depth, child, on_delete, disposition
  FROM uproot.graph('parents', stop_at => array['by_no_action']::regclass[])
 ORDER BY depth, child::text;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('parents', 4, stop_at => array['by_no_action']::regclass[])$$);
\x off
SELECT (SELECT count(*) FROM parents WHERE id = 4) AS parent_4, (SELECT count(*) FROM by_cascade WHERE parent_id = 4) AS its_cascade_rows;
-- Parent 5 has no by_no_action rows: the purge succeeds.
SELECT relation, action, rows
  FROM uproot.purge('parents', 5, stop_at => array['by_no_action']::regclass[])
 ORDER BY relation::text, action;

-- SET NULL (col) and SET DEFAULT (col) on a multi-column FK change only the listed column;
-- the tenant column stays. The result is compared with PostgreSQL's own DELETE on the same
-- data (every edge of this family does something PostgreSQL can do natively).
CREATE TABLE members (tenant_id int, id int, PRIMARY KEY (tenant_id, id));
CREATE TABLE posts (id int PRIMARY KEY, tenant_id int NOT NULL, author_id int,
                    FOREIGN KEY (tenant_id, author_id) REFERENCES members ON DELETE SET NULL (author_id));
CREATE TABLE badges (id int PRIMARY KEY, tenant_id int NOT NULL, member_id int DEFAULT 0,
                     FOREIGN KEY (tenant_id, member_id) REFERENCES members ON DELETE SET DEFAULT (member_id));
-- Without a column list, SET NULL nulls every FK column, the tenant too.
CREATE TABLE replies (id int PRIMARY KEY, tenant_id int, author_id int,
                      FOREIGN KEY (tenant_id, author_id) REFERENCES members ON DELETE SET NULL);
-- Member 0 of each tenant is the "nobody" that SET DEFAULT points to.
INSERT INTO members VALUES (1, 0), (1, 1), (1, 2), (2, 0), (2, 1);
INSERT INTO posts   VALUES (1, 1, 1), (2, 1, 1), (3, 1, 2), (4, 2, 1);
INSERT INTO badges  VALUES (1, 1, 1), (2, 1, 2), (3, 2, 1);
INSERT INTO replies VALUES (1, 1, 1), (2, 2, 1);
CREATE FUNCTION member_state() RETURNS text LANGUAGE sql AS $$
  SELECT concat_ws(' | ',
    (SELECT string_agg(format('(%s,%s)', tenant_id, id), ' ' ORDER BY tenant_id, id) FROM members),
    (SELECT string_agg(format('post %s:(%s,%s)', id, tenant_id, author_id), ' ' ORDER BY id) FROM posts),
    (SELECT string_agg(format('badge %s:(%s,%s)', id, tenant_id, member_id), ' ' ORDER BY id) FROM badges),
    (SELECT string_agg(format('reply %s:(%s,%s)', id, tenant_id, author_id), ' ' ORDER BY id) FROM replies))
$$;
-- What PostgreSQL itself does when member (1, 1) is deleted:
BEGIN;
DELETE FROM members WHERE tenant_id = 1 AND id = 1;
SELECT member_state() AS native_state \gset
ROLLBACK;
SELECT relation, action, rows
  FROM uproot.purge('members', '{"tenant_id": 1, "id": 1}'::jsonb)
 ORDER BY relation::text, action;
SELECT * FROM posts ORDER BY id;
SELECT * FROM badges ORDER BY id;
SELECT * FROM replies ORDER BY id;
SELECT member_state() = :'native_state' AS same_as_native_delete;

-- When PostgreSQL's own action would fail, the purge fails the same way and changes nothing:
-- SET NULL on a NOT NULL column, and SET DEFAULT to a default that references no row.
CREATE TABLE strict_posts (id int PRIMARY KEY, tenant_id int NOT NULL, author_id int NOT NULL,
                           FOREIGN KEY (tenant_id, author_id) REFERENCES members ON DELETE SET NULL);
INSERT INTO strict_posts VALUES (1, 1, 2);
\x on
SELECT * FROM regress.error_of($$DELETE FROM members WHERE tenant_id = 1 AND id = 2$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('members', '{"tenant_id": 1, "id": 2}'::jsonb)$$);
\x off
DROP TABLE strict_posts;
INSERT INTO members VALUES (3, 1);  -- tenant 3 has no member 0
INSERT INTO badges VALUES (4, 3, 1);
\x on
SELECT * FROM regress.error_of($$DELETE FROM members WHERE tenant_id = 3 AND id = 1$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('members', '{"tenant_id": 3, "id": 1}'::jsonb)$$);
\x off
SELECT member_state();

-- A family made only of CASCADE (and detach) edges may be deleted by PostgreSQL's own
-- cascade; the counts are exact all the same.
CREATE TABLE folders (id int PRIMARY KEY);
CREATE TABLE files (id int PRIMARY KEY, folder_id int NOT NULL REFERENCES folders ON DELETE CASCADE);
CREATE TABLE chunks (id int PRIMARY KEY, file_id int NOT NULL REFERENCES files ON DELETE CASCADE);
CREATE TABLE shortcuts (id int PRIMARY KEY, file_id int REFERENCES files ON DELETE SET NULL);
INSERT INTO folders VALUES (1), (2);
INSERT INTO files SELECT 10 * f + n, f FROM generate_series(1, 2) f, generate_series(1, 3) n;
INSERT INTO chunks SELECT 10 * id + n, id FROM files, generate_series(1, 4) n;
INSERT INTO shortcuts SELECT id, id FROM files;
SELECT relation, action, rows FROM uproot.preview('folders', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('folders', 1) ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM files) AS files, (SELECT count(*) FROM chunks) AS chunks,
       (SELECT count(*) FROM shortcuts WHERE file_id IS NULL) AS detached_shortcuts;

DROP SCHEMA edges CASCADE;
RESET search_path;
