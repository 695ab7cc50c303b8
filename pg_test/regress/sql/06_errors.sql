-- 06_errors: bad input gets a clear error, and nothing changes
-- Every uproot error has a message starting with "uproot: ", a precise SQLSTATE and a hint.
-- After each error the table sizes are shown again: they never move.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA errors;
SET search_path = errors;

-- accounts <- projects <- tasks (CASCADE), plus a log table without a primary key.
CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE projects (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts);
CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects ON DELETE CASCADE);
CREATE TABLE audit (account_id int REFERENCES accounts, note text);
CREATE INDEX ON projects (account_id);
CREATE INDEX ON tasks (project_id);
CREATE INDEX ON audit (account_id);
INSERT INTO accounts SELECT a, 'account ' || a FROM generate_series(1, 4) a;
INSERT INTO projects SELECT 10 * a + n, a FROM generate_series(1, 4) a, generate_series(1, 2) n;
INSERT INTO tasks SELECT 10 * p + n, p FROM projects p(p), generate_series(1, 3) n;
INSERT INTO audit SELECT a, 'created' FROM generate_series(1, 4) a;
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('accounts=%s projects=%s tasks=%s audit=%s',
                (SELECT count(*) FROM accounts), (SELECT count(*) FROM projects),
                (SELECT count(*) FROM tasks), (SELECT count(*) FROM audit))
$$;
SELECT counts();

\x on

-- A root that does not exist: PostgreSQL itself rejects the name.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('no_such_table', 1)$$);
-- A root OID whose table was dropped: uproot says so (the message shows the OID).
CREATE TABLE gone (id int PRIMARY KEY);
SELECT 'gone'::regclass::oid AS gone_oid \gset
DROP TABLE gone;
SELECT sql_state, message LIKE 'uproot: relation with OID % does not exist' AS names_the_oid, hint
  FROM regress.error_of(format('SELECT * FROM uproot.purge(%s::regclass, 1)', :gone_oid));
-- A NULL root.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge(NULL, 1)$$);
SELECT counts();

-- A view is not a table.
CREATE VIEW account_names AS SELECT id, name FROM accounts;
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('account_names', 1)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.graph('account_names')$$);
SELECT counts();

-- A table without a primary key cannot be named by keys ...
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('audit', 1)$$);
SELECT counts();
-- ... but a predicate works.
SELECT relation, action, rows FROM uproot.purge_where('audit', 'account_id = 1');
SELECT counts();

-- Keys of the wrong type. A numeric key is refused rather than rounded: 2.5 is not 3.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', true)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2.5)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 'two'::text)$$);
SELECT counts();

-- A NULL key, and a NULL inside an array of keys, name no row: an error, not a no-op.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', NULL::int)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', array[1, NULL])$$);
SELECT counts();

-- Predicates must be exactly one boolean expression over the root's columns, checked with
-- PostgreSQL's own parser. A syntax error:
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = = 1')$$);
-- A ')' that would close uproot's parentheses early and widen the delete to every row:
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1) OR (true')$$);
-- A second statement:
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'true; DELETE FROM accounts')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1;')$$);
-- A trailing -- comment, which would swallow whatever uproot writes after the predicate:
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1 -- just this one')$$);
-- A query rather than an expression (FROM, UNION, ORDER BY, AS):
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'true FROM pg_class')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1 UNION SELECT true')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1 ORDER BY 1')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id = 1 AS x')$$);
-- An empty or NULL predicate:
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', '  ')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', NULL)$$);
-- A well-formed expression that PostgreSQL rejects keeps its SQLSTATE, named as the predicate's fault:
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'no_such_column = 1')$$);
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge_where('accounts', 'id')$$);
SELECT counts();
\x off

-- What is allowed: any one expression, including subqueries (a FROM inside parentheses)
-- and block comments.
SELECT relation, action, rows
  FROM uproot.preview_where('accounts', 'id IN (SELECT account_id FROM projects WHERE id = 21) /* one */')
 ORDER BY relation::text, action;

-- Privileges apply: uproot runs as the caller. This role may do everything but DELETE
-- from tasks. (The caller also needs USAGE on schema uproot.)
CREATE ROLE regress_uproot_clerk;
GRANT USAGE ON SCHEMA errors, uproot TO regress_uproot_clerk;
GRANT SELECT, UPDATE, DELETE ON accounts, projects, audit TO regress_uproot_clerk;
GRANT SELECT, UPDATE ON tasks TO regress_uproot_clerk;
SET ROLE regress_uproot_clerk;
-- preview only reads, so it works ...
SELECT relation, action, rows FROM uproot.preview('accounts', 2) ORDER BY relation::text, action;
-- ... purge needs DELETE on tasks: the error names the table, the hint the privilege.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2)$$);
\x off
RESET ROLE;
SELECT counts();
-- A family without tasks needs no DELETE on tasks.
INSERT INTO accounts VALUES (5, 'account 5');
INSERT INTO projects VALUES (51, 5);
SET ROLE regress_uproot_clerk;
SELECT relation, action, rows FROM uproot.purge('accounts', 5) ORDER BY relation::text, action;
RESET ROLE;
SELECT counts();

-- Row-level security: a child row the caller cannot see makes the purge fail; it is never
-- left behind as an orphan, nor deleted unseen. Hidden rows of projects (NO ACTION edge)
-- and of tasks (CASCADE edge), one case each.
GRANT DELETE ON tasks TO regress_uproot_clerk;
ALTER TABLE projects ADD COLUMN hidden bool NOT NULL DEFAULT false;
ALTER TABLE tasks ADD COLUMN hidden bool NOT NULL DEFAULT false;
ALTER TABLE projects ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
CREATE POLICY visible ON projects USING (NOT hidden);
CREATE POLICY visible ON tasks USING (NOT hidden);
UPDATE projects SET hidden = true WHERE id = 22;  -- account 2: a project it cannot see
UPDATE tasks SET hidden = true WHERE id = 312;    -- account 3: a task it cannot see
SET ROLE regress_uproot_clerk;
-- The NO ACTION edge: the hidden project of account 2.
SELECT message <> 'no error' AS failed FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2)$$);
-- The CASCADE edge: PostgreSQL's own cascade would delete the hidden task of account 3.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 3)$$);
\x off
RESET ROLE;
SELECT counts();
SELECT (SELECT count(*) FROM projects WHERE account_id = 2) AS projects_of_2,
       (SELECT count(*) FROM tasks WHERE project_id IN (31, 32)) AS tasks_of_3;
-- Without hidden rows the same role purges account 4.
SET ROLE regress_uproot_clerk;
SELECT relation, action, rows FROM uproot.purge('accounts', 4) ORDER BY relation::text, action;
RESET ROLE;
SELECT counts();
ALTER TABLE projects DISABLE ROW LEVEL SECURITY;
ALTER TABLE tasks DISABLE ROW LEVEL SECURITY;

-- respect_restrict meeting a NO ACTION edge with rows, and stop_at meeting an FK with rows:
-- errors naming the table, the constraint and the row count; nothing changes.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2, respect_restrict => true)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2, stop_at => array['projects']::regclass[])$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2, stop_at => array[NULL]::regclass[])$$);
\x off
SELECT counts();

DROP SCHEMA errors CASCADE;
REVOKE USAGE ON SCHEMA uproot FROM regress_uproot_clerk;
DROP ROLE regress_uproot_clerk;
RESET search_path;
