-- 57_owned_parents_limits: owned parents (52_owned_parents) where their own family meets a
-- blocked edge, rows the caller cannot see, and erasing archived batches.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA owned_limits;
SET search_path = owned_limits;

-- configs <- config_vars (NO ACTION), configs <- config_locks (ON DELETE RESTRICT); releases
-- reference a config and own it. Each release below uses a config of its own:
-- release 10 -> config 1 (two vars), release 20 -> config 2 (a lock), release 30 -> config 3
-- (nothing references it but its release).
CREATE TABLE configs (id int PRIMARY KEY, body text);
CREATE TABLE config_vars (config_id int NOT NULL REFERENCES configs, k text, PRIMARY KEY (config_id, k));
CREATE TABLE config_locks (config_id int PRIMARY KEY REFERENCES configs ON DELETE RESTRICT, why text);
CREATE TABLE releases (id int PRIMARY KEY, config_id int NOT NULL REFERENCES configs, team text NOT NULL DEFAULT 'ops');
CREATE INDEX ON releases (config_id);
SELECT uproot.declare_owned('releases', 'releases_config_id_fkey');
INSERT INTO configs VALUES (1, 'one'), (2, 'two'), (3, 'three');
INSERT INTO config_vars VALUES (1, 'a'), (1, 'b');
INSERT INTO config_locks VALUES (2, 'pinned by ops');
INSERT INTO releases VALUES (10, 1), (20, 2), (30, 3);
CREATE FUNCTION counts() RETURNS text LANGUAGE sql AS $$
  SELECT format('releases %s, configs %s, config_vars %s, config_locks %s',
                (SELECT count(*) FROM releases), (SELECT count(*) FROM configs),
                (SELECT count(*) FROM config_vars), (SELECT count(*) FROM config_locks)) $$;

-- 1. Preview shows what purge does inside an owned parent's family: the same lines as for the
-- root's family, marked "(owned)".
-- An ON DELETE RESTRICT edge is followed by default (respect_restrict => false): preview lists
-- config 2's lock as deleted and names the constraint in a NOTICE, as for the root's family;
-- purge takes exactly that.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 20);
BEGIN;
SELECT relation, action, rows FROM uproot.purge('releases', 20);
ROLLBACK;
-- With respect_restrict => true, rows behind a RESTRICT or NO ACTION edge of the owned
-- parent's family block: preview shows them as "blocked" (release 10's own reference to
-- config 1 does not block: it goes first) ...
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 10, respect_restrict => true);
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 20, respect_restrict => true);
-- ... and purge fails on them, naming the table and the constraint; nothing changes.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('releases', 10, respect_restrict => true)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('releases', 20, respect_restrict => true)$$);
\x off
SELECT counts();
-- Config 3 has nothing behind it: preview shows no blocked line, and purge takes it.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 30, respect_restrict => true);
BEGIN;
SELECT relation, action, rows FROM uproot.purge('releases', 30, respect_restrict => true);
ROLLBACK;
-- stop_at inside the owned parent's family: config_vars referencing config 1 block it, in
-- preview and in purge alike.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 10, stop_at => '{config_vars}');
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('releases', 10, stop_at => '{config_vars}')$$);
\x off
-- stop_at naming the owned parent's table itself keeps the owned parents: preview and purge
-- take the release only.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 10, stop_at => '{configs}');
BEGIN;
SELECT relation, action, rows FROM uproot.purge('releases', 10, stop_at => '{configs}');
SELECT counts();
ROLLBACK;
-- explain shows every statement that settles owned parents: purge locks them after the
-- family went, then checks each owned edge into them for rows that still reference them;
-- preview checks the same edges, leaving out the rows it found so far (see part 3 for why as
-- the table's owner).
SELECT step, purpose FROM uproot.explain('releases', keys => 10, respect_restrict => true)
 WHERE purpose LIKE '%owned parents%' ORDER BY step;
SELECT step, purpose FROM uproot.explain('releases', keys => 10, respect_restrict => true, operation => 'preview')
 WHERE purpose LIKE '%owned parents%' ORDER BY step;

-- 3. Rows the caller cannot see still keep an owned parent. Release 40 and release 41 share
-- config 4; release 41 belongs to another team, and row-level security hides it from the
-- deployer role, even for the tables' owner (FORCE ROW LEVEL SECURITY).
INSERT INTO configs VALUES (4, 'shared');
INSERT INTO releases VALUES (40, 4, 'ops'), (41, 4, 'secret');
CREATE ROLE regress_owned_deployer;
GRANT USAGE ON SCHEMA owned_limits, uproot TO regress_owned_deployer;
GRANT SELECT, UPDATE, DELETE ON releases, configs, config_vars, config_locks TO regress_owned_deployer;
ALTER TABLE releases ENABLE ROW LEVEL SECURITY;
ALTER TABLE releases FORCE ROW LEVEL SECURITY;
CREATE POLICY own_team ON releases USING (team = 'ops');
SET ROLE regress_owned_deployer;
SELECT id, config_id FROM releases WHERE config_id = 4 ORDER BY id;
-- The check for remaining references runs as the owner of the referencing table without
-- row-level security, the way PostgreSQL's own foreign-key checks do: release 41 keeps
-- config 4, in preview and in purge. (Checking as the caller would find config 4 free, and
-- deleting it would then fail on the foreign key, or, through a declared relation, orphan
-- release 41.) Preview's NOTICE is about the family's own rows: it counts those the caller
-- can see.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 40);
SELECT relation, action, rows FROM uproot.purge('releases', 40);
RESET ROLE;
SELECT id, config_id, team FROM releases WHERE config_id = 4 ORDER BY id;
SELECT id FROM configs WHERE id = 4;

-- The same through a declared relation, where no constraint would stop the delete:
-- deployments reference an environment without a constraint and own it.
CREATE TABLE environments (id int PRIMARY KEY, name text);
CREATE TABLE deployments (id int PRIMARY KEY, env_id int, team text NOT NULL);
CREATE INDEX ON deployments (env_id);
SELECT uproot.declare_relation('deployments_env', 'deployments', array['env_id'], 'environments', array['id'], 'cascade');
SELECT uproot.declare_owned('deployments', 'deployments_env');
INSERT INTO environments VALUES (5, 'staging'), (6, 'scratch');
INSERT INTO deployments VALUES (50, 5, 'ops'), (51, 5, 'secret'), (60, 6, 'ops');
GRANT SELECT, UPDATE, DELETE ON environments, deployments TO regress_owned_deployer;
ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_team ON deployments USING (team = 'ops');
SET ROLE regress_owned_deployer;
-- Environment 5 stays for the hidden deployment 51; environment 6 goes with deployment 60.
SELECT depth, relation, action, rows, via, label FROM uproot.preview('deployments', array[50, 60]);
SELECT relation, action, rows FROM uproot.purge('deployments', array[50, 60]) ORDER BY relation::text;
RESET ROLE;
SELECT d.id, d.env_id, e.name FROM deployments d LEFT JOIN environments e ON e.id = d.env_id ORDER BY d.id;

-- A table the caller may not read at all counts the same way: pins reference configs and own
-- them too; the deployer has no privilege on pins. Config 7's pin keeps it.
CREATE TABLE pins (id int PRIMARY KEY, config_id int NOT NULL REFERENCES configs);
CREATE INDEX ON pins (config_id);
SELECT uproot.declare_owned('pins', 'pins_config_id_fkey');
INSERT INTO configs VALUES (7, 'pinned');
INSERT INTO releases VALUES (70, 7);
INSERT INTO pins VALUES (1, 7);
SET ROLE regress_owned_deployer;
SELECT depth, relation, action, rows, via, label FROM uproot.preview('releases', 70);
SELECT relation, action, rows FROM uproot.purge('releases', 70);
RESET ROLE;
SELECT id FROM configs WHERE id = 7;
DROP TABLE pins;

-- 4. drop_batch and the batches of owned parents. Archiving release 10 puts config 1 (with
-- its vars) in a batch of its own, linked to the release's batch.
SELECT relation, action, rows FROM uproot.archive('releases', 10) ORDER BY batch_id, relation::text;
SELECT max(id) - 1 AS b10 FROM uproot.batches \gset
SELECT batch_id - :b10 AS batch, owned_batch - :b10 AS owned_batch FROM uproot.batch_owned
 WHERE batch_id >= :b10 ORDER BY 1, 2;
-- Dropping the batch of the owned parents alone is refused: restoring the release's batch
-- later would bring back release 10 without its config.
\x on
SELECT sql_state, replace(replace(message, 'batch ' || (:b10 + 1), 'batch <owned>'), 'batch ' || :b10, 'batch <release>') AS message,
       replace(detail, 'batch ' || :b10, 'batch <release>') AS detail,
       replace(hint, :b10::text, '<release>') AS hint
  FROM regress.error_of(format('SELECT * FROM uproot.drop_batch(%s)', :b10 + 1));
SELECT count(*) AS batches_left FROM uproot.batches WHERE id >= :b10;
\x off
-- Dropping the release's batch drops the owned batch with it (the rows per relation, over
-- both batches).
SELECT relation, rows FROM uproot.drop_batch(:b10) ORDER BY relation::text;
SELECT count(*) AS batches_left FROM uproot.batches WHERE id >= :b10;

-- Once the owned parents are restored, they are live rows again: their emptied batch may be
-- dropped on its own, and restoring the release's batch later still finds its config.
SELECT relation, action, rows FROM uproot.archive('releases', 30) ORDER BY batch_id, relation::text;
SELECT max(id) - 1 AS b30 FROM uproot.batches \gset
SELECT relation, action, rows FROM uproot.restore(:b30 + 1);
SELECT relation, rows FROM uproot.drop_batch(:b30 + 1);
SELECT relation, action, rows FROM uproot.restore(:b30);
SELECT r.id, r.config_id, c.body FROM releases r JOIN configs c ON c.id = r.config_id WHERE r.id = 30;

-- drop_batches takes the batches of owned parents with the batches that owned them: a dry
-- run lists the owned batch of release 20's batch although only the release's batch is old
-- enough. (Archive dates both the same; the ledger is back-dated here by hand.)
SELECT relation, action, rows FROM uproot.archive('releases', 20) ORDER BY batch_id, relation::text;
SELECT max(id) - 1 AS b20 FROM uproot.batches \gset
UPDATE uproot.batches SET archived_at = archived_at - interval '2 days' WHERE id = :b20;
SELECT batch_id - :b20 AS batch, root, state, rows
  FROM uproot.drop_batches('1 day', dry_run => true) WHERE batch_id >= :b20 ORDER BY 1;
-- The other way round, an old batch of owned parents whose owning batch is not old enough and
-- still holds rows stays: the dry run lists nothing.
UPDATE uproot.batches SET archived_at = archived_at + interval '2 days' WHERE id = :b20;
UPDATE uproot.batches SET archived_at = archived_at - interval '2 days' WHERE id = :b20 + 1;
SELECT batch_id - :b20 AS batch, root, state, rows
  FROM uproot.drop_batches('1 day', dry_run => true) WHERE batch_id >= :b20 ORDER BY 1;
SELECT relation, action, rows FROM uproot.restore(:b20) ORDER BY relation::text;

RESET ROLE;
SELECT regress.drop_archives('owned_limits');
SELECT uproot.drop_relation('deployments_env');
SELECT uproot.drop_owned(child, via) FROM uproot.owned_parents
 WHERE child = 'releases'::regclass;
DROP SCHEMA owned_limits CASCADE;
REVOKE USAGE ON SCHEMA uproot FROM regress_owned_deployer;
DROP ROLE regress_owned_deployer;
RESET search_path;
