//! The family graph at schema level: which tables a root reaches, through which edges, in which
//! order they are locked. Pure Rust; tested with plain `cargo test`.

pub mod model;
pub mod warnings;

use crate::error::UprootError;
use model::{Catalog, FkAction, ForeignKey, RelId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
pub use warnings::{graph_warnings, restrict_notice};

/// The options every operation takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// NO ACTION / RESTRICT edges with rows are an error instead of being followed.
    pub respect_restrict: bool,
    /// SET NULL / SET DEFAULT edges are followed instead of detached.
    pub follow_set_null: bool,
    /// Tables that are never entered.
    pub stop_at: BTreeSet<RelId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DetachKind {
    SetNull,
    SetDefault,
}

impl DetachKind {
    /// The action word purge reports for rows detached this way.
    pub fn action_word(self) -> &'static str {
        match self {
            DetachKind::SetNull => "nullified",
            DetachKind::SetDefault => "defaulted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// `respect_restrict => true` and the edge is NO ACTION or RESTRICT.
    RespectRestrict,
    /// The child table is in `stop_at`.
    StopAt,
}

/// What an edge does during an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    Follow,
    Detach(DetachKind),
    /// Never entered; rows behind it make the operation fail.
    Block(BlockReason),
}

impl Disposition {
    pub fn describe(self) -> &'static str {
        match self {
            Disposition::Follow => "follow",
            Disposition::Detach(DetachKind::SetNull) => "detach (set null)",
            Disposition::Detach(DetachKind::SetDefault) => "detach (set default)",
            Disposition::Block(BlockReason::RespectRestrict) => "blocked (respect_restrict)",
            Disposition::Block(BlockReason::StopAt) => "stopped (stop_at)",
        }
    }
}

pub fn disposition(fk: &ForeignKey, opts: &Options) -> Disposition {
    if opts.stop_at.contains(&fk.child) {
        return Disposition::Block(BlockReason::StopAt);
    }
    match fk.action() {
        FkAction::Cascade => Disposition::Follow,
        FkAction::NoAction | FkAction::Restrict if opts.respect_restrict => {
            Disposition::Block(BlockReason::RespectRestrict)
        }
        FkAction::NoAction | FkAction::Restrict => Disposition::Follow,
        FkAction::SetNull | FkAction::SetDefault if opts.follow_set_null => Disposition::Follow,
        FkAction::SetNull => Disposition::Detach(DetachKind::SetNull),
        FkAction::SetDefault => Disposition::Detach(DetachKind::SetDefault),
    }
}

/// An edge out of the family: a foreign key whose parent side is a family table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FamilyEdge {
    /// Index into `Catalog::foreign_keys`.
    pub fk: usize,
    /// The family table whose rows the edge's parent side stands for (the FK's parent itself, or
    /// for a partition root, the root; for an FK that references one partition, its ancestor).
    pub from: RelId,
    /// The relation to name in SQL for the parent side of the join.
    pub parent_sql_rel: RelId,
    pub child: RelId,
    pub disposition: Disposition,
}

/// The schema-level family of one root under one set of options.
#[derive(Debug, Clone)]
pub struct FamilyGraph {
    pub root: RelId,
    /// Strongly connected components of the followed subgraph, parents before children.
    pub sccs: Vec<Vec<RelId>>,
    /// Shortest distance from the root, over followed edges (detached/blocked children included).
    pub depth: BTreeMap<RelId, u32>,
    /// Every edge whose parent side is a family table, in a deterministic order.
    pub edges: Vec<FamilyEdge>,
    /// The statements planned for this graph so far (see `StatementMemo`).
    pub planned: crate::plan::StatementMemo,
}

impl FamilyGraph {
    /// Family tables in lock order: top-down by component, deterministic within one.
    pub fn tables(&self) -> impl Iterator<Item = RelId> + '_ {
        self.sccs.iter().flatten().copied()
    }

    pub fn contains(&self, rel: RelId) -> bool {
        self.sccs.iter().any(|s| s.contains(&rel))
    }

    pub fn followed(&self) -> impl Iterator<Item = &FamilyEdge> {
        self.edges
            .iter()
            .filter(|e| e.disposition == Disposition::Follow)
    }

    pub fn followed_into(&self, child: RelId) -> impl Iterator<Item = &FamilyEdge> {
        self.followed().filter(move |e| e.child == child)
    }

    /// The followed edges into `child`, each with its index in `edges`.
    pub fn followed_into_indexed(
        &self,
        child: RelId,
    ) -> impl Iterator<Item = (usize, &FamilyEdge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| e.disposition == Disposition::Follow && e.child == child)
    }

    pub fn edges_from(&self, parent: RelId) -> impl Iterator<Item = &FamilyEdge> {
        self.edges.iter().filter(move |e| e.from == parent)
    }

    /// Every (table, kind) a detach edge of the family changes, each once, in table order.
    pub fn detach_targets(&self) -> Vec<(RelId, DetachKind)> {
        let mut out: Vec<(RelId, DetachKind)> = self
            .edges
            .iter()
            .filter_map(|e| match e.disposition {
                Disposition::Detach(k) => Some((e.child, k)),
                _ => None,
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub fn scc_of(&self, rel: RelId) -> Option<usize> {
        self.sccs.iter().position(|s| s.contains(&rel))
    }

    /// A table is in a cycle when its component has several tables or it references itself.
    pub fn in_cycle(&self, cat: &Catalog, rel: RelId) -> bool {
        self.planned
            .cyclic
            .get_or_init(|| self.tables().filter(|&t| self.cyclic(cat, t)).collect())
            .contains(&rel)
    }

    fn cyclic(&self, cat: &Catalog, rel: RelId) -> bool {
        match self.scc_of(rel) {
            Some(i) if self.sccs[i].len() > 1 => true,
            Some(_) => self
                .followed_into(rel)
                .any(|e| e.from == rel && cat.foreign_keys[e.fk].is_self_reference()),
            None => false,
        }
    }
}

/// Which family tables does an FK's parent side stand for?
fn edge_sources(
    cat: &Catalog,
    fk: &ForeignKey,
    root: RelId,
    family: &BTreeSet<RelId>,
) -> Vec<(RelId, RelId)> {
    let mut out = Vec::new();
    // (family table, relation named in SQL)
    if family.contains(&fk.parent) {
        out.push((fk.parent, fk.parent));
    } else {
        // the FK references a partition whose ancestor is a family table
        for anc in cat.self_and_ancestors(fk.parent).into_iter().skip(1) {
            if family.contains(&anc) {
                out.push((anc, fk.parent));
                break;
            }
        }
    }
    // a partition used as the root is reached by FKs that reference its ancestors
    if family.contains(&root)
        && fk.parent != root
        && cat.self_and_ancestors(root).contains(&fk.parent)
        && !out.iter().any(|(f, _)| *f == root)
    {
        out.push((root, root));
    }
    out
}

/// Build the family graph of `root`. Errors when the root is not a table.
pub fn build(cat: &Catalog, root: RelId, opts: &Options) -> Result<FamilyGraph, UprootError> {
    let root_rel = cat
        .relation(root)
        .ok_or(UprootError::UnknownRelation { oid: root })?;
    if !root_rel.is_table() {
        return Err(UprootError::NotATable {
            relation: root_rel.display_name(),
            kind: relkind_word(&root_rel.kind),
        });
    }
    if root_rel.schema == "pg_catalog" || root_rel.schema == "information_schema" {
        return Err(UprootError::InvalidArgument {
            argument: "root".into(),
            message: format!("{} is a system catalog", root_rel.display_name()),
            hint: "uproot works on user tables.".into(),
        });
    }
    if opts.stop_at.contains(&root) {
        return Err(UprootError::InvalidArgument {
            argument: "stop_at".into(),
            message: format!("stop_at names the root table {}", root_rel.display_name()),
            hint: "remove the root table from stop_at".into(),
        });
    }

    // Which FKs can start at a table: those referencing it or one of its partitions.
    let mut starting_at: BTreeMap<RelId, Vec<usize>> = BTreeMap::new();
    for (i, fk) in cat.foreign_keys.iter().enumerate() {
        if cat.relations.contains_key(&fk.child) {
            for r in cat.self_and_ancestors(fk.parent) {
                starting_at.entry(r).or_default().push(i);
            }
        }
    }
    // A partition used as the root is also reached by FKs that reference its ancestors.
    let root_ancestors: Vec<RelId> = cat.self_and_ancestors(root).into_iter().skip(1).collect();

    // Breadth-first over followed edges gives the reached set and shortest depths.
    let mut family: BTreeSet<RelId> = BTreeSet::from([root]);
    let mut depth: BTreeMap<RelId, u32> = BTreeMap::from([(root, 0)]);
    let mut queue = VecDeque::from([root]);
    while let Some(cur) = queue.pop_front() {
        let d = depth[&cur];
        let mut candidates: Vec<usize> = starting_at.get(&cur).cloned().unwrap_or_default();
        if cur == root {
            for anc in &root_ancestors {
                let direct = starting_at.get(anc).into_iter().flatten();
                candidates.extend(direct.filter(|i| cat.foreign_keys[**i].parent == *anc));
            }
        }
        let only_cur = BTreeSet::from([cur]);
        for i in candidates {
            let fk = &cat.foreign_keys[i];
            if edge_sources(cat, fk, root, &only_cur).is_empty() {
                continue;
            }
            depth.entry(fk.child).or_insert(d + 1);
            if disposition(fk, opts) == Disposition::Follow && family.insert(fk.child) {
                queue.push_back(fk.child);
            }
        }
    }

    let mut edges = Vec::new();
    for (i, fk) in cat.foreign_keys.iter().enumerate() {
        if !cat.relations.contains_key(&fk.child) {
            continue;
        }
        for (from, parent_sql_rel) in edge_sources(cat, fk, root, &family) {
            if fk.missing_column() {
                return Err(broken_declaration(cat, fk));
            }
            edges.push(FamilyEdge {
                fk: i,
                from,
                parent_sql_rel,
                child: fk.child,
                disposition: disposition(fk, opts),
            });
        }
    }
    // deterministic order: by child depth, then names, then constraint name
    edges.sort_by(|a, b| {
        let key = |e: &FamilyEdge| {
            (
                depth.get(&e.child).copied().unwrap_or(u32::MAX),
                sort_name(cat, e.child),
                cat.foreign_keys[e.fk].name.clone(),
                sort_name(cat, e.from),
            )
        };
        key(a).cmp(&key(b))
    });

    let sccs = ordered_components(cat, root, &family, &edges, &depth);
    Ok(FamilyGraph {
        root,
        sccs,
        depth,
        edges,
        planned: Default::default(),
    })
}

/// A declared relation of the family names a column its table no longer has.
fn broken_declaration(cat: &Catalog, fk: &ForeignKey) -> UprootError {
    let name = fk.name.trim_end_matches(" (declared)").to_string();
    let missing = |rel: RelId| {
        cat.relation(rel)
            .map(|r| r.display_name())
            .unwrap_or_default()
    };
    let table = if fk.child_cols.contains(&0) {
        missing(fk.child)
    } else {
        missing(fk.parent)
    };
    UprootError::Declaration {
        sqlstate: "42703",
        message: format!(
            "declared relation {name} names a column that {table} no longer has"
        ),
        detail: Some("A column of the relation was dropped or renamed after it was declared.".into()),
        hint: format!(
            "Declare it again: SELECT uproot.drop_relation('{}'); then uproot.declare_relation(...) with the current column names.",
            name.replace('\'', "''")
        ),
    }
}

fn sort_name(cat: &Catalog, rel: RelId) -> (String, String) {
    cat.relation(rel)
        .map(|r| (r.schema.clone(), r.name.clone()))
        .unwrap_or_default()
}

pub fn relkind_word(kind: &str) -> String {
    match kind {
        "r" => "table",
        "p" => "partitioned table",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "S" => "sequence",
        "i" | "I" => "index",
        "c" => "composite type",
        "t" => "TOAST table",
        _ => "relation",
    }
    .to_string()
}

/// Lock order of a table within its component: the root first, then by depth, name and OID.
/// Components are ordered by level first (`ordered_components`).
type LockKey = (bool, u32, (String, String), RelId);

fn lock_key(cat: &Catalog, depth: &BTreeMap<RelId, u32>, root: RelId, r: RelId) -> LockKey {
    (
        r != root,
        depth.get(&r).copied().unwrap_or(u32::MAX),
        sort_name(cat, r),
        r,
    )
}

/// Tarjan's strongly connected components over followed edges, then a topological order of the
/// components (parents first) by level, ties broken by name so that lock order is deterministic.
fn ordered_components(
    cat: &Catalog,
    root: RelId,
    family: &BTreeSet<RelId>,
    edges: &[FamilyEdge],
    depth: &BTreeMap<RelId, u32>,
) -> Vec<Vec<RelId>> {
    let nodes: Vec<RelId> = family.iter().copied().collect();
    let index_of = |r: RelId| nodes.binary_search(&r).ok();
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); nodes.len()];
    for e in edges
        .iter()
        .filter(|e| e.disposition == Disposition::Follow)
    {
        if let (Some(a), Some(b)) = (index_of(e.from), index_of(e.child)) {
            succ[a].insert(b);
        }
    }

    // iterative Tarjan
    let n = nodes.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp_of = vec![usize::MAX; n];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    let mut next = 0usize;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, Vec<usize>)> =
            vec![(start, succ[start].iter().copied().collect())];
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some((v, rest)) = work.last_mut() {
            let v = *v;
            if let Some(w) = rest.pop() {
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, succ[w].iter().copied().collect()));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some((u, _)) = work.last() {
                    let u = *u;
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp_of[w] = comps.len();
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    comps.push(comp);
                }
            }
        }
    }

    // Kahn over the condensation, smallest (depth, name) first
    let c = comps.len();
    let mut indeg = vec![0usize; c];
    let mut csucc: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); c];
    for v in 0..n {
        for &w in &succ[v] {
            let (a, b) = (comp_of[v], comp_of[w]);
            if a != b && csucc[a].insert(b) {
                indeg[b] += 1;
            }
        }
    }
    // The level of a component: the longest chain of followed edges from the root's. Ordering
    // by it (not by the shortest depth) keeps the components of one level together, so that
    // collect_groups can read a whole level in one statement: a table that the root also
    // references directly (a diamond) comes after its deeper parent anyway.
    let mut level = vec![0u32; c];
    {
        let mut indeg = indeg.clone();
        let mut queue: Vec<usize> = (0..c).filter(|&ci| indeg[ci] == 0).collect();
        while let Some(ci) = queue.pop() {
            for &d in &csucc[ci] {
                level[d] = level[d].max(level[ci] + 1);
                indeg[d] -= 1;
                if indeg[d] == 0 {
                    queue.push(d);
                }
            }
        }
    }
    let key = |r: RelId| lock_key(cat, depth, root, r);
    let comp_key = |ci: usize| {
        let first = comps[ci].iter().map(|&v| key(nodes[v])).min().unwrap();
        (first.0, level[ci], first.2, first.3)
    };
    let mut ready: BTreeSet<(LockKey, usize)> = BTreeSet::new();
    for (ci, d) in indeg.iter().enumerate() {
        if *d == 0 {
            ready.insert((comp_key(ci), ci));
        }
    }
    let mut out = Vec::new();
    while let Some(first) = ready.iter().next().cloned() {
        ready.remove(&first);
        let ci = first.1;
        let mut members: Vec<RelId> = comps[ci].iter().map(|&v| nodes[v]).collect();
        members.sort_by_key(|r| key(*r));
        out.push(members);
        for &d in &csucc[ci] {
            indeg[d] -= 1;
            if indeg[d] == 0 {
                ready.insert((comp_key(d), d));
            }
        }
    }
    out
}

/// Do two family graphs, each with its catalog, describe the same family for an operation: the
/// same tables in the same lock order, the same edges doing the same, the same foreign keys on
/// and to every table involved, and the same relations (names, columns, keys)? What only feeds
/// warnings (indexes, triggers, row-level security flags, checked when the call runs) is not
/// compared. A call whose family changed this way while it ran must not stand.
pub fn same_family(a_cat: &Catalog, a: &FamilyGraph, b_cat: &Catalog, b: &FamilyGraph) -> bool {
    fn involved(cat: &Catalog, g: &FamilyGraph) -> BTreeSet<RelId> {
        let mut rels: BTreeSet<RelId> = g.tables().collect();
        for e in &g.edges {
            rels.extend([
                e.from,
                e.child,
                e.parent_sql_rel,
                cat.foreign_keys[e.fk].parent,
            ]);
        }
        rels
    }
    fn comparable_rel(r: &model::Relation) -> model::Relation {
        let mut r = r.clone();
        r.user_triggers.clear();
        r.own_triggers.clear();
        r.rls_enabled = false;
        r.has_rules = false;
        r.internal_triggers_on_origin = false;
        r
    }
    fn comparable_fk(fk: &ForeignKey) -> ForeignKey {
        let mut fk = fk.clone();
        fk.child_indexed = false;
        fk.partial_index_predicates.clear();
        fk
    }
    fn fks(cat: &Catalog, rels: &BTreeSet<RelId>) -> BTreeMap<(bool, u32), ForeignKey> {
        cat.foreign_keys
            .iter()
            .filter(|fk| rels.contains(&fk.child) || rels.contains(&fk.parent))
            .map(|fk| ((fk.declared, fk.oid), comparable_fk(fk)))
            .collect()
    }
    let rels = involved(a_cat, a);
    if a.root != b.root || a.sccs != b.sccs || a.depth != b.depth || rels != involved(b_cat, b) {
        return false;
    }
    let same_edges = a.edges.len() == b.edges.len()
        && a.edges.iter().zip(&b.edges).all(|(x, y)| {
            x.from == y.from
                && x.child == y.child
                && x.parent_sql_rel == y.parent_sql_rel
                && x.disposition == y.disposition
                && a_cat.foreign_keys[x.fk].oid == b_cat.foreign_keys[y.fk].oid
                && a_cat.foreign_keys[x.fk].declared == b_cat.foreign_keys[y.fk].declared
        });
    same_edges
        && fks(a_cat, &rels) == fks(b_cat, &rels)
        && rels.iter().all(|r| {
            a_cat.relation(*r).map(comparable_rel) == b_cat.relation(*r).map(comparable_rel)
        })
}

#[cfg(test)]
pub mod tests;

/// One line of the tree that `preview` and `graph` draw.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeLine {
    pub relation: RelId,
    pub depth: u32,
    /// e.g. `│  └─ items`
    pub label: String,
}

/// `tree`, drawn once per graph (every preview, purge and archive orders its lines by it).
pub fn tree_lines<'g>(cat: &Catalog, g: &'g FamilyGraph) -> &'g [TreeLine] {
    g.planned.tree_lines.get_or_init(|| tree(cat, g))
}

/// The family as a tree for people: every family table and every table behind a detach or
/// blocked edge, each under the first table that reaches it at the shortest depth.
pub fn tree(cat: &Catalog, g: &FamilyGraph) -> Vec<TreeLine> {
    let mut nodes: Vec<RelId> = g.tables().collect();
    for e in &g.edges {
        if !nodes.contains(&e.child) {
            nodes.push(e.child);
        }
    }
    let mut children: BTreeMap<RelId, Vec<RelId>> = BTreeMap::new();
    for &n in &nodes {
        if n == g.root {
            continue;
        }
        let d = g.depth.get(&n).copied().unwrap_or(0);
        let parent = g
            .edges
            .iter()
            .filter(|e| e.child == n && e.from != n)
            .find(|e| g.depth.get(&e.from).copied().unwrap_or(0) + 1 == d)
            .or_else(|| g.edges.iter().find(|e| e.child == n && e.from != n))
            .map(|e| e.from)
            .unwrap_or(g.root);
        let list = children.entry(parent).or_default();
        if !list.contains(&n) {
            list.push(n);
        }
    }
    let name = |r: RelId| {
        cat.relation(r)
            .map(|r| r.display_name())
            .unwrap_or_else(|| r.to_string())
    };
    let mut out = vec![TreeLine {
        relation: g.root,
        depth: 0,
        label: name(g.root),
    }];
    fn walk(
        at: RelId,
        prefix: &str,
        children: &BTreeMap<RelId, Vec<RelId>>,
        g: &FamilyGraph,
        name: &dyn Fn(RelId) -> String,
        out: &mut Vec<TreeLine>,
        seen: &mut BTreeSet<RelId>,
    ) {
        let kids = children.get(&at).cloned().unwrap_or_default();
        for (i, k) in kids.iter().enumerate() {
            if !seen.insert(*k) {
                continue;
            }
            let last = i + 1 == kids.len();
            let branch = if last { "└─ " } else { "├─ " };
            out.push(TreeLine {
                relation: *k,
                depth: g.depth.get(k).copied().unwrap_or(0),
                label: format!("{prefix}{branch}{}", name(*k)),
            });
            let next = format!("{prefix}{}", if last { "   " } else { "│  " });
            walk(*k, &next, children, g, name, out, seen);
        }
    }
    let mut seen = BTreeSet::from([g.root]);
    walk(g.root, "", &children, g, &name, &mut out, &mut seen);
    out
}
