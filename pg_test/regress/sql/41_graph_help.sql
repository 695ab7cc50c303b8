-- 41_graph_help: graph() and preview() point out what would surprise a user
-- A RESTRICT constraint is followed by default (DESIGN.md): graph() flags each such edge and
-- preview() says, in one NOTICE, which ones the family goes through, both with the way to
-- refuse them. NO ACTION edges are followed without a word: that is what uproot is for.
-- The unindexed-FK warning knows partial indexes that the FK lookup can use, and warnings of
-- one kind on many rows are said once, on the root row. A predicate that stops half-way is
-- reported as incomplete.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA help;
SET search_path = help;

-- shops <- invoices (RESTRICT) <- invoice_lines (RESTRICT), shops <- staff (NO ACTION),
-- shops <- tills (RESTRICT, never any rows).
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE invoices (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops ON DELETE RESTRICT);
CREATE TABLE invoice_lines (id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoices ON DELETE RESTRICT);
CREATE TABLE staff (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE TABLE tills (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops ON DELETE RESTRICT);
CREATE INDEX ON invoices (shop_id);
CREATE INDEX ON invoice_lines (invoice_id);
CREATE INDEX ON staff (shop_id);
CREATE INDEX ON tills (shop_id);
INSERT INTO shops VALUES (1), (2);
INSERT INTO invoices VALUES (10, 1), (11, 1), (20, 2);
INSERT INTO invoice_lines VALUES (100, 10), (101, 10), (110, 11);
INSERT INTO staff VALUES (1, 1), (2, 2);

-- graph(): each followed RESTRICT edge carries a warning that says how to refuse it.
SELECT depth, child, on_delete, disposition, warnings
  FROM uproot.graph('shops') ORDER BY depth, child::text;
-- With respect_restrict the edges are blocked, which the disposition says: no warning.
SELECT depth, child, on_delete, disposition, warnings
  FROM uproot.graph('shops', respect_restrict => true) ORDER BY depth, child::text;

-- preview(): one NOTICE naming the RESTRICT constraints whose tables have rows in the family
-- (tills has none, so it is not named), with the hint.
SELECT depth, relation, action, rows FROM uproot.preview('shops', 1) ORDER BY depth, relation::text;
SELECT depth, relation, action, rows FROM uproot.preview_where('shops', 'id = 2') ORDER BY depth, relation::text;
-- A family with rows behind NO ACTION edges only: no NOTICE.
SELECT depth, relation, action, rows FROM uproot.preview('invoice_lines', 100) ORDER BY depth, relation::text;
-- With respect_restrict, preview reports the blocked rows instead, and no NOTICE.
SELECT depth, relation, action, rows FROM uproot.preview('shops', 1, respect_restrict => true) ORDER BY depth, relation::text;

-- Partial indexes: notes(user_id, created_at) WHERE user_id IS NOT NULL serves the FK lookup
-- (WHERE user_id = $1 implies user_id IS NOT NULL), as EXPLAIN shows; so does an AND of
-- IS NOT NULL on the FK columns. An index whose predicate the lookup does not imply does not
-- count, nor does one that is not valid yet.
CREATE TABLE users (id int PRIMARY KEY, tenant int, UNIQUE (tenant, id));
CREATE TABLE notes (id int PRIMARY KEY, user_id int REFERENCES users, created_at date);
CREATE INDEX notes_user_idx ON notes (user_id, created_at) WHERE user_id IS NOT NULL;
CREATE TABLE shares (id int PRIMARY KEY, tenant int, user_id int, "Kind" text,
                     FOREIGN KEY (tenant, user_id) REFERENCES users (tenant, id));
CREATE INDEX ON shares (user_id, tenant) WHERE tenant IS NOT NULL AND user_id IS NOT NULL;
CREATE TABLE likes (id int PRIMARY KEY, user_id int REFERENCES users, created_at date);
CREATE INDEX ON likes (user_id) WHERE created_at > '2020-01-01';
CREATE TABLE views (id int PRIMARY KEY, user_id int REFERENCES users);
INSERT INTO users SELECT u, 1 FROM generate_series(1, 1000) u;
INSERT INTO notes SELECT n, n % 1000 + 1, '2024-01-01' FROM generate_series(1, 5000) n;
ANALYZE users, notes;
SELECT child, indexed, warnings FROM uproot.graph('users') ORDER BY depth, child::text;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT 1 FROM notes WHERE user_id = 7;
RESET enable_seqscan;
RESET enable_bitmapscan;
-- An index that is not valid (a failed CREATE INDEX CONCURRENTLY leaves one) does not count.
INSERT INTO views VALUES (1, 1), (2, 1);
CREATE UNIQUE INDEX CONCURRENTLY views_user_idx ON views (user_id);
SELECT indisvalid FROM pg_index WHERE indexrelid = 'views_user_idx'::regclass;
SELECT child, indexed FROM uproot.graph('users') WHERE child = 'views'::regclass;
-- Once a valid index replaces it, the FK counts as indexed.
DROP INDEX views_user_idx;
CREATE INDEX views_user_idx ON views (user_id);
SELECT child, indexed FROM uproot.graph('users') WHERE child = 'views'::regclass;

-- Warnings of one kind on more than three rows are said once, on the root row. Here every
-- one of five FKs is deferrable (as some frameworks declare them all) and two are unindexed.
CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE a1 (id int PRIMARY KEY, account_id int REFERENCES accounts DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE a2 (id int PRIMARY KEY, account_id int REFERENCES accounts DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE a3 (id int PRIMARY KEY, account_id int REFERENCES accounts DEFERRABLE);
CREATE TABLE a4 (id int PRIMARY KEY, account_id int REFERENCES accounts DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE a5 (id int PRIMARY KEY, account_id int REFERENCES accounts DEFERRABLE INITIALLY DEFERRED);
CREATE INDEX ON a1 (account_id);
CREATE INDEX ON a2 (account_id);
CREATE INDEX ON a3 (account_id);
SELECT depth, child, indexed, warnings FROM uproot.graph('accounts') ORDER BY depth, child::text;

-- A predicate that stops half-way: PostgreSQL's parser takes the trailing AND for a column
-- alias; uproot says the expression is incomplete. A stray word and a real AS are told apart.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.preview_where('shops', 'id = 3 AND')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.preview_where('shops', 'id = 3 or ')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.preview_where('shops', 'id = 3 extra')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.preview_where('shops', 'id = 3 AS "and"')$$);
\x off

DROP SCHEMA help CASCADE;
RESET search_path;
