-- Every object of extension pg_uproot, and everything about it that an upgrade must get right,
-- one line each, independent of OIDs: two databases with the same lines have the same
-- extension. Used by pg_test/ops/upgrade.sh to compare an upgraded install with a fresh one.
WITH ext AS (SELECT oid, extconfig FROM pg_extension WHERE extname = 'pg_uproot'),
members AS (
    SELECT d.classid, d.objid FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
lines AS (
    SELECT 'member ' || pg_describe_object(m.classid, m.objid, 0) AS line FROM members m
    UNION ALL
    SELECT format('function %s returns %s secdef=%s volatile=%s strict=%s config=%s lang=%s acl=%s comment=%s src=%s bin=%s',
                  p.oid::regprocedure, pg_get_function_result(p.oid), p.prosecdef, p.provolatile, p.proisstrict,
                  p.proconfig, l.lanname, p.proacl, obj_description(p.oid, 'pg_proc'),
                  CASE WHEN l.lanname = 'c' THEN '' ELSE md5(p.prosrc) END,
                  CASE WHEN l.lanname = 'c' THEN p.prosrc ELSE '' END)
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.pronamespace IN ('uproot'::regnamespace, 'uproot_internal'::regnamespace)
       AND pg_get_function_arguments(p.oid) IS NOT NULL
    UNION ALL
    SELECT format('function %s args %s', p.oid::regprocedure, pg_get_function_arguments(p.oid))
      FROM pg_proc p WHERE p.pronamespace IN ('uproot'::regnamespace, 'uproot_internal'::regnamespace)
    UNION ALL
    SELECT format('relation %s kind=%s acl=%s rls=%s comment=%s', c.oid::regclass, c.relkind, c.relacl,
                  c.relrowsecurity, obj_description(c.oid, 'pg_class'))
      FROM pg_class c WHERE c.relnamespace = 'uproot'::regnamespace
    UNION ALL
    SELECT format('column %s.%s #%s %s notnull=%s default=%s comment=%s', a.attrelid::regclass, a.attname,
                  row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
                  format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(ad.adbin, ad.adrelid), col_description(a.attrelid, a.attnum))
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE c.relnamespace = 'uproot'::regnamespace AND c.relkind IN ('r', 'v', 'p') AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint %s on %s: %s', con.conname, con.conrelid::regclass, pg_get_constraintdef(con.oid))
      FROM pg_constraint con WHERE con.connamespace = 'uproot'::regnamespace AND con.contype <> 'n'
    UNION ALL
    SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
     WHERE c.relnamespace = 'uproot'::regnamespace
    UNION ALL
    SELECT format('policy %s on %s: %s %s using %s check %s', pol.polname, pol.polrelid::regclass, pol.polcmd,
                  pol.polroles::regrole[], pg_get_expr(pol.polqual, pol.polrelid), pg_get_expr(pol.polwithcheck, pol.polrelid))
      FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid WHERE c.relnamespace = 'uproot'::regnamespace
    UNION ALL
    SELECT format('schema %s owner-is-superuser=%s acl=%s comment=%s', n.nspname, r.rolsuper, n.nspacl,
                  obj_description(n.oid, 'pg_namespace'))
      FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname LIKE 'uproot%'
    UNION ALL
    SELECT format('event trigger %s on %s tags %s runs %s enabled=%s', e.evtname, e.evtevent, e.evttags,
                  e.evtfoid::regproc, e.evtenabled)
      FROM pg_event_trigger e WHERE e.evtname LIKE 'uproot%'
    UNION ALL
    SELECT 'config table ' || c::regclass FROM ext, unnest(ext.extconfig) c
)
SELECT line FROM lines ORDER BY line COLLATE "C";
