-- 45_api_surface: what a user finds in schema uproot. \df uproot.* lists the API and nothing
-- else (helpers live in uproot_internal), and every function, table and schema of pg_uproot
-- says what it is for (COMMENT ON), so that \df+, \dt+ and \dn+ document themselves.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;

-- The API: every function and procedure in schema uproot, with its arguments.
SELECT p.proname AS name, p.prokind AS kind, pg_get_function_identity_arguments(p.oid) AS arguments
  FROM pg_proc p
 WHERE p.pronamespace = 'uproot'::regnamespace
 ORDER BY p.proname, 3;

-- No helper (a name starting with an underscore) in the API schema.
SELECT count(*) AS helpers_in_uproot
  FROM pg_proc p WHERE p.pronamespace = 'uproot'::regnamespace AND p.proname LIKE '\_%';

-- Objects of the extension without a comment: none.
SELECT 'function ' || p.oid::regprocedure AS undocumented
  FROM pg_proc p
 WHERE p.pronamespace IN ('uproot'::regnamespace, 'uproot_internal'::regnamespace)
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT 'table ' || c.oid::regclass
  FROM pg_class c
 WHERE c.relnamespace = 'uproot'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'schema ' || n.nspname
  FROM pg_namespace n
 WHERE n.nspname IN ('uproot', 'uproot_internal', 'uproot_archive')
   AND obj_description(n.oid, 'pg_namespace') IS NULL
ORDER BY 1;

-- pg_uproot's own tables: nobody but the owner may write them (PUBLIC may read the archive
-- mapping, and the jobs tables through row-level security), and pg_dump keeps them all.
SELECT c.relname,
       has_table_privilege('public', c.oid, 'INSERT') OR has_table_privilege('public', c.oid, 'UPDATE')
         OR has_table_privilege('public', c.oid, 'DELETE') OR has_table_privilege('public', c.oid, 'TRUNCATE') AS public_writes,
       has_table_privilege('public', c.oid, 'SELECT') AS public_reads,
       c.relrowsecurity AS row_security,
       c.oid = ANY (e.extconfig) AS dumped
  FROM pg_class c, pg_extension e
 WHERE c.relnamespace = 'uproot'::regnamespace AND c.relkind IN ('r', 'S') AND e.extname = 'pg_uproot'
 ORDER BY c.relname;
