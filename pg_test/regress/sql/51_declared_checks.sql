-- 51_declared_checks: what declare_relation checks, and the check trigger
-- A declaration is checked as PostgreSQL checks ALTER TABLE ... ADD FOREIGN KEY: both tables
-- exist and are tables, the caller owns the child and may REFERENCE the parent's columns, the
-- columns exist and pair up, the parent columns carry a unique constraint, and the types can be
-- compared. Each failure has its own SQLSTATE, names the table and column, and says what to do;
-- nothing is recorded when one fails.
--
-- A declared relation has no constraint, so nothing stops a concurrent (or any) insert of a
-- child row whose parent is gone. check_trigger => true closes that gap: a trigger on the
-- child checks each new or changed reference the way PostgreSQL's own foreign-key check does.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA declared_checks;
SET search_path = declared_checks;

CREATE TABLE projects (id int PRIMARY KEY, code text NOT NULL UNIQUE, name text);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int, project_code text, project_big bigint,
                        label text NOT NULL DEFAULT 'x');
CREATE INDEX ON ci_builds (project_id);
CREATE VIEW project_names AS SELECT id, name FROM projects;
INSERT INTO projects VALUES (1, 'a', 'alpha'), (2, 'b', 'beta');

\x on
-- The child or parent is not a table.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'project_names', array['id'], 'projects', array['id'], 'cascade')$$);
-- A column that does not exist (names are taken as spelled, without case folding).
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['Project_Id'], 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_id'], 'projects', array['ident'], 'cascade')$$);
-- Columns that do not pair up.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_id', 'project_code'], 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array[]::text[], 'projects', array[]::text[], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_id', 'project_id'], 'projects', array['id', 'code'], 'cascade')$$);
-- The parent columns have no unique constraint.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['label'], 'projects', array['name'], 'cascade')$$);
-- Types that cannot be compared.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_code'], 'projects', array['id'], 'cascade')$$);
-- 'set null' on a NOT NULL column.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['label'], 'projects', array['code'], 'set null')$$);
-- An unknown action, NULL arguments, a long name.
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_id'], 'projects', array['id'], 'delete')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', NULL, 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array[NULL], 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation(repeat('n', 51), 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade')$$);
-- Dropping a relation that was never declared.
SELECT * FROM regress.error_of($$SELECT uproot.drop_relation('no_such_relation')$$);
\x off
SELECT count(*) AS recorded FROM uproot.declared_relations;

-- What does pair up: int with bigint (the key's operator family compares them), text with a
-- UNIQUE text column, and an action spelled in capitals with extra spaces.
SELECT uproot.declare_relation('builds_project_big', 'ci_builds', array['project_big'], 'projects', array['id'], 'RESTRICT');
SELECT uproot.declare_relation('builds_project_code', 'ci_builds', array['project_code'], 'projects', array['code'], ' Set  Null ');
SELECT name, on_delete FROM uproot.declared_relations ORDER BY name;
SELECT child, parent, constraint_name, on_delete, disposition FROM uproot.graph('projects') ORDER BY constraint_name;
-- A name can be declared once.
\x on
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('builds_project_big', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade')$$);
\x off
SELECT uproot.drop_relation('builds_project_big');
SELECT uproot.drop_relation('builds_project_code');

-- Privileges: as for ADD FOREIGN KEY, the caller must own the child table and hold
-- REFERENCES on the parent's columns; uproot.declared_relations itself is read-only for them.
CREATE ROLE regress_uproot_declarer;
GRANT USAGE ON SCHEMA declared_checks TO regress_uproot_declarer;
CREATE TABLE their_builds (id int PRIMARY KEY, project_id int);
ALTER TABLE their_builds OWNER TO regress_uproot_declarer;
SET ROLE regress_uproot_declarer;
\x on
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_relation('r', 'their_builds', array['project_id'], 'projects', array['id'], 'cascade')$$);
SELECT * FROM regress.error_of($$INSERT INTO uproot.declared_relations (name, child, child_columns, parent, parent_columns, on_delete, declared_by)
                         VALUES ('r', 'their_builds', '{project_id}', 'projects', '{id}', 'cascade', 'me')$$);
\x off
RESET ROLE;
GRANT REFERENCES (id) ON projects TO regress_uproot_declarer;
SET ROLE regress_uproot_declarer;
SELECT uproot.declare_relation('their_builds_project', 'their_builds', array['project_id'], 'projects', array['id'], 'cascade');
SELECT name, child, declared_by FROM uproot.declared_relations ORDER BY name;
RESET ROLE;
-- Only the child's owner (or a superuser) drops it.
SELECT uproot.drop_relation('their_builds_project');
DROP TABLE their_builds;
REVOKE ALL ON projects FROM regress_uproot_declarer;
REVOKE ALL ON SCHEMA declared_checks FROM regress_uproot_declarer;
DROP ROLE regress_uproot_declarer;

-- The check trigger. Without it, a build may name a project that does not exist, and nothing
-- complains (the sweep of leftovers finds such rows later).
SELECT uproot.declare_relation('builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade',
                               check_trigger => true);
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'ci_builds'::regclass AND NOT tgisinternal ORDER BY tgname;
-- With it, a reference to a missing project fails as a foreign key would (23503); a NULL
-- reference is not checked (MATCH SIMPLE); good references pass.
INSERT INTO ci_builds (id, project_id) VALUES (10, 1), (11, NULL);
\x on
SELECT * FROM regress.error_of($$INSERT INTO ci_builds (id, project_id) VALUES (12, 99)$$);
SELECT * FROM regress.error_of($$UPDATE ci_builds SET project_id = 98 WHERE id = 10$$);
\x off
-- Changing another column does not check the reference again.
UPDATE ci_builds SET label = 'y' WHERE id = 10;
SELECT id, project_id, label FROM ci_builds ORDER BY id;
-- graph() does not warn about the check trigger as a user trigger: it fires on inserts and
-- changed references, not on the deletes of a purge (56_declared_operations shows what it costs).
SELECT child, constraint_name, warnings FROM uproot.graph('projects') ORDER BY constraint_name;
-- purge and archive go through the trigger too: restore puts parents back before the builds.
SELECT relation, action, rows FROM uproot.archive('projects', 1) ORDER BY relation::text;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT relation, rows FROM uproot.restore(:b) ORDER BY relation::text;
SELECT id, project_id FROM ci_builds ORDER BY id;
-- drop_relation removes the trigger with the declaration.
SELECT uproot.drop_relation('builds_project');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'ci_builds'::regclass AND NOT tgisinternal;

SELECT regress.drop_archives('declared_checks');
DROP SCHEMA declared_checks CASCADE;
RESET search_path;
