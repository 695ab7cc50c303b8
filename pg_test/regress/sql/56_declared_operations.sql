-- 56_declared_operations: declared relations in operation. Who the check trigger checks as,
-- and what graph() says about the triggers pg_uproot installs.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
-- no CONTEXT lines: they would print line numbers of the job functions' bodies
\set SHOW_CONTEXT never
CREATE SCHEMA declared_ops;
SET search_path = declared_ops;

-- projects <- ci_builds (declared, with the check trigger), and ci_jobs with a real foreign
-- key, to compare with what PostgreSQL does.
CREATE TABLE projects (id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE ci_jobs (id int PRIMARY KEY, project_id int REFERENCES projects);
CREATE INDEX ON ci_jobs (project_id);
INSERT INTO projects VALUES (1, 'acme'), (2, 'globex');
SELECT uproot.declare_relation('builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade',
                               check_trigger => true);

-- 1. The check trigger checks as the owner of the parent table, as PostgreSQL's foreign-key
-- checks do. A role that may only insert builds (no privilege at all on projects) ...
CREATE ROLE regress_uproot_inserter;
GRANT USAGE ON SCHEMA declared_ops TO regress_uproot_inserter;
GRANT INSERT ON ci_builds, ci_jobs TO regress_uproot_inserter;
-- ... and row-level security on projects that would hide every row, even from its owner (a
-- role of its own: a superuser would bypass it).
CREATE ROLE regress_uproot_projects_owner;
GRANT USAGE ON SCHEMA declared_ops TO regress_uproot_projects_owner;
ALTER TABLE projects OWNER TO regress_uproot_projects_owner;
ALTER TABLE projects ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY nobody ON projects USING (false);
SET ROLE regress_uproot_inserter;
SELECT sql_state, message FROM regress.error_of($$SELECT count(*) FROM projects$$);
-- A build of an existing project is accepted, as a job is through the foreign key ...
INSERT INTO ci_builds VALUES (10, 1);
INSERT INTO ci_jobs VALUES (10, 1);
-- ... and one of a missing project fails with 23503, as the foreign key's does.
\x on
SELECT * FROM regress.error_of($$INSERT INTO ci_builds VALUES (11, 99)$$);
SELECT * FROM regress.error_of($$INSERT INTO ci_jobs VALUES (11, 99)$$);
\x off
-- The check ran as the owner only for its lookup: the role is the inserter again.
SELECT current_user;
RESET ROLE;
SELECT 'builds' AS t, array_agg(id ORDER BY id) AS ids FROM ci_builds
UNION ALL SELECT 'jobs', array_agg(id ORDER BY id) FROM ci_jobs;
-- An error in the middle of a statement also restores the role: the second row fails after
-- the first was checked, and the next statement runs as the inserter.
SET ROLE regress_uproot_inserter;
SELECT sql_state, message FROM regress.error_of($$INSERT INTO ci_builds VALUES (12, 2), (13, 98)$$);
SELECT current_user;
RESET ROLE;
DROP POLICY nobody ON projects;
ALTER TABLE projects DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY;
ALTER TABLE projects OWNER TO CURRENT_USER;
REVOKE ALL ON SCHEMA declared_ops FROM regress_uproot_projects_owner;
DROP ROLE regress_uproot_projects_owner;

-- A partitioned child: the trigger is cloned to each partition, and checks there too.
CREATE TABLE ci_artifacts (id int, project_id int) PARTITION BY RANGE (id);
CREATE TABLE ci_artifacts_low PARTITION OF ci_artifacts FOR VALUES FROM (0) TO (100);
CREATE INDEX ON ci_artifacts (project_id);
SELECT uproot.declare_relation('artifacts_project', 'ci_artifacts', array['project_id'], 'projects', array['id'], 'cascade',
                               check_trigger => true);
INSERT INTO ci_artifacts VALUES (1, 1);
\x on
SELECT * FROM regress.error_of($$INSERT INTO ci_artifacts VALUES (2, 99)$$);
\x off
SELECT uproot.drop_relation('artifacts_project');
DROP TABLE ci_artifacts;

-- 2. graph() and the triggers pg_uproot installs. An async relation puts a statement-level
-- queue trigger on projects; the check trigger of builds_project is on ci_builds.
CREATE TABLE audit_notes (id int PRIMARY KEY, project_id int);
CREATE INDEX ON audit_notes (project_id);
SELECT uproot.declare_relation('notes_project', 'audit_notes', array['project_id'], 'projects', array['id'], 'async cascade');
SELECT tgrelid::regclass AS "table", tgname, tgtype & 1 = 1 AS for_each_row FROM pg_trigger
 WHERE tgrelid IN ('projects'::regclass, 'ci_builds'::regclass) AND NOT tgisinternal ORDER BY 1, 2;
-- Neither fires per deleted row, so graph() does not warn about them as it does about user
-- triggers. What they do cost: a purge of projects leaves the check of ci_jobs's foreign key
-- to PostgreSQL's per-row triggers (see README "How purge checks foreign keys"), and graph()
-- says so on the rows of the tables that carry them.
SELECT depth, child, constraint_name, disposition, warnings FROM uproot.graph('projects')
 ORDER BY depth, constraint_name;
SELECT EXISTS (SELECT FROM uproot.explain('projects') WHERE purpose LIKE '%(set-based check)%') AS set_based_check;
-- A trigger of the user's own on ci_builds is named as one that fires for every row.
CREATE FUNCTION note_build() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER note_build AFTER DELETE ON ci_builds FOR EACH ROW EXECUTE FUNCTION note_build();
SELECT child, warnings FROM uproot.graph('projects') WHERE child = 'ci_builds'::regclass;
DROP TRIGGER note_build ON ci_builds;
-- Without the async relation and the check trigger, the purge checks in one statement, and
-- graph() has nothing to say.
SELECT uproot.drop_relation('notes_project');
SELECT uproot.drop_relation('builds_project');
SELECT uproot.declare_relation('builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade');
SELECT depth, child, warnings FROM uproot.graph('projects') ORDER BY depth, constraint_name;
SELECT EXISTS (SELECT FROM uproot.explain('projects') WHERE purpose LIKE '%(set-based check)%') AS set_based_check;


SELECT uproot.drop_relation('builds_project');
DROP SCHEMA declared_ops CASCADE;
RESET search_path;
DROP ROLE regress_uproot_inserter;
