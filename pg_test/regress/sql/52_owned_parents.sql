-- 52_owned_parents: parents that go with the last row that references them
-- A deployment platform stores Release -> Config and Release -> Build as foreign keys on the
-- release, because configs and builds can be shared by several releases. Deleting a failed
-- release used to leave its config and build behind: a poisoned config stayed "latest".
-- uproot.declare_owned(child, via) says that the parent reached through `via` (a foreign key of
-- child, or a declared relation) is owned by the rows that reference it: when purge or archive
-- takes a release, each config or build that no remaining release references goes too, with
-- its own family. Shared ones stay.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA owned;
SET search_path = owned;

-- apps <- configs <- config_vars; apps <- builds; releases reference an app, a config and a
-- build. Config 11 is the poisoned one, used by the failed release 101 only; config 12 and
-- build 21 are shared by releases 102 and 103; build 20 by releases 100 and 101.
CREATE TABLE apps (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE configs (id int PRIMARY KEY, app_id int NOT NULL REFERENCES apps, body text);
CREATE TABLE config_vars (config_id int NOT NULL REFERENCES configs, k text, v text, PRIMARY KEY (config_id, k));
CREATE TABLE builds (id int PRIMARY KEY, app_id int NOT NULL REFERENCES apps, image text);
CREATE TABLE releases (id int PRIMARY KEY, app_id int NOT NULL REFERENCES apps,
                       config_id int NOT NULL REFERENCES configs, build_id int NOT NULL REFERENCES builds,
                       status text NOT NULL);
CREATE INDEX ON configs (app_id);
CREATE INDEX ON builds (app_id);
CREATE INDEX ON releases (app_id);
CREATE INDEX ON releases (config_id);
CREATE INDEX ON releases (build_id);
INSERT INTO apps VALUES (1, 'shop');
INSERT INTO configs VALUES (10, 1, 'v1'), (11, 1, 'v2, poisoned'), (12, 1, 'v3');
INSERT INTO config_vars VALUES (10, 'a', '1'), (11, 'a', '2'), (11, 'b', '2'), (12, 'a', '3');
INSERT INTO builds VALUES (20, 1, 'img:1'), (21, 1, 'img:2');
INSERT INTO releases VALUES (100, 1, 10, 20, 'ok'), (101, 1, 11, 20, 'failed'),
                            (102, 1, 12, 21, 'ok'), (103, 1, 12, 21, 'ok');

-- Without a declaration, purging the failed release leaves its config behind (preview shows
-- only the release).
SELECT relation, action, rows, via FROM uproot.preview('releases', 101) ORDER BY relation::text;

-- The release owns the config and the build it references.
SELECT uproot.declare_owned('releases', 'releases_config_id_fkey');
SELECT uproot.declare_owned('releases', 'releases_build_id_fkey');
SELECT child, via, declared_by FROM uproot.owned_parents ORDER BY child::text, via;

-- Now preview shows the owned parents that go: config 11 (nobody else uses it) with its own
-- family (its two config_vars), marked "(owned)" and "owned via" the foreign key. Build 20
-- stays: release 100 still uses it.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 101);
-- explain shows the statements that settle owned parents: finding them with the family (per
-- owned edge), and, after the family went, locking them and keeping those no row references
-- (only when some were found). Each that goes is then purged as a family of its own.
SELECT step, purpose FROM uproot.explain('releases', keys => 101) ORDER BY step;
SELECT step, purpose FROM uproot.explain('releases', keys => 101, operation => 'preview')
 WHERE purpose LIKE '%owned parents%' ORDER BY step;
-- purge takes exactly that.
SELECT relation, action, rows FROM uproot.purge('releases', 101);
SELECT id, body FROM configs ORDER BY id;
SELECT config_id, k FROM config_vars ORDER BY config_id, k;
SELECT id FROM builds ORDER BY id;

-- Shared owned parents stay: release 102 shares config 12 and build 21 with release 103.
SELECT relation, action, rows, via FROM uproot.preview('releases', 102);
-- Purging both at once takes them: no remaining release references them.
SELECT relation, action, rows, via FROM uproot.preview('releases', array[102, 103]);

-- Archive: the owned parents go into batches of their own, linked to the release's batch in
-- uproot.batch_owned. Release 102 alone takes nothing else; release 103 then takes config 12
-- (with its var) and build 21.
SELECT relation, action, rows FROM uproot.archive('releases', 102);
SELECT max(id) AS b102 FROM uproot.batches \gset
SELECT relation, action, rows, batch_id - :b102 AS batch_offset FROM uproot.archive('releases', 103)
 ORDER BY batch_offset, relation::text;
SELECT max(id) - 2 AS b103 FROM uproot.batches \gset
SELECT batch_id - :b103 AS batch, owned_batch - :b103 AS owned_batch FROM uproot.batch_owned
 WHERE batch_id >= :b103 ORDER BY 1, 2;
SELECT id FROM configs ORDER BY id;
SELECT id FROM builds ORDER BY id;
-- restore(release batch) brings the owned parents back first, then the release.
SELECT relation, action, rows FROM uproot.restore(:b103);
SELECT relation, action, rows FROM uproot.restore(:b102);
SELECT id, config_id, build_id FROM releases ORDER BY id;
SELECT config_id, k FROM config_vars ORDER BY config_id, k;

-- Purging the app takes every release, config and build anyway: they are its family. Owned
-- parents add nothing there (they are family rows already).
SELECT relation, action, rows FROM uproot.preview('apps', 1) ORDER BY relation::text;

-- A job archives whole families, owned parents included.
SELECT (uproot.create_job('old-releases', 'releases', $$status = 'ok' AND id >= 102$$)).name;
CALL uproot.run_job('old-releases');
SELECT rows FROM uproot.job_runs WHERE job = 'old-releases';
SELECT id FROM configs ORDER BY id;
SELECT uproot.drop_job('old-releases');

-- Owned through a declared relation: deployments reference an environment without a
-- constraint; the environment goes with its last deployment.
CREATE TABLE environments (id int PRIMARY KEY, name text);
CREATE TABLE deployments (id int PRIMARY KEY, env_id int, note text);
CREATE INDEX ON deployments (env_id);
SELECT uproot.declare_relation('deployments_env', 'deployments', array['env_id'], 'environments', array['id'], 'cascade');
SELECT uproot.declare_owned('deployments', 'deployments_env');
INSERT INTO environments VALUES (1, 'staging'), (2, 'prod');
INSERT INTO deployments VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 2, 'c');
SELECT relation, action, rows FROM uproot.purge_where('deployments', 'id IN (1, 2)');
SELECT id, name FROM environments ORDER BY id;

-- Families that overlap: preview counts what purge takes. A rollout references its settings and
-- a template; the settings reference the template too; an approval references both the rollout
-- and the settings. The rollout owns its settings and its template, the settings own theirs.
CREATE TABLE templates (id int PRIMARY KEY, body text);
CREATE TABLE settings (id int PRIMARY KEY, template_id int REFERENCES templates);
CREATE TABLE rollouts (id int PRIMARY KEY, settings_id int NOT NULL REFERENCES settings,
                       template_id int REFERENCES templates);
CREATE TABLE approvals (rollout_id int NOT NULL REFERENCES rollouts,
                        settings_id int NOT NULL REFERENCES settings, PRIMARY KEY (rollout_id, settings_id));
CREATE INDEX ON settings (template_id);
CREATE INDEX ON rollouts (settings_id);
CREATE INDEX ON rollouts (template_id);
CREATE INDEX ON approvals (settings_id);
SELECT uproot.declare_owned('rollouts', 'rollouts_settings_id_fkey');
SELECT uproot.declare_owned('rollouts', 'rollouts_template_id_fkey');
SELECT uproot.declare_owned('settings', 'settings_template_id_fkey');
INSERT INTO templates VALUES (7, 't');
INSERT INTO settings VALUES (5, 7);
INSERT INTO rollouts VALUES (1, 5, 7);
INSERT INTO approvals VALUES (1, 5);
-- Approval (1, 5) belongs to the rollout's family and to the settings' family: it is counted
-- once, with the rollout. Template 7 is referenced by the rollout and by settings 5, both
-- going: it goes too, once the settings are settled.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('rollouts', 1);
SELECT relation, action, rows FROM uproot.purge('rollouts', 1);
SELECT (SELECT count(*) FROM templates) AS templates, (SELECT count(*) FROM settings) AS settings,
       (SELECT count(*) FROM approvals) AS approvals;
SELECT uproot.drop_owned(child, via) FROM uproot.owned_parents
 WHERE child IN ('rollouts'::regclass, 'settings'::regclass) ORDER BY child::text, via;

-- What declare_owned checks: the relation exists on that child, both tables are the caller's,
-- the parent has a primary key, no self-reference, not declared twice.
\x on
SELECT * FROM regress.error_of($$SELECT uproot.declare_owned('releases', 'no_such_fkey')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_owned('releases', 'releases_config_id_fkey')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_owned('releases', NULL)$$);
SELECT * FROM regress.error_of($$SELECT uproot.drop_owned('configs', 'configs_app_id_fkey')$$);
\x off
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes);
CREATE TABLE tags (name text UNIQUE);
CREATE TABLE tagged (id int PRIMARY KEY, tag text REFERENCES tags (name));
\x on
SELECT * FROM regress.error_of($$SELECT uproot.declare_owned('nodes', 'nodes_parent_id_fkey')$$);
SELECT * FROM regress.error_of($$SELECT uproot.declare_owned('tagged', 'tagged_tag_fkey')$$);
\x off

-- drop_owned undoes it; dropping a declared relation drops what it owned.
SELECT uproot.drop_owned('releases', 'releases_build_id_fkey');
SELECT uproot.drop_relation('deployments_env');
SELECT child, via FROM uproot.owned_parents ORDER BY child::text, via;
SELECT uproot.drop_owned('releases', 'releases_config_id_fkey');

SELECT regress.drop_archives('owned');
DROP SCHEMA owned CASCADE;
RESET search_path;
