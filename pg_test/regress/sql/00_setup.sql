-- 00_setup: the helpers the other files share, in schema regress. It runs first (the files run
-- in name order). The helpers are created in this database and in template1, so that the files
-- that create a database of their own (CREATE DATABASE) have them too.
SELECT $helpers$
CREATE SCHEMA regress;
GRANT USAGE ON SCHEMA regress TO PUBLIC;

-- regress.error_of(sql): run a statement and return the error it raised (message 'no error' if
-- none).
CREATE FUNCTION regress.error_of(sql text, OUT sql_state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  message := 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS sql_state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                          detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END $$;

-- regress.drop_archives(schema): archive tables, their mapping and the batches live outside a
-- file's schema; remove those that belong to its tables.
CREATE FUNCTION regress.drop_archives(schema name) RETURNS void LANGUAGE plpgsql AS $$
DECLARE a regclass;
BEGIN
  DELETE FROM uproot.batches
   WHERE root::oid IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = schema);
  FOR a IN DELETE FROM uproot.archive_tables
            WHERE source::oid IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                   WHERE n.nspname = schema)
           RETURNING archive LOOP
    IF EXISTS (SELECT FROM pg_class WHERE oid = a) THEN
      EXECUTE format('DROP TABLE %s', a);
    END IF;
  END LOOP;
END $$;
$helpers$ AS helpers \gset
:helpers
SELECT current_database() AS home \gset
\c template1
:helpers
\c :home

-- The helpers work: an error is caught with its SQLSTATE, a statement without one says so.
SELECT * FROM regress.error_of('SELECT 1 / 0');
SELECT * FROM regress.error_of('SELECT 1');
\c template1
SELECT proname FROM pg_proc WHERE pronamespace = 'regress'::regnamespace ORDER BY proname;
\c :home
