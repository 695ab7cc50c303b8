//! Planner tests: the SQL text is checked for quoting, parameters and shape.

use super::*;
use crate::graph::build;
use crate::graph::model::{Catalog, ForeignKey, RelId, Relation};
use crate::graph::tests::build::*;
use crate::graph::Options;

const LOCK: RootRead = RootRead {
    lock: true,
    skip_locked: false,
    limit: false,
};

fn graph_of(cat: &Catalog, root: RelId) -> FamilyGraph {
    build(cat, root, &Options::default()).unwrap()
}

/// Highest `$n` in a statement.
fn max_param(sql: &str) -> usize {
    let mut max = 0;
    let b = sql.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'$' {
            let digits: String = sql[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(n) = digits.parse::<usize>() {
                max = max.max(n);
            }
        }
    }
    max
}

fn awkward_catalog() -> Catalog {
    let mut parent: Relation = table(1, "Order \"Book\"", &["Id"], &[1]);
    parent.schema = "Sales Dept".into();
    let mut child = table(2, "línea", &["id", "Order Id"], &[1]);
    child.schema = "Sales Dept".into();
    catalog(
        vec![parent, child],
        vec![fk(10, "fk", 2, &[2], 1, &[1], "a")],
    )
}

#[test]
fn identifiers_are_always_quoted() {
    let cat = awkward_catalog();
    let g = graph_of(&cat, 1);
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let sql = collect_children(&cat, &g, 2, &edges, true).sql;
    assert!(sql.contains(r#""Sales Dept"."Order ""Book""""#), "{sql}");
    assert!(sql.contains(r#""Sales Dept"."línea""#), "{sql}");
    assert!(
        sql.contains(r#"r."Order Id" OPERATOR("pg_catalog".=) ANY (ARRAY(SELECT p."Id" FROM "Sales Dept"."Order ""Book""" p WHERE"#),
        "{sql}"
    );
    assert!(sql.contains("FOR UPDATE OF r"), "{sql}");
    assert!(sql.contains(r#"ORDER BY r."id""#), "{sql}");
    assert_eq!(max_param(&sql), 1);
}

#[test]
fn operators_come_from_the_constraint() {
    let mut cat = chain("a");
    cat.foreign_keys[0].eq_ops = vec![("ext".into(), "=".into())];
    let g = graph_of(&cat, 1);
    let e: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let sql = collect_children(&cat, &g, 2, &e, false).sql;
    assert!(sql.contains(r#"OPERATOR("ext".=)"#), "{sql}");
    assert!(!sql.contains("FOR UPDATE"), "preview does not lock: {sql}");
}

#[test]
fn root_filters_bind_keys_as_parameters() {
    let cat = chain("a");
    let scalar = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Scalar { cast: None },
        LOCK,
    )
    .sql;
    assert!(
        scalar.contains(r#""customers"."id" OPERATOR("pg_catalog".=) $1"#),
        "{scalar}"
    );
    let array = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Array {
            cast: Some("bigint[]".into()),
        },
        LOCK,
    )
    .sql;
    assert!(array.contains("ANY (CAST($1 AS bigint[]))"), "{array}");
    let json = collect_root(&cat, &graph_of(&cat, 1), &RootFilter::Json, LOCK).sql;
    assert!(
        json.contains(r#"jsonb_to_recordset($1::pg_catalog.jsonb) AS k("id" integer)"#),
        "{json}"
    );
    for sql in [&scalar, &array, &json] {
        assert_eq!(max_param(sql), 1);
        assert!(
            sql.contains(r#"FROM "public"."customers" "customers""#),
            "root is aliased by its name: {sql}"
        );
    }
}

#[test]
fn predicates_sit_on_their_own_lines() {
    let cat = chain("a");
    let sql = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Predicate("id = 1 -- note".into()),
        RootRead::default(),
    )
    .sql;
    assert!(sql.contains("(\nid = 1 -- note\n)"), "{sql}");
    assert_eq!(max_param(&sql), 0);
}

#[test]
fn several_incoming_edges_take_one_parameter_set_each() {
    let cat = catalog(
        vec![
            table(1, "root", &["id"], &[1]),
            table(2, "a", &["id", "root_id"], &[1]),
            table(4, "d", &["id", "a_id", "root_id"], &[1]),
        ],
        vec![
            fk(10, "a_root", 2, &[2], 1, &[1], "a"),
            fk(11, "d_a", 4, &[2], 2, &[1], "a"),
            fk(12, "d_root", 4, &[3], 1, &[1], "a"),
        ],
    );
    let g = graph_of(&cat, 1);
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(4).collect();
    let sql = collect_children(&cat, &g, 4, &edges, true).sql;
    assert_eq!(max_param(&sql), 2);
    // index conditions joined with OR: one BitmapOr reads each row once; the parents' keys are
    // the arrays the statements that found them returned
    assert!(
        sql.contains(
            "WHERE (r.\"a_id\" OPERATOR(\"pg_catalog\".=) ANY ($1) OR r.\"root_id\" OPERATOR(\"pg_catalog\".=) ANY ($2))"
        ),
        "{sql}"
    );
    let stmt = collect_children(&cat, &g, 4, &edges, true);
    assert_eq!(
        stmt.slots,
        vec![
            Slot::FoundKeys {
                rows: Rows::Unexpanded {
                    edge: edges[0].0,
                    from: 2
                },
                column: 1
            },
            Slot::FoundKeys {
                rows: Rows::Unexpanded {
                    edge: edges[1].0,
                    from: 1
                },
                column: 1
            },
        ]
    );
    assert!(
        !sql.contains("UNION ALL") && !sql.contains("EXISTS"),
        "{sql}"
    );
    assert!(
        !is_join_leaf(&cat, &g, 4),
        "a diamond child is collected and locked in key order"
    );

    // An edge that is no index condition (its columns differ in type) is an EXISTS: OR over it
    // is planned per row, so the branches become a TID scan of their ctids instead.
    let mut mixed = cat.clone();
    mixed.relations.get_mut(&4).unwrap().columns[2].type_oid = 20;
    let g = graph_of(&mixed, 1);
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(4).collect();
    let sql = collect_children(&mixed, &g, 4, &edges, true).sql;
    assert_eq!(max_param(&sql), 2);
    assert!(
        sql.contains("WHERE r.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT r.ctid AS t FROM"),
        "{sql}"
    );
    assert!(sql.contains("UNION ALL") && sql.contains("EXISTS"), "{sql}");
    assert!(!sql.contains(" OR "), "{sql}");
}

#[test]
fn partitioned_sets_take_tids_and_oids() {
    let mut parted = table(1, "parted", &["id"], &[1]);
    parted.kind = "p".into();
    let cat = catalog(
        vec![parted, table(2, "child", &["id", "p_id"], &[1])],
        vec![fk(10, "c_p", 2, &[2], 1, &[1], "a")],
    );
    let g = graph_of(&cat, 1);
    let e = g.followed_into(2).next().unwrap().clone();
    let sql = count_joined_batch(&cat, &g, &[&e]).sql;
    assert_eq!(max_param(&sql), 2, "{sql}");
    assert!(sql.contains("ROWS FROM (pg_catalog.unnest($1::pg_catalog.tid[]), pg_catalog.unnest($2::pg_catalog.oid[]))"), "{sql}");
    let root = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Scalar { cast: None },
        LOCK,
    )
    .sql;
    assert!(root.contains("array_agg(s.o)"), "{root}");
    // a plain child's rows are one ARRAY(...) of ctids, locked in key order inside it
    let refs: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let child = collect_children(&cat, &g, 2, &refs, true).sql;
    assert!(
        child.starts_with(r#"SELECT ARRAY(SELECT r.ctid FROM "public"."child" r WHERE "#),
        "{child}"
    );
    assert!(
        child.ends_with(r#" ORDER BY r."id" FOR UPDATE OF r)"#),
        "{child}"
    );
    assert!(!child.contains("array_agg"), "{child}");
}

#[test]
fn delete_statement_numbers_parameters_in_part_order() {
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let leaf = g.followed_into(4).next().unwrap().clone();
    let parts = vec![
        DeletePart::Collected(1),
        DeletePart::Collected(2),
        DeletePart::Collected(3),
        DeletePart::Joined(leaf),
    ];
    let stmt = delete_statement(&cat, &parts);
    // the leaf's parent rows are the rows part 3 deletes: one slot, one `$n`
    assert_eq!(
        stmt.slots,
        vec![
            Slot::Tids(Rows::Family(1)),
            Slot::Tids(Rows::Family(2)),
            Slot::Tids(Rows::Family(3)),
        ]
    );
    let sql = stmt.sql;
    assert_eq!(max_param(&sql), 3);
    assert!(sql.contains(r#"d0 AS (DELETE FROM "public"."customers" d WHERE d.ctid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.tid[])"#), "{sql}");
    assert!(sql.contains(r#"d3 AS (DELETE FROM "public"."events" d WHERE d."item_id" OPERATOR("pg_catalog".=) ANY (ARRAY(SELECT p."id" FROM "public"."items" p WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($3"#), "{sql}");
    assert_eq!(
        delete_statement(&cat, &[]).sql,
        "SELECT ARRAY[]::pg_catalog.int8[]"
    );
}

#[test]
fn only_the_bottom_of_a_chain_is_a_join_leaf() {
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    assert!(!is_join_leaf(&cat, &g, 1));
    assert!(!is_join_leaf(&cat, &g, 2));
    assert!(!is_join_leaf(&cat, &g, 3));
    assert!(is_join_leaf(&cat, &g, 4));
}

#[test]
fn a_chain_deletes_its_middle_tables_when_it_finds_them() {
    // orders and items: one foreign key each, from their one parent, handing their ids on
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let when_found: Vec<RelId> = (1..=4)
        .filter(|&t| deleted_when_found(&cat, &g, t))
        .collect();
    assert_eq!(when_found, vec![2, 3], "not the root, not the join leaf");

    // their statement deletes them and returns what a lock would: the ctids, then the keys
    let items: Vec<BatchItem> = vec![(3, g.followed_into_indexed(3).collect(), Take::Delete)];
    let sql = collect_children_batch(&cat, &g, &items).sql;
    assert_eq!(
        sql,
        r#"WITH c1 AS (DELETE FROM "public"."items" r WHERE r."order_id" OPERATOR("pg_catalog".=) ANY ($1) RETURNING r.ctid AS t, r."id" AS k1) SELECT ARRAY(SELECT c1.t FROM c1), ARRAY(SELECT c1.k1 FROM c1)"#
    );

    // the join leaf below it goes by the keys that delete returned, in the family statement and
    // in the large form's statement of its own (not by the parent's ctids: its rows are gone)
    let leaf = DeletePart::AfterParent(g.followed_into(4).next().unwrap().clone());
    assert_eq!(
        delete_leaf_statement(&cat, &leaf).sql,
        r#"DELETE FROM "public"."events" d WHERE d."item_id" OPERATOR("pg_catalog".=) ANY ($1)"#
    );
    let family = delete_statement(&cat, &[leaf]).sql;
    assert!(
        family.contains(r#"WHERE d."item_id" OPERATOR("pg_catalog".=) ANY ($1)"#),
        "{family}"
    );

    // a second foreign key (another operation could reach the rows through it): locked in key order
    let mut two = chain("a");
    two.relations.insert(5, table(5, "kinds", &["id"], &[1]));
    two.relations
        .insert(3, table(3, "items", &["id", "order_id", "kind_id"], &[1]));
    two.foreign_keys
        .push(fk(13, "items_kind", 3, &[3], 5, &[1], "a"));
    assert!(!deleted_when_found(&two, &graph_of(&two, 1), 3));

    // a detach edge out: its rows are read again to find the rows to detach
    let mut detach = chain("a");
    detach
        .relations
        .insert(5, table(5, "notes", &["id", "item_id"], &[1]));
    detach
        .foreign_keys
        .push(fk(13, "notes_item", 5, &[2], 3, &[1], "n"));
    assert!(!deleted_when_found(&detach, &graph_of(&detach, 1), 3));
    assert!(deleted_when_found(&detach, &graph_of(&detach, 1), 2));

    // a two-column foreign key into it: its children would read its rows again by ctid
    let mut two_columns = chain("a");
    two_columns
        .relations
        .insert(3, table(3, "items", &["id", "order_id", "code"], &[1]));
    two_columns
        .relations
        .insert(5, table(5, "refs", &["id", "item_id", "item_code"], &[1]));
    two_columns
        .foreign_keys
        .push(fk(13, "refs_item", 5, &[2, 3], 3, &[1, 3], "a"));
    assert!(!deleted_when_found(
        &two_columns,
        &graph_of(&two_columns, 1),
        3
    ));
    // a second single-column key into it is handed on too (both columns are returned)
    let mut code = chain("a");
    code.relations
        .insert(3, table(3, "items", &["id", "order_id", "code"], &[1]));
    code.relations
        .insert(5, table(5, "refs", &["id", "item_code"], &[1]));
    code.foreign_keys
        .push(fk(13, "refs_item_code", 5, &[2], 3, &[3], "a"));
    let g = graph_of(&code, 1);
    assert!(deleted_when_found(&code, &g, 3));
    assert_eq!(carried_keys(&code, &g, 3), &[1, 3]);
}

#[test]
fn a_table_with_a_detach_edge_out_is_collected() {
    let mut cat = chain("a");
    cat.relations
        .insert(5, table(5, "notes", &["id", "event_id"], &[1]));
    cat.foreign_keys
        .push(fk(13, "notes_event", 5, &[2], 4, &[1], "n"));
    let g = graph_of(&cat, 1);
    assert!(
        !is_join_leaf(&cat, &g, 4),
        "its rows are needed to find the rows to detach"
    );
}

#[test]
fn native_cascade_only_for_pure_cascade_trees() {
    assert!(native_cascade_applies(
        &chain("c"),
        &graph_of(&chain("c"), 1)
    ));
    assert!(!native_cascade_applies(
        &chain("a"),
        &graph_of(&chain("a"), 1)
    ));

    let mut mixed = chain("c");
    mixed.foreign_keys[2].on_delete = "r".into();
    assert!(!native_cascade_applies(&mixed, &graph_of(&mixed, 1)));

    // PostgreSQL 18: a NOT ENFORCED key cascades nothing, so uproot deletes through it itself
    let mut not_enforced = chain("c");
    not_enforced.foreign_keys[2].enforced = false;
    assert!(!native_cascade_applies(
        &not_enforced,
        &graph_of(&not_enforced, 1)
    ));

    // a family table whose RI triggers are disabled (or fire only in another role) would not
    // cascade: the roots would go and their children stay
    for t in [1, 3] {
        let mut disabled = chain("c");
        disabled
            .relations
            .get_mut(&t)
            .unwrap()
            .internal_triggers_on_origin = false;
        assert!(!native_cascade_applies(&disabled, &graph_of(&disabled, 1)));
    }

    // SET NULL to a table outside the family is fine; PostgreSQL detaches it itself
    let mut detach = chain("c");
    detach
        .relations
        .insert(5, table(5, "notes", &["id", "order_id"], &[1]));
    detach
        .foreign_keys
        .push(fk(13, "notes_order", 5, &[2], 2, &[1], "n"));
    assert!(native_cascade_applies(&detach, &graph_of(&detach, 1)));

    // ... but not when that table is also in the family
    let mut both = chain("c");
    both.foreign_keys
        .push(fk(13, "events_order", 4, &[1], 2, &[1], "n"));
    assert!(!native_cascade_applies(&both, &graph_of(&both, 1)));

    // a diamond locks its shared rows in key order, which the native cascade does not
    let mut diamond = chain("c");
    diamond
        .foreign_keys
        .push(fk(14, "events_customer", 4, &[1], 1, &[1], "c"));
    assert!(!native_cascade_applies(&diamond, &graph_of(&diamond, 1)));

    // stop_at blocks: the native cascade would enter the stopped table
    let c = chain("c");
    let g = build(
        &c,
        1,
        &Options {
            stop_at: [4].into(),
            ..Options::default()
        },
    )
    .unwrap();
    assert!(!native_cascade_applies(&c, &g));
}

#[test]
fn root_reads_can_skip_locked_rows_and_limit() {
    let cat = chain("a");
    let read = RootRead {
        lock: true,
        skip_locked: true,
        limit: true,
    };
    let sql = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Predicate("true".into()),
        read,
    )
    .sql;
    assert!(sql.contains(r#"ORDER BY "customers"."id" FOR UPDATE OF "customers" SKIP LOCKED LIMIT $1::pg_catalog.int8"#), "{sql}");
    let sql = collect_root(
        &cat,
        &graph_of(&cat, 1),
        &RootFilter::Scalar { cast: None },
        RootRead {
            limit: true,
            ..Default::default()
        },
    )
    .sql;
    assert!(
        sql.contains(r#"ORDER BY "customers"."id" LIMIT $2::pg_catalog.int8"#),
        "preview counts the same first roots: {sql}"
    );
}

#[test]
fn found_rows_are_locked_by_key() {
    let cat = chain("a");
    let sql = lock_in_key_order(&cat, 2).sql;
    // one key column: the found rows' keys as one array, through the key's index
    assert!(
        sql.contains(
            r#"WHERE r."id" OPERATOR("pg_catalog".=) ANY (ARRAY(SELECT x."id" FROM "public"."orders" x WHERE x.ctid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.tid[]))) ORDER BY r."id" FOR UPDATE OF r"#
        ),
        "{sql}"
    );
    assert_eq!(max_param(&sql), 1);
    // a key of two columns: a semi-join on the whole key
    let mut two = chain("a");
    two.relations.get_mut(&2).unwrap().primary_key = Some(vec![1, 2]);
    two.relations.get_mut(&2).unwrap().pk_eq_ops = Some(vec![
        ("pg_catalog".into(), "=".into()),
        ("pg_catalog".into(), "=".into()),
    ]);
    let sql = lock_in_key_order(&two, 2).sql;
    assert!(
        sql.contains(
            r#"x."id" OPERATOR("pg_catalog".=) r."id" AND x."customer_id" OPERATOR("pg_catalog".=) r."customer_id""#
        ),
        "{sql}"
    );
    assert!(
        sql.contains(r#"ORDER BY r."id", r."customer_id" FOR UPDATE OF r"#),
        "{sql}"
    );
    assert_eq!(max_param(&sql), 1);
}

#[test]
fn tables_with_other_foreign_keys_are_neither_join_leaves_nor_native() {
    // events also references a products table: its rows may belong to another family too
    let mut cat = chain("c");
    cat.relations.insert(5, table(5, "products", &["id"], &[1]));
    let col = cat.relations[&4].columns[1].clone();
    cat.relations.get_mut(&4).unwrap().columns.push(col);
    cat.foreign_keys
        .push(fk(14, "events_product", 4, &[2], 5, &[1], "r"));
    let g = graph_of(&cat, 1);
    assert!(!is_join_leaf(&cat, &g, 4));
    assert!(!native_cascade_applies(&cat, &g));
    // a self-referencing table is no fast path either: overlapping trees need ordered locks
    let mut tree = chain("c");
    tree.foreign_keys
        .push(fk(15, "items_parent", 3, &[1], 3, &[1], "c"));
    assert!(!native_cascade_applies(&tree, &graph_of(&tree, 1)));
}

#[test]
fn detach_updates_set_only_the_listed_columns() {
    let mut cat = catalog(
        vec![
            table(1, "p", &["a", "b"], &[1, 2]),
            table(2, "c", &["id", "pa", "pb"], &[1]),
        ],
        vec![fk(10, "c_p", 2, &[2, 3], 1, &[1, 2], "n")],
    );
    cat.foreign_keys[0].set_cols = Some(vec![3]);
    let g = graph_of(&cat, 1);
    let e = g.edges[0].clone();
    let sql = detach_update(&cat, &e, false).sql;
    assert!(sql.contains(r#"SET "pb" = NULL WHERE"#), "{sql}");
    assert!(!sql.contains(r#""pa" = NULL"#), "{sql}");
    let fk: &ForeignKey = &cat.foreign_keys[0];
    assert_eq!(fk.detached_cols(), &[3]);

    cat.foreign_keys[0].on_delete = "d".into();
    cat.foreign_keys[0].set_cols = None;
    let g = graph_of(&cat, 1);
    let sql = detach_update(&cat, &g.edges[0], true).sql;
    assert!(
        sql.contains(r#"SET "pa" = DEFAULT, "pb" = DEFAULT"#),
        "{sql}"
    );
    assert!(
        sql.contains("AND NOT c.ctid"),
        "family rows of the same table are not detached: {sql}"
    );
    assert_eq!(max_param(&sql), 2);
}

#[test]
fn composite_or_cross_type_keys_join_with_exists() {
    // a two-column FK: a semi-join on both columns
    let cat = catalog(
        vec![
            table(1, "p", &["a", "b"], &[1, 2]),
            table(2, "c", &["id", "pa", "pb"], &[1]),
        ],
        vec![fk(10, "c_p", 2, &[2, 3], 1, &[1, 2], "a")],
    );
    let g = graph_of(&cat, 1);
    let sql = count_joined_batch(&cat, &g, &[&g.edges[0]]).sql;
    assert!(
        sql.contains(r#"EXISTS (SELECT 1 FROM "public"."p" p WHERE"#),
        "{sql}"
    );
    assert!(
        sql.contains(
            r#"p."a" OPERATOR("pg_catalog".=) c."pa" AND p."b" OPERATOR("pg_catalog".=) c."pb""#
        ),
        "{sql}"
    );

    // an int FK to a bigint key: the constraint's cross-type operator, PK side on the left
    let mut cross = chain("a");
    cross.relations.get_mut(&1).unwrap().columns[0].type_oid = 20;
    let g = graph_of(&cross, 1);
    let e: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let sql = collect_children(&cross, &g, 2, &e, false).sql;
    assert!(
        sql.contains(r#"p."id" OPERATOR("pg_catalog".=) r."customer_id""#),
        "{sql}"
    );
}

#[test]
fn access_needs_follow_what_each_operation_runs() {
    use super::access::{grant_statements, needs, Operation, Privilege};
    // chain: 1 <- 2 <- 3 <- 4, plus notes(5) -> 4 ON DELETE SET NULL
    let mut cat = chain("a");
    cat.relations
        .insert(5, table(5, "notes", &["id", "event_id"], &[1]));
    cat.foreign_keys
        .push(fk(13, "notes_event", 5, &[2], 4, &[1], "n"));
    let g = graph_of(&cat, 1);
    let has = |op, rel, p| {
        needs(&cat, &g, op)
            .iter()
            .any(|n| n.relation == rel && n.privilege == p)
    };
    // preview only reads
    assert!(has(Operation::Preview, 5, Privilege::Select));
    assert!(!has(Operation::Preview, 1, Privilege::Delete));
    // purge deletes the family, locks what it collects, updates what it detaches
    for t in 1..=4 {
        assert!(has(Operation::Purge, t, Privilege::Delete), "DELETE on {t}");
        assert!(has(Operation::Purge, t, Privilege::Update), "UPDATE on {t}");
    }
    assert!(has(Operation::Purge, 5, Privilege::Update));
    assert!(
        !has(Operation::Purge, 5, Privilege::Delete),
        "notes are detached, not deleted"
    );
    // restore inserts the family back and reattaches
    assert!(has(Operation::Restore, 3, Privilege::Insert));
    assert!(!has(Operation::Restore, 3, Privilege::Delete));
    assert!(has(Operation::Restore, 5, Privilege::Update));
    // each (relation, privilege) once
    let all = needs(&cat, &g, Operation::Archive);
    for (i, a) in all.iter().enumerate() {
        assert!(!all[i + 1..]
            .iter()
            .any(|b| b.relation == a.relation && b.privilege == a.privilege));
    }
    // one GRANT per table, privileges in GRANT order
    let grants = grant_statements(&all, "cleanup", |r| cat.relation(r).unwrap().qualified());
    assert_eq!(grants.len(), 5, "{grants:?}");
    assert!(
        grants
            .iter()
            .any(|g| g.contains("SELECT, UPDATE, DELETE ON TABLE") && g.ends_with(" TO cleanup;")),
        "{grants:?}"
    );
}

/// Every statement the planner can write for a family, with every option.
fn every_statement(cat: &Catalog, g: &FamilyGraph) -> Vec<Statement> {
    use super::archive::*;
    let mut out = Vec::new();
    let filters = [
        RootFilter::Scalar { cast: None },
        RootFilter::Scalar {
            cast: Some("bigint".into()),
        },
        RootFilter::Array { cast: None },
        RootFilter::Json,
        RootFilter::Predicate("true".into()),
    ];
    for f in &filters {
        for bits in 0..8u8 {
            let read = RootRead {
                lock: bits & 1 != 0,
                skip_locked: bits & 2 != 0,
                limit: bits & 4 != 0,
            };
            out.push(collect_root(cat, g, f, read));
        }
        out.push(delete_root_by_key(cat, g.root, f));
    }
    let tables: Vec<RelId> = g.tables().collect();
    for &t in &tables {
        out.push(lock_in_key_order(cat, t));
        let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(t).collect();
        if !edges.is_empty() {
            for lock in [false, true] {
                out.push(collect_children(cat, g, t, &edges, lock));
                out.push(collect_children(cat, g, t, &edges[..1], lock));
            }
        }
    }
    for e in &g.edges {
        for exclude in [false, true] {
            out.push(count_referencing(cat, e, exclude));
            out.push(collect_detached(cat, e, exclude, exclude));
            if matches!(e.disposition, Disposition::Detach(_)) {
                out.push(detach_update(cat, e, exclude));
                out.push(detach_returning(cat, e, exclude));
            }
        }
        out.push(count_joined_batch(cat, g, &[e]));
        let tally = LeafTally {
            leaf: e.child,
            edges: vec![e],
            any_row: true,
        };
        out.push(count_leaves_batch(cat, g, &[tally], true, false));
    }
    let parts: Vec<DeletePart> = tables
        .iter()
        .map(|t| match g.followed_into(*t).next() {
            Some(e) if is_join_leaf(cat, g, *t) => DeletePart::Joined(e.clone()),
            _ => DeletePart::Collected(*t),
        })
        .collect();
    let targets: Vec<Target> = tables
        .iter()
        .map(|t| Target {
            source: *t,
            archive: format!("\"uproot_archive\".\"t{t}\""),
            columns: vec!["id".into()],
        })
        .collect();
    out.push(delete_statement(cat, &parts));
    let fks = ri_check::referencing_fks(cat, &tables);
    let keys = ri_check::returned_keys(cat, &fks);
    let deleted_keys: Vec<_> = keys
        .iter()
        .copied()
        .filter(|(t, _)| tables.contains(t))
        .collect();
    for large in [false, true] {
        out.push(delete_statement_for(cat, &parts, &deleted_keys, large));
    }
    if !fks.is_empty() {
        out.push(ri_check::reference_check(cat, &fks));
    }
    out.push(ri_check::catalog_recheck(cat, &fks, &tables, &tables));
    let batch: Vec<BatchItem> = tables
        .iter()
        .filter(|t| !cat.relation(**t).unwrap().is_partitioned())
        .map(|t| {
            (
                *t,
                g.followed_into_indexed(*t).collect::<Vec<_>>(),
                Take::Lock,
            )
        })
        .filter(|(_, e, _)| !e.is_empty())
        .collect();
    if !batch.is_empty() {
        out.push(collect_children_batch(cat, g, &batch));
    }
    out.push(archive_statement(cat, &parts, &targets));
    for part in parts.iter().filter(|p| p.joined().is_some()) {
        out.push(archive_leaf_statement(cat, part, &targets));
    }
    out.push(xact_stats(tables.clone()));
    let restore: Vec<RestorePart> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| RestorePart {
            source: *t,
            archive: format!("\"uproot_archive\".\"t{t}\""),
            columns: vec!["id".into()],
            keeps_rows: i % 2 == 0,
        })
        .collect();
    out.push(restore_statement(cat, &restore));
    for &t in &tables {
        out.extend(restore_conflict(cat.relation(t).unwrap(), "a"));
    }
    out.push(record_detached());
    out.push(open_batch());
    out.push(close_batch_relations());
    out.push(close_batch_counts());
    for (fk, f) in cat.foreign_keys.iter().enumerate() {
        out.push(reattach(cat, fk, &[]));
        out.push(reattach(cat, fk, &["p".into()]));
        out.push(restore_dependents(cat, fk, (f.child, "c"), (f.parent, "p")));
        for keeps in [false, true] {
            out.push(missing_parent(
                cat,
                fk,
                (f.child, "c"),
                &["p".into()],
                keeps,
            ));
        }
    }
    out
}

#[test]
fn every_parameter_of_every_planned_statement_has_exactly_one_slot() {
    // a self-reference, a diamond, a partitioned table, a composite key, a detach edge
    let mut parted = table(5, "parted", &["id", "d_id"], &[1]);
    parted.kind = "p".into();
    let shapes = vec![
        chain("a"),
        chain("c"),
        awkward_catalog(),
        catalog(
            vec![
                table(1, "root", &["id", "parent_id"], &[1]),
                table(2, "a", &["id", "root_id"], &[1]),
                table(4, "d", &["id", "a_id", "root_id"], &[1]),
                parted,
                table(6, "notes", &["id", "d_id"], &[1]),
                table(7, "pair", &["x", "y"], &[1, 2]),
                table(8, "pair_child", &["id", "x", "y"], &[1]),
            ],
            vec![
                fk(9, "root_parent", 1, &[2], 1, &[1], "a"),
                fk(10, "a_root", 2, &[2], 1, &[1], "a"),
                fk(11, "d_a", 4, &[2], 2, &[1], "a"),
                fk(12, "d_root", 4, &[3], 1, &[1], "a"),
                fk(13, "parted_d", 5, &[2], 4, &[1], "c"),
                fk(14, "notes_d", 6, &[2], 4, &[1], "n"),
                fk(15, "pair_root", 7, &[1], 1, &[1], "a"),
                fk(16, "pair_child_pair", 8, &[2, 3], 7, &[1, 2], "d"),
            ],
        ),
    ];
    let mut checked = 0;
    for cat in &shapes {
        let g = graph_of(cat, 1);
        for stmt in every_statement(cat, &g) {
            if let Err(e) = stmt.check_slots() {
                panic!("{e}");
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} statements checked");
}

#[test]
fn a_statement_whose_parameters_and_slots_disagree_is_caught() {
    let two = Statement {
        sql: "SELECT $1, $2".into(),
        slots: vec![Slot::Keys],
    };
    assert!(two.check_slots().is_err());
    let twice = Statement {
        sql: "SELECT $1, $2".into(),
        slots: vec![Slot::Keys, Slot::Keys],
    };
    assert!(twice.check_slots().is_err());
    let quoted = Statement {
        sql: "SELECT '$2', \"$3\", $1".into(),
        slots: vec![Slot::Batch],
    };
    assert_eq!(quoted.check_slots(), Ok(()));
}

#[test]
fn large_join_leaf_sets_are_deleted_through_a_semi_join_and_keys_come_back_per_table() {
    let cat = chain("a");
    let g = build(&cat, 1, &Options::default()).unwrap();
    let parts: Vec<DeletePart> = g
        .tables()
        .map(|t| match g.followed_into(t).next() {
            Some(e) if is_join_leaf(&cat, &g, t) => DeletePart::Joined(e.clone()),
            _ => DeletePart::Collected(t),
        })
        .collect();
    assert!(parts.iter().any(|p| matches!(p, DeletePart::Joined(_))));
    let small = delete_statement_for(&cat, &parts, &[], false).sql;
    let large = delete_statement_for(&cat, &parts, &[], true).sql;
    assert!(small.contains("ANY (ARRAY(SELECT p."), "{small}");
    assert!(!large.contains("ANY (ARRAY(SELECT p."), "{large}");
    assert!(large.contains("EXISTS (SELECT 1 FROM"), "{large}");
    // a small family is counted without an aggregate per part; a large one holds no rows to count
    assert!(
        small.contains("pg_catalog.cardinality(ARRAY(SELECT 1 FROM d0))::pg_catalog.int8"),
        "{small}"
    );
    assert!(!small.contains("pg_catalog.count(*)"), "{small}");
    assert!(
        large.contains("(SELECT pg_catalog.count(*) FROM d0)"),
        "{large}"
    );
    assert!(!large.contains("cardinality"), "{large}");
    // the native path's root delete keeps its one aggregate and the references as they were
    let plain = delete_statement(&cat, &parts).sql;
    assert!(plain.contains("ANY (ARRAY(SELECT p."), "{plain}");
    assert!(
        plain.contains("(SELECT pg_catalog.count(*) FROM d0)"),
        "{plain}"
    );
    // the keys a set-based check needs: every column a foreign key references, once
    let tables: Vec<RelId> = g.tables().collect();
    let fks = ri_check::referencing_fks(&cat, &tables);
    assert!(!fks.is_empty());
    let keys = ri_check::returned_keys(&cat, &fks);
    let keyed = delete_statement_for(&cat, &parts, &keys, true).sql;
    assert!(
        keyed.contains("COALESCE(pg_catalog.array_agg(d0."),
        "{keyed}"
    );
    // small: a table's one key column comes back as ARRAY(...), never NULL either
    let compact = delete_statement_for(&cat, &parts, &keys, false);
    assert!(
        compact.sql.contains(", ARRAY(SELECT d0.\"id\" FROM d0)"),
        "{}",
        compact.sql
    );
    assert!(!compact.sql.contains("array_agg"), "{}", compact.sql);
    assert!(compact.check_slots().is_ok());
    let check = ri_check::reference_check(&cat, &fks);
    assert!(check.check_slots().is_ok());
    // the catalog is read again by a statement of its own, only when it may have changed
    assert!(
        !check.sql.contains("pg_catalog.pg_trigger"),
        "{}",
        check.sql
    );
    assert_eq!(check.sql.matches("UNION ALL").count(), fks.len() - 1);
    // the union's columns are named by the alias, whatever its first branch says
    assert!(check.sql.ends_with(") u(n, k) LIMIT 1"), "{}", check.sql);
    let recheck = ri_check::catalog_recheck(&cat, &fks, &tables, &tables);
    assert!(recheck.check_slots().is_ok());
    assert!(
        recheck.sql.contains("pg_catalog.pg_trigger"),
        "{}",
        recheck.sql
    );
    assert!(recheck.sql.contains("r.relrowsecurity"), "{}", recheck.sql);
}

/// A small family's statement returns a table's one key column as `ARRAY(...)`, but the columns
/// of a composite key still in one aggregate pass, so that their arrays line up row by row.
#[test]
fn a_small_family_returns_a_composite_key_in_one_pass() {
    let cat = catalog(
        vec![
            table(1, "root", &["id"], &[1]),
            table(7, "pair", &["x", "y"], &[1, 2]),
            table(8, "pair_child", &["id", "x", "y"], &[1]),
        ],
        vec![
            fk(15, "pair_root", 7, &[1], 1, &[1], "a"),
            fk(16, "pair_child_pair", 8, &[2, 3], 7, &[1, 2], "a"),
        ],
    );
    let parts = vec![DeletePart::Collected(1), DeletePart::Collected(7)];
    let fks = ri_check::referencing_fks(&cat, &[1, 7]);
    let keys = ri_check::returned_keys(&cat, &fks);
    assert_eq!(keys, vec![(1, 1), (7, 1), (7, 2)]);
    let small = delete_statement_for(&cat, &parts, &keys, false);
    assert!(small.check_slots().is_ok());
    assert!(
        small.sql.contains(", ARRAY(SELECT d0.\"id\" FROM d0), k1.c0, k1.c1 FROM (SELECT COALESCE(pg_catalog.array_agg(d1.\"x\"), '{}') AS c0, COALESCE(pg_catalog.array_agg(d1.\"y\"), '{}') AS c1 FROM d1) k1"),
        "{}",
        small.sql
    );
}

/// The set-based check probes a child's key index with `= ANY (keys)` where the key's values
/// print alike on both sides (integers, uuid); other keys (composite, another type, a type whose
/// equal values may print differently) are unnested and joined, so that the message shows the
/// deleted key as PostgreSQL's does.
#[test]
fn the_set_based_check_probes_integer_keys_and_joins_the_others() {
    let mut cat = catalog(
        vec![
            table(1, "root", &["id"], &[1]),
            table(2, "kid", &["id", "root_id"], &[1]),
            table(3, "amounts", &["id", "root_id"], &[1]),
            table(7, "pair", &["x", "y"], &[1, 2]),
            table(8, "pair_child", &["id", "x", "y"], &[1]),
        ],
        vec![
            fk(10, "kid_root", 2, &[2], 1, &[1], "a"),
            fk(11, "amounts_root", 3, &[2], 1, &[1], "a"),
            fk(15, "pair_root", 7, &[1], 1, &[1], "a"),
            fk(16, "pair_child_pair", 8, &[2, 3], 7, &[1, 2], "a"),
        ],
    );
    // amounts.root_id is numeric: 1.0 = 1.00, but they print differently
    cat.relations.get_mut(&3).unwrap().columns[1].type_oid = 1700;
    let tables = vec![1, 7];
    let fks = ri_check::referencing_fks(&cat, &tables);
    assert_eq!(fks.len(), 4);
    let check = ri_check::reference_check(&cat, &fks);
    assert!(check.check_slots().is_ok(), "{}", check.sql);
    let sql = &check.sql;
    assert!(
        sql.contains(r#"(SELECT 1, c."root_id"::pg_catalog.text FROM "public"."kid" c WHERE c."root_id" OPERATOR("pg_catalog".=) ANY ($1) LIMIT 1)"#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"(SELECT 2, k.v0::pg_catalog.text FROM ROWS FROM (pg_catalog.unnest($1)) AS k(v0) WHERE EXISTS (SELECT 1 FROM "public"."amounts" c"#),
        "{sql}"
    );
    assert!(
        sql.contains(r#"(SELECT 3, c."x"::pg_catalog.text FROM "public"."pair" c"#),
        "{sql}"
    );
    assert!(
        sql.contains("(SELECT 4, pg_catalog.concat_ws(', ', k.v0::pg_catalog.text, k.v1::pg_catalog.text) FROM ROWS FROM"),
        "{sql}"
    );
    assert_eq!(sql.matches("UNION ALL").count(), fks.len() - 1);
}

/// A declared relation is no constraint: PostgreSQL never checks it, so the set-based check
/// neither looks for it nor asks the family statement for the keys only it would need.
#[test]
fn the_set_based_check_leaves_declared_relations_out() {
    let mut cat = chain("a");
    cat.foreign_keys[1].declared = true;
    cat.foreign_keys[1].enforced = false;
    cat.foreign_keys[1].name = "items_order (declared)".into();
    let tables: Vec<RelId> = vec![1, 2, 3, 4];
    let fks = ri_check::referencing_fks(&cat, &tables);
    assert_eq!(fks, vec![0, 2]);
    assert_eq!(ri_check::returned_keys(&cat, &fks), vec![(1, 1), (3, 1)]);
    let check = ri_check::reference_check(&cat, &fks);
    assert!(!check.sql.contains("items"), "{}", check.sql);
}

#[test]
fn a_self_referencing_table_is_collected_in_one_recursive_statement() {
    // customers(1) <- nodes(2): nodes.customer_id, and nodes (region, code) -> nodes (region, id)
    let cat = catalog(
        vec![
            table(1, "customers", &["id"], &[1]),
            table(
                2,
                "nodes",
                &["id", "customer_id", "region", "code"],
                &[3, 1],
            ),
        ],
        vec![
            fk(10, "nodes_customer", 2, &[2], 1, &[1], "a"),
            fk(11, "nodes_parent", 2, &[3, 4], 2, &[3, 1], "a"),
        ],
    );
    let g = graph_of(&cat, 1);
    let scc = g.sccs.iter().find(|s| s.contains(&2)).unwrap().clone();
    assert_eq!(tree_table(&cat, &g, &scc), Some(2));
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let sql = collect_tree(&cat, &g, 2, &edges).sql;
    // the start: rows referencing unexpanded customers or unexpanded nodes, one set each (a
    // two-column reference is an EXISTS: the branches' ctids, as collect_children finds them)
    assert_eq!(max_param(&sql), 2);
    assert!(
        sql.starts_with(
            "WITH RECURSIVE f AS (SELECT r.ctid AS t, r.\"region\" AS k1, r.\"id\" AS k2 FROM \"public\".\"nodes\" r \
             WHERE r.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT r.ctid AS t FROM \"public\".\"nodes\" r WHERE r.\"customer_id\""
        ),
        "{sql}"
    );
    // each level: an index probe per row found, both key columns carried, the FK's operators
    assert!(
        sql.contains(
            "UNION SELECT c.* FROM f CROSS JOIN LATERAL (SELECT r.ctid AS t, r.\"region\" AS k1, r.\"id\" AS k2 FROM \"public\".\"nodes\" r \
             WHERE (f.k1 OPERATOR(\"pg_catalog\".=) r.\"region\" AND f.k2 OPERATOR(\"pg_catalog\".=) r.\"code\") OFFSET 0) c) \
             SELECT ARRAY(SELECT f.t FROM f)"
        ),
        "{sql}"
    );
    assert!(!sql.contains("FOR UPDATE"), "{sql}");

    // not for a cycle of two tables, nor for a table without a self-reference
    let mut two = chain("a");
    two.foreign_keys
        .push(fk(15, "orders_item", 2, &[1], 3, &[1], "a"));
    let g = graph_of(&two, 1);
    for scc in &g.sccs {
        assert_eq!(tree_table(&two, &g, scc), None, "{scc:?}");
    }
    // nor for a partitioned table (its rows are (tableoid, ctid) pairs)
    let mut parted = cat.clone();
    parted.relations.get_mut(&2).unwrap().kind = "p".into();
    let g = graph_of(&parted, 1);
    let scc = g.sccs.iter().find(|s| s.contains(&2)).unwrap().clone();
    assert_eq!(tree_table(&parted, &g, &scc), None);
}

#[test]
fn parents_hand_their_keys_to_the_children_they_find() {
    // root -> a -> d (d also -> root: a diamond); a -> e (a join leaf); root -> n, a tree
    // (n.parent_id -> n), n -> m
    let cat = catalog(
        vec![
            table(1, "root", &["id"], &[1]),
            table(2, "a", &["id", "root_id"], &[1]),
            table(4, "d", &["id", "a_id", "root_id"], &[1]),
            table(5, "e", &["id", "a_id"], &[1]),
            table(6, "n", &["id", "root_id", "parent_id"], &[1]),
            table(7, "m", &["id", "n_id"], &[1]),
            table(8, "m2", &["id", "n_id", "d_id"], &[1]),
        ],
        vec![
            fk(10, "a_root", 2, &[2], 1, &[1], "a"),
            fk(11, "d_a", 4, &[2], 2, &[1], "a"),
            fk(12, "d_root", 4, &[3], 1, &[1], "a"),
            fk(13, "e_a", 5, &[2], 2, &[1], "a"),
            fk(14, "n_root", 6, &[2], 1, &[1], "a"),
            fk(15, "n_parent", 6, &[3], 6, &[1], "a"),
            fk(16, "m_n", 7, &[2], 6, &[1], "a"),
            fk(17, "m2_n", 8, &[2], 6, &[1], "a"),
            fk(18, "m2_d", 8, &[3], 4, &[1], "a"),
        ],
    );
    let g = graph_of(&cat, 1);
    assert!(is_join_leaf(&cat, &g, 5) && is_join_leaf(&cat, &g, 7));
    // the root, a and d hand their ids on (a to d, which it finds, and to e, a join leaf the
    // family statement deletes by them); n is in a cycle (found by more than one statement)
    assert_eq!(carried_keys(&cat, &g, 1), &[1]);
    assert_eq!(carried_keys(&cat, &g, 2), &[1]);
    assert_eq!(carried_keys(&cat, &g, 4), &[1]);
    assert!(carried_keys(&cat, &g, 6).is_empty());
    assert!(carried_keys(&cat, &g, 8).is_empty());

    let root = collect_root(&cat, &g, &RootFilter::Scalar { cast: None }, LOCK).sql;
    assert!(
        root.starts_with(
            r#"SELECT pg_catalog.array_agg(s.t), pg_catalog.array_agg(s.k1) FROM (SELECT "root".ctid AS t, "root"."id" AS k1 FROM"#
        ),
        "{root}"
    );
    // a table that hands keys on is read once, in a CTE, into its ctids and its keys
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(2).collect();
    let a = collect_children(&cat, &g, 2, &edges, true);
    assert_eq!(
        a.sql,
        r#"WITH c1 AS (SELECT r.ctid AS t, r."id" AS k1 FROM "public"."a" r WHERE r."root_id" OPERATOR("pg_catalog".=) ANY ($1) ORDER BY r."id" FOR UPDATE OF r) SELECT ARRAY(SELECT c1.t FROM c1), ARRAY(SELECT c1.k1 FROM c1)"#
    );
    // in a batch, the tables without keys keep their one ARRAY(...), in lock order
    let batch: Vec<BatchItem> = [2, 6]
        .iter()
        .map(|&t| (t, g.followed_into_indexed(t).collect(), Take::Lock))
        .collect();
    let both = collect_children_batch(&cat, &g, &batch).sql;
    assert!(
        both.starts_with("WITH c1 AS (SELECT r.ctid AS t, r.\"id\" AS k1 FROM \"public\".\"a\" r"),
        "{both}"
    );
    assert!(
        both.contains(") SELECT ARRAY(SELECT c1.t FROM c1), ARRAY(SELECT c1.k1 FROM c1), (SELECT ARRAY(SELECT r.ctid FROM \"public\".\"n\" r WHERE "),
        "{both}"
    );
    // the rows of a table in a cycle are found by several statements: its children read its
    // keys again by ctid, from the rows each edge has not followed yet
    let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(8).collect();
    let m2 = collect_children(&cat, &g, 8, &edges, true);
    assert!(
        m2.sql.contains(r#"r."n_id" OPERATOR("pg_catalog".=) ANY (ARRAY(SELECT p."id" FROM "public"."n" p WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.tid[])))"#),
        "{}", m2.sql
    );
    assert!(
        m2.sql
            .contains(r#"r."d_id" OPERATOR("pg_catalog".=) ANY ($1)"#),
        "{}",
        m2.sql
    );
    assert!(matches!(
        m2.slots[0],
        Slot::FoundKeys {
            column: 1,
            rows: Rows::Unexpanded { from: 4, .. }
        }
    ));
    m2.check_slots().unwrap();
    // a multi-column key, or keys of different types, hand nothing on
    let mut typed = cat.clone();
    typed.relations.get_mut(&4).unwrap().columns[1].type_oid = 20;
    typed.relations.get_mut(&5).unwrap().columns[1].type_oid = 20;
    let g = graph_of(&typed, 1);
    assert!(carried_keys(&typed, &g, 2).is_empty());
    assert_eq!(carried_keys(&typed, &g, 1), &[1]);
}

/// The edge into the join leaf at the bottom of `chain` (events).
fn chain_leaf(cat: &Catalog, g: &FamilyGraph) -> FamilyEdge {
    g.followed()
        .find(|e| is_join_leaf(cat, g, e.child))
        .expect("the chain ends in a join leaf")
        .clone()
}

#[test]
fn join_leaves_are_deleted_by_their_parents_found_keys() {
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let leaf = chain_leaf(&cat, &g);
    assert!(hands_keys(&cat, &g, &leaf) && !carries_keys(&cat, &g, &leaf));
    let col = cat.foreign_keys[leaf.fk].parent_cols[0];
    assert!(carried_keys(&cat, &g, leaf.from).contains(&col));
    let parts = [
        DeletePart::Collected(leaf.from),
        DeletePart::JoinedByKeys(leaf.clone()),
    ];
    let small = delete_statement_for(&cat, &parts, &[], false);
    small.check_slots().unwrap();
    assert!(
        small.slots.contains(&Slot::FoundKeys {
            rows: Rows::Family(leaf.from),
            column: col
        }),
        "{:?}",
        small.slots
    );
    assert!(!small.sql.contains("ARRAY(SELECT p."), "{}", small.sql);
    // the large form names the parent rows by ctid, through a semi-join, as before
    let large = delete_statement_for(&cat, &parts, &[], true);
    large.check_slots().unwrap();
    assert!(
        !large
            .slots
            .iter()
            .any(|s| matches!(s, Slot::FoundKeys { .. })),
        "{}",
        large.sql
    );
    assert!(large.sql.contains("EXISTS (SELECT 1 FROM"), "{}", large.sql);
    // a join leaf's own statement in the large form: the same semi-join on the parent rows'
    // ctids, nothing returned (SPI counts the rows), whichever way the small form names them
    for part in [
        DeletePart::JoinedByKeys(leaf.clone()),
        DeletePart::Joined(leaf.clone()),
    ] {
        let own = delete_leaf_statement(&cat, &part);
        own.check_slots().unwrap();
        assert_eq!(
            own.slots,
            vec![Slot::Tids(Rows::Family(leaf.from))],
            "{}",
            own.sql
        );
        assert!(own.sql.starts_with("DELETE FROM "), "{}", own.sql);
        assert!(
            own.sql.contains("WHERE EXISTS (SELECT 1 FROM"),
            "{}",
            own.sql
        );
        assert!(
            !own.sql.contains("RETURNING") && !own.sql.contains("WITH"),
            "{}",
            own.sql
        );
    }
}

#[test]
fn a_large_archive_moves_its_join_leaves_by_statements_of_their_own() {
    use super::archive::{archive_leaf_statement, Target};
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let leaf = chain_leaf(&cat, &g);
    let target = Target {
        source: leaf.child,
        archive: "\"uproot_archive\".\"public.events\"".into(),
        columns: vec!["id".into(), "item_id".into()],
    };
    // the semi-join on the parent rows' ctids and the batch: two slots, nothing returned to
    // the caller (SPI counts the inserted rows)
    let own = archive_leaf_statement(
        &cat,
        &DeletePart::JoinedByKeys(leaf.clone()),
        std::slice::from_ref(&target),
    );
    own.check_slots().unwrap();
    assert_eq!(
        own.slots,
        vec![Slot::Tids(Rows::Family(leaf.from)), Slot::Batch],
        "{}",
        own.sql
    );
    assert!(
        own.sql.starts_with("WITH d AS (DELETE FROM "),
        "{}",
        own.sql
    );
    assert!(
        own.sql.contains("WHERE EXISTS (SELECT 1 FROM"),
        "{}",
        own.sql
    );
    assert!(
        own.sql.contains(r#"RETURNING d."id", d."item_id") INSERT INTO "uproot_archive"."public.events" ("id", "item_id", "_uproot_batch") SELECT "id", "item_id", $2::pg_catalog.int8 FROM d"#),
        "{}",
        own.sql
    );
    assert_eq!(own.sql.matches("RETURNING").count(), 1, "{}", own.sql);
}

#[test]
fn a_leaf_count_can_stop_at_the_first_row_and_take_the_found_keys() {
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let leaf = chain_leaf(&cat, &g);
    let tally = |any_row| LeafTally {
        leaf: leaf.child,
        edges: vec![&leaf],
        any_row,
    };
    // counted: every row, the parent's keys read again by ctid
    let counted = count_leaves_batch(&cat, &g, &[tally(false)], false, false);
    counted.check_slots().unwrap();
    assert_eq!(
        counted.slots,
        vec![Slot::Tids(Rows::Family(leaf.from))],
        "{}",
        counted.sql
    );
    assert!(!counted.sql.contains("LIMIT"), "{}", counted.sql);
    // any row: the probe stops at the first; found keys: the keys the parent's statement returned
    let any = count_leaves_batch(&cat, &g, &[tally(true)], true, false);
    any.check_slots().unwrap();
    let col = cat.foreign_keys[leaf.fk].parent_cols[0];
    assert_eq!(
        any.slots,
        vec![Slot::FoundKeys {
            rows: Rows::Family(leaf.from),
            column: col
        }],
        "{}",
        any.sql
    );
    assert!(any.sql.contains("LIMIT 1) x)"), "{}", any.sql);
    assert!(!any.sql.contains("ctid"), "{}", any.sql);
}

#[test]
fn key_runs_are_the_consecutive_stretches_of_the_keys() {
    let runs = KeyRuns::of(vec![7, 3, 4, 5, 5, 10, 11, -1, i64::MAX, i64::MAX - 1]);
    assert_eq!(runs.first, vec![-1, 3, 7, 10, i64::MAX - 1]);
    assert_eq!(runs.last, vec![-1, 5, 7, 11, i64::MAX]);
    assert_eq!(runs.keys, 9, "duplicates count once");
    assert_eq!(KeyRuns::of(Vec::new()), KeyRuns::default());
    let spread = KeyRuns::of(vec![1, 3, 5]);
    assert_eq!((spread.first.len(), spread.keys), (3, 3));
}

#[test]
fn a_leaf_count_by_runs_reads_ranges_of_the_found_keys() {
    let cat = chain("a");
    let g = graph_of(&cat, 1);
    let leaf = chain_leaf(&cat, &g);
    assert!(
        key_runs_edge(&cat, &g, &leaf),
        "an int key handed on by its parent"
    );
    let tally = |any_row| LeafTally {
        leaf: leaf.child,
        edges: vec![&leaf],
        any_row,
    };
    let col = cat.foreign_keys[leaf.fk].parent_cols[0];
    let by_runs = count_leaves_batch(&cat, &g, &[tally(false)], true, true);
    by_runs.check_slots().unwrap();
    let run = |last| Slot::KeyRuns {
        rows: Rows::Family(leaf.from),
        column: col,
        last,
    };
    assert_eq!(
        by_runs.slots,
        vec![run(false), run(true)],
        "{}",
        by_runs.sql
    );
    assert!(
        by_runs.sql.contains("OPERATOR(pg_catalog.>=) u.lo"),
        "{}",
        by_runs.sql
    );
    assert!(!by_runs.sql.contains("ANY"), "{}", by_runs.sql);
    // an archive's probe for any row, or a count without the found keys, keeps `= ANY` / ctids
    let any = count_leaves_batch(&cat, &g, &[tally(true)], true, true);
    assert!(
        matches!(any.slots.as_slice(), [Slot::FoundKeys { .. }]),
        "{}",
        any.sql
    );
    let without = count_leaves_batch(&cat, &g, &[tally(false)], false, true);
    assert_eq!(without.slots, vec![Slot::Tids(Rows::Family(leaf.from))]);
}
