-- 21_fault_injection: an error in the middle of a job run
-- A trigger on one child table fails for the family of order 7. The batches before it stay
-- archived (they were committed), the failing batch is rolled back on its own and leaves
-- nothing half-done, and the run log says what happened. The run ends in an ERROR once its
-- run log is committed, so that a scheduler (pg_cron) records it as failed; with
-- on_error => 'warn' it ends in a WARNING instead.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
-- no CONTEXT lines: they would print line numbers of run_job's body
\set SHOW_CONTEXT never
CREATE SCHEMA fault;

-- orders <- items <- events, plain (NO ACTION) foreign keys; orders 1-10, all old.
CREATE TABLE fault.orders (id int PRIMARY KEY, placed date NOT NULL);
CREATE TABLE fault.items  (id int PRIMARY KEY, order_id int NOT NULL REFERENCES fault.orders);
CREATE TABLE fault.events (id int PRIMARY KEY, item_id int NOT NULL REFERENCES fault.items);
CREATE INDEX ON fault.items (order_id);
CREATE INDEX ON fault.events (item_id);
INSERT INTO fault.orders SELECT o, '2022-01-01' FROM generate_series(1, 10) o;
INSERT INTO fault.items SELECT 10 * o + n, o FROM generate_series(1, 10) o, generate_series(1, 2) n;
INSERT INTO fault.events SELECT 10 * i + n, i FROM fault.items i(i), generate_series(1, 2) n;
SELECT source FROM uproot.prepare_archive('fault.orders') ORDER BY source::text;

-- The fault: deleting an item of order 7 fails.
CREATE FUNCTION fault.refuse_order_7() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.order_id = 7 THEN
    RAISE EXCEPTION 'injected fault: item % of order 7', OLD.id;
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER refuse_order_7 BEFORE DELETE ON fault.items FOR EACH ROW EXECUTE FUNCTION fault.refuse_order_7();

-- state(): which orders are live and which are archived, and whether each family is whole
-- (live: every item and event still has its parent; archived: in the same batch as its parent).
CREATE FUNCTION fault.state(OUT live_orders int[], OUT archived_orders int[], OUT live_rows text,
                            OUT archived_rows text, OUT split_rows bigint) LANGUAGE sql AS $$
  SELECT (SELECT array_agg(id ORDER BY id) FROM fault.orders),
         (SELECT array_agg(id ORDER BY id) FROM uproot_archive."fault.orders"),
         format('%s/%s/%s', (SELECT count(*) FROM fault.orders), (SELECT count(*) FROM fault.items),
                (SELECT count(*) FROM fault.events)),
         format('%s/%s/%s', (SELECT count(*) FROM uproot_archive."fault.orders"),
                (SELECT count(*) FROM uproot_archive."fault.items"), (SELECT count(*) FROM uproot_archive."fault.events")),
         (SELECT count(*) FROM fault.items i WHERE NOT EXISTS (SELECT FROM fault.orders o WHERE o.id = i.order_id))
       + (SELECT count(*) FROM fault.events e WHERE NOT EXISTS (SELECT FROM fault.items i WHERE i.id = e.item_id))
       + (SELECT count(*) FROM uproot_archive."fault.items" i
           WHERE NOT EXISTS (SELECT FROM uproot_archive."fault.orders" o
                              WHERE o.id = i.order_id AND o._uproot_batch = i._uproot_batch))
       + (SELECT count(*) FROM uproot_archive."fault.events" e
           WHERE NOT EXISTS (SELECT FROM uproot_archive."fault.items" i
                              WHERE i.id = e.item_id AND i._uproot_batch = e._uproot_batch))
$$;
\x on
SELECT * FROM fault.state();
\x off

-- 3 orders per batch: {1,2,3} and {4,5,6} are archived and committed; {7,8,9} fails.
-- The run stops there: an ERROR names the job, the batch and the trigger's error (its SQLSTATE
-- is kept), and says that the earlier batches stay done.
SELECT name FROM uproot.create_job('fault-archive', 'fault.orders', $$placed < '2024-01-01'$$, batch_roots => 3);
CALL uproot.run_job('fault-archive');
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;
\x on
SELECT * FROM fault.state();
\x off
-- The failing batch left nothing: orders 7-9 and all their items and events are live, none of
-- them is in the archive, and the ledger has only the two committed batches.
SELECT o.id, (SELECT count(*) FROM fault.items i WHERE i.order_id = o.id) AS items,
       (SELECT count(*) FROM fault.events e JOIN fault.items i ON i.id = e.item_id WHERE i.order_id = o.id) AS events
  FROM fault.orders o WHERE o.id IN (7, 8, 9) ORDER BY o.id;
SELECT count(*) AS archived_rows_of_7_8_9
  FROM uproot_archive."fault.items" WHERE order_id IN (7, 8, 9);
SELECT dense_rank() OVER (ORDER BY b.id) AS batch,
       (SELECT string_agg(format('%s=%s', r.relation, r.rows), ' ' ORDER BY r.position)
          FROM uproot.batch_relations r WHERE r.batch_id = b.id) AS rows
  FROM uproot.batches b WHERE b.root = 'fault.orders'::regclass ORDER BY b.id;
-- The run log: the committed batches' roots and rows, and the trigger's message. It was
-- committed before the ERROR.
SELECT job, roots, rows, stop_reason, finished_at IS NOT NULL AS finished
  FROM uproot.job_runs WHERE job = 'fault-archive' ORDER BY run_id;

-- With the fault gone, the next run takes the rest: {7,8,9} and {10}.
DROP TRIGGER refuse_order_7 ON fault.items;
CALL uproot.run_job('fault-archive');
SELECT job, batches, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'fault-archive' ORDER BY run_id DESC LIMIT 1;
\x on
SELECT * FROM fault.state();
\x off

-- The same fault in a purge job: the committed batches are gone, the failing one is intact.
-- This job has on_error => 'warn': the run ends in a WARNING, and the CALL succeeds.
INSERT INTO fault.orders SELECT o, '2022-01-01' FROM generate_series(1, 10) o;
INSERT INTO fault.items SELECT 10 * o + n, o FROM generate_series(1, 10) o, generate_series(1, 2) n;
INSERT INTO fault.events SELECT 10 * i + n, i FROM fault.items i(i), generate_series(1, 2) n;
CREATE TRIGGER refuse_order_7 BEFORE DELETE ON fault.items FOR EACH ROW EXECUTE FUNCTION fault.refuse_order_7();
SELECT name FROM uproot.create_job('fault-purge', 'fault.orders', $$placed < '2024-01-01'$$, action => 'purge', batch_roots => 3, on_error => 'warn');
CALL uproot.run_job('fault-purge');
SELECT o.id, (SELECT count(*) FROM fault.items i WHERE i.order_id = o.id) AS items,
       (SELECT count(*) FROM fault.events e JOIN fault.items i ON i.id = e.item_id WHERE i.order_id = o.id) AS events
  FROM fault.orders o ORDER BY o.id;
SELECT job, roots, rows, stop_reason
  FROM uproot.job_runs WHERE job = 'fault-purge' ORDER BY run_id;

-- Clean up.
SELECT uproot.drop_job('fault-archive'), uproot.drop_job('fault-purge');
DELETE FROM uproot.job_runs WHERE job LIKE 'fault-%';
DELETE FROM uproot.batches WHERE root = 'fault.orders'::regclass;
DROP TABLE uproot_archive."fault.orders", uproot_archive."fault.items", uproot_archive."fault.events";
DELETE FROM uproot.archive_tables WHERE source::text LIKE 'fault.%';
DROP SCHEMA fault CASCADE;
