//! `#[pg_test]`s for the SPI seams: catalog loading and its cache, key binding, predicate
//! checks, the prepared-statement cache, the row-set round trip through `tid[]`, archive and
//! restore through SPI, explain against the statements that ran, and errors that change nothing.
use pgrx::prelude::*;

#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup_chain() {
        Spi::run(
            "CREATE TABLE c(id int PRIMARY KEY);
             CREATE TABLE o(id int PRIMARY KEY, c_id int NOT NULL REFERENCES c);
             CREATE INDEX ON o(c_id);
             CREATE TABLE i(id int PRIMARY KEY, o_id int NOT NULL REFERENCES o);
             INSERT INTO c SELECT g FROM generate_series(1, 4) g;
             INSERT INTO o SELECT g, 1 + g % 4 FROM generate_series(1, 12) g;
             INSERT INTO i SELECT g, 1 + g % 12 FROM generate_series(1, 36) g;",
        )
        .unwrap();
    }

    /// The one bigint `sql` returns; NULL fails the test.
    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql)
            .unwrap()
            .unwrap_or_else(|| panic!("NULL from {sql}"))
    }

    /// The statements `uproot.explain` shows for `args` (SQL argument list), in step order,
    /// without the steps that run only on a condition (restore's skip and failure paths, the
    /// family statement's form for large join-leaf sets). (A step read "in process" shows the
    /// query whose result it reads without running it: the statistics counters.)
    fn explained_unconditional(args: &str) -> Vec<String> {
        explained_where(
            args,
            "purpose NOT LIKE '(only %' AND purpose NOT LIKE '%in process%'",
        )
    }

    /// The statements of the steps that meet `condition`, in step order.
    fn explained_where(args: &str, condition: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                &format!(
                    "SELECT statement FROM uproot.explain({args}) WHERE {condition} ORDER BY step"
                ),
                None,
                &[],
            )
            .unwrap()
            .map(|row| row.get::<String>(1).unwrap().unwrap())
            .collect()
        })
    }

    /// The live rows of the chain, as text, to compare before and after.
    fn chain_state() -> String {
        Spi::get_one::<String>(
            "SELECT format('%s|%s|%s', (SELECT string_agg(id::text, ',' ORDER BY id) FROM c), \
                    (SELECT string_agg(id || ':' || c_id, ',' ORDER BY id) FROM o), \
                    (SELECT string_agg(id || ':' || o_id, ',' ORDER BY id) FROM i))",
        )
        .unwrap()
        .unwrap()
    }

    fn loads() -> i64 {
        count("SELECT catalog_loads FROM uproot.cache_info()")
    }

    #[pg_test]
    fn extension_creates_schema() {
        assert_eq!(
            count("SELECT count(*) FROM pg_namespace WHERE nspname = 'uproot'"),
            1
        );
    }

    #[pg_test]
    fn catalog_is_cached_until_ddl() {
        setup_chain();
        let _ = count("SELECT sum(rows)::int8 FROM uproot.preview('c', 1)");
        let after_first = loads();
        let _ = count("SELECT sum(rows)::int8 FROM uproot.preview('c', 2)");
        assert_eq!(
            loads(),
            after_first,
            "a second call with no DDL reuses the cached graph"
        );

        // An FK added in this session is honoured by the very next call.
        Spi::run("CREATE TABLE n(id int PRIMARY KEY, i_id int REFERENCES i); INSERT INTO n SELECT g, g FROM generate_series(1, 36) g").unwrap();
        let n = count("SELECT rows FROM uproot.preview('c', 1) WHERE relation = 'n'::regclass");
        assert!(loads() > after_first, "DDL invalidated the cache");
        assert_eq!(n, count("SELECT count(*) FROM n JOIN i ON i.id = n.i_id JOIN o ON o.id = i.o_id WHERE o.c_id = 1"));
        assert!(n > 0);

        // ... and so is one dropped.
        Spi::run("ALTER TABLE n DROP CONSTRAINT n_i_id_fkey").unwrap();
        assert_eq!(
            count("SELECT count(*) FROM uproot.preview('c', 1) WHERE relation = 'n'::regclass"),
            0
        );
    }

    #[pg_test]
    fn keys_bind_as_parameters_of_any_accepted_type() {
        Spi::run("CREATE TABLE big(id bigint PRIMARY KEY); INSERT INTO big VALUES (1), (2), (3)")
            .unwrap();
        Spi::run("CREATE TABLE u(id uuid PRIMARY KEY); INSERT INTO u VALUES ('00000000-0000-0000-0000-000000000001')").unwrap();
        Spi::run("CREATE TABLE comp(a int, b text, PRIMARY KEY (a, b)); INSERT INTO comp VALUES (1, 'x'), (1, 'y'), (2, 'x')").unwrap();
        // int literal for a bigint key, arrays, text for uuid, jsonb for composite keys
        assert_eq!(count("SELECT rows FROM uproot.preview('big', 2)"), 1);
        assert_eq!(
            count("SELECT rows FROM uproot.preview('big', array[1, 3, 99])"),
            2
        );
        assert_eq!(count("SELECT rows FROM uproot.preview('u', '00000000-0000-0000-0000-000000000001'::text)"), 1);
        assert_eq!(
            count(r#"SELECT rows FROM uproot.preview('comp', '{"a": 1, "b": "y"}'::jsonb)"#),
            1
        );
        assert_eq!(
            count(
                r#"SELECT rows FROM uproot.preview('comp', '[{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]'::jsonb)"#
            ),
            2
        );
        // the same statement text prepared for two parameter types must not be confused
        assert_eq!(
            count("SELECT rows FROM uproot.preview('big', '3'::text)"),
            1
        );
        assert_eq!(count("SELECT rows FROM uproot.preview('big', 3::int2)"), 1);
        assert_eq!(
            count("SELECT rows FROM uproot.preview('big', array[]::int[])"),
            0
        );
    }

    #[pg_test(
        error = "uproot: invalid keys: keys of type numeric do not match the primary key big.id of type bigint"
    )]
    fn keys_reject_lossy_casts() {
        Spi::run("CREATE TABLE big(id bigint PRIMARY KEY)").unwrap();
        let _ = count("SELECT rows FROM uproot.preview('big', 3.5)");
    }

    /// SQLSTATE and message of the error `sql` raises, caught in a subtransaction.
    fn error_of(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE q; RETURN 'no error';
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ' ' || SQLERRM; END $f$",
        )
        .unwrap();
        Spi::get_one_with_args::<String>("SELECT pg_temp.err($1)", &[sql.into()])
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn composite_keys_name_every_column() {
        Spi::run("CREATE TABLE comp(a int, b text, PRIMARY KEY (a, b)); INSERT INTO comp VALUES (1, 'x')").unwrap();
        let e = error_of(r#"SELECT * FROM uproot.purge('comp', '{"a": 1}'::jsonb)"#);
        assert_eq!(e, r#"22023 uproot: invalid keys: {"a":1} has no "b""#);
        let e =
            error_of(r#"SELECT * FROM uproot.purge('comp', '{"a": 1, "b": "x", "c": 2}'::jsonb)"#);
        assert!(
            e.starts_with("22023 ") && e.contains(r#""c", which is not a primary-key column"#),
            "{e}"
        );
        let e = error_of("SELECT * FROM uproot.purge('comp', 1)");
        assert!(
            e.starts_with("22023 ") && e.contains("composite primary key (a, b)"),
            "{e}"
        );
        assert_eq!(count("SELECT count(*) FROM comp"), 1, "nothing changed");
    }

    #[pg_test(
        error = "uproot: invalid predicate for t: it must be exactly one expression, not several statements"
    )]
    fn predicate_with_a_second_statement_is_rejected() {
        Spi::run("CREATE TABLE t(id int PRIMARY KEY)").unwrap();
        let _ = count("SELECT count(*) FROM uproot.purge_where('t', 'true; DELETE FROM t')");
    }

    #[pg_test(error = "uproot: invalid predicate for t: it does not parse as one expression")]
    fn predicate_closing_our_parenthesis_is_rejected() {
        Spi::run("CREATE TABLE t(id int PRIMARY KEY)").unwrap();
        let _ = count("SELECT count(*) FROM uproot.purge_where('t', 'id = 1) OR (true')");
    }

    #[pg_test(
        error = "uproot: invalid predicate for t: it ends inside a comment or does not close what it opens"
    )]
    fn predicate_with_trailing_comment_is_rejected() {
        Spi::run("CREATE TABLE t(id int PRIMARY KEY)").unwrap();
        let _ = count("SELECT count(*) FROM uproot.purge_where('t', 'id = 1 --')");
    }

    #[pg_test]
    fn predicate_may_name_the_root_table() {
        setup_chain();
        assert_eq!(count("SELECT rows FROM uproot.preview_where('c', 'c.id <= 2') WHERE relation = 'c'::regclass"), 2);
    }

    #[pg_test]
    fn prepared_statements_are_reused() {
        setup_chain();
        let _ = count("SELECT count(*) FROM uproot.purge('c', 1)");
        let plans = count("SELECT cached_plans FROM uproot.cache_info()");
        assert!(plans > 0);
        let _ = count("SELECT count(*) FROM uproot.purge('c', 2)");
        assert_eq!(
            count("SELECT cached_plans FROM uproot.cache_info()"),
            plans,
            "the same shape reuses its plans"
        );
    }

    #[pg_test]
    fn purge_returns_what_preview_promised_and_tids_round_trip() {
        setup_chain();
        Spi::run(
            "CREATE TEMP TABLE p AS SELECT relation, action, rows FROM uproot.preview('c', array[1, 2]);
             CREATE TEMP TABLE q AS SELECT relation, action, rows FROM uproot.purge('c', array[1, 2]);",
        )
        .unwrap();
        assert_eq!(count("SELECT count(*) FROM ((TABLE p EXCEPT TABLE q) UNION ALL (TABLE q EXCEPT TABLE p)) x"), 0);
        assert_eq!(count("SELECT count(*) FROM c"), 2);
        assert_eq!(count("SELECT count(*) FROM o WHERE c_id IN (1, 2)"), 0);
        assert_eq!(
            count("SELECT count(*) FROM i WHERE o_id NOT IN (SELECT id FROM o)"),
            0,
            "no orphans"
        );
        assert_eq!(count("SELECT sum(rows)::int8 FROM q"), 2 + 6 + 18);
    }

    #[pg_test]
    fn archive_and_restore_move_exactly_the_family() {
        setup_chain();
        let before = chain_state();
        Spi::run(
            "CREATE TEMP TABLE a AS SELECT batch_id, relation::text AS relation, action, rows FROM uproot.archive('c', 1)",
        )
        .unwrap();
        let batch = count("SELECT DISTINCT batch_id FROM a");
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(relation || ' ' || action || ' ' || rows, ', ' ORDER BY relation) FROM a"
            )
            .unwrap()
            .unwrap(),
            "c archived 1, i archived 9, o archived 3"
        );
        assert_eq!(count("SELECT count(*) FROM c WHERE id = 1"), 0);
        assert_eq!(count("SELECT count(*) FROM o WHERE c_id = 1"), 0);
        assert_eq!(count("SELECT count(*) FROM uproot_archive.\"public.i\""), 9);
        assert_eq!(
            count(&format!(
                "SELECT count(*) FROM uproot_archive.\"public.o\" WHERE _uproot_batch = {batch} AND c_id = 1"
            )),
            3
        );
        Spi::run(&format!(
            "CREATE TEMP TABLE r AS SELECT relation::text AS relation, action, rows FROM uproot.restore({batch})"
        ))
        .unwrap();
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(relation || ' ' || action || ' ' || rows, ', ' ORDER BY relation) FROM r"
            )
            .unwrap()
            .unwrap(),
            "c restored 1, i restored 9, o restored 3"
        );
        assert_eq!(
            chain_state(),
            before,
            "restore put back exactly what archive took"
        );
        assert_eq!(count("SELECT count(*) FROM uproot_archive.\"public.i\""), 0);
    }

    #[pg_test]
    fn explain_shows_the_statements_that_ran() {
        setup_chain();
        Spi::run("SET uproot.debug_check_explain = on").unwrap();
        Spi::run("SET uproot.debug_check_catalog = on").unwrap();
        // purge: the statements bound, in order, are explain's steps (but the form the family
        // statement takes only for large join-leaf sets)
        let _ = count("SELECT count(*) FROM uproot.purge('c', array[1])");
        assert_eq!(
            crate::debug::last_checked(),
            explained_unconditional("'c', keys => array[1]")
        );
        // archive: explain read after the archive tables exist names the same ones
        let _ = count("SELECT count(*) FROM uproot.archive('c', array[2])");
        let archived = crate::debug::last_checked();
        assert!(archived.iter().any(|s| s.contains("uproot_archive")));
        // (with debug_check_catalog, the catalog re-read runs too; the check with every key
        // probed runs only when the family statement deleted fewer rows than were found, and the
        // large form's statements only for a large family)
        assert_eq!(
            archived,
            explained_where(
                "'c', operation => 'archive', keys => array[2]",
                "purpose NOT LIKE '%in process%' AND purpose NOT LIKE '(only when the family statement deleted fewer%' \
                 AND purpose NOT LIKE '(only when a table of the family has%'"
            )
        );
        // restore: every statement but those of the skip and failure paths
        let batch = count("SELECT max(id) FROM uproot.batches");
        let shown = explained_unconditional(&format!(
            "NULL, operation => 'restore', batch_id => {batch}"
        ));
        let _ = count(&format!("SELECT count(*) FROM uproot.restore({batch})"));
        assert_eq!(crate::debug::last_checked(), shown);
        assert_eq!(count("SELECT count(*) FROM c"), 3);
    }

    #[pg_test]
    fn a_refused_archive_changes_nothing() {
        setup_chain();
        let before = chain_state();
        // o references c with NO ACTION: respect_restrict refuses, before anything is written
        let e = error_of("SELECT * FROM uproot.archive('c', 1, respect_restrict => true)");
        assert!(e.starts_with("23503 "), "{e}");
        assert_eq!(chain_state(), before);
        assert_eq!(count("SELECT count(*) FROM uproot.batches"), 0);
        assert_eq!(
            count(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'uproot_archive'::regnamespace"
            ),
            0,
            "no archive table was created"
        );
        // a purge that fails on its delete rolls back what it already detached
        Spi::run(
            "CREATE TABLE note(id int PRIMARY KEY, c_id int REFERENCES c ON DELETE SET NULL);
             INSERT INTO note VALUES (1, 1);
             CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS
               $f$ BEGIN RAISE EXCEPTION 'refused'; END $f$;
             CREATE TRIGGER refuse BEFORE DELETE ON i FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse();",
        )
        .unwrap();
        let e = error_of("SELECT * FROM uproot.purge('c', 1)");
        assert!(e.starts_with("P0001 refused"), "{e}");
        assert_eq!(chain_state(), before);
        assert_eq!(count("SELECT count(*) FROM note WHERE c_id = 1"), 1);
    }

    /// The generic plan PostgreSQL makes for `sql` (parameters: two `int8[]`) under `settings`,
    /// as EXPLAIN shows it, and whether `spi::kept_plan_scales_with_keys` accepts that shape.
    fn kept_plan_shape(settings: &str, sql: &str) -> (String, bool) {
        Spi::run(&format!(
            "RESET ALL; SET plan_cache_mode = force_generic_plan; {settings};
             PREPARE shape(int8[], int8[]) AS {sql}"
        ))
        .unwrap();
        let (plan, scales) = Spi::connect(|c| {
            let plan: Vec<String> = c
                .select("EXPLAIN (COSTS OFF) EXECUTE shape(NULL, NULL)", None, &[])
                .unwrap()
                .map(|row| row.get::<String>(1).unwrap().unwrap())
                .collect();
            let keys = || pgrx::datum::DatumWithOid::null_oid(pg_sys::INT8ARRAYOID);
            (
                plan.join("\n"),
                crate::spi::kept_plan_scales_with_keys(sql, &[keys(), keys()]),
            )
        });
        Spi::run("DEALLOCATE shape; RESET ALL").unwrap();
        (plan, scales)
    }

    #[pg_test]
    fn kept_plans_serve_many_keys_only_where_each_key_is_read_by_index() {
        Spi::run(
            "CREATE TABLE ks(id int8 PRIMARY KEY, fk int8 NOT NULL, note text NOT NULL);
             CREATE INDEX ON ks(fk);
             INSERT INTO ks SELECT g, g / 10, 'x' FROM generate_series(1, 400000) g;
             ANALYZE ks;",
        )
        .unwrap();
        let pages = count("SELECT pg_relation_size('ks') / current_setting('block_size')::int8");
        assert!(pages > 1024, "ks must outgrow a 64kB bitmap: {pages} pages");
        assert!(pages < 65536, "ks must fit a 4MB bitmap: {pages} pages");
        // each case its own text: a kept plan is made once, under the settings of that moment
        let cases: [(&str, &str, &str, bool); 8] = [
            ("", "SELECT count(*) FROM ks k1 WHERE k1.fk = ANY ($1)", "Index Only Scan", true),
            (
                "SET enable_indexonlyscan = off",
                "SELECT k2.id FROM ks k2 WHERE k2.fk = ANY ($1) ORDER BY k2.id",
                "Index Scan using ks_fk_idx",
                true,
            ),
            // a bitmap of the table's 2,000-odd pages fits 4MB of work_mem: never lossy
            (
                "SET enable_indexscan = off; SET enable_indexonlyscan = off",
                "SELECT count(*) FROM ks k3 WHERE k3.fk = ANY ($1)",
                "Bitmap Heap Scan",
                true,
            ),
            // in 64kB (1,024 page entries) it may go lossy, and recheck each row against the keys
            (
                "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET work_mem = '64kB'",
                "SELECT count(*) FROM ks k9 WHERE k9.fk = ANY ($1)",
                "Bitmap Heap Scan",
                false,
            ),
            (
                "SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off",
                "SELECT count(*) FROM ks k4 WHERE k4.fk = ANY ($1)",
                "Seq Scan",
                false,
            ),
            // the second array is searched once per row the first one finds
            (
                "SET enable_bitmapscan = off",
                "SELECT count(*) FROM ks k5 WHERE k5.fk = ANY ($1) AND k5.note <> ALL ($2::text[])",
                "Filter",
                false,
            ),
            // a nested loop whose inner side probes the index once per outer key
            (
                "SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_bitmapscan = off",
                "SELECT count(*) FROM pg_catalog.unnest($1) u(v) JOIN ks k6 ON k6.fk = u.v",
                "Nested Loop",
                true,
            ),
            // a subplan run once per row: refused whatever it reads
            (
                "",
                "SELECT (SELECT k8.note FROM ks k8 WHERE k8.id = k7.id + 1) FROM ks k7 WHERE k7.fk = ANY ($1)",
                "SubPlan",
                false,
            ),
        ];
        for (settings, sql, shows, scales) in cases {
            let (plan, got) = kept_plan_shape(settings, sql);
            assert!(
                plan.contains(shows),
                "expected {shows} in the plan of {sql}:\n{plan}"
            );
            assert_eq!(got, scales, "{sql}:\n{plan}");
        }
    }
}
