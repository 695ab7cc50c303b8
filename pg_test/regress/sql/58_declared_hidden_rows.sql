-- 58_declared_hidden_rows: a declared relation never leaves an orphan behind, even when
-- row-level security hides some of its child rows from the caller.
--
-- pg_uproot collects a family as the caller, so rows a policy hides are not collected. A
-- foreign key still stops their parent's deletion (PostgreSQL's RI trigger runs as the table's
-- owner and sees them), but a declared relation has no constraint: pg_uproot checks it itself,
-- after the family statement, as the child's owner with row-level security off. A row that
-- still references a deleted key fails the operation with 42501, as hidden rows behind a foreign
-- key do, for every action, and nothing changes.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA declared_hidden;
SET search_path = declared_hidden;

-- projects, and three children that reference them through declared relations, one per
-- action. Each child row belongs to a team; the cleaner role sees only the team 'ops'.
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE builds (id int PRIMARY KEY, project_id int, team text NOT NULL);
CREATE TABLE notes (id int PRIMARY KEY, project_id int, team text NOT NULL);
CREATE TABLE pins (id int PRIMARY KEY, project_id int, team text NOT NULL);
CREATE INDEX ON builds (project_id);
CREATE INDEX ON notes (project_id);
CREATE INDEX ON pins (project_id);
SELECT uproot.declare_relation('builds_project', 'builds', array['project_id'], 'projects', array['id'], 'cascade');
SELECT uproot.declare_relation('notes_project', 'notes', array['project_id'], 'projects', array['id'], 'set null');
SELECT uproot.declare_relation('pins_project', 'pins', array['project_id'], 'projects', array['id'], 'restrict');
-- Project 1 has two builds the cleaner cannot see, project 2 a note, projects 3 and 5 a pin
-- (project 5 nothing else); project 4 has only rows the cleaner sees.
INSERT INTO projects VALUES (1, 'one'), (2, 'two'), (3, 'three'), (4, 'four'), (5, 'five');
INSERT INTO builds VALUES (10, 1, 'ops'), (11, 1, 'secret'), (12, 1, 'secret'), (20, 2, 'ops'), (40, 4, 'ops');
INSERT INTO notes VALUES (10, 1, 'ops'), (20, 2, 'ops'), (21, 2, 'secret'), (40, 4, 'ops');
INSERT INTO pins VALUES (30, 3, 'ops'), (31, 3, 'secret'), (40, 4, 'ops'), (51, 5, 'secret');
CREATE ROLE regress_hidden_cleaner;
-- pins belong to a role that is no superuser, and its policy binds even that owner (FORCE):
-- the check still sees every row, as PostgreSQL's own RI checks do.
CREATE ROLE regress_hidden_owner;
GRANT USAGE ON SCHEMA declared_hidden TO regress_hidden_owner;
ALTER TABLE pins OWNER TO regress_hidden_owner;
ALTER TABLE pins FORCE ROW LEVEL SECURITY;
GRANT USAGE ON SCHEMA declared_hidden, uproot TO regress_hidden_cleaner;
GRANT SELECT, INSERT, UPDATE, DELETE ON projects, builds, notes, pins TO regress_hidden_cleaner;
ALTER TABLE builds ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE pins ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_team ON builds USING (team = 'ops');
CREATE POLICY own_team ON notes USING (team = 'ops');
CREATE POLICY own_team ON pins USING (team = 'ops');
-- The archive tables exist (prepared by the owner), so that the cleaner may archive too.
SELECT source, action FROM uproot.prepare_archive('projects') ORDER BY source::text;
-- Every row, as the owner sees them: after each failure below, the same.
CREATE FUNCTION all_rows() RETURNS text LANGUAGE sql AS $$
  SELECT format('projects %s; builds %s; notes %s; pins %s',
                (SELECT string_agg(id::text, ',' ORDER BY id) FROM projects),
                (SELECT string_agg(id || '->' || coalesce(project_id::text, 'NULL'), ',' ORDER BY id) FROM builds),
                (SELECT string_agg(id || '->' || coalesce(project_id::text, 'NULL'), ',' ORDER BY id) FROM notes),
                (SELECT string_agg(id || '->' || coalesce(project_id::text, 'NULL'), ',' ORDER BY id) FROM pins)) $$;
SELECT all_rows();

-- 1. Preview counts only the rows the cleaner sees, and says so for each child with row-level
-- security: purge would fail if rows it cannot see reference the family.
SET ROLE regress_hidden_cleaner;
SELECT depth, relation, action, rows, via FROM uproot.preview('projects', 1);

-- 2. Purge and archive fail on rows hidden from the caller, naming the declared relation and
-- the child, with the number of rows and the first key. cascade: builds 11 and 12 ...
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 1)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('projects', 1)$$);
-- ... set null: note 21 (setting it to NULL would change a row the caller cannot see;
-- leaving it would leave it referencing project 2) ...
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 2)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('projects', 2)$$);
-- ... restrict: pin 31, followed (by default) ...
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 3)$$);
-- ... or blocking (respect_restrict => true): the caller's own count of blocking rows finds
-- only those it sees (pin 30 for project 3), none for project 5, so the check is what stops
-- that purge.
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 3, respect_restrict => true)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 5, respect_restrict => true)$$);
-- Several roots at once: the first relation with such rows is named.
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('projects', 'id <= 3')$$);
-- The check needs the owner to read its table, as PostgreSQL's own foreign-key checks do: an
-- owner without USAGE on its schema fails it (as a foreign key's check would fail).
RESET ROLE;
REVOKE USAGE ON SCHEMA declared_hidden FROM regress_hidden_owner;
SET ROLE regress_hidden_cleaner;
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 5)$$);
RESET ROLE;
GRANT USAGE ON SCHEMA declared_hidden TO regress_hidden_owner;
\x off
-- Nothing changed: the visible builds, notes and pins of projects 1 to 3 are still there too,
-- and no archive batch was recorded.
SELECT all_rows();
SELECT count(*) AS batches FROM uproot.batches WHERE root = 'declared_hidden.projects'::regclass;

-- 3. Where the cleaner sees every row that references the family, purge and archive work:
-- project 4's rows are all its own team's.
SET ROLE regress_hidden_cleaner;
SELECT relation, action, rows FROM uproot.archive('projects', 4) ORDER BY relation::text;
RESET ROLE;
SELECT all_rows();
-- A role that sees every row (here a superuser, who owns builds) purges project 1 with its
-- hidden builds.
BEGIN;
SELECT relation, action, rows FROM uproot.purge('projects', 1) ORDER BY relation::text;
SELECT all_rows();
ROLLBACK;
-- So does a policy that lets the cleaner see them.
CREATE POLICY cleaner_sees_all ON builds TO regress_hidden_cleaner USING (true);
SET ROLE regress_hidden_cleaner;
BEGIN;
SELECT relation, action, rows FROM uproot.purge('projects', 1) ORDER BY relation::text;
ROLLBACK;
RESET ROLE;
DROP POLICY cleaner_sees_all ON builds;

-- 4. explain shows the check, for the caller it applies to: the keys the family statement
-- deletes are read before it, and each declared relation whose child hides rows is checked
-- after it, as the child's owner. For a superuser, to whom no policy applies, there is no
-- such step (and no extra cost).
SET ROLE regress_hidden_cleaner;
SELECT step, purpose FROM uproot.explain('projects', keys => 1)
 WHERE purpose LIKE '(only when row-level security%' ORDER BY step;
SELECT statement FROM uproot.explain('projects', keys => 1)
 WHERE purpose LIKE '(only when row-level security%' ORDER BY step LIMIT 2;
RESET ROLE;
SELECT count(*) AS checks_for_the_owner FROM uproot.explain('projects', keys => 1)
 WHERE purpose LIKE '(only when row-level security%';

-- A relation of several columns, of other types than the key's (compared with the key's own
-- equality operators), shows the whole key, as PostgreSQL does.
CREATE TABLE sites (country text, code int, PRIMARY KEY (country, code));
CREATE TABLE visits (id int PRIMARY KEY, site_country text, site_code bigint, team text NOT NULL);
CREATE INDEX ON visits (site_country, site_code);
SELECT uproot.declare_relation('visits_site', 'visits', array['site_country', 'site_code'], 'sites', array['country', 'code'], 'cascade');
INSERT INTO sites VALUES ('fr', 1), ('fr', 2);
INSERT INTO visits VALUES (1, 'fr', 1, 'ops'), (2, 'fr', 2, 'secret'), (3, 'fr', 2, 'secret');
GRANT SELECT, UPDATE, DELETE ON sites, visits TO regress_hidden_cleaner;
ALTER TABLE visits ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_team ON visits USING (team = 'ops');
SET ROLE regress_hidden_cleaner;
SELECT sql_state, message, detail FROM regress.error_of($$SELECT * FROM uproot.purge_where('sites', 'true')$$) \gx
RESET ROLE;
SELECT (SELECT count(*) FROM sites) AS sites, (SELECT count(*) FROM visits) AS visits;

-- 5. The same with real foreign keys, for comparison. PostgreSQL's own RI triggers see the
-- hidden rows, so these purges fail too (pg_uproot reports them as 42501: its statistics
-- counters catch PostgreSQL's cascade or SET NULL changing rows the caller cannot see, and a
-- NO ACTION key's own 23503 is reported as a hidden row).
CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE invoices (id int PRIMARY KEY, account_id int REFERENCES accounts ON DELETE CASCADE, team text NOT NULL);
CREATE TABLE tickets (id int PRIMARY KEY, account_id int REFERENCES accounts ON DELETE SET NULL, team text NOT NULL);
CREATE TABLE audits (id int PRIMARY KEY, account_id int REFERENCES accounts, team text NOT NULL);
INSERT INTO accounts VALUES (1), (2), (3);
INSERT INTO invoices VALUES (1, 1, 'secret');
INSERT INTO tickets VALUES (2, 2, 'secret');
INSERT INTO audits VALUES (3, 3, 'secret');
GRANT SELECT, UPDATE, DELETE ON accounts, invoices, tickets, audits TO regress_hidden_cleaner;
ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE audits ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_team ON invoices USING (team = 'ops');
CREATE POLICY own_team ON tickets USING (team = 'ops');
CREATE POLICY own_team ON audits USING (team = 'ops');
SET ROLE regress_hidden_cleaner;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 1)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 2)$$);
SELECT sql_state, message, hint FROM regress.error_of($$SELECT * FROM uproot.purge('accounts', 3)$$);
\x off
RESET ROLE;
SELECT (SELECT count(*) FROM accounts) AS accounts, (SELECT count(*) FROM invoices) AS invoices,
       (SELECT count(*) FROM tickets WHERE account_id IS NOT NULL) AS tickets_attached,
       (SELECT count(*) FROM audits) AS audits;

RESET ROLE;
SELECT regress.drop_archives('declared_hidden');
SELECT uproot.drop_relation(r) FROM unnest(array['builds_project', 'notes_project', 'pins_project', 'visits_site']) r;
DROP SCHEMA declared_hidden CASCADE;
REVOKE USAGE ON SCHEMA uproot FROM regress_hidden_cleaner;
DROP ROLE regress_hidden_cleaner, regress_hidden_owner;
RESET search_path;
