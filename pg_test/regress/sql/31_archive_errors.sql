-- 31_archive_errors: privileges and a broken archive get a clear error, and nothing changes
-- archive() creates a missing archive table only if the caller may (CREATE on schema
-- uproot_archive; pg_uproot records the mapping itself); otherwise the error names
-- prepare_archive, which a role that may create them runs once. An archive table dropped by hand is an
-- error too, until prepare_archive() creates it again. After each error the table sizes,
-- the archive and the ledger are shown again: they never move.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA aerrors;
SET search_path = aerrors;

-- accounts <- projects (NO ACTION)
CREATE TABLE accounts (id int PRIMARY KEY, name text);
CREATE TABLE projects (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts);
INSERT INTO accounts SELECT a, 'account ' || a FROM generate_series(1, 5) a;
INSERT INTO projects SELECT 10 * a + n, a FROM generate_series(1, 5) a, generate_series(1, 2) n;
-- state(): live rows, archive tables and their rows, and this schema's batches.
CREATE FUNCTION state() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  archived text := '';
  a regclass;
  n bigint;
BEGIN
  FOR a IN SELECT m.archive FROM uproot.archive_tables m
            WHERE m.source IN ('aerrors.accounts'::regclass, 'aerrors.projects'::regclass)
              AND EXISTS (SELECT FROM pg_class WHERE oid = m.archive)
            ORDER BY m.source::text LOOP
    EXECUTE format('SELECT count(*) FROM %s', a) INTO n;
    archived := archived || format(' %s=%s', a, n);
  END LOOP;
  RETURN format('live: accounts=%s projects=%s; archive tables:%s; batches=%s',
                (SELECT count(*) FROM aerrors.accounts), (SELECT count(*) FROM aerrors.projects),
                CASE WHEN archived = '' THEN ' none' ELSE archived END,
                (SELECT count(*) FROM uproot.batches WHERE root = 'aerrors.accounts'::regclass));
END $$;
SELECT state();

-- A role that may read, lock (UPDATE) and delete the rows, but not create tables in
-- uproot_archive. The tables have no archive tables yet.
CREATE ROLE regress_uproot_archiver;
GRANT USAGE ON SCHEMA aerrors TO regress_uproot_archiver;
GRANT SELECT, UPDATE, DELETE ON accounts, projects TO regress_uproot_archiver;
-- A role that may only read them.
CREATE ROLE regress_uproot_reader;
GRANT USAGE ON SCHEMA aerrors TO regress_uproot_reader;
GRANT SELECT ON accounts, projects TO regress_uproot_reader;
SET ROLE regress_uproot_archiver;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('accounts', 1)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive_where('accounts', 'id <= 2')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.prepare_archive('accounts')$$);
\x off
RESET ROLE;
SELECT state();

-- The schema owner prepares the archive once. The archive tables belong to the sources'
-- owner; whoever may delete from a source may write its archive table, whoever may read
-- it may read its archive table.
SELECT source, archive, action FROM uproot.prepare_archive('accounts') ORDER BY source::text;
SELECT c.relname, pg_get_userbyid(c.relowner) = current_user AS owned_by_source_owner
  FROM uproot.archive_tables m JOIN pg_class c ON c.oid = m.archive
 WHERE m.source IN ('accounts'::regclass, 'projects'::regclass) ORDER BY c.relname;
SELECT table_name, grantee, string_agg(privilege_type, ', ' ORDER BY privilege_type) AS privileges
  FROM information_schema.role_table_grants
 WHERE table_schema = 'uproot_archive' AND table_name LIKE 'aerrors.%' AND grantee LIKE 'regress_uproot_%'
 GROUP BY table_name, grantee ORDER BY table_name, grantee;

-- Now the role archives; it has no INSERT on the sources, so it cannot restore, and that
-- failure changes nothing either.
SET ROLE regress_uproot_archiver;
SELECT relation, action, rows FROM uproot.archive('accounts', 1) ORDER BY relation::text;
-- The ledger is not readable (nor writable) without a GRANT: keys can be personal data.
\x on
SELECT * FROM regress.error_of($$SELECT count(*) FROM uproot.batches$$);
\x off
RESET ROLE;
SELECT max(id) AS b1 FROM uproot.batches \gset
SET ROLE regress_uproot_archiver;
\x on
SELECT * FROM regress.error_of(format('SELECT * FROM uproot.restore(%s)', :b1));
\x off
RESET ROLE;
SELECT state();
GRANT INSERT ON accounts, projects TO regress_uproot_archiver;
SET ROLE regress_uproot_archiver;
SELECT relation, action, rows FROM uproot.restore(:b1) ORDER BY relation::text, action;
RESET ROLE;
SELECT archived_by, restored_by FROM uproot.batches WHERE id = :b1;
SELECT state();
-- The reader may look at the archive but not archive.
SET ROLE regress_uproot_reader;
SELECT count(*) AS archived_accounts FROM uproot_archive."aerrors.accounts";
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('accounts', 1)$$);
\x off
RESET ROLE;
SELECT state();

-- An archive table dropped by hand: archive() says so and points to prepare_archive(), and
-- nothing moves. (The mapping keeps the source, with no archive table.)
SELECT relation, action, rows FROM uproot.archive('accounts', 2) ORDER BY relation::text;
SELECT max(id) AS b2 FROM uproot.batches \gset
DROP TABLE uproot_archive."aerrors.projects";
SELECT source, archive FROM uproot.archive_tables WHERE source = 'projects'::regclass;
SELECT state();
\x on
SELECT sql_state, message = 'uproot: the archive table of aerrors.projects no longer exists' AS names_it,
       detail, hint
  FROM regress.error_of($$SELECT * FROM uproot.archive('accounts', 3)$$);
SELECT sql_state, message = 'uproot: the archive table of aerrors.projects no longer exists' AS names_it,
       detail, hint
  FROM regress.error_of($$SELECT * FROM uproot.archive_where('accounts', 'id >= 3')$$);
\x off
SELECT state();
-- Restoring a batch whose rows were in the dropped table is an error as well: those rows
-- are gone, and the rest of the batch stays archived. The hint says how to drop the batch.
\x on
SELECT sql_state, message LIKE 'uproot: cannot restore batch % the archive table of aerrors.projects no longer exists' AS names_it,
       detail, replace(hint, :'b2', '<batch>') AS hint
  FROM regress.error_of(format('SELECT * FROM uproot.restore(%s)', :b2));
\x off
SELECT state();
-- prepare_archive() creates it again (empty), and archive works again.
SELECT source, archive, action FROM uproot.prepare_archive('accounts') ORDER BY source::text;
SELECT relation, action, rows FROM uproot.archive('accounts', 3) ORDER BY relation::text;
SELECT state();

-- A view is not a table, and a table without a primary key cannot be named by keys (a
-- predicate works).
CREATE VIEW account_names AS SELECT id, name FROM accounts;
CREATE TABLE audit (account_id int REFERENCES accounts, note text);
INSERT INTO audit VALUES (4, 'created'), (4, 'renamed'), (5, 'created');
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('account_names', 4)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.prepare_archive('account_names')$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('audit', 4)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('accounts', NULL::int)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive_where('accounts', 'id = 4; DROP TABLE accounts')$$);
\x off
SELECT state();
SELECT relation, action, rows FROM uproot.archive_where('audit', 'account_id = 4');
SELECT * FROM audit ORDER BY account_id;

SELECT regress.drop_archives('aerrors');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'aerrors.%';
DROP SCHEMA aerrors CASCADE;
DROP ROLE regress_uproot_archiver;
DROP ROLE regress_uproot_reader;
RESET search_path;
