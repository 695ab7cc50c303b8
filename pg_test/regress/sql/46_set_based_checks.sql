-- 46_set_based_checks: where it is sound, a purge deletes the family with PostgreSQL's per-row
-- foreign-key triggers off and checks every foreign key that references a table it deleted
-- from in one statement afterwards: "does any row still reference a deleted key?". It raises
-- what PostgreSQL would (23503, naming the constraint, the referencing table and a key), and
-- nothing changes. Everywhere else, the purge runs as before and PostgreSQL's triggers check.
--
-- Which check ran is seen two ways: explain() shows the set-based steps, and a closure that is
-- corrupted on purpose (uproot.debug_skip_edge, a developer option, leaves one foreign key out
-- of the family) is caught either by uproot's check ("uproot: update or delete ...") or by
-- PostgreSQL's own trigger ("update or delete ...", its exact words).
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA setck;
SET search_path = setck;

-- planned_check(root): which check explain says a purge of root runs.
CREATE FUNCTION planned_check(root regclass) RETURNS text LANGUAGE sql AS $$
  SELECT CASE WHEN EXISTS (SELECT 1 FROM uproot.explain(root) WHERE purpose LIKE '%(set-based check)%')
              THEN 'set-based' ELSE 'per-row triggers' END
$$;

-- caught_by(sql, edge): run sql with the foreign key `edge` left out of the family closure;
-- which check caught the rows it left behind (each purge rolls back with its error).
CREATE FUNCTION caught_by(sql text, edge text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE e record;
BEGIN
  PERFORM set_config('uproot.debug_skip_edge', edge, true);
  SELECT * INTO e FROM regress.error_of(sql);
  PERFORM set_config('uproot.debug_skip_edge', '', true);
  RETURN CASE WHEN e.message LIKE 'uproot: update or delete on table%' THEN 'set-based (' || e.sql_state || ')'
              WHEN e.message LIKE 'update or delete on table%' THEN 'per-row triggers (' || e.sql_state || ')'
              ELSE e.message END;
END $$;

-- customers <- orders <- items, all NO ACTION; notes point at orders with ON DELETE SET NULL.
CREATE TABLE customers (id int PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY,
                     customer_id int NOT NULL CONSTRAINT orders_customer_fk REFERENCES customers);
CREATE TABLE items (id int PRIMARY KEY,
                    order_id int NOT NULL CONSTRAINT items_order_fk REFERENCES orders);
CREATE TABLE notes (id int PRIMARY KEY,
                    order_id int CONSTRAINT notes_order_fk REFERENCES orders ON DELETE SET NULL);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON items (order_id);
CREATE INDEX ON notes (order_id);
INSERT INTO customers SELECT g FROM generate_series(1, 20) g;
INSERT INTO orders SELECT 10 * c + i, c FROM generate_series(1, 20) c, generate_series(1, 3) i;
INSERT INTO items SELECT 10 * o.id + i, o.id FROM orders o, generate_series(1, 2) i;
INSERT INTO notes SELECT o.id, o.id FROM orders o;

-- 1. The set-based path: collect and lock as always, then one statement deletes the family
-- and returns the deleted keys that foreign keys reference (customers.id, orders.id), and one
-- statement checks the foreign keys that reference them which the statements before it did not
-- settle: notes_order_fk (its rows were set to NULL first). orders_customer_fk and
-- items_order_fk are not probed again (see 9: the collect of orders, and the delete of items,
-- ran the probe's own predicate while the parents were locked). Explain also lists the form
-- the delete takes when a table of the family has 10000+ rows: counted by aggregates, and
-- items, deleted through a join, through a semi-join.
SELECT step, purpose FROM uproot.explain('customers') ORDER BY step;
SELECT statement LIKE '%"setck"."notes" c%' AS probes_the_detached_key,
       statement NOT LIKE '%"setck"."orders" c%' AND statement NOT LIKE '%"setck"."items" c%' AS not_the_walked_keys
  FROM uproot.explain('customers') WHERE purpose LIKE 'check that no row references%';
SELECT relation, action, "rows" FROM uproot.purge('customers', 1) ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM customers WHERE id = 1) AS customer,
       (SELECT count(*) FROM orders WHERE customer_id = 1) AS orders,
       (SELECT count(*) FROM items WHERE order_id BETWEEN 11 AND 13) AS items,
       (SELECT count(*) FROM notes WHERE id BETWEEN 11 AND 13 AND order_id IS NULL) AS detached_notes;
-- the caller's session_replication_role is untouched
SHOW session_replication_role;

-- 2. A corrupted closure: without items_order_fk the family leaves customer 2's items behind.
-- The set-based check raises PostgreSQL's error (with uproot's prefix and a hint), and nothing
-- changes; PostgreSQL's own trigger, on the same corruption, says the same.
\x on
SET uproot.debug_skip_edge = 'items_order_fk';
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('customers', 2)$$);
SET uproot.debug_row_triggers = on;   -- never the set-based path: PostgreSQL's triggers check
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('customers', 2)$$);
RESET uproot.debug_row_triggers;
RESET uproot.debug_skip_edge;
\x off
SELECT (SELECT count(*) FROM customers WHERE id = 2) AS customer,
       (SELECT count(*) FROM orders WHERE customer_id = 2) AS orders,
       (SELECT count(*) FROM items WHERE order_id BETWEEN 21 AND 23) AS items,
       (SELECT count(*) FROM notes WHERE id BETWEEN 21 AND 23 AND order_id IS NOT NULL) AS notes;
-- a multi-column key, referenced in another column order: the DETAIL lists the key as
-- PostgreSQL does, in the foreign key's order
CREATE TABLE regions (country text, code int, PRIMARY KEY (country, code));
CREATE TABLE offices (id int PRIMARY KEY, code int, country text,
                      CONSTRAINT offices_region_fk FOREIGN KEY (code, country) REFERENCES regions (code, country));
CREATE TABLE desks (id int PRIMARY KEY, office_id int CONSTRAINT desks_office_fk REFERENCES offices);
INSERT INTO regions VALUES ('nl', 1), ('nl', 2);
INSERT INTO offices VALUES (1, 1, 'nl'), (2, 2, 'nl');
INSERT INTO desks VALUES (1, 1), (2, 2);
\x on
SET uproot.debug_skip_edge = 'offices_region_fk';
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('regions', $p$code = 1$p$)$$);
SET uproot.debug_row_triggers = on;
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge_where('regions', $p$code = 1$p$)$$);
RESET uproot.debug_row_triggers;
RESET uproot.debug_skip_edge;
\x off
SELECT planned_check('regions') AS regions,
       caught_by($$SELECT * FROM uproot.purge_where('regions', 'code = 1')$$, 'desks_office_fk') AS desks_left_behind;
SELECT relation, action, "rows" FROM uproot.purge_where('regions', 'code = 1') ORDER BY relation::text;

-- 3. Where PostgreSQL's per-row triggers keep checking (the purge is otherwise the same).
SELECT planned_check('customers') AS plain,
       caught_by($$SELECT * FROM uproot.purge('customers', 2)$$, 'items_order_fk') AS caught;
-- a. the caller's own session_replication_role is respected: only 'origin' switches
SET session_replication_role = local;
SELECT planned_check('customers') AS role_local,
       caught_by($$SELECT * FROM uproot.purge('customers', 2)$$, 'items_order_fk') AS caught;
RESET session_replication_role;
-- b. REPEATABLE READ and SERIALIZABLE
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT planned_check('customers') AS repeatable_read,
       caught_by($$SELECT * FROM uproot.purge('customers', 2)$$, 'items_order_fk') AS caught;
COMMIT;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT planned_check('customers') AS serializable;
COMMIT;
-- c. a user trigger on a table the purge deletes from or detaches (it must fire)
CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
CREATE TRIGGER keep BEFORE DELETE ON items FOR EACH ROW EXECUTE FUNCTION keep();
SELECT planned_check('customers') AS trigger_on_items;
DROP TRIGGER keep ON items;
CREATE TRIGGER keep BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION keep();
SELECT planned_check('customers') AS trigger_on_detached_notes;
-- a disabled user trigger counts too (it could be enabled ALWAYS or REPLICA)
ALTER TABLE notes DISABLE TRIGGER keep;
SELECT planned_check('customers') AS disabled_trigger;
DROP TRIGGER keep ON notes;
-- d. a rule
CREATE RULE no_op AS ON DELETE TO items WHERE false DO INSTEAD NOTHING;
SELECT planned_check('customers') AS rule_on_items;
DROP RULE no_op ON items;
-- e. an RI trigger that is disabled, or fires ALWAYS: PostgreSQL's behaviour is kept
ALTER TABLE orders DISABLE TRIGGER ALL;
SELECT planned_check('customers') AS ri_triggers_disabled;
ALTER TABLE orders ENABLE TRIGGER ALL;
DO $$ BEGIN  -- one of orders' RI triggers (for items_order_fk), whatever its generated name
  EXECUTE (SELECT format('ALTER TABLE orders ENABLE ALWAYS TRIGGER %I', tgname) FROM pg_trigger
            WHERE tgrelid = 'orders'::regclass AND tgconstraint = (SELECT oid FROM pg_constraint WHERE conname = 'items_order_fk')
            ORDER BY tgname LIMIT 1);
END $$;
SELECT planned_check('customers') AS ri_trigger_always;
ALTER TABLE orders ENABLE TRIGGER ALL;
SELECT planned_check('customers') AS ri_triggers_back;
-- f. a DEFERRABLE foreign key referencing a deleted table (its check belongs at commit)
ALTER TABLE items ALTER CONSTRAINT items_order_fk DEFERRABLE INITIALLY DEFERRED;
SELECT planned_check('customers') AS deferrable_fk;
ALTER TABLE items ALTER CONSTRAINT items_order_fk NOT DEFERRABLE;
-- g. row-level security on a deleted or a referencing table (its hidden rows are PostgreSQL's
-- to find)
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
SELECT planned_check('customers') AS rls_on_notes;
ALTER TABLE notes DISABLE ROW LEVEL SECURITY;
-- h. no foreign key references a table of the family: no trigger to replace
CREATE TABLE solo (id int PRIMARY KEY);
SELECT planned_check('solo') AS nothing_references;
-- i. a partitioned table in the family
CREATE TABLE events (id int, order_id int NOT NULL REFERENCES orders) PARTITION BY RANGE (id);
CREATE TABLE events_1 PARTITION OF events FOR VALUES FROM (0) TO (1000);
SELECT planned_check('customers') AS partitioned_child;
DROP TABLE events;
SELECT planned_check('customers') AS back_again;

-- 4. The caller's role comes back whatever happens: an error and a cancel in the replica role.
SET uproot.debug_fail_at = 'replica_role:error';
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge('customers', 3)$$);
SHOW session_replication_role;
SET uproot.debug_fail_at = 'replica_role:cancel';
SELECT * FROM uproot.purge('customers', 3);
SHOW session_replication_role;
RESET uproot.debug_fail_at;
SELECT (SELECT count(*) FROM customers WHERE id = 3) AS customer,
       (SELECT count(*) FROM orders WHERE customer_id = 3) AS orders;
SELECT relation, action, "rows" FROM uproot.purge_where('customers', 'id IN (2, 3)') ORDER BY relation::text, action;

-- 5. An archive takes the same path while its archive tables are plain tables that never had
-- triggers: a corrupted closure is caught by the set-based check and nothing is archived; the
-- uncorrupted archive moves the family. A trigger on an archive table keeps PostgreSQL's
-- triggers checking (it must fire, and the set-based path would silence it).
SELECT count(*) AS prepared FROM uproot.prepare_archive('customers');
SELECT step, purpose FROM uproot.explain('customers', operation => 'archive', keys => 4) ORDER BY step;
SELECT caught_by($$SELECT * FROM uproot.archive('customers', 4)$$, 'items_order_fk') AS archive_caught;
SELECT relation, action, "rows" FROM uproot.archive('customers', 4) ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM orders WHERE customer_id = 4) AS orders_left,
       (SELECT count(*) FROM uproot.batches b WHERE b.root = 'customers'::regclass) AS batches;
CREATE FUNCTION pass() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
DO $$ BEGIN
  EXECUTE format('CREATE TRIGGER pass BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION setck.pass()',
                 (SELECT archive FROM uproot.archive_tables WHERE source = 'setck.orders'::regclass));
END $$;
SELECT caught_by($$SELECT * FROM uproot.archive('customers', 5)$$, 'items_order_fk') AS trigger_on_archive_table;
SELECT regress.drop_archives('setck');

-- 6. Fewer statements for broad schemas: tables that are their own component, none a parent of
-- another, whose parents were all collected before, are found and locked in one statement (in
-- lock order, one column each). Here carts and lists, both under shops, each with lines; each
-- has one foreign key, from shops, so that statement deletes them when it finds them (see 11).
CREATE TABLE shops (id int PRIMARY KEY);
CREATE TABLE carts (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE TABLE lists (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops);
CREATE TABLE cart_lines (id int PRIMARY KEY, cart_id int NOT NULL REFERENCES carts);
CREATE TABLE list_lines (id int PRIMARY KEY, list_id int NOT NULL REFERENCES lists);
INSERT INTO shops VALUES (1), (2);
INSERT INTO carts SELECT 10 * s + i, s FROM generate_series(1, 2) s, generate_series(1, 2) i;
INSERT INTO lists SELECT 10 * s + i, s FROM generate_series(1, 2) s, generate_series(1, 3) i;
INSERT INTO cart_lines SELECT 10 * c.id + i, c.id FROM carts c, generate_series(1, 2) i;
INSERT INTO list_lines SELECT 10 * l.id + i, l.id FROM lists l, generate_series(1, 2) i;
SELECT step, purpose FROM uproot.explain('shops') ORDER BY step;
SELECT relation, action, "rows" FROM uproot.preview('shops', 1) ORDER BY relation::text;
SELECT relation, action, "rows" FROM uproot.purge('shops', 1) ORDER BY relation::text;
SELECT (SELECT array_agg(id ORDER BY id) FROM carts) AS carts, (SELECT array_agg(id ORDER BY id) FROM lists) AS lists,
       (SELECT count(*) FROM cart_lines) AS cart_lines, (SELECT count(*) FROM list_lines) AS list_lines;


-- 7. Declared relations are no constraints: PostgreSQL never checks them, and neither does the
-- set-based check (it checks the real foreign keys below them: here card_flags', whose rows are
-- set to NULL; a closure that leaves card_notes out is caught through card_notes' key). An async
-- relation puts a queue trigger on its parent, a user trigger: that parent's purges keep
-- PostgreSQL's triggers.
CREATE TABLE boards (id int PRIMARY KEY);
CREATE TABLE cards (id int PRIMARY KEY, board_id int);
CREATE INDEX ON cards (board_id);
CREATE TABLE card_notes (id int PRIMARY KEY, card_id int NOT NULL REFERENCES cards);
CREATE INDEX ON card_notes (card_id);
-- (card_notes has a child of its own, so its rows are collected, not deleted as a join leaf)
CREATE TABLE card_note_likes (id int PRIMARY KEY, note_id int NOT NULL REFERENCES card_notes);
CREATE TABLE card_flags (id int PRIMARY KEY, card_id int REFERENCES cards ON DELETE SET NULL);
INSERT INTO boards VALUES (1), (2);
INSERT INTO cards VALUES (10, 1), (20, 2);
INSERT INTO card_notes VALUES (100, 10), (200, 20);
INSERT INTO card_note_likes VALUES (1000, 100), (2000, 200);
INSERT INTO card_flags VALUES (1, 10), (2, 20);
SELECT uproot.declare_relation('cards_board', 'cards', array['board_id'], 'boards', array['id'], 'cascade');
SELECT planned_check('boards') AS with_a_declared_relation;
SELECT statement LIKE '%"setck"."card_flags" c%' AS checks_the_real_fk, statement NOT LIKE '%board_id%' AS not_the_declared
  FROM uproot.explain('boards') WHERE purpose LIKE 'check that no row references%';
SELECT caught_by($$SELECT * FROM uproot.purge('boards', 1)$$, 'card_notes_card_id_fkey') AS declared_family_caught;
SELECT relation, action, "rows" FROM uproot.purge('boards', 1) ORDER BY relation::text;
SELECT uproot.drop_relation('cards_board');
SELECT uproot.declare_relation('cards_board', 'cards', array['board_id'], 'boards', array['id'], 'async cascade');
SELECT planned_check('boards') AS with_an_async_relation;
SELECT relation, action, "rows" FROM uproot.purge('boards', 2) ORDER BY relation::text;
SELECT uproot.drop_relation('cards_board');

-- 8. A family with 10000+ rows in one table takes the large form: its join leaves (big_lines,
-- big_tags) are deleted first, each by a statement of its own through a semi-join on the parent
-- rows, and counted by SPI (the rows a data-modifying CTE returns are kept in a tuplestore to be
-- counted, and millions of them spill to disk); then the rest in one statement, counted by
-- aggregates. The explain check (uproot.debug_check_explain) makes sure explain lists each. The
-- set-based check catches a corrupted closure there too, and nothing is left changed.
CREATE TABLE big_roots (id int PRIMARY KEY);
CREATE TABLE big_orders (id int PRIMARY KEY, root_id int NOT NULL REFERENCES big_roots);
CREATE TABLE big_lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES big_orders);
CREATE TABLE big_tags (id int PRIMARY KEY, order_id int NOT NULL REFERENCES big_orders);
CREATE INDEX ON big_orders (root_id);
CREATE INDEX ON big_lines (order_id);
CREATE INDEX ON big_tags (order_id);
INSERT INTO big_roots VALUES (1), (2);
INSERT INTO big_orders SELECT g, CASE WHEN g <= 10001 THEN 1 ELSE 2 END FROM generate_series(1, 10010) g;
INSERT INTO big_lines SELECT g, g FROM generate_series(1, 10010) g;
INSERT INTO big_tags SELECT g, g FROM generate_series(1, 10010, 1000) g;
SELECT step, purpose FROM uproot.explain('big_roots') WHERE purpose LIKE '(only when a table%' ORDER BY step;
-- the statements before the family statement already run in the replica role (the first is the
-- one that deletes big_orders when it finds them, see 11): a cancel there leaves the caller's
-- role and every row as they were
SET uproot.debug_fail_at = 'replica_role:cancel';
SELECT * FROM uproot.purge('big_roots', 1);
RESET uproot.debug_fail_at;
SHOW session_replication_role;
SELECT (SELECT count(*) FROM big_orders) AS orders, (SELECT count(*) FROM big_lines) AS lines,
       (SELECT count(*) FROM big_tags) AS tags;
SELECT caught_by($$SELECT * FROM uproot.purge('big_roots', 1)$$, 'big_tags_order_id_fkey') AS large_family_caught;
SELECT (SELECT count(*) FROM big_orders) AS orders, (SELECT count(*) FROM big_lines) AS lines,
       (SELECT count(*) FROM big_tags) AS tags;
SELECT relation, action, "rows" FROM uproot.purge('big_roots', 1) ORDER BY relation::text;
SELECT (SELECT count(*) FROM big_orders) AS orders, (SELECT count(*) FROM big_lines) AS lines,
       (SELECT count(*) FROM big_tags) AS tags;

-- 9. Keys the statements before the check already settled are not probed again.
-- - A join leaf (a table with one foreign key and no children, deleted through a join on its
--   parent) is deleted by exactly the keys its parent's rows had: `DELETE ... WHERE fk = ANY
--   (keys)` takes every row that references them (shop2_carts, shop2_list_lines).
-- - A table collected after all of its parents (shop2_lists) was found by the probe's own
--   predicate, `fk = ANY (parent keys)`, over every parent row, with a snapshot taken after
--   those rows were locked, and its rows were locked: when the family statement deleted every
--   row found (its count says so), nothing the probe could find is left.
-- No writer can add a reference while the parents are locked. Here no key is left to probe,
-- so there is no check statement at all. What does get probed: a key whose edge the closure
-- lacks (a leaf, or a collected table, left out on purpose is caught), and a collected table's
-- keys when the family statement deleted fewer rows than were found (the developer option
-- uproot.debug_fail_at = 'family_keeps_row' binds the statement without one shop2_lists row:
-- the check probes shop2_lists' key again and catches it). shop2_lists has a second foreign key
-- (to shop2_kinds, outside the family), so that it is locked and deleted by the family
-- statement, not deleted when found (see 11).
CREATE TABLE shops2 (id int PRIMARY KEY);
CREATE TABLE shop2_kinds (id int PRIMARY KEY);
CREATE TABLE shop2_carts (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops2);
CREATE TABLE shop2_lists (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops2,
                          kind_id int REFERENCES shop2_kinds);
CREATE TABLE shop2_list_lines (id int PRIMARY KEY, list_id int NOT NULL REFERENCES shop2_lists);
CREATE INDEX ON shop2_carts (shop_id);
CREATE INDEX ON shop2_lists (shop_id);
CREATE INDEX ON shop2_list_lines (list_id);
INSERT INTO shops2 VALUES (1), (2);
INSERT INTO shop2_carts SELECT 10 * s + i, s FROM generate_series(1, 2) s, generate_series(1, 3) i;
INSERT INTO shop2_lists SELECT 10 * s + i, s FROM generate_series(1, 2) s, generate_series(1, 2) i;
INSERT INTO shop2_list_lines SELECT 10 * l.id + i, l.id FROM shop2_lists l, generate_series(1, 2) i;
SELECT planned_check('shops2') AS shops2,
       (SELECT count(*) FROM uproot.explain('shops2') WHERE purpose LIKE 'check that no row references%') AS check_statements;
SELECT caught_by($$SELECT * FROM uproot.purge('shops2', 1)$$, 'shop2_carts_shop_id_fkey') AS leaf_left_out_caught,
       caught_by($$SELECT * FROM uproot.purge('shops2', 1)$$, 'shop2_list_lines_list_id_fkey') AS lower_leaf_left_out_caught,
       caught_by($$SELECT * FROM uproot.purge('shops2', 1)$$, 'shop2_lists_shop_id_fkey') AS collected_left_out_caught;
SET uproot.debug_fail_at = 'family_keeps_row';
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('shops2', 1)$$);
\x off
RESET uproot.debug_fail_at;
SELECT (SELECT count(*) FROM shops2 WHERE id = 1) AS shop, (SELECT count(*) FROM shop2_lists WHERE shop_id = 1) AS lists;
SELECT relation, action, "rows" FROM uproot.purge('shops2', 1) ORDER BY relation::text;
SELECT (SELECT array_agg(id ORDER BY id) FROM shop2_carts) AS carts_left,
       (SELECT array_agg(id ORDER BY id) FROM shop2_list_lines) AS lines_left;

-- 10. Cycles outside the root's component: a self-referencing tree (folders) and a two-table
-- cycle (teams and members) are collected to a fixpoint, every row found through each edge
-- into it with its parent rows locked before the statement that read it took its snapshot
-- (the tree is read, locked in key order and read again the same way; a cycle is locked level
-- by level). Once the family statement deleted every row found, their keys are settled like a
-- table collected after its parents: no check statement. A key whose edge the closure lacks
-- is caught, and so is a row the family statement keeps back. Where the cycle holds the root
-- (a purge of folders itself), its keys are still probed.
CREATE TABLE orgs (id int PRIMARY KEY);
CREATE TABLE folders (id int PRIMARY KEY, org_id int REFERENCES orgs,
                      parent_id int CONSTRAINT folders_parent_fk REFERENCES folders);
CREATE TABLE docs (id int PRIMARY KEY, folder_id int NOT NULL REFERENCES folders);
CREATE TABLE teams (id int PRIMARY KEY, org_id int REFERENCES orgs,
                    lead_id int);  -- the cycle's second key is added below
CREATE TABLE members (id int PRIMARY KEY,
                      team_id int NOT NULL CONSTRAINT members_team_fk REFERENCES teams);
ALTER TABLE teams ADD CONSTRAINT teams_lead_fk FOREIGN KEY (lead_id) REFERENCES members;
CREATE INDEX ON folders (org_id);
CREATE INDEX ON folders (parent_id);
CREATE INDEX ON docs (folder_id);
CREATE INDEX ON teams (org_id);
CREATE INDEX ON teams (lead_id);
CREATE INDEX ON members (team_id);
INSERT INTO orgs VALUES (1), (2);
-- org o: folders 10o+1 (top) <- 10o+2 <- 10o+3, and 10o+1 <- 10o+4; two docs per folder
INSERT INTO folders SELECT 10 * o + 1, o, NULL FROM generate_series(1, 2) o;
INSERT INTO folders SELECT 10 * o + 2, NULL, 10 * o + 1 FROM generate_series(1, 2) o;
INSERT INTO folders SELECT 10 * o + 3, NULL, 10 * o + 2 FROM generate_series(1, 2) o;
INSERT INTO folders SELECT 10 * o + 4, NULL, 10 * o + 1 FROM generate_series(1, 2) o;
INSERT INTO docs SELECT 10 * f.id + i, f.id FROM folders f, generate_series(1, 2) i;
-- org o: team 10o+1 of members 10o+1, 10o+2 (led by 10o+1); team 10o+2, no org, led by a
-- member of team 10o+1, with member 10o+3
INSERT INTO teams SELECT 10 * o + 1, o, NULL FROM generate_series(1, 2) o;
INSERT INTO members SELECT 10 * o + i, 10 * o + 1 FROM generate_series(1, 2) o, generate_series(1, 2) i;
UPDATE teams SET lead_id = id;
INSERT INTO teams SELECT 10 * o + 2, NULL, 10 * o + 2 FROM generate_series(1, 2) o;
INSERT INTO members SELECT 10 * o + 3, 10 * o + 2 FROM generate_series(1, 2) o;
SELECT planned_check('orgs') AS orgs,
       (SELECT count(*) FROM uproot.explain('orgs') WHERE purpose LIKE 'check that no row references%') AS check_statements,
       (SELECT count(*) FROM uproot.explain('orgs') WHERE purpose LIKE '(only when the family statement deleted fewer%') AS when_short,
       (SELECT count(*) FROM uproot.explain('folders') WHERE purpose LIKE 'check that no row references%') AS folders_root_check_statements;
SELECT caught_by($$SELECT * FROM uproot.purge('orgs', 1)$$, 'folders_parent_fk') AS tree_edge_left_out_caught,
       caught_by($$SELECT * FROM uproot.purge('orgs', 1)$$, 'members_team_fk') AS cycle_edge_left_out_caught,
       caught_by($$SELECT * FROM uproot.purge('orgs', 1)$$, 'teams_lead_fk') AS other_cycle_edge_left_out_caught;
-- the first table settled this way is folders: one folder kept back is caught
SET uproot.debug_fail_at = 'family_keeps_row';
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('orgs', 1)$$);
\x off
RESET uproot.debug_fail_at;
SELECT (SELECT count(*) FROM folders) AS folders, (SELECT count(*) FROM members) AS members;
SELECT relation, action, "rows" FROM uproot.purge('orgs', 1) ORDER BY relation::text;
SELECT (SELECT array_agg(id ORDER BY id) FROM folders) AS folders_left,
       (SELECT array_agg(id ORDER BY id) FROM teams) AS teams_left,
       (SELECT array_agg(id ORDER BY id) FROM members) AS members_left;
-- a purge of the tree's own table keeps probing its keys: a closure without the self-reference
-- leaves folder 22 below 21 and is caught
SELECT caught_by($$SELECT * FROM uproot.purge('folders', 21)$$, 'folders_parent_fk') AS root_tree_edge_left_out_caught;

-- with no folder left in org 2, the first table settled this way is one of the cycle's: a row
-- kept back there is caught too, and nothing changes
DELETE FROM docs WHERE folder_id > 20;
DELETE FROM folders WHERE id > 20;
SET uproot.debug_fail_at = 'family_keeps_row';
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge('orgs', 2)$$);
RESET uproot.debug_fail_at;
SELECT (SELECT count(*) FROM teams) AS teams, (SELECT count(*) FROM members) AS members;
-- 11. A table deleted when found. Its one foreign key is the followed edge from its one parent
-- (lists3 under shops3): its rows cannot be reached by another operation without first waiting
-- on that parent's lock, as a join leaf's cannot, so they need no lock in key order of their
-- own. Where the set-based check applies, the statement that finds them right after their
-- parents were locked deletes them (RI triggers off), returning the keys its children are found
-- by and the check probes with: one pass over the table instead of a locking read and a delete
-- in the family statement. The contract is unchanged (pg_test/isolation, purge_delete_when_found):
-- the children are still found by a statement that starts after their parents were locked.
CREATE TABLE shops3 (id int PRIMARY KEY);
CREATE TABLE lists3 (id int PRIMARY KEY, shop_id int NOT NULL REFERENCES shops3);
CREATE TABLE list3_lines (id int PRIMARY KEY, list_id int NOT NULL REFERENCES lists3);
CREATE TABLE list3_tags (id int PRIMARY KEY, list_id int NOT NULL REFERENCES lists3);
CREATE INDEX ON lists3 (shop_id);
CREATE INDEX ON list3_lines (list_id);
CREATE INDEX ON list3_tags (list_id);
INSERT INTO shops3 VALUES (1), (2);
INSERT INTO lists3 SELECT 10 * s + i, s FROM generate_series(1, 2) s, generate_series(1, 3) i;
INSERT INTO list3_lines SELECT 10 * l.id + i, l.id FROM lists3 l, generate_series(1, 2) i;
INSERT INTO list3_tags SELECT l.id, l.id FROM lists3 l;
SELECT step, purpose FROM uproot.explain('shops3') WHERE step <= 3 ORDER BY step;
-- under REPEATABLE READ the set-based check does not apply, and lists3 is locked as before
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT step, purpose FROM uproot.explain('shops3') WHERE step = 2;
ROLLBACK;
-- a closure that lacks list3_tags' key: the check probes it with the keys lists3's delete
-- returned, catches the tags left behind, and nothing changes
SELECT caught_by($$SELECT * FROM uproot.purge('shops3', 1)$$, 'list3_tags_list_id_fkey') AS tags_left_out_caught;
-- a cancel in that statement (it runs in the replica role) leaves the caller's role and every row
SET uproot.debug_fail_at = 'replica_role:cancel';
SELECT * FROM uproot.purge('shops3', 1);
RESET uproot.debug_fail_at;
SHOW session_replication_role;
SELECT (SELECT count(*) FROM lists3) AS lists, (SELECT count(*) FROM list3_lines) AS lines,
       (SELECT count(*) FROM list3_tags) AS tags;
SELECT relation, action, "rows" FROM uproot.purge('shops3', 1) ORDER BY relation::text;
SELECT (SELECT array_agg(id ORDER BY id) FROM lists3) AS lists_left,
       (SELECT count(*) FROM list3_lines) AS lines_left, (SELECT array_agg(id ORDER BY id) FROM list3_tags) AS tags_left;

-- 12. An archive takes the large form too: its join leaves (big2_lines, big2_tags) are moved
-- into their archive tables first, each by a statement of its own (`WITH d AS (DELETE ...)
-- INSERT ...`, counted by SPI: the deleted rows are kept once, for the insert, not again to be
-- counted), then the rest in one statement. It needs to know only whether a leaf has rows (it
-- moves, and needs an archive table for, only those that do), so it stops at the first. A
-- corrupted closure is caught with nothing archived, a cancel in the replica role at the first
-- leaf statement leaves the caller's role and every row, and restore brings the family back.
CREATE TABLE big2_roots (id int PRIMARY KEY);
CREATE TABLE big2_orders (id int PRIMARY KEY, root_id int NOT NULL REFERENCES big2_roots);
CREATE TABLE big2_lines (id int PRIMARY KEY, order_id int NOT NULL REFERENCES big2_orders, note text);
CREATE TABLE big2_tags (id int PRIMARY KEY, order_id int NOT NULL REFERENCES big2_orders);
CREATE TABLE big2_flags (id int PRIMARY KEY, order_id int NOT NULL REFERENCES big2_orders);
CREATE INDEX ON big2_orders (root_id);
CREATE INDEX ON big2_lines (order_id);
CREATE INDEX ON big2_tags (order_id);
CREATE INDEX ON big2_flags (order_id);
INSERT INTO big2_roots VALUES (1), (2);
INSERT INTO big2_orders SELECT g, CASE WHEN g <= 10001 THEN 1 ELSE 2 END FROM generate_series(1, 10010) g;
INSERT INTO big2_lines SELECT g, g, 'line ' || g FROM generate_series(1, 10010) g;
INSERT INTO big2_tags SELECT g, g FROM generate_series(1, 10010, 1000) g;
-- big2_flags has rows of root 2's family only: root 1's archive leaves it out
INSERT INTO big2_flags VALUES (1, 10005);
SELECT count(*) AS prepared FROM uproot.prepare_archive('big2_roots');
SELECT step, purpose FROM uproot.explain('big2_roots', operation => 'archive', keys => 1)
 WHERE purpose LIKE '(only when a table%' OR purpose LIKE 'count%' ORDER BY step;
SET uproot.debug_fail_at = 'replica_role:cancel';
SELECT * FROM uproot.archive('big2_roots', 1);
RESET uproot.debug_fail_at;
SHOW session_replication_role;
SELECT (SELECT count(*) FROM big2_orders) AS orders, (SELECT count(*) FROM big2_lines) AS lines,
       (SELECT count(*) FROM big2_tags) AS tags,
       (SELECT count(*) FROM uproot.batches WHERE root = 'big2_roots'::regclass) AS batches;
SELECT caught_by($$SELECT * FROM uproot.archive('big2_roots', 1)$$, 'big2_tags_order_id_fkey') AS large_archive_caught;
SELECT (SELECT count(*) FROM big2_orders) AS orders, (SELECT count(*) FROM big2_lines) AS lines,
       (SELECT count(*) FROM big2_tags) AS tags,
       (SELECT count(*) FROM uproot.batches WHERE root = 'big2_roots'::regclass) AS batches;
SELECT relation, action, "rows" FROM uproot.archive('big2_roots', 1) ORDER BY relation::text;
SELECT (SELECT count(*) FROM big2_orders) AS orders, (SELECT count(*) FROM big2_lines) AS lines,
       (SELECT count(*) FROM big2_tags) AS tags, (SELECT count(*) FROM big2_flags) AS flags;
SELECT r.relation, r.rows FROM uproot.batch_relations r
  JOIN uproot.batches b ON b.id = r.batch_id WHERE b.root = 'big2_roots'::regclass ORDER BY r.position;
SELECT relation, action, "rows" FROM uproot.restore((SELECT max(id) FROM uproot.batches WHERE root = 'big2_roots'::regclass))
 ORDER BY relation::text;
SELECT (SELECT count(*) FROM big2_orders) AS orders, (SELECT count(*) FROM big2_lines) AS lines,
       (SELECT count(*) FROM big2_tags) AS tags,
       (SELECT count(*) FROM big2_lines WHERE note IS DISTINCT FROM 'line ' || id) AS lines_changed;
SELECT regress.drop_archives('setck');

DROP SCHEMA setck CASCADE;
