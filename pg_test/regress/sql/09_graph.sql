-- 09_graph: what uproot.graph() reports about a family's schema
-- One row for the root (depth 0), then one row per FK edge a purge would walk: its child
-- and parent, constraint, ON DELETE action, what uproot does with it, whether it is part of
-- a cycle, whether the child's FK columns are indexed, and warnings.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA g;
SET search_path = g;

CREATE TABLE shops (id int PRIMARY KEY);
-- indexed FK, nothing to warn about
CREATE TABLE products (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE INDEX ON products (shop_id);
-- an FK without an index: every delete of a shop scans staff
CREATE TABLE staff (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
-- a multi-column index whose leading columns are the FK columns counts as an index
CREATE TABLE prices (product_id int NOT NULL REFERENCES products, valid_from date NOT NULL,
                     PRIMARY KEY (product_id, valid_from));
-- an index on the FK column that is not its leading column does not
CREATE TABLE reviews (id int PRIMARY KEY, author text NOT NULL, product_id int REFERENCES products);
CREATE INDEX ON reviews (author, product_id);
-- no primary key
CREATE TABLE product_log (product_id int REFERENCES products ON DELETE CASCADE, note text);
CREATE INDEX ON product_log (product_id);
-- row-level security
CREATE TABLE secrets (id int PRIMARY KEY, shop_id int REFERENCES shops ON DELETE SET NULL);
CREATE INDEX ON secrets (shop_id);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
-- a deferrable constraint
CREATE TABLE invoices (id int PRIMARY KEY, shop_id int REFERENCES shops DEFERRABLE);
CREATE INDEX ON invoices (shop_id);
-- a trigger
CREATE TABLE audit (id int PRIMARY KEY, shop_id int REFERENCES shops ON DELETE RESTRICT);
CREATE INDEX ON audit (shop_id);
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER audit_noop BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION noop();

SELECT depth, child, parent, constraint_name, on_delete, disposition, in_cycle, indexed
  FROM uproot.graph('shops') ORDER BY depth, child::text;
SELECT child, unnest(warnings) AS warning
  FROM uproot.graph('shops') ORDER BY child::text, 2;

-- The options show in the disposition column.
SELECT child, on_delete, disposition
  FROM uproot.graph('shops', respect_restrict => true, follow_set_null => true,
                    stop_at => array['invoices']::regclass[])
 ORDER BY depth, child::text;

-- A table that nothing references is a family of one.
SELECT depth, child, parent, disposition FROM uproot.graph('prices');

DROP SCHEMA g CASCADE;
RESET search_path;
