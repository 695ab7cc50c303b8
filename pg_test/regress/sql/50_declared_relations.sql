-- 50_declared_relations: relations the schema does not declare ("loose foreign keys")
-- Some references have no constraint: the child lives in a table that cannot carry one, or
-- the application declared the relation and never the database. uproot.declare_relation()
-- records such a relation in uproot.declared_relations, and from then on graph, preview,
-- purge, archive, restore and jobs follow it like a foreign key with the same ON DELETE
-- action. Its edges are marked "(declared)" wherever a constraint name would appear.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SET uproot.debug_check_explain = on;
CREATE SCHEMA declared;
SET search_path = declared;

-- projects <- ci_builds (no constraint) <- build_logs (a real FK), and ci_pipelines whose
-- project_id references projects without a constraint either.
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int, status text NOT NULL);
CREATE INDEX ON ci_builds (project_id);
CREATE TABLE build_logs (id int PRIMARY KEY, build_id int NOT NULL REFERENCES ci_builds, line text);
CREATE INDEX ON build_logs (build_id);
CREATE TABLE ci_pipelines (id int PRIMARY KEY, project_id int, note text);
INSERT INTO projects VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma');
INSERT INTO ci_builds VALUES (10, 1, 'ok'), (11, 1, 'failed'), (20, 2, 'ok'), (30, 3, 'ok');
INSERT INTO build_logs VALUES (100, 10, 'start'), (101, 10, 'end'), (110, 11, 'start'), (200, 20, 'start');
INSERT INTO ci_pipelines VALUES (1000, 1, 'main'), (2000, 2, 'main');

-- Without a declaration, pg_uproot knows nothing of the builds: the family of a project is
-- the project alone.
SELECT depth, child, parent, constraint_name FROM uproot.graph('projects') ORDER BY depth, child::text;

-- Declare: child table and columns, parent table and columns, and what deleting a parent
-- does. 'cascade' follows the edge: the builds go with their project.
SELECT uproot.declare_relation('ci_builds_project', 'ci_builds', array['project_id'],
                               'projects', array['id'], 'cascade');
-- The declaration is a row of uproot.declared_relations (readable by everyone, written only
-- through these functions; pg_dump keeps it).
SELECT name, child, child_columns, parent, parent_columns, on_delete, check_trigger, declared_by
  FROM uproot.declared_relations ORDER BY name;

-- The declared edge shows in graph(), marked as declared, with its action; the real FK below
-- it is followed as before. The cached catalog was reloaded when the relation was declared.
SELECT depth, child, parent, constraint_name, on_delete, disposition, indexed
  FROM uproot.graph('projects') ORDER BY depth, child::text;

-- preview names the declared edge in "via".
SELECT depth, relation, action, rows, via, label FROM uproot.preview('projects', 1) ORDER BY depth, relation::text;

-- purge deletes the family through the declared edge, and returns what preview announced.
SELECT relation, action, rows FROM uproot.purge('projects', 1) ORDER BY relation::text, action;
SELECT id, project_id FROM ci_builds ORDER BY id;
SELECT id, build_id FROM build_logs ORDER BY id;

-- explain shows the statements: the builds are collected through the declared columns.
SELECT step, purpose FROM uproot.explain('projects', 'id = 2') ORDER BY step;

-- archive moves the family, restore puts it back, parents first.
SELECT relation, action, rows FROM uproot.archive('projects', 2) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT count(*) AS builds_of_2 FROM ci_builds WHERE project_id = 2;
SELECT relation, rows FROM uproot.restore(:b) ORDER BY relation::text;
SELECT id, project_id, status FROM ci_builds ORDER BY id;
SELECT id, build_id FROM build_logs ORDER BY id;

-- 'set null' detaches: the pipelines of a purged project stay, with project_id NULL, as an
-- ON DELETE SET NULL foreign key would leave them. Without an index on the child columns the
-- declaration warns: every purge of a project would scan ci_pipelines.
SELECT uproot.declare_relation('ci_pipelines_project', 'ci_pipelines', array['project_id'],
                               'projects', array['id'], 'set null');
SELECT depth, child, parent, constraint_name, on_delete, disposition, indexed
  FROM uproot.graph('projects') ORDER BY depth, child::text, constraint_name;
SELECT depth, relation, action, rows, via FROM uproot.preview('projects', 2) ORDER BY depth, relation::text, action;
-- archive records the detached references, and restore reattaches them.
SELECT relation, action, rows FROM uproot.archive('projects', 2) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT id, project_id FROM ci_pipelines ORDER BY id;
SELECT constraint_name, old_values, new_values FROM uproot.batch_detached WHERE batch_id = :b;
SELECT relation, rows FROM uproot.restore(:b) ORDER BY relation::text;
SELECT id, project_id FROM ci_pipelines ORDER BY id;
-- follow_set_null => true follows it instead, as for a foreign key.
SELECT relation, action, rows FROM uproot.preview('projects', 2, follow_set_null => true) ORDER BY relation::text, action;

-- 'restrict' is followed like a NO ACTION or RESTRICT foreign key: the family goes. With
-- respect_restrict => true, rows behind it are an error that names the declared relation.
SELECT uproot.drop_relation('ci_pipelines_project');
CREATE INDEX ON ci_pipelines (project_id);
SELECT uproot.declare_relation('ci_pipelines_project', 'ci_pipelines', array['project_id'],
                               'projects', array['id'], 'restrict');
SELECT relation, action, rows, via FROM uproot.preview('projects', 2) ORDER BY relation::text, action;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('projects', 2, respect_restrict => true)$$);
\x off
SELECT count(*) AS pipelines_left FROM ci_pipelines;

-- Dropping a declaration: the edge is gone at once (the cache was invalidated again).
SELECT uproot.drop_relation('ci_pipelines_project');
SELECT depth, child, parent, constraint_name FROM uproot.graph('projects') ORDER BY depth, child::text;

-- A job follows declared relations too: it purges whole families, builds and logs included.
SELECT (uproot.create_job('purge-gamma', 'projects', $$name = 'gamma'$$, action => 'purge')).name;
CALL uproot.run_job('purge-gamma');
SELECT rows FROM uproot.job_runs WHERE job = 'purge-gamma';
SELECT id FROM projects ORDER BY id;
SELECT count(*) AS builds_of_3 FROM ci_builds WHERE project_id = 3;
SELECT uproot.drop_job('purge-gamma');

-- A multi-column relation, to a UNIQUE key, and a self-reference: declared comments form a
-- tree (parent_id references id within the same tenant), and a purge takes the whole subtree.
CREATE TABLE tenants_docs (tenant int, doc int, title text, PRIMARY KEY (tenant, doc));
CREATE TABLE comments (tenant int NOT NULL, id int NOT NULL, doc int, parent_id int, body text,
                       PRIMARY KEY (tenant, id));
CREATE INDEX ON comments (tenant, doc);
CREATE INDEX ON comments (tenant, parent_id);
SELECT uproot.declare_relation('comments_doc', 'comments', array['tenant', 'doc'],
                               'tenants_docs', array['tenant', 'doc'], 'cascade');
SELECT uproot.declare_relation('comments_parent', 'comments', array['tenant', 'parent_id'],
                               'comments', array['tenant', 'id'], 'cascade');
INSERT INTO tenants_docs VALUES (1, 1, 'one'), (2, 1, 'other tenant');
INSERT INTO comments VALUES (1, 1, 1, NULL, 'top'), (1, 2, NULL, 1, 'reply'), (1, 3, NULL, 2, 'reply to reply'),
                            (2, 1, 1, NULL, 'same ids, other tenant'), (2, 2, NULL, 1, 'its reply');
SELECT depth, child, parent, constraint_name, on_delete, in_cycle
  FROM uproot.graph('tenants_docs') ORDER BY depth, child::text, constraint_name;
SELECT relation, action, rows FROM uproot.purge('tenants_docs', '{"tenant": 1, "doc": 1}'::jsonb) ORDER BY relation::text;
SELECT tenant, id, body FROM comments ORDER BY tenant, id;

-- A column renamed after the declaration breaks it: a purge that would follow it fails and
-- names the relation, rather than leaving the rows behind it unnoticed.
ALTER TABLE comments RENAME COLUMN doc TO document;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('tenants_docs', '{"tenant": 2, "doc": 1}'::jsonb)$$);
\x off
SELECT uproot.drop_relation('comments_doc');
SELECT uproot.declare_relation('comments_doc', 'comments', array['tenant', 'document'],
                               'tenants_docs', array['tenant', 'doc'], 'cascade');
SELECT relation, action, rows FROM uproot.purge('tenants_docs', '{"tenant": 2, "doc": 1}'::jsonb) ORDER BY relation::text;

-- Dropping either table forgets the declaration (with a warning).
DROP TABLE tenants_docs;
SELECT name FROM uproot.declared_relations ORDER BY name;
SELECT uproot.drop_relation('comments_parent');

SELECT regress.drop_archives('declared');
DROP SCHEMA declared CASCADE;
RESET search_path;
