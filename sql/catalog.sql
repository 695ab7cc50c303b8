-- The foreign-key graph of the closure of $1 (the roots of the current call, an oid[]) in one
-- query, as jsonb: the roots and every relation a family of theirs may reach (children, through foreign keys and
-- declared relations; the parents of owned edges; partitions and partition ancestors), every
-- edge whose child is one of them, and the relations those edges reference.
-- Clones of FKs on partitions (conparentid <> 0) are left out: they are not separate edges.
WITH RECURSIVE fk AS (
    SELECT con.oid, con.conname, con.conrelid, con.confrelid, con.conkey, con.confkey,
           con.confdeltype, con.condeferrable, con.condeferred, con.convalidated,
           con.confdelsetcols, con.conpfeqop,
           con.conenforced -- PostgreSQL 18 and later; catalog_sql() writes true before 18
      FROM pg_catalog.pg_constraint con
     WHERE con.contype OPERATOR(pg_catalog.=) 'f'
       AND con.conparentid OPERATOR(pg_catalog.=) 0
),
-- Sync declared relations (uproot.declared_relations) are edges too: like a NOT ENFORCED FK,
-- PostgreSQL runs no action for them. Their id stands in for the constraint OID; a column that
-- no longer exists is attnum 0, which the graph reports when the relation is in a family.
-- Relations whose tables are gone are left out (the sql_drop event trigger forgets them).
declared AS (
    SELECT d.name, c.oid AS conrelid, p.oid AS confrelid, d.on_delete,
           (SELECT pg_catalog.array_agg(COALESCE(a.attnum, 0::pg_catalog.int2) ORDER BY u.ord)
              FROM pg_catalog.unnest(d.child_columns) WITH ORDINALITY AS u(col, ord)
              LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                   AND a.attname OPERATOR(pg_catalog.=) u.col AND a.attnum OPERATOR(pg_catalog.>) 0
                   AND NOT a.attisdropped) AS conkey,
           (SELECT pg_catalog.array_agg(COALESCE(a.attnum, 0::pg_catalog.int2) ORDER BY u.ord)
              FROM pg_catalog.unnest(d.parent_columns) WITH ORDINALITY AS u(col, ord)
              LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.oid
                   AND a.attname OPERATOR(pg_catalog.=) u.col AND a.attnum OPERATOR(pg_catalog.>) 0
                   AND NOT a.attisdropped) AS confkey
      FROM uproot.declared_relations d
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.child::pg_catalog.oid
      JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) d.parent::pg_catalog.oid
     WHERE d.on_delete OPERATOR(pg_catalog.=) ANY ('{cascade,set null,restrict}'::pg_catalog.text[])
),
edge AS (
    SELECT fk.oid::pg_catalog.int8 AS id, fk.conname::pg_catalog.text AS conname, fk.conrelid,
           fk.confrelid, fk.conkey, fk.confkey, fk.confdeltype::pg_catalog.text AS confdeltype,
           fk.condeferrable, fk.condeferred, fk.convalidated, fk.confdelsetcols, fk.conenforced,
           false AS declared,
           EXISTS (SELECT FROM uproot.owned_parents o
                    WHERE o.child::pg_catalog.oid OPERATOR(pg_catalog.=) fk.conrelid
                      AND o.via OPERATOR(pg_catalog.=) fk.conname::pg_catalog.text) AS owned,
           -- each operator looked up by its OID (LATERAL ... OFFSET 0: not a hash join over
           -- all of pg_operator for every key)
           (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(opn.nspname::pg_catalog.text, op.oprname::pg_catalog.text) ORDER BY u.ord)
              FROM pg_catalog.unnest(fk.conpfeqop) WITH ORDINALITY AS u(opr, ord)
             CROSS JOIN LATERAL (SELECT o.oprname, o.oprnamespace FROM pg_catalog.pg_operator o
                                  WHERE o.oid OPERATOR(pg_catalog.=) u.opr OFFSET 0) op
              JOIN pg_catalog.pg_namespace opn ON opn.oid OPERATOR(pg_catalog.=) op.oprnamespace) AS eq_ops
      FROM fk
    UNION ALL
    -- a declared relation's id is its rank by name: stable while the declarations are
    SELECT pg_catalog.row_number() OVER (ORDER BY d.name), d.name OPERATOR(pg_catalog.||) ' (declared)',
           d.conrelid, d.confrelid, d.conkey, d.confkey,
           CASE d.on_delete WHEN 'cascade' THEN 'c' WHEN 'set null' THEN 'n' ELSE 'r' END,
           false, false, true, NULL::pg_catalog.int2[], false, true,
           EXISTS (SELECT FROM uproot.owned_parents o
                    WHERE o.child::pg_catalog.oid OPERATOR(pg_catalog.=) d.conrelid AND o.via OPERATOR(pg_catalog.=) d.name),
           -- the equality operator of the parent's unique index, column by column (the index
           -- was checked when the relation was declared; without it, pg_catalog.=)
           COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(opn.nspname::pg_catalog.text, op.oprname::pg_catalog.text) ORDER BY u.ord)
              FROM pg_catalog.unnest(d.confkey) WITH ORDINALITY AS u(att, ord)
              JOIN LATERAL pg_catalog.unnest(ux.keys) WITH ORDINALITY AS k(att, pos) ON k.att OPERATOR(pg_catalog.=) u.att
              JOIN LATERAL pg_catalog.unnest(ux.classes) WITH ORDINALITY AS x(opc, pos) ON x.pos OPERATOR(pg_catalog.=) k.pos
              JOIN pg_catalog.pg_opclass oc ON oc.oid OPERATOR(pg_catalog.=) x.opc
              JOIN pg_catalog.pg_amop ao ON ao.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily
                   AND ao.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype
                   AND ao.amoprighttype OPERATOR(pg_catalog.=) oc.opcintype
                   AND ao.amopstrategy OPERATOR(pg_catalog.=) 3
                   AND ao.amopmethod OPERATOR(pg_catalog.=) oc.opcmethod
              JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) ao.amopopr
              JOIN pg_catalog.pg_namespace opn ON opn.oid OPERATOR(pg_catalog.=) op.oprnamespace), '[]')
      FROM declared d
      LEFT JOIN LATERAL (
          SELECT (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:i.indnkeyatts] AS keys,
                 i.indclass::pg_catalog.oid[] AS classes
            FROM pg_catalog.pg_index i
           WHERE i.indrelid OPERATOR(pg_catalog.=) d.confrelid AND i.indisunique AND i.indisvalid
             AND i.indpred IS NULL AND i.indexprs IS NULL
             AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:i.indnkeyatts] OPERATOR(pg_catalog.@>) d.confkey
             AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:i.indnkeyatts] OPERATOR(pg_catalog.<@) d.confkey
           ORDER BY i.indisprimary DESC, i.indexrelid
           LIMIT 1) ux ON true
),
closure(oid) AS (
    SELECT r FROM pg_catalog.unnest($1::pg_catalog.oid[]) r
    UNION
    SELECT n.oid FROM closure r CROSS JOIN LATERAL (
        SELECT e.conrelid FROM edge e WHERE e.confrelid OPERATOR(pg_catalog.=) r.oid
        UNION ALL
        SELECT e.confrelid FROM edge e WHERE e.conrelid OPERATOR(pg_catalog.=) r.oid AND e.owned
        UNION ALL
        SELECT t.relid FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.pg_partition_tree(c.oid) t
         WHERE c.oid OPERATOR(pg_catalog.=) r.oid AND c.relkind OPERATOR(pg_catalog.=) 'p'
        UNION ALL
        SELECT a.relid FROM pg_catalog.pg_class c CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(c.oid) a
         WHERE c.oid OPERATOR(pg_catalog.=) r.oid AND c.relispartition
    ) n(oid)
),
family_edge AS (
    SELECT * FROM edge WHERE conrelid IN (SELECT oid FROM closure)
),
rel_ids AS (
    SELECT oid FROM closure
    UNION SELECT confrelid FROM family_edge
),
-- partitions and ancestors of the partitioned relations above, so that partitioned families resolve
rel_all AS (
    SELECT oid FROM rel_ids
    UNION
    SELECT t.relid FROM rel_ids r
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid AND c.relkind OPERATOR(pg_catalog.=) 'p'
     CROSS JOIN LATERAL pg_catalog.pg_partition_tree(r.oid) t
    UNION
    SELECT a.relid FROM rel_ids r
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.oid AND c.relispartition
     CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(r.oid) a
)
SELECT pg_catalog.jsonb_build_object(
  'relations', COALESCE((
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'oid', c.oid::pg_catalog.int8,
             'schema', n.nspname::pg_catalog.text,
             'name', c.relname::pg_catalog.text,
             'kind', c.relkind::pg_catalog.text,
             'is_partition', c.relispartition,
             'parent', CASE WHEN c.relispartition THEN
                         (SELECT i.inhparent::pg_catalog.int8 FROM pg_catalog.pg_inherits i
                           WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid) END,
             'leaf_partitions', CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'p' THEN
                                  (SELECT COALESCE(pg_catalog.jsonb_agg(t.relid::pg_catalog.oid::pg_catalog.int8 ORDER BY t.relid), '[]')
                                     FROM pg_catalog.pg_partition_tree(c.oid) t WHERE t.isleaf) ELSE '[]' END,
             'rls_enabled', c.relrowsecurity,
             'user_triggers', (SELECT COALESCE(pg_catalog.jsonb_agg(tg.tgname::pg_catalog.text ORDER BY tg.tgname), '[]')
                                 FROM pg_catalog.pg_trigger tg
                                WHERE tg.tgrelid OPERATOR(pg_catalog.=) c.oid AND NOT tg.tgisinternal
                                  AND tg.tgparentid OPERATOR(pg_catalog.=) 0),
             -- those of them that pg_uproot installed (src/declared): the queue trigger of an
             -- async relation's parent and the check trigger of a declared relation's child
             -- (queue triggers first: queue_deleted_keys sorts after check_declared_reference)
             'own_triggers', (SELECT COALESCE(pg_catalog.jsonb_agg(tg.tgname::pg_catalog.text ORDER BY f.proname DESC, tg.tgname), '[]')
                                FROM pg_catalog.pg_trigger tg
                                JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) tg.tgfoid
                               WHERE tg.tgrelid OPERATOR(pg_catalog.=) c.oid AND NOT tg.tgisinternal
                                 AND tg.tgparentid OPERATOR(pg_catalog.=) 0
                                 AND f.pronamespace OPERATOR(pg_catalog.=) 'uproot_internal'::pg_catalog.regnamespace
                                 AND f.proname OPERATOR(pg_catalog.=) ANY ('{check_declared_reference,queue_deleted_keys}'::pg_catalog.name[])),
             -- what the set-based foreign-key check needs to know (src/exec/ri_check.rs)
             -- (not relhasrules: it stays true after the last rule is dropped)
             'has_rules', EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w
                                   WHERE w.ev_class OPERATOR(pg_catalog.=) c.oid),
             'internal_triggers_on_origin', NOT EXISTS (
                 SELECT 1 FROM pg_catalog.pg_trigger tg
                  WHERE tg.tgrelid OPERATOR(pg_catalog.=) c.oid AND tg.tgisinternal
                    AND tg.tgenabled OPERATOR(pg_catalog.<>) 'O'),
             'primary_key', (SELECT pg_catalog.to_jsonb(pk.conkey) FROM pg_catalog.pg_constraint pk
                              WHERE pk.conrelid OPERATOR(pg_catalog.=) c.oid AND pk.contype OPERATOR(pg_catalog.=) 'p'),
             -- the btree equality operator of each primary-key column, as [schema, name]
             'pk_eq_ops', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(opn.nspname::pg_catalog.text, op.oprname::pg_catalog.text) ORDER BY k.ord)
                             FROM pg_catalog.pg_constraint pk
                             JOIN pg_catalog.pg_index i ON i.indexrelid OPERATOR(pg_catalog.=) pk.conindid
                             CROSS JOIN LATERAL pg_catalog.unnest(i.indclass::pg_catalog.oid[]) WITH ORDINALITY AS k(opc, ord)
                             -- by OID (not a hash of all of pg_opclass built again for every table)
                             CROSS JOIN LATERAL (SELECT c.opcfamily, c.opcintype, c.opcmethod FROM pg_catalog.pg_opclass c
                                  WHERE c.oid OPERATOR(pg_catalog.=) k.opc OFFSET 0) oc
                             -- by index, per column (not a merge join over all of pg_amop per table)
                             CROSS JOIN LATERAL (SELECT a.amopopr FROM pg_catalog.pg_amop a
                                  WHERE a.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily
                                    AND a.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype
                                    AND a.amoprighttype OPERATOR(pg_catalog.=) oc.opcintype
                                    AND a.amopstrategy OPERATOR(pg_catalog.=) 3
                                    AND a.amopmethod OPERATOR(pg_catalog.=) oc.opcmethod OFFSET 0) ao
                             CROSS JOIN LATERAL (SELECT o.oprname, o.oprnamespace FROM pg_catalog.pg_operator o
                                  WHERE o.oid OPERATOR(pg_catalog.=) ao.amopopr OFFSET 0) op
                             JOIN pg_catalog.pg_namespace opn ON opn.oid OPERATOR(pg_catalog.=) op.oprnamespace
                            WHERE pk.conrelid OPERATOR(pg_catalog.=) c.oid AND pk.contype OPERATOR(pg_catalog.=) 'p'),
             'columns', (SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                   'attnum', a.attnum,
                                   'name', a.attname::pg_catalog.text,
                                   'type_oid', a.atttypid::pg_catalog.int8,
                                   'type_name', pg_catalog.format_type(a.atttypid, a.atttypmod),
                                   'generated', NULLIF(a.attgenerated, '')::pg_catalog.text)
                                 ORDER BY a.attnum), '[]')
                           FROM pg_catalog.pg_attribute a
                          WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                            AND NOT a.attisdropped)
           ) ORDER BY c.oid)
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid IN (SELECT oid FROM rel_all)
  ), '[]'),
  'foreign_keys', COALESCE((
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
             'oid', fk.id,
             'name', fk.conname,
             'declared', fk.declared,
             'owned', fk.owned,
             'child', fk.conrelid::pg_catalog.int8,
             'parent', fk.confrelid::pg_catalog.int8,
             'child_cols', pg_catalog.to_jsonb(fk.conkey),
             'parent_cols', pg_catalog.to_jsonb(fk.confkey),
             'on_delete', fk.confdeltype,
             'set_cols', pg_catalog.to_jsonb(fk.confdelsetcols),
             -- the PK = FK equality operator of each column pair, as [schema, name]
             'eq_ops', fk.eq_ops,
             'deferrable', fk.condeferrable,
             'deferred', fk.condeferred,
             'validated', fk.convalidated,
             'enforced', fk.conenforced,
             -- a valid index whose leading columns are exactly the FK columns, in any order
             'child_indexed', EXISTS (
                 SELECT 1 FROM pg_catalog.pg_index i
                  WHERE i.indrelid OPERATOR(pg_catalog.=) fk.conrelid
                    AND i.indisvalid
                    AND i.indpred IS NULL
                    AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])
                          [1:pg_catalog.array_length(fk.conkey, 1)] OPERATOR(pg_catalog.@>) fk.conkey
                    AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])
                          [1:pg_catalog.array_length(fk.conkey, 1)] OPERATOR(pg_catalog.<@) fk.conkey),
             -- the predicates of such indexes that are partial; the Rust side decides whether the
             -- FK lookup implies one (e.g. `col IS NOT NULL`)
             'partial_index_predicates', (
                 SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.pg_get_expr(i.indpred, i.indrelid) ORDER BY i.indexrelid), '[]')
                   FROM pg_catalog.pg_index i
                  WHERE i.indrelid OPERATOR(pg_catalog.=) fk.conrelid
                    AND i.indisvalid
                    AND i.indpred IS NOT NULL
                    AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])
                          [1:pg_catalog.array_length(fk.conkey, 1)] OPERATOR(pg_catalog.@>) fk.conkey
                    AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])
                          [1:pg_catalog.array_length(fk.conkey, 1)] OPERATOR(pg_catalog.<@) fk.conkey)
           ) ORDER BY fk.declared, fk.id)
      FROM family_edge fk
  ), '[]')
)
