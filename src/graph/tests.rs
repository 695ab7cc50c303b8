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
            rls_forced: false,
            user_triggers: vec![],
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
                    not_null: false,
                    identity: None,
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
            child_indexed: true,
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

#[test]
fn warnings_name_what_matters() {
    let mut cat = chain("a");
    cat.foreign_keys[2].child_indexed = false;
    cat.foreign_keys[2].deferrable = true;
    cat.foreign_keys[2].validated = false;
    let w = edge_warnings(&cat, &cat.foreign_keys[2]);
    assert!(
        w.iter()
            .any(|w| w.contains("unindexed foreign key: events(item_id)")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.contains("deferrable constraint events_item_id_fkey")),
        "{w:?}"
    );
    assert!(w.iter().any(|w| w.contains("NOT VALID")), "{w:?}");

    let r = cat.relations.get_mut(&4).unwrap();
    r.primary_key = None;
    r.user_triggers = vec!["audit".into()];
    r.rls_enabled = true;
    let w = table_warnings(&cat, 4);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].contains("no primary key")
            && w[1].contains("audit")
            && w[2].contains("row-level security")
    );
}

/// A 500-table, 1,000-FK schema, as DESIGN.md's graph-compile target describes; the graph must
/// build well inside the 1 ms budget of a cached call (checked loosely here: 20 ms, since test
/// builds are unoptimised and the machine is shared).
#[test]
fn large_schema_builds_quickly() {
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
    let start = std::time::Instant::now();
    let g = build(&cat, 1, &opts()).unwrap();
    let took = start.elapsed();
    assert_eq!(g.tables().count(), n as usize);
    assert_eq!(g.edges.len(), 2 * (n as usize - 1));
    eprintln!("graph::build, 500 tables / 998 FKs: {took:?}");
    assert!(took.as_millis() < 20, "building took {took:?}");
}
