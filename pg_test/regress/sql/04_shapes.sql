-- 04_shapes: schema shapes the catalog graph must get right
-- multi-column FKs in their declared column order, FKs to a UNIQUE constraint, trees,
-- cycles, diamonds, several schemas, identifiers that need quoting, deferrable and
-- NOT VALID constraints.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA shapes;
SET search_path = shapes;

-- A multi-column FK declared as (y, x) against the primary key (x, y). Cells (1, 2) and
-- (2, 1) would be confused if the columns were paired by position instead of by name.
CREATE TABLE grid (x int, y int, PRIMARY KEY (x, y));
CREATE TABLE marks (id int PRIMARY KEY, y int NOT NULL, x int NOT NULL,
                    FOREIGN KEY (y, x) REFERENCES grid (y, x));
INSERT INTO grid VALUES (1, 2), (2, 1), (3, 3);
INSERT INTO marks VALUES (1, 2, 1), (2, 2, 1), (3, 1, 2);  -- two marks on (1, 2), one on (2, 1)
SELECT relation, action, rows FROM uproot.purge('grid', '{"x": 1, "y": 2}'::jsonb) ORDER BY relation::text, action;
SELECT * FROM marks ORDER BY id;

-- With MATCH SIMPLE (the default), a multi-column FK with a NULL column references nothing:
-- such marks belong to no cell's family.
INSERT INTO marks VALUES (4, 3, 3);
ALTER TABLE marks ALTER COLUMN x DROP NOT NULL, ALTER COLUMN y DROP NOT NULL;
INSERT INTO marks VALUES (5, NULL, 3), (6, 3, NULL);
SELECT relation, action, rows FROM uproot.purge('grid', '{"x": 3, "y": 3}'::jsonb) ORDER BY relation::text, action;
SELECT * FROM marks ORDER BY id;

-- An FK that references a UNIQUE column rather than the primary key.
CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE logins (id int PRIMARY KEY, email text NOT NULL REFERENCES people (email));
INSERT INTO people VALUES (1, 'ann@example.org'), (2, 'bob@example.org');
INSERT INTO logins VALUES (1, 'ann@example.org'), (2, 'ann@example.org'), (3, 'bob@example.org');
SELECT child, parent, constraint_name FROM uproot.graph('people') WHERE depth > 0 ORDER BY child::text;
SELECT relation, action, rows FROM uproot.purge('people', 1) ORDER BY relation::text, action;
SELECT * FROM logins ORDER BY id;

-- A self-referencing tree, five levels below node 1, and a second tree (100).
-- Each node has one tag.
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int REFERENCES nodes);
CREATE TABLE node_tags (node_id int PRIMARY KEY REFERENCES nodes);
CREATE INDEX ON nodes (parent_id);
INSERT INTO nodes VALUES (1, NULL), (2, 1), (3, 1), (4, 2), (5, 2), (6, 4), (7, 6), (8, 7),
                         (100, NULL), (101, 100);
INSERT INTO node_tags SELECT id FROM nodes;
SELECT depth, child, parent, in_cycle FROM uproot.graph('nodes') ORDER BY depth, child::text;
-- The subtree of node 2: 2, 4, 5, 6, 7, 8 (four levels below 2).
SELECT depth, relation, action, rows, label FROM uproot.preview('nodes', 2) ORDER BY depth, relation::text, action;
SELECT relation, action, rows FROM uproot.purge('nodes', 2) ORDER BY relation::text, action;
SELECT id, parent_id FROM nodes ORDER BY id;
-- Node 1 with everything left below it (itself and 3).
SELECT relation, action, rows FROM uproot.purge('nodes', 1) ORDER BY relation::text, action;
SELECT id, parent_id FROM nodes ORDER BY id;

-- A tree whose parent FK is ON DELETE SET NULL: purging a node detaches its children,
-- which become roots of their own trees.
CREATE TABLE folders (id int PRIMARY KEY, parent_id int REFERENCES folders ON DELETE SET NULL);
INSERT INTO folders VALUES (1, NULL), (2, 1), (3, 1), (4, 2);
SELECT relation, action, rows FROM uproot.purge('folders', 1) ORDER BY relation::text, action;
SELECT id, parent_id FROM folders ORDER BY id;

-- A cycle between two tables: players belong to teams, teams name a captain. Team 2's
-- captain plays for team 1, so purging team 1 takes player 12, then team 2, then its
-- players. Team 3 is not reached.
CREATE TABLE teams (id int PRIMARY KEY, captain_id int);
CREATE TABLE players (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);
ALTER TABLE teams ADD FOREIGN KEY (captain_id) REFERENCES players DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX ON players (team_id);
CREATE INDEX ON teams (captain_id);
BEGIN;
INSERT INTO teams VALUES (1, 11), (2, 12), (3, 31);
INSERT INTO players VALUES (11, 1), (12, 1), (21, 2), (22, 2), (31, 3);
COMMIT;
SELECT depth, child, parent, in_cycle FROM uproot.graph('teams') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.preview('teams', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('teams', 1) ORDER BY relation::text, action;
SELECT id, captain_id FROM teams ORDER BY id;
SELECT id, team_id FROM players ORDER BY id;

-- A diamond: tasks reference both their project and their milestone (which references the
-- project too). A task reached along both paths belongs to the family once, and so do its
-- comments.
CREATE TABLE projects (id int PRIMARY KEY);
CREATE TABLE milestones (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects);
CREATE TABLE tasks (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects,
                    milestone_id int REFERENCES milestones);
CREATE TABLE comments (id int PRIMARY KEY, task_id int NOT NULL REFERENCES tasks);
INSERT INTO projects VALUES (1), (2);
INSERT INTO milestones VALUES (10, 1), (20, 2);
INSERT INTO tasks VALUES (1, 1, 10), (2, 1, 10), (3, 1, NULL), (4, 2, 20), (5, 2, 10);  -- 5: odd, but legal
INSERT INTO comments SELECT 10 * t + n, t FROM generate_series(1, 5) t, generate_series(1, 2) n;
-- Project 1 reaches tasks 1, 2, 3 (project) and 1, 2, 5 (milestone 10): 4 tasks, 8 comments.
SELECT depth, relation, action, rows, via FROM uproot.preview('projects', 1) ORDER BY depth, relation::text, action;
SELECT relation, action, rows FROM uproot.purge('projects', 1) ORDER BY relation::text, action;
SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM tasks) AS tasks_left,
       (SELECT count(*) FROM comments) AS comments_left;

-- A diamond's leaf (no children): a preview counts its rows in the one statement that counts
-- the leaves, through every edge into it (a row reached along both paths once), instead of
-- collecting them first; purge takes the same rows.
INSERT INTO projects VALUES (3);
INSERT INTO milestones VALUES (30, 3);
CREATE TABLE task_links (id int PRIMARY KEY, project_id int NOT NULL REFERENCES projects,
                         milestone_id int REFERENCES milestones);
-- project 2 reaches links 1, 2 (project) and 1, 3 (milestone 20): 3 links; link 4 is project 3's
INSERT INTO task_links VALUES (1, 2, 20), (2, 2, NULL), (3, 3, 20), (4, 3, 30);
SELECT relation, action, rows FROM uproot.preview('projects', 2) ORDER BY relation::text, action;
SELECT purpose FROM uproot.explain('projects', keys => 2, operation => 'preview') ORDER BY step;
SELECT relation, action, rows FROM uproot.purge('projects', 2) ORDER BY relation::text, action;
SELECT string_agg(id::text, ',' ORDER BY id) AS links_left FROM task_links;

-- Tables in two schemas.
CREATE SCHEMA shapes_library;
CREATE TABLE authors (id int PRIMARY KEY);
CREATE TABLE shapes_library.books (id int PRIMARY KEY, author_id int NOT NULL REFERENCES authors);
INSERT INTO authors VALUES (1), (2);
INSERT INTO shapes_library.books VALUES (1, 1), (2, 1), (3, 2);
SELECT depth, child, parent FROM uproot.graph('authors') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.purge('authors', 1) ORDER BY relation::text, action;
SELECT * FROM shapes_library.books ORDER BY id;

-- Identifiers that need quoting: upper case, spaces, a double quote, unicode.
CREATE SCHEMA "Shapes Ünïcode";
CREATE TABLE "Shapes Ünïcode"."Customer" ("Id" int PRIMARY KEY, "full name" text);
CREATE TABLE "Shapes Ünïcode"."order ""lines""" ("line no" int PRIMARY KEY,
    "Customer Id" int NOT NULL REFERENCES "Shapes Ünïcode"."Customer");
CREATE TABLE "Shapes Ünïcode"."件名" ("ключ" int PRIMARY KEY,
    "line ""no""" int NOT NULL REFERENCES "Shapes Ünïcode"."order ""lines""");
INSERT INTO "Shapes Ünïcode"."Customer" VALUES (1, 'One'), (2, 'Two');
INSERT INTO "Shapes Ünïcode"."order ""lines""" VALUES (1, 1), (2, 1), (3, 2);
INSERT INTO "Shapes Ünïcode"."件名" VALUES (1, 1), (2, 2), (3, 3);
SELECT depth, child, parent, constraint_name
  FROM uproot.graph('"Shapes Ünïcode"."Customer"') ORDER BY depth, child::text;
SELECT depth, relation, rows, label
  FROM uproot.preview('"Shapes Ünïcode"."Customer"', 1) ORDER BY depth, relation::text;
SELECT relation, rows
  FROM uproot.purge_where('"Shapes Ünïcode"."Customer"', $$"full name" = 'One'$$) ORDER BY relation::text;
SELECT * FROM "Shapes Ünïcode"."件名" ORDER BY 1;

-- A forest, read two ways: from at most 16 start rows, a self-referencing table is read in one
-- recursive statement; from more, one statement per level (42_explain shows both). Both find
-- the same rows: 30 roots, 2 children each, 2 grandchildren each child.
CREATE TABLE forest (id int PRIMARY KEY, parent_id int REFERENCES forest);
CREATE INDEX ON forest (parent_id);
INSERT INTO forest SELECT g, NULL FROM generate_series(1, 30) g;
INSERT INTO forest SELECT 100 + g, (g - 1) % 30 + 1 FROM generate_series(1, 60) g;
INSERT INTO forest SELECT 1000 + g, 100 + (g - 1) % 60 + 1 FROM generate_series(1, 120) g;
-- one root at a time (recursive), then all 30 at once (level by level): 7 rows a root, 210 in all
SELECT sum(p.rows) AS one_root_at_a_time, count(DISTINCT p.rows) AS distinct_tree_sizes
  FROM generate_series(1, 30) r, uproot.preview('forest', r) p;
SELECT relation, rows FROM uproot.preview_where('forest', 'id <= 30');
-- A cycle in the data ends: 31 and 32 are each other's parent.
INSERT INTO forest VALUES (31, NULL), (32, 31);
UPDATE forest SET parent_id = 32 WHERE id = 31;
SELECT relation, rows FROM uproot.preview('forest', 31);
SELECT relation, rows FROM uproot.purge('forest', 31);
SELECT relation, rows FROM uproot.purge_where('forest', 'id <= 30');
SELECT count(*) AS left_in_forest FROM forest;

-- A deferrable FK and a NOT VALID FK are edges like any other; graph() warns about them.
-- The NOT VALID one may have rows that reference nothing: they are no one's family.
CREATE TABLE shelves (id int PRIMARY KEY);
CREATE TABLE boxes (id int PRIMARY KEY, shelf_id int REFERENCES shelves DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE labels (id int PRIMARY KEY, shelf_id int);
CREATE INDEX ON boxes (shelf_id);
CREATE INDEX ON labels (shelf_id);
INSERT INTO shelves VALUES (1), (2);
INSERT INTO boxes VALUES (1, 1), (2, 1), (3, 2);
INSERT INTO labels VALUES (1, 1), (2, 2), (3, 99);  -- label 3 predates the constraint
ALTER TABLE labels ADD FOREIGN KEY (shelf_id) REFERENCES shelves NOT VALID;
SELECT depth, child, constraint_name, warnings FROM uproot.graph('shelves') ORDER BY depth, child::text;
SELECT relation, action, rows FROM uproot.purge('shelves', 1) ORDER BY relation::text, action;
SELECT 'box' AS t, id, shelf_id FROM boxes UNION ALL SELECT 'label', id, shelf_id FROM labels ORDER BY 1, 2;

DROP SCHEMA "Shapes Ünïcode" CASCADE;
DROP SCHEMA shapes_library CASCADE;
DROP SCHEMA shapes CASCADE;
RESET search_path;
