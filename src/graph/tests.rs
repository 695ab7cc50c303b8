//! Graph tests on hand-built catalogs: no Postgres needed.

use super::model::*;
use super::*;

/// Small builders for catalogs in tests (also used by the planner's tests).
pub mod build {
    use super::*;

    pub fn table(oid: RelId, name: &str, cols: &[&str], pk: &[i16]) -> Relation {
        Relation {
            oid,
            schema: "public".into(),
            name: name.into(),
            kind: "r".into(),
            is_partition: false,
            parent: None,
            leaf_partitions: vec![],
            rls_enabled: false,
            user_triggers: vec![],
            own_triggers: vec![],
            has_rules: false,
            internal_triggers_on_origin: true,
            primary_key: if pk.is_empty() {
                None
            } else {
                Some(pk.to_vec())
            },
            pk_eq_ops: if pk.is_empty() {
                None
            } else {
                Some(
                    pk.iter()
                        .map(|_| ("pg_catalog".to_string(), "=".to_string()))
                        .collect(),
                )
            },
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, c)| Column {
                    attnum: i as i16 + 1,
                    name: c.to_string(),
                    type_oid: 23,
                    type_name: "integer".into(),
                    generated: None,
                })
                .collect(),
        }
    }

    pub fn fk(
        oid: u32,
        name: &str,
        child: RelId,
        child_cols: &[i16],
        parent: RelId,
        parent_cols: &[i16],
        action: &str,
    ) -> ForeignKey {
        ForeignKey {
            oid,
            name: name.into(),
            child,
            parent,
            child_cols: child_cols.to_vec(),
            parent_cols: parent_cols.to_vec(),
            on_delete: action.into(),
            set_cols: None,
            eq_ops: child_cols
                .iter()
                .map(|_| ("pg_catalog".to_string(), "=".to_string()))
                .collect(),
            deferrable: false,
            deferred: false,
            validated: true,
            enforced: true,
            declared: false,
            owned: false,
            child_indexed: true,
            partial_index_predicates: vec![],
        }
    }

    pub fn catalog(relations: Vec<Relation>, foreign_keys: Vec<ForeignKey>) -> Catalog {
        Catalog {
            relations: relations.into_iter().map(|r| (r.oid, r)).collect(),
            foreign_keys,
        }
    }

    /// customers(1) <- orders(2) <- items(3) <- events(4), all with the given action.
    pub fn chain(action: &str) -> Catalog {
        catalog(
            vec![
                table(1, "customers", &["id"], &[1]),
                table(2, "orders", &["id", "customer_id"], &[1]),
                table(3, "items", &["id", "order_id"], &[1]),
                table(4, "events", &["id", "item_id"], &[1]),
            ],
            vec![
                fk(10, "orders_customer_id_fkey", 2, &[2], 1, &[1], action),
                fk(11, "items_order_id_fkey", 3, &[2], 2, &[1], action),
                fk(12, "events_item_id_fkey", 4, &[2], 3, &[1], action),
            ],
        )
    }
}

use build::*;

fn opts() -> Options {
    Options::default()
}

#[test]
fn chain_is_locked_top_down_with_depths() {
    let cat = chain("a");
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.sccs, vec![vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!(g.depth[&4], 3);
    assert_eq!(g.followed().count(), 3);
    assert!(!g.in_cycle(&cat, 3));
}

#[test]
fn tables_are_locked_level_by_level() {
    // root(1) <- a(2) <- a2(4) <- x(6), root <- b(3) <- b2(5); x also references root directly
    // (a SaaS tenant key): x is at depth 1 but three levels down, and is locked after every
    // table of level 2, so that each level is one run of collect_groups
    let cat = catalog(
        vec![
            table(1, "root", &["id"], &[1]),
            table(2, "a", &["id", "root_id"], &[1]),
            table(3, "b", &["id", "root_id"], &[1]),
            table(4, "a2", &["id", "a_id"], &[1]),
            table(5, "b2", &["id", "b_id"], &[1]),
            table(6, "x", &["id", "a2_id", "root_id"], &[1]),
        ],
        vec![
            fk(10, "a_root", 2, &[2], 1, &[1], "a"),
            fk(11, "b_root", 3, &[2], 1, &[1], "a"),
            fk(12, "a2_a", 4, &[2], 2, &[1], "a"),
            fk(13, "b2_b", 5, &[2], 3, &[1], "a"),
            fk(14, "x_a2", 6, &[2], 4, &[1], "a"),
            fk(15, "x_root", 6, &[3], 1, &[1], "a"),
        ],
    );
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.depth[&6], 1, "depth stays the shortest distance");
    assert_eq!(
        g.sccs,
        vec![vec![1], vec![2], vec![3], vec![4], vec![5], vec![6]]
    );
}

#[test]
fn edge_dispositions_follow_design_defaults() {
    let f = |a: &str| fk(1, "f", 2, &[2], 1, &[1], a);
    let o = opts();
    assert_eq!(disposition(&f("c"), &o), Disposition::Follow);
    assert_eq!(disposition(&f("a"), &o), Disposition::Follow);
    assert_eq!(disposition(&f("r"), &o), Disposition::Follow);
    assert_eq!(
        disposition(&f("n"), &o),
        Disposition::Detach(DetachKind::SetNull)
    );
    assert_eq!(
        disposition(&f("d"), &o),
        Disposition::Detach(DetachKind::SetDefault)
    );
    let follow = Options {
        follow_set_null: true,
        ..opts()
    };
    assert_eq!(disposition(&f("n"), &follow), Disposition::Follow);
    assert_eq!(disposition(&f("d"), &follow), Disposition::Follow);
    let respect = Options {
        respect_restrict: true,
        ..opts()
    };
    assert_eq!(
        disposition(&f("r"), &respect),
        Disposition::Block(BlockReason::RespectRestrict)
    );
    assert_eq!(
        disposition(&f("a"), &respect),
        Disposition::Block(BlockReason::RespectRestrict)
    );
    assert_eq!(disposition(&f("c"), &respect), Disposition::Follow);
    let stop = Options {
        stop_at: [2].into(),
        ..opts()
    };
    assert_eq!(
        disposition(&f("c"), &stop),
        Disposition::Block(BlockReason::StopAt)
    );
}

#[test]
fn detached_and_blocked_tables_are_not_entered() {
    let mut cat = chain("a");
    cat.foreign_keys[1].on_delete = "n".into(); // items -> orders SET NULL
    let g = build(&cat, 1, &opts()).unwrap();
    assert!(g.contains(2));
    assert!(!g.contains(3), "a detached child is not in the family");
    assert!(!g.contains(4), "nor is anything below it");
    assert_eq!(g.edges.len(), 2);

    let g = build(
        &chain("a"),
        1,
        &Options {
            stop_at: [3].into(),
            ..opts()
        },
    )
    .unwrap();
    assert!(!g.contains(3));
    assert!(matches!(
        g.edges.iter().find(|e| e.child == 3).unwrap().disposition,
        Disposition::Block(BlockReason::StopAt)
    ));
}

#[test]
fn self_reference_is_a_cycle_of_one() {
    let cat = catalog(
        vec![table(1, "tree", &["id", "parent_id"], &[1])],
        vec![fk(10, "tree_parent_fkey", 1, &[2], 1, &[1], "a")],
    );
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.sccs, vec![vec![1]]);
    assert!(g.in_cycle(&cat, 1));
    assert_eq!(g.followed_into(1).count(), 1);
}

#[test]
fn cycle_between_tables_is_one_component() {
    let cat = catalog(
        vec![
            table(1, "a", &["id", "b_id"], &[1]),
            table(2, "b", &["id", "a_id"], &[1]),
            table(3, "c", &["id", "b_id"], &[1]),
        ],
        vec![
            fk(10, "b_a", 2, &[2], 1, &[1], "a"),
            fk(11, "a_b", 1, &[2], 2, &[1], "a"),
            fk(12, "c_b", 3, &[2], 2, &[1], "a"),
        ],
    );
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.sccs, vec![vec![1, 2], vec![3]]);
    assert!(g.in_cycle(&cat, 2));
    assert!(!g.in_cycle(&cat, 3));
}

#[test]
fn diamond_child_has_two_edges_and_shortest_depth() {
    // root(1) <- a(2) <- d(4); root(1) <- d(4) directly too
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
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.depth[&4], 1);
    assert_eq!(g.followed_into(4).count(), 2);
    let order: Vec<RelId> = g.tables().collect();
    assert!(
        order.iter().position(|&t| t == 2) < order.iter().position(|&t| t == 4),
        "parents lock first"
    );
}

#[test]
fn root_errors_are_precise() {
    let mut cat = chain("a");
    let mut v = table(9, "v", &["id"], &[]);
    v.kind = "v".into();
    cat.relations.insert(9, v);
    assert!(
        matches!(build(&cat, 9, &opts()), Err(UprootError::NotATable { kind, .. }) if kind == "view")
    );
    assert!(matches!(
        build(&cat, 99, &opts()),
        Err(UprootError::UnknownRelation { oid: 99 })
    ));
    let stop_root = Options {
        stop_at: [1].into(),
        ..opts()
    };
    assert!(
        matches!(build(&cat, 1, &stop_root), Err(UprootError::InvalidArgument { argument, .. }) if argument == "stop_at")
    );
}

#[test]
fn partition_root_is_reached_by_fks_on_its_ancestor() {
    // parted(1) partitioned, p1(2) a partition of it; child(3) references parted
    let mut parted = table(1, "parted", &["id"], &[1]);
    parted.kind = "p".into();
    parted.leaf_partitions = vec![2];
    let mut p1 = table(2, "parted_1", &["id"], &[1]);
    p1.is_partition = true;
    p1.parent = Some(1);
    let cat = catalog(
        vec![parted, p1, table(3, "child", &["id", "parted_id"], &[1])],
        vec![fk(10, "child_parted", 3, &[2], 1, &[1], "a")],
    );
    let g = build(&cat, 2, &opts()).unwrap();
    let e = g
        .followed_into(3)
        .next()
        .expect("the FK on the ancestor reaches the partition root");
    assert_eq!(e.from, 2);
    assert_eq!(
        e.parent_sql_rel, 2,
        "the join reads the partition itself, not its siblings"
    );

    // from the partitioned table, the FK applies directly
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.followed_into(3).next().unwrap().from, 1);
}

#[test]
fn fk_to_one_partition_is_an_edge_of_its_family_ancestor() {
    let mut parted = table(1, "parted", &["id"], &[1]);
    parted.kind = "p".into();
    let mut p1 = table(2, "parted_1", &["id"], &[1]);
    p1.is_partition = true;
    p1.parent = Some(1);
    let cat = catalog(
        vec![parted, p1, table(3, "child", &["id", "p1_id"], &[1])],
        vec![fk(10, "child_p1", 3, &[2], 2, &[1], "a")],
    );
    let g = build(&cat, 1, &opts()).unwrap();
    let e = g.followed_into(3).next().unwrap();
    assert_eq!((e.from, e.parent_sql_rel), (1, 2));
}

#[test]
fn edge_order_is_deterministic() {
    let cat = chain("a");
    let a = build(&cat, 1, &opts()).unwrap();
    let mut shuffled = cat.clone();
    shuffled.foreign_keys.reverse();
    let b = build(&shuffled, 1, &opts()).unwrap();
    let names = |g: &FamilyGraph, c: &Catalog| {
        g.edges
            .iter()
            .map(|e| c.foreign_keys[e.fk].name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&a, &cat), names(&b, &shuffled));
    assert_eq!(a.sccs, b.sccs);
}

#[test]
fn tree_labels_draw_the_family() {
    let mut cat = chain("a");
    cat.relations
        .insert(5, table(5, "notes", &["id", "order_id"], &[1]));
    cat.foreign_keys
        .push(fk(13, "notes_order_fkey", 5, &[2], 2, &[1], "n"));
    let g = build(&cat, 1, &opts()).unwrap();
    let labels: Vec<String> = tree(&cat, &g).into_iter().map(|l| l.label).collect();
    assert_eq!(
        labels,
        vec![
            "customers",
            "└─ orders",
            "   ├─ items",
            "   │  └─ events",
            "   └─ notes"
        ]
    );
}

/// The warnings of `uproot.graph`'s rows: root row first, then one per edge.
fn warnings_of(cat: &Catalog, g: &FamilyGraph) -> Vec<Vec<String>> {
    let w = graph_warnings(cat, g);
    assert_eq!(w.len(), g.edges.len() + 1);
    w
}

#[test]
fn warnings_name_what_matters() {
    let mut cat = chain("a");
    cat.foreign_keys[2].child_indexed = false;
    cat.foreign_keys[2].deferrable = true;
    cat.foreign_keys[2].validated = false;
    let r = cat.relations.get_mut(&4).unwrap();
    r.primary_key = None;
    r.user_triggers = vec!["audit".into()];
    r.rls_enabled = true;
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert!(
        w[0].is_empty() && w[1].is_empty() && w[2].is_empty(),
        "{w:?}"
    );
    assert_eq!(
        w[3],
        vec![
            "unindexed foreign key: events(item_id) has no index; every delete scans events",
            "deferrable constraint events_item_id_fkey",
            "constraint events_item_id_fkey is NOT VALID: existing rows may not match",
            "events has no primary key: rows are matched by ctid and locked in physical order",
            "events has triggers (audit): they fire for every row",
            "events has row-level security: rows hidden from the caller make the operation fail",
        ]
    );
}

/// pg_uproot's own triggers (a declared relation's queue and check triggers) do not fire per
/// deleted row: they are not warned about as user triggers, but named where they make purge
/// leave the foreign-key checks to PostgreSQL's per-row triggers.
#[test]
fn own_triggers_are_named_for_what_they_cost() {
    let mut cat = chain("a");
    let r = cat.relations.get_mut(&1).unwrap();
    r.user_triggers = vec!["uproot_queue_x".into()];
    r.own_triggers = vec!["uproot_queue_x".into()];
    let r = cat.relations.get_mut(&4).unwrap();
    r.user_triggers = vec!["audit".into(), "uproot_check_y".into()];
    r.own_triggers = vec!["uproot_check_y".into()];
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert_eq!(
        w[0],
        vec!["customers has pg_uproot's triggers (uproot_queue_x): foreign keys that reference the family are checked by PostgreSQL's per-row triggers, not in one statement"]
    );
    // a table with a trigger of its own gets that warning only
    assert_eq!(
        w[3],
        vec!["events has triggers (audit): they fire for every row"]
    );
    // a family that no foreign key references has nothing to check: no warning
    let mut cat = chain("a");
    let r = cat.relations.get_mut(&4).unwrap();
    r.user_triggers = vec!["uproot_check_y".into()];
    r.own_triggers = vec!["uproot_check_y".into()];
    let g = build(&cat, 4, &opts()).unwrap();
    assert!(warnings_of(&cat, &g).iter().all(|w| w.is_empty()));
}

#[test]
fn a_followed_restrict_edge_is_flagged_with_the_way_to_refuse_it() {
    let cat = chain("r");
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert_eq!(
        w[1],
        vec!["orders_customer_id_fkey is ON DELETE RESTRICT and is followed: rows of orders that reference the family go with it; respect_restrict => true refuses them instead"]
    );
    // blocked by respect_restrict, it is not followed, and the disposition says so already
    let strict = Options {
        respect_restrict: true,
        ..opts()
    };
    let g = build(&cat, 1, &strict).unwrap();
    assert!(warnings_of(&cat, &g).iter().all(|w| w.is_empty()));
    // NO ACTION is followed by design, without a warning
    let cat = chain("a");
    let g = build(&cat, 1, &opts()).unwrap();
    assert!(warnings_of(&cat, &g).iter().all(|w| w.is_empty()));
}

#[test]
fn a_table_reached_by_several_edges_is_warned_about_once() {
    // items references orders twice; items has a trigger
    let mut cat = chain("a");
    cat.relations.insert(
        3,
        table(3, "items", &["id", "order_id", "other_order_id"], &[1]),
    );
    cat.foreign_keys
        .push(fk(13, "items_other_order_id_fkey", 3, &[3], 2, &[1], "a"));
    cat.relations.get_mut(&3).unwrap().user_triggers = vec!["t".into()];
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    let trigger_rows: Vec<usize> = (0..w.len())
        .filter(|i| w[*i].iter().any(|x| x.contains("has triggers")))
        .collect();
    assert_eq!(trigger_rows.len(), 1, "{w:?}");
}

/// 76 deferrable FKs from 76 tables to one root: one line on the root row, none on the edges.
#[test]
fn repeated_warnings_are_summarised_on_the_root_row() {
    let mut rels = vec![table(1, "users", &["id"], &[1])];
    let mut fks = Vec::new();
    for i in 0..76u32 {
        rels.push(table(
            100 + i,
            &format!("t{i:02}"),
            &["id", "user_id"],
            &[1],
        ));
        let mut f = fk(
            1000 + i,
            &format!("t{i:02}_user_id_fkey"),
            100 + i,
            &[2],
            1,
            &[1],
            "a",
        );
        f.deferrable = true;
        f.deferred = true;
        fks.push(f);
    }
    let cat = catalog(rels, fks);
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert!(w[1..].iter().all(|w| w.is_empty()), "{w:?}");
    assert_eq!(
        w[0],
        vec!["76 deferrable constraints: t00_user_id_fkey (initially deferred), t01_user_id_fkey (initially deferred), t02_user_id_fkey (initially deferred), t03_user_id_fkey (initially deferred), t04_user_id_fkey (initially deferred), t05_user_id_fkey (initially deferred), t06_user_id_fkey (initially deferred), t07_user_id_fkey (initially deferred), t08_user_id_fkey (initially deferred), t09_user_id_fkey (initially deferred) and 66 more"]
    );
}

/// Up to SUMMARISE_OVER warnings of a kind stay on their rows; one more and they are summarised.
#[test]
fn a_few_warnings_of_a_kind_stay_on_their_rows() {
    let make = |n: u32| {
        let mut rels = vec![table(1, "users", &["id"], &[1])];
        let mut fks = Vec::new();
        for i in 0..n {
            rels.push(table(100 + i, &format!("t{i}"), &["id", "user_id"], &[1]));
            let mut f = fk(1000 + i, &format!("t{i}_fkey"), 100 + i, &[2], 1, &[1], "a");
            f.child_indexed = false;
            fks.push(f);
        }
        catalog(rels, fks)
    };
    let cat = make(warnings::SUMMARISE_OVER as u32);
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert!(w[0].is_empty());
    assert!(w[1..]
        .iter()
        .all(|w| w.len() == 1 && w[0].starts_with("unindexed")));

    let cat = make(warnings::SUMMARISE_OVER as u32 + 1);
    let g = build(&cat, 1, &opts()).unwrap();
    let w = warnings_of(&cat, &g);
    assert!(w[1..].iter().all(|w| w.is_empty()));
    assert_eq!(
        w[0],
        vec!["4 unindexed foreign keys (indexed = false): every delete scans their tables: t0(user_id), t1(user_id), t2(user_id), t3(user_id)"]
    );
}

#[test]
fn the_restrict_notice_names_constraints_whose_tables_have_rows() {
    // customers <- orders (RESTRICT) <- items (RESTRICT) <- events (NO ACTION)
    let mut cat = chain("r");
    cat.foreign_keys[2].on_delete = "a".into();
    let g = build(&cat, 1, &opts()).unwrap();
    let rows = |rel: RelId| match rel {
        1 => 1,
        2 => 3,
        _ => 0,
    };
    let (message, hint) = restrict_notice(&cat, &g, rows).unwrap();
    assert_eq!(
        message,
        "uproot: 1 ON DELETE RESTRICT constraint(s) would stop a plain DELETE of this family; uproot follows them and takes the referencing rows too: orders_customer_id_fkey (3 row(s) of orders)"
    );
    assert!(hint.contains("respect_restrict => true"), "{hint}");
    // no rows behind any RESTRICT edge: no notice
    assert_eq!(restrict_notice(&cat, &g, |r| (r == 1) as i64), None);
    // with respect_restrict the edges are blocked, not followed: no notice
    let strict = Options {
        respect_restrict: true,
        ..opts()
    };
    let g = build(&cat, 1, &strict).unwrap();
    assert_eq!(restrict_notice(&cat, &g, |_| 5), None);
}

#[test]
fn partial_indexes_serve_the_fk_lookup_when_it_implies_their_predicate() {
    let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // as pg_get_expr prints index predicates
    assert!(lookup_implies("(user_id IS NOT NULL)", &cols(&["user_id"])));
    assert!(lookup_implies(
        "((a IS NOT NULL) AND (b IS NOT NULL))",
        &cols(&["a", "b"])
    ));
    assert!(lookup_implies("(a IS NOT NULL)", &cols(&["a", "b"])));
    assert!(lookup_implies(
        r#"(("Odd Col" IS NOT NULL) AND ("say ""AND"" again" IS NOT NULL))"#,
        &cols(&["Odd Col", "say \"AND\" again"])
    ));
    // a column that is not an FK column, another condition, or NOT (x IS NULL): not proven
    assert!(!lookup_implies(
        "(created_at IS NOT NULL)",
        &cols(&["user_id"])
    ));
    assert!(!lookup_implies(
        "((user_id IS NOT NULL) AND (created_at > '2020-01-01'::date))",
        &cols(&["user_id"])
    ));
    assert!(!lookup_implies(
        "(NOT (user_id IS NULL))",
        &cols(&["user_id"])
    ));
    assert!(!lookup_implies("(user_id IS NULL)", &cols(&["user_id"])));
    assert!(!lookup_implies(
        "((a IS NOT NULL) OR (b IS NOT NULL))",
        &cols(&["a", "b"])
    ));
    assert!(!lookup_implies("", &cols(&["a"])));
}

#[test]
fn the_catalog_counts_a_partial_index_the_lookup_implies_as_an_index() {
    let json = |predicates: &str| {
        format!(
            r#"{{"relations":[
            {{"oid":1,"schema":"public","name":"users","kind":"r","is_partition":false,"parent":null,
              "rls_enabled":false,"primary_key":[1],
              "columns":[{{"attnum":1,"name":"id","type_oid":23,"type_name":"integer","generated":null}}]}},
            {{"oid":2,"schema":"public","name":"notes","kind":"r","is_partition":false,"parent":null,
              "rls_enabled":false,"primary_key":[1],
              "columns":[{{"attnum":1,"name":"id","type_oid":23,"type_name":"integer","generated":null}},
                         {{"attnum":2,"name":"user_id","type_oid":23,"type_name":"integer","generated":null}}]}}],
            "foreign_keys":[{{"oid":10,"name":"notes_user_id_fkey","child":2,"parent":1,"child_cols":[2],"parent_cols":[1],
              "on_delete":"a","set_cols":null,"deferrable":false,"deferred":false,"validated":true,"child_indexed":false,
              "partial_index_predicates":{predicates}}}]}}"#
        )
    };
    let indexed = |p: &str| Catalog::from_json(&json(p)).unwrap().foreign_keys[0].child_indexed;
    assert!(indexed(r#"["(user_id IS NOT NULL)"]"#));
    assert!(indexed(r#"["(id > 5)", "(user_id IS NOT NULL)"]"#));
    assert!(!indexed(r#"["(id > 5)"]"#));
    assert!(!indexed("[]"));
}

#[test]
fn same_family_sees_a_new_fk_and_ignores_what_only_feeds_warnings() {
    let before = chain("a");
    let g = build(&before, 1, &opts()).unwrap();
    assert!(same_family(&before, &g, &before, &g));

    // an index or a trigger added meanwhile does not change what the call did
    let mut after = before.clone();
    after.foreign_keys[1].child_indexed = false;
    after.relations.get_mut(&3).unwrap().user_triggers = vec!["t".into()];
    let g2 = build(&after, 1, &opts()).unwrap();
    assert!(same_family(&before, &g, &after, &g2));

    // a new FK into the family does
    let mut after = before.clone();
    after
        .relations
        .insert(5, table(5, "build_log", &["id", "customer_id"], &[1]));
    after
        .foreign_keys
        .push(fk(13, "bl_fk", 5, &[2], 1, &[1], "c"));
    let g2 = build(&after, 1, &opts()).unwrap();
    assert!(!same_family(&before, &g, &after, &g2));

    // so does a changed ON DELETE action, or a new FK from a family table to elsewhere
    let mut after = before.clone();
    after.foreign_keys[2].on_delete = "c".into();
    let g2 = build(&after, 1, &opts()).unwrap();
    assert!(!same_family(&before, &g, &after, &g2));
    let mut after = before.clone();
    after
        .relations
        .insert(6, table(6, "warehouses", &["id"], &[1]));
    after
        .foreign_keys
        .push(fk(14, "items_wh_fkey", 3, &[1], 6, &[1], "a"));
    let g2 = build(&after, 1, &opts()).unwrap();
    assert!(!same_family(&before, &g, &after, &g2));
}

/// A 500-table, 1,000-FK schema builds whole: every table in its own component, in lock order,
/// every edge once. (How fast is for the benchmark in bench/: a wall-clock bound in a debug test
/// build on a shared machine would only flake.)
#[test]
fn large_schema_builds_whole() {
    let n = 500u32;
    let mut rels = Vec::new();
    let mut fks = Vec::new();
    for i in 0..n {
        rels.push(table(i + 1, &format!("t{i}"), &["id", "a", "b"], &[1]));
    }
    for i in 1..n {
        fks.push(fk(
            10_000 + 2 * i,
            &format!("fa{i}"),
            i + 1,
            &[2],
            (i - 1) / 2 + 1,
            &[1],
            "a",
        ));
        fks.push(fk(
            10_001 + 2 * i,
            &format!("fb{i}"),
            i + 1,
            &[3],
            (i * 7) % i + 1,
            &[1],
            "c",
        ));
    }
    let cat = catalog(rels, fks);
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.tables().count(), n as usize);
    assert_eq!(g.edges.len(), 2 * (n as usize - 1));
    assert_eq!(g.sccs.len(), n as usize, "a tree of tables has no cycle");
    // parents before children: every edge goes down the lock order
    let position: std::collections::BTreeMap<RelId, usize> =
        g.tables().enumerate().map(|(i, t)| (t, i)).collect();
    assert!(g
        .edges
        .iter()
        .all(|e| position[&e.from] < position[&e.child]));
    // every table also references the root through `fb` ((i * 7) % i is 0): depth 1 below it
    assert!((2..=n).all(|t| g.depth[&t] == 1));
}

/// A declared relation is an edge like an FK (PostgreSQL runs no action for it); one whose
/// column is gone (attnum 0) fails the build of a family that uses it, naming the relation.
#[test]
fn declared_edges_are_followed_and_broken_ones_are_loud() {
    let mut cat = chain("a");
    cat.foreign_keys[1].declared = true;
    cat.foreign_keys[1].enforced = false;
    cat.foreign_keys[1].name = "items_order (declared)".into();
    let g = build(&cat, 1, &opts()).unwrap();
    assert_eq!(g.followed().count(), 3);
    assert!(g.contains(4));

    cat.foreign_keys[1].child_cols = vec![0];
    let err = build(&cat, 1, &opts()).unwrap_err();
    assert_eq!(err.sqlstate(), "42703");
    assert!(err
        .message()
        .contains("declared relation items_order names a column"));
    // a family that does not reach it is not affected
    assert!(build(&cat, 3, &opts()).is_ok());
}
