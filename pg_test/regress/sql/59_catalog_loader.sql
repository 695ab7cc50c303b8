-- 59_catalog_loader: the catalog pg_uproot reads from PostgreSQL's system caches is exactly
-- the one the catalog query (sql/catalog.sql) returns.
-- pg_uproot reads the foreign-key graph of the database from the system caches: a new session
-- no longer parses and plans a 200-line query. The query is kept as the oracle: with
-- uproot.debug_check_catalog on (temp.conf sets it for every test; a developer option, superuser
-- only), every load also runs the query and fails with an internal error naming the first fact
-- that differs. This file builds a schema with every kind of fact the catalog holds, loads it
-- (the check passes), and then shows that a wrong fact is caught.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
SELECT current_setting('uproot.debug_check_catalog') AS checked;
CREATE SCHEMA "Cat ""Loader""";
SET search_path = "Cat ""Loader""";

-- A btree operator class of int4 whose equality operator lives in this schema: a foreign key
-- or declared relation to a unique index with it compares with "Cat ""Loader""".= , not
-- pg_catalog.=.
CREATE OPERATOR = (LEFTARG = int4, RIGHTARG = int4, FUNCTION = pg_catalog.int4eq);
CREATE OPERATOR CLASS int4_alt_ops FOR TYPE int4 USING btree AS
    OPERATOR 1 pg_catalog.<, OPERATOR 2 pg_catalog.<=, OPERATOR 3 =,
    OPERATOR 4 pg_catalog.>=, OPERATOR 5 pg_catalog.>, FUNCTION 1 pg_catalog.btint4cmp(int4, int4);

-- The root: a two-column primary key with an INCLUDE column, a unique index that uses the
-- operator class, a dropped column, a generated column, row-level security, a rule and user
-- triggers.
CREATE TABLE "Accounts" (code int4 NOT NULL, gone text, region text NOT NULL, label text NOT NULL,
                         shout text GENERATED ALWAYS AS (upper(label)) STORED,
                         PRIMARY KEY (code, region) INCLUDE (label));
CREATE UNIQUE INDEX accounts_label_code ON "Accounts" (label, code int4_alt_ops);
ALTER TABLE "Accounts" DROP COLUMN gone;
ALTER TABLE "Accounts" ENABLE ROW LEVEL SECURITY;
CREATE RULE accounts_notify AS ON UPDATE TO "Accounts" DO ALSO NOTIFY accounts_changed;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER "Accounts touched" BEFORE UPDATE ON "Accounts" FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER a_first BEFORE INSERT ON "Accounts" FOR EACH ROW EXECUTE FUNCTION touch();

-- Multi-column FK with different operators (pg_catalog.= for varchar against text, the
-- schema's = for int4); deferrable; ON DELETE SET NULL of one column only; the child has no
-- primary key, and two partial indexes on the FK columns (one predicate the lookup implies).
CREATE TABLE "Order ""Lines""" (account_label varchar(20), account_code int4, note text,
    CONSTRAINT lines_account FOREIGN KEY (account_label, account_code)
        REFERENCES "Accounts" (label, code) ON DELETE SET NULL (account_label)
        DEFERRABLE INITIALLY DEFERRED);
CREATE INDEX lines_account_partial ON "Order ""Lines""" (account_code, account_label)
    WHERE account_code IS NOT NULL AND account_label IS NOT NULL;
CREATE INDEX lines_account_case ON "Order ""Lines""" (account_label, account_code)
    WHERE CASE WHEN note IS NULL THEN true ELSE account_code > 0 END;

-- An FK whose column types differ (int4 parent, int8 child), NOT VALID, and an index on it
-- with an expression after the FK column; ALTER TABLE ... DISABLE TRIGGER ALL disables the
-- internal triggers of the table's foreign keys.
CREATE TABLE counters (id int4 PRIMARY KEY);
CREATE TABLE tallies (id int8 PRIMARY KEY, counter_id int8);
ALTER TABLE tallies ADD CONSTRAINT tallies_counter FOREIGN KEY (counter_id) REFERENCES counters ON DELETE CASCADE NOT VALID;
CREATE INDEX ON tallies (counter_id, (id + 1));
ALTER TABLE tallies DISABLE TRIGGER ALL;

-- Partitioned tables with FKs from and to them: events (by range, one partition itself
-- partitioned again) reference the accounts; event notes reference the events.
CREATE TABLE events (id int4 NOT NULL, account_code int4 NOT NULL, account_region text NOT NULL,
                     at date NOT NULL, PRIMARY KEY (id, at),
                     FOREIGN KEY (account_code, account_region) REFERENCES "Accounts" ON DELETE CASCADE)
    PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
    PARTITION BY RANGE (at);
CREATE TABLE "events_2025 h1" PARTITION OF events_2025 FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE events_2025_rest PARTITION OF events_2025 DEFAULT;
CREATE INDEX ON events (account_code, account_region);
CREATE TABLE event_notes (event_id int4, event_at date, body text,
                          FOREIGN KEY (event_id, event_at) REFERENCES events ON DELETE CASCADE);

-- A declared relation (a column it names is later dropped: attnum 0), an owned parent, and an
-- async declared relation (not an edge; its queue trigger is one of pg_uproot's own). The
-- first declared relation's parent columns are those of the unique index with the schema's
-- operator, in another order.
CREATE TABLE ghosts (id int4 PRIMARY KEY);
CREATE TABLE audit (id int PRIMARY KEY, account_code int4, account_label text, doomed int4);
CREATE INDEX ON audit (account_code, account_label);
CREATE TABLE tags (id int PRIMARY KEY, account_code int4, account_region text, counter_id int4 REFERENCES counters);
CREATE INDEX ON tags (account_code, account_region);
SELECT uproot.declare_relation('audit_account', 'audit', array['account_code', 'account_label'],
                               '"Accounts"', array['code', 'label'], 'cascade', check_trigger => true);
SELECT uproot.declare_relation('audit_doomed', 'audit', array['doomed'], 'ghosts', array['id'], 'set null');
ALTER TABLE audit DROP COLUMN doomed;
SELECT uproot.declare_relation('tags_account', 'tags', array['account_code', 'account_region'],
                               '"Accounts"', array['code', 'region'], 'async cascade');
SELECT uproot.declare_owned('tags', 'tags_counter_id_fkey');

-- Every load checks itself against the query: each of these loads the catalog again (the
-- schema changed since the last one) and passes.
SELECT catalog_loads AS loads FROM uproot.cache_info() \gset
SELECT depth, child, parent, constraint_name, on_delete, indexed
  FROM uproot.graph('"Accounts"') ORDER BY depth, child::text, constraint_name;
SELECT depth, child, parent, constraint_name, on_delete, indexed
  FROM uproot.graph('counters') ORDER BY depth, child::text, constraint_name;
SELECT depth, child, parent, constraint_name, on_delete, indexed
  FROM uproot.graph('events_2025_rest') ORDER BY depth, child::text, constraint_name;
SELECT depth, child, parent, constraint_name, on_delete, indexed
  FROM uproot.graph('audit') ORDER BY depth, child::text, constraint_name;
SELECT catalog_loads > :loads AS loaded_and_checked FROM uproot.cache_info();
-- The declared relation whose child column was dropped is in the catalog with attnum 0, which
-- a call whose family holds it reports.
SELECT count(*) FROM uproot.graph('ghosts');

-- What one load covers: the closure of its root. An owned edge leads to its parent and that
-- parent's family (tags own their counter); a partition leads to its ancestors, their other
-- partitions and their children. Every root in the closure is served without a load; each
-- load is checked against the query as above.
ALTER TABLE ghosts ADD COLUMN scratch int;  -- a change: every cached catalog is out of date
ALTER TABLE ghosts DROP COLUMN scratch;
SELECT catalog_loads AS loads FROM uproot.cache_info() \gset
SELECT count(*) AS tags_edges FROM uproot.graph('tags');
SELECT count(*) AS counters_edges FROM uproot.graph('counters');
SELECT catalog_loads - :loads AS loads_for_tags_and_their_owned_counters FROM uproot.cache_info();
SELECT count(*) AS h1_edges FROM uproot.graph('"events_2025 h1"');
SELECT count(*) AS events_edges FROM uproot.graph('events');
SELECT count(*) AS events_2024_edges FROM uproot.graph('events_2024');
SELECT count(*) AS notes_edges FROM uproot.graph('event_notes');
SELECT catalog_loads - :loads AS loads_with_a_partition_and_its_relatives FROM uproot.cache_info();
-- The accounts the events reference are not in that closure: a load of their own.
SELECT count(*) AS accounts_edges FROM uproot.graph('"Accounts"');
SELECT catalog_loads - :loads AS loads_with_the_accounts FROM uproot.cache_info();

-- The same for a role with no privilege on these tables: reading the catalog needs none.
CREATE ROLE regress_uproot_catalog_reader;
GRANT USAGE ON SCHEMA "Cat ""Loader""" TO regress_uproot_catalog_reader;
ALTER TABLE counters ADD COLUMN note text;  -- a change: the next call loads again
SET ROLE regress_uproot_catalog_reader;
SELECT count(*) AS edges FROM uproot.graph('counters');
RESET ROLE;

-- A wrong fact is caught: the fail point catalog_differs flips one fact (whether the root has
-- rules) of the catalog read from the caches, and the next load names it.
ALTER TABLE counters DROP COLUMN note;
SET uproot.debug_fail_at = 'catalog_differs';
SELECT count(*) FROM uproot.graph('"Accounts"');
RESET uproot.debug_fail_at;
SELECT count(*) AS edges FROM uproot.graph('"Accounts"');

-- With the check off the wrong fact goes unnoticed (which is why the tests turn it on).
ALTER TABLE counters ADD COLUMN note text;
SET uproot.debug_check_catalog = off;
SET uproot.debug_fail_at = 'catalog_differs';
SELECT count(*) AS edges FROM uproot.graph('"Accounts"');
RESET uproot.debug_fail_at;
RESET uproot.debug_check_catalog;
-- The next load (the schema changed) is checked again, and right again.
ALTER TABLE counters DROP COLUMN note;
SELECT count(*) AS edges FROM uproot.graph('"Accounts"');

-- Only a superuser may turn the check on or off.
SET ROLE regress_uproot_catalog_reader;
SET uproot.debug_check_catalog = off;
RESET ROLE;

RESET search_path;
DROP OWNED BY regress_uproot_catalog_reader;
DROP ROLE regress_uproot_catalog_reader;
