-- 34_archive_own_target: an archive table of your own
-- uproot.archive_tables maps each source to its archive table. A user may point a source at a
-- table of their own, here one partitioned by batch so old batches can be detached or dropped
-- whole. It needs the source's columns (same names and types) plus _uproot_batch bigint.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA own_target;
SET search_path = own_target;

CREATE TABLE invoices (id int PRIMARY KEY, total numeric NOT NULL);
CREATE TABLE lines (id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoices, amount numeric);
INSERT INTO invoices VALUES (1, 10), (2, 20);
INSERT INTO lines VALUES (11, 1, 4), (12, 1, 6), (21, 2, 20);

-- the user's own archive for lines: partitioned by batch range
CREATE TABLE lines_archive (id int, invoice_id int, amount numeric, _uproot_batch bigint NOT NULL)
  PARTITION BY RANGE (_uproot_batch);
CREATE TABLE lines_archive_all PARTITION OF lines_archive FOR VALUES FROM (0) TO (MAXVALUE);
INSERT INTO uproot.archive_tables (source, archive) VALUES ('lines', 'lines_archive');

-- prepare_archive leaves it alone and creates the one for invoices
SELECT source, archive, action FROM uproot.prepare_archive('invoices') ORDER BY source::text;
SELECT relation, action, rows FROM uproot.archive('invoices', 1) ORDER BY relation::text;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT id, invoice_id, amount, tableoid::regclass AS partition FROM lines_archive ORDER BY id;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text;
SELECT * FROM lines ORDER BY id;
SELECT count(*) AS left_in_archive FROM lines_archive;

-- a target missing a source column is given that column at the next archive
ALTER TABLE lines ADD COLUMN note text;
SELECT source, action FROM uproot.prepare_archive('invoices') ORDER BY source::text;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'own_target' AND table_name = 'lines_archive' ORDER BY ordinal_position;

-- cleanup: the ledger and mapping rows, and uproot's own archive table for invoices
DELETE FROM uproot.batches WHERE root = 'invoices'::regclass;
SELECT format('DROP TABLE %s', archive) AS drop_it FROM uproot.archive_tables WHERE source = 'invoices'::regclass \gset
DELETE FROM uproot.archive_tables WHERE source IN ('invoices'::regclass, 'lines'::regclass);
:drop_it;
DROP SCHEMA own_target CASCADE;
RESET search_path;
