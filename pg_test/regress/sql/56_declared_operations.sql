-- 56_declared_operations: declared relations in operation. Who the check trigger checks as,
-- what graph() says about the triggers pg_uproot installs, who may drain an async relation,
-- and how pg_uproot leaves a database whose tables carry its triggers.
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

-- The check trigger keeps what it needs of a declaration (its columns, the parent, the
-- prepared lookup) per session, as PostgreSQL's foreign-key triggers do, and never uses it
-- stale: after each change below, the next row in this same session is checked as the first
-- one was, against the current columns and names. teams (in a schema of its own) <- members.
CREATE SCHEMA declared_ops_teams;
CREATE TABLE declared_ops_teams.teams (id int PRIMARY KEY, code text UNIQUE);
CREATE TABLE members (id int PRIMARY KEY, team_id int, team_code text);
CREATE INDEX ON members (team_id);
CREATE INDEX ON members (team_code);
INSERT INTO declared_ops_teams.teams VALUES (1, 'red'), (2, 'blue');
SELECT uproot.declare_relation('members_team', 'members', array['team_id'], 'declared_ops_teams.teams', array['id'],
                               'cascade', check_trigger => true);
INSERT INTO members VALUES (1, 1);
SELECT sql_state, message, detail FROM regress.error_of($$INSERT INTO members VALUES (2, 99)$$);
-- A child column renamed: the declaration names a column that is not there any more; renamed
-- back, the check is as before.
ALTER TABLE members RENAME COLUMN team_id TO team;
SELECT sql_state, message FROM regress.error_of($$INSERT INTO members VALUES (2, 1)$$);
ALTER TABLE members RENAME COLUMN team TO team_id;
INSERT INTO members VALUES (2, 1);
SELECT sql_state, message FROM regress.error_of($$INSERT INTO members VALUES (3, 99)$$);
-- The parent table renamed, then its schema: the detail names the parent as it is now called.
ALTER TABLE declared_ops_teams.teams RENAME TO squads;
SELECT sql_state, message, detail FROM regress.error_of($$INSERT INTO members VALUES (3, 99)$$);
INSERT INTO members VALUES (3, 2);
ALTER SCHEMA declared_ops_teams RENAME TO declared_ops_squads;
SELECT sql_state, message, detail FROM regress.error_of($$INSERT INTO members VALUES (4, 99)$$);
INSERT INTO members VALUES (4, 2);
-- The parent's owner changed: the lookup runs as the new owner, here one that revoked its own
-- privileges on the table (the lookup fails as the foreign key's would) ...
CREATE ROLE regress_uproot_squads_owner;
GRANT USAGE ON SCHEMA declared_ops_squads TO regress_uproot_squads_owner;
ALTER TABLE declared_ops_squads.squads OWNER TO regress_uproot_squads_owner;
REVOKE ALL ON declared_ops_squads.squads FROM regress_uproot_squads_owner;
SELECT sql_state, message FROM regress.error_of($$INSERT INTO members VALUES (5, 1)$$);
-- ... and as the owner it has again (a superuser) once the table is given back.
ALTER TABLE declared_ops_squads.squads OWNER TO CURRENT_USER;
INSERT INTO members VALUES (5, 1);
DROP OWNED BY regress_uproot_squads_owner;
DROP ROLE regress_uproot_squads_owner;
-- Declared again on other columns (the new declaration has a new trigger): team_code is
-- checked, team_id is not any more.
SELECT uproot.drop_relation('members_team');
SELECT uproot.declare_relation('members_team', 'members', array['team_code'], 'declared_ops_squads.squads', array['code'],
                               'cascade', check_trigger => true);
INSERT INTO members VALUES (6, 99, 'red');
SELECT sql_state, message, detail FROM regress.error_of($$INSERT INTO members VALUES (7, 1, 'green')$$);
-- The trigger depends on the columns it checks: they cannot be dropped (or change type) under
-- it, so a checked column keeps its attribute number while the trigger lives.
ALTER TABLE members DROP COLUMN team_code;
-- Another column added: the next row reads the declaration again, and a cancel there leaves
-- nothing behind.
ALTER TABLE members ADD COLUMN note text;
SET uproot.debug_fail_at = 'declared_check_build:cancel';
INSERT INTO members VALUES (7, 1, 'blue');
RESET uproot.debug_fail_at;
SELECT sql_state, message, detail FROM regress.error_of($$INSERT INTO members VALUES (7, 1, 'green')$$);
INSERT INTO members VALUES (7, 1, 'blue');
SELECT id, team_id, team_code FROM members ORDER BY id;
SELECT uproot.drop_relation('members_team');
DROP TABLE members;
DROP SCHEMA declared_ops_squads CASCADE;

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

-- 3. Who may drain. projects 3 and 4 are deleted; the keys wait in the queues of an async
-- cascade relation (audit_notes: the drain deletes) and an async set null one (ci_caches: the
-- drain sets project_id to NULL).
CREATE TABLE ci_caches (id int PRIMARY KEY, project_id int);
CREATE INDEX ON ci_caches (project_id);
SELECT uproot.declare_relation('notes_project', 'audit_notes', array['project_id'], 'projects', array['id'], 'async cascade');
SELECT uproot.declare_relation('caches_project', 'ci_caches', array['project_id'], 'projects', array['id'], 'async set null');
INSERT INTO projects VALUES (3, 'initech'), (4, 'umbrella');
INSERT INTO audit_notes VALUES (30, 3), (31, 3), (40, 4), (50, 1);
INSERT INTO ci_caches VALUES (30, 3), (40, 4), (50, 1);
DELETE FROM projects WHERE id IN (3, 4);
-- state(): the child rows and the queues.
CREATE FUNCTION state(OUT notes int[], OUT caches text, OUT queued text) LANGUAGE sql AS $$
  SELECT (SELECT array_agg(id ORDER BY id) FROM declared_ops.audit_notes),
         (SELECT string_agg(id || ':' || coalesce(project_id::text, 'NULL'), ' ' ORDER BY id) FROM declared_ops.ci_caches),
         (SELECT string_agg(relation || '=' || pending, ' ' ORDER BY relation) FROM uproot.async_lag())
$$;
SELECT * FROM state();

-- The least-privilege recipe for a role that drains: the schemas, and on the child table
-- SELECT and DELETE (async cascade) or SELECT and UPDATE (async set null). Nothing on the
-- parent, nothing on uproot's tables.
CREATE ROLE regress_uproot_drainer;
GRANT USAGE ON SCHEMA uproot, uproot_internal, declared_ops TO regress_uproot_drainer;
GRANT SELECT, DELETE ON audit_notes TO regress_uproot_drainer;
GRANT SELECT, UPDATE ON ci_caches TO regress_uproot_drainer;
-- A second role that may read the children, but neither delete nor update them.
CREATE ROLE regress_uproot_drain_other;
GRANT USAGE ON SCHEMA uproot, uproot_internal, declared_ops TO regress_uproot_drain_other;
GRANT SELECT ON audit_notes, ci_caches TO regress_uproot_drain_other;

-- The second role's drain fails before it takes a key: 42501, naming the table and the GRANT.
SET ROLE regress_uproot_drain_other;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('notes_project')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('caches_project')$$);
\x off
-- A drain job of its own fails the same way, and its run log says so.
SELECT name, action, relation FROM uproot.create_drain_job('other-notes', 'notes_project');
CALL uproot.run_job('other-notes');
SELECT job, batches, roots, stop_reason FROM uproot.job_runs WHERE job = 'other-notes';
SELECT uproot.drop_job('other-notes');
RESET ROLE;
-- Nothing changed, and every key is still queued.
SELECT * FROM state();

-- The drainer creates a drain job (one key per batch) and runs it; it drains the set null
-- relation by hand.
SET ROLE regress_uproot_drainer;
SELECT name, action, relation, batch_roots, created_by FROM uproot.create_drain_job('notes-drain', 'notes_project', batch_size => 1);
CALL uproot.run_job('notes-drain');
SELECT job, batches, roots, rows, stop_reason, run_by FROM uproot.job_runs ORDER BY run_id;
SELECT * FROM uproot.drain('caches_project');
RESET ROLE;
SELECT * FROM state();

-- Row-level security on the child that applies to the drainer would hide rows from the drain,
-- which would then unqueue their keys and leave them behind: the drain refuses instead.
ALTER TABLE audit_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_project_1 ON audit_notes USING (project_id = 1);
INSERT INTO projects VALUES (4, 'umbrella');
INSERT INTO audit_notes VALUES (41, 4);
DELETE FROM projects WHERE id = 4;
SET ROLE regress_uproot_drainer;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.drain('notes_project')$$);
\x off
RESET ROLE;
SELECT * FROM state();
-- The table's owner (here a superuser) is not subject to it, and drains.
SELECT * FROM uproot.drain('notes_project');
DROP POLICY only_project_1 ON audit_notes;
ALTER TABLE audit_notes DISABLE ROW LEVEL SECURITY;
SELECT * FROM uproot.drain('caches_project');
SELECT * FROM state();

-- The second role can neither run, change nor drop the drainer's job.
INSERT INTO projects VALUES (5, 'hooli');
INSERT INTO audit_notes VALUES (60, 5);
DELETE FROM projects WHERE id = 5;
SET ROLE regress_uproot_drain_other;
CALL uproot.run_job('notes-drain');
\x on
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('notes-drain', batch_roots => 100)$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot.drop_job('notes-drain')$$);
\x off
RESET ROLE;
SELECT name, batch_roots, created_by FROM uproot.jobs WHERE name = 'notes-drain';
SELECT * FROM state();
SET ROLE regress_uproot_drainer;
CALL uproot.run_job('notes-drain');
SELECT uproot.drop_job('notes-drain');
RESET ROLE;
SELECT * FROM state();

SELECT uproot.drop_relation(name) FROM unnest(array['builds_project', 'caches_project', 'notes_project']) AS name;
DROP SCHEMA declared_ops CASCADE;
RESET search_path;
REVOKE ALL ON SCHEMA uproot, uproot_internal FROM regress_uproot_drainer, regress_uproot_drain_other;
DROP ROLE regress_uproot_inserter, regress_uproot_drainer, regress_uproot_drain_other;

-- 4. Uninstalling pg_uproot from a database whose tables carry its triggers (in a database of
-- its own, since the extension goes).
SELECT current_database() AS home \gset
CREATE DATABASE regress_uproot_uninstall;
\c regress_uproot_uninstall
\set SHOW_CONTEXT never
CREATE EXTENSION pg_uproot;
CREATE TABLE projects (id int PRIMARY KEY);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE audit_notes (id int PRIMARY KEY, project_id int);
CREATE INDEX ON audit_notes (project_id);
INSERT INTO projects VALUES (1), (2);
INSERT INTO ci_builds VALUES (10, 1), (20, 2);
INSERT INTO audit_notes VALUES (10, 1), (20, 2);
-- declare(): a check trigger on ci_builds, a queue trigger on projects, a drain job, and a
-- key waiting in the queue.
CREATE FUNCTION declare() RETURNS void LANGUAGE sql AS $$
  SELECT uproot.declare_relation('builds_project', 'ci_builds', array['project_id'], 'projects', array['id'], 'cascade',
                                 check_trigger => true);
  SELECT uproot.declare_relation('notes_project', 'audit_notes', array['project_id'], 'projects', array['id'], 'async cascade');
  SELECT uproot.create_drain_job('notes-drain', 'notes_project');
  DELETE FROM public.projects WHERE id = 2;
  INSERT INTO public.projects VALUES (2);
$$;
SELECT declare();
-- what_is_left(): the extension, the triggers on the tables, and the tables' rows.
CREATE FUNCTION what_is_left(OUT extension bigint, OUT triggers text, OUT projects bigint, OUT builds bigint, OUT notes bigint)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'pg_uproot'),
         (SELECT coalesce(string_agg(tgname, ', ' ORDER BY tgname), '-') FROM pg_trigger WHERE NOT tgisinternal),
         (SELECT count(*) FROM public.projects), (SELECT count(*) FROM public.ci_builds), (SELECT count(*) FROM public.audit_notes)
$$;
SELECT * FROM what_is_left();
-- DROP EXTENSION without CASCADE is refused while the triggers are there: the error names
-- them and their relations, and says both ways out. Nothing changes.
\x on
SELECT * FROM regress.error_of('DROP EXTENSION pg_uproot');
\x off
SELECT * FROM what_is_left();
-- The clean way (README "Uninstalling"): drop the drain jobs, then the declared relations,
-- which removes their triggers; then the extension. The tables and their rows stay.
SELECT uproot.drop_job(name) FROM uproot.jobs WHERE action = 'drain' ORDER BY name;
SELECT uproot.drop_relation(name) FROM uproot.declared_relations ORDER BY name;
DROP EXTENSION pg_uproot;
SELECT * FROM what_is_left();
-- Or DROP EXTENSION ... CASCADE, which drops the triggers with the extension, and warns that
-- the keys still queued go with it. The tables and their rows stay here too.
CREATE EXTENSION pg_uproot;
SELECT declare();
SET client_min_messages = warning;  -- not the NOTICE that lists what CASCADE drops
DROP EXTENSION pg_uproot CASCADE;
RESET client_min_messages;
SELECT * FROM what_is_left();
-- A DELETE of projects works as before: no trigger is left that would call pg_uproot.
DELETE FROM projects WHERE id = 2 RETURNING id;
\c :home
DROP DATABASE regress_uproot_uninstall;
