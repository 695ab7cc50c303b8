//! Compiles a family graph into SQL text with `$n` parameters. Pure: plain data in, strings out.
//!
//! Rows of a family table are named by `ctid` (plus `tableoid` for partitioned tables): one
//! uniform, cheap identity for every table, stable while the row is locked by this transaction.
//! Every identifier is quoted, every operator is named with its schema, every value is a
//! parameter, and every parameter is a named `Slot` (see `Statement`), never a position.

pub mod access;
pub mod archive;
pub mod declared_check;
pub mod ri_check;
#[cfg(test)]
mod tests;

use crate::graph::model::{quote_ident, Catalog, ForeignKey, RelId, Relation};
use crate::graph::{Disposition, FamilyEdge, FamilyGraph};

/// How the caller named the root rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RootFilter {
    /// `$1` is one value of the key's type; `cast` is the key type when the value needs a cast.
    Scalar { cast: Option<String> },
    /// `$1` is an array; `cast` is the key's array type when it needs a cast.
    Array { cast: Option<String> },
    /// `$1` is a jsonb array of objects keyed by primary-key column names.
    Json,
    /// The caller's own boolean expression, already checked to be exactly one expression.
    Predicate(String),
}

/// How rows of one family table are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ident {
    /// `ctid`; one `tid[]` parameter.
    Ctid,
    /// `(tableoid, ctid)` for partitioned tables; a `tid[]` then an `oid[]` parameter.
    Pair,
}

impl Ident {
    pub fn of(rel: &Relation) -> Ident {
        if rel.is_partitioned() {
            Ident::Pair
        } else {
            Ident::Ctid
        }
    }

    /// The select list that yields a row set: an array of ctids, and for pairs an array of oids.
    fn aggregate(self, alias: &str) -> String {
        match self {
            Ident::Ctid => format!("pg_catalog.array_agg({alias}.t)"),
            Ident::Pair => {
                format!("pg_catalog.array_agg({alias}.t), pg_catalog.array_agg({alias}.o)")
            }
        }
    }

    fn columns(self, alias: &str) -> String {
        match self {
            Ident::Ctid => format!("{alias}.ctid AS t"),
            Ident::Pair => format!("{alias}.ctid AS t, {alias}.tableoid AS o"),
        }
    }
}

/// A value a planned statement takes, named by what it is: exec binds each slot to its value in
/// one place, so a statement cannot be given the right values in the wrong order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The caller's keys: one value, an array, or a jsonb array of objects.
    Keys,
    /// `max_roots` (int8).
    Limit,
    /// The archive batch id (int8).
    Batch,
    /// The ctids (`tid[]`) of a row set.
    Tids(Rows),
    /// The tableoids (`oid[]`) of a row set of a partitioned table.
    Oids(Rows),
    /// The leaf relations of these relations (`oid[]`), for the statistics counters.
    Relations(Vec<RelId>),
    /// A value the caller of a ledger statement supplies under this name.
    Named(&'static str),
    /// The values of one column of the rows the family statement deleted from a table (an
    /// array of the column's type), as that statement returned them.
    DeletedKeys { table: RelId, column: i16 },
    /// The values of one column of the rows a collect statement found, as that one statement
    /// returned them with their ctids (an array of the column's type): the rows of `rows`, an
    /// edge's unexpanded rows that are the whole of its parent's set (`carries_keys`).
    FoundKeys { rows: Rows, column: i16 },
    /// The runs of consecutive values that the keys of `FoundKeys { rows, column }` form, in
    /// order (`int8[]`): the first value of each run, or with `last` the last (`key_runs_edge`).
    KeyRuns { rows: Rows, column: i16, last: bool },
    /// Exactly these relations (`oid[]`).
    RelationOids(Vec<RelId>),
    /// These constraints (`oid[]`).
    ConstraintOids(Vec<u32>),
}

/// Which rows a row-set slot names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rows {
    /// Every row of a family table found so far.
    Family(RelId),
    /// The rows of the parent set of edge number `edge` (of `FamilyGraph::edges`) that this edge
    /// has not expanded yet.
    Unexpanded { edge: usize, from: RelId },
    /// The archived rows of a relation that stay in the archive (restore with `on_conflict =>
    /// 'skip'`), as positions in its archive table.
    Staying(RelId),
}

impl Rows {
    /// The relation whose rows these are.
    pub fn relation(self) -> RelId {
        match self {
            Rows::Family(r) | Rows::Staying(r) => r,
            Rows::Unexpanded { from, .. } => from,
        }
    }
}

/// One planned statement: `$n` binds `slots[n - 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub slots: Vec<Slot>,
}

impl Statement {
    /// A statement without parameters.
    pub fn fixed(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            slots: Vec::new(),
        }
    }

    /// Every `$n` in the text has exactly one slot, and every slot is used: the `$n` are
    /// exactly 1..=slots.len(), and no slot is listed twice.
    pub fn check_slots(&self) -> Result<(), String> {
        let used = param_numbers(&self.sql);
        let expected: std::collections::BTreeSet<usize> = (1..=self.slots.len()).collect();
        if used != expected {
            return Err(format!(
                "parameters {used:?} but slots {:?} in: {}",
                self.slots, self.sql
            ));
        }
        for (i, s) in self.slots.iter().enumerate() {
            if self.slots[..i].contains(s) {
                return Err(format!("slot {s:?} listed twice in: {}", self.sql));
            }
        }
        Ok(())
    }
}

/// One statement of an operation, and why it runs: what `uproot.explain` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub purpose: String,
    pub statement: Statement,
}

/// The `$n` a statement's text uses (outside string literals and quoted identifiers).
pub fn param_numbers(sql: &str) -> std::collections::BTreeSet<usize> {
    let mut out = std::collections::BTreeSet::new();
    let b = sql.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if c == b'$' => {
                let digits: String = sql[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if let Ok(n) = digits.parse::<usize>() {
                    out.insert(n);
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

/// Hands out `$n` for slots: storing a slot and writing its `$n` are one step, and a slot asked
/// for twice gets the same number.
#[derive(Debug, Default)]
pub struct Params {
    slots: Vec<Slot>,
    /// Write every reference as a semi-join (see `references`): for large row sets.
    joined_references: bool,
}

/// From this many rows in one family table on, the family statement takes its large form
/// (`delete_statement_for`'s `large`): join leaves deleted through a semi-join, counts and keys
/// gathered by aggregates.
pub const LARGE_SET: usize = 10_000;

impl Params {
    /// The `$n` of `slot`.
    pub fn slot(&mut self, slot: Slot) -> usize {
        if let Some(i) = self.slots.iter().position(|s| *s == slot) {
            return i + 1;
        }
        self.slots.push(slot);
        self.slots.len()
    }

    pub fn statement(self, sql: String) -> Statement {
        Statement {
            sql,
            slots: self.slots,
        }
    }
}

/// Statements planned for one family graph, by what each was planned from besides the catalog
/// and the graph. Planning is a pure function of those, and a graph lives only as long as the
/// catalog it was built from stays current, so a statement planned once is right for every later
/// call with the same graph: a call on a broad family no longer rebuilds (and the plan cache no
/// longer copies) hundreds of kilobytes of SQL. A clone of the graph starts with none.
#[derive(Default)]
pub struct StatementMemo {
    statements: std::cell::RefCell<std::collections::HashMap<MemoKey, std::rc::Rc<Statement>>>,
    /// `carried_keys` of every table, worked out once.
    carried: std::cell::OnceCell<std::collections::BTreeMap<RelId, Vec<i16>>>,
    /// `native_cascade_applies`, worked out once.
    native: std::cell::OnceCell<bool>,
    /// The tables `is_join_leaf` says yes to, worked out once (it is asked per table, many
    /// times a call, and each answer scans the catalog's foreign keys).
    join_leaves: std::cell::OnceCell<std::collections::BTreeSet<RelId>>,
    /// The tables `deleted_when_found` says yes to, worked out once.
    deleted_when_found: std::cell::OnceCell<std::collections::BTreeSet<RelId>>,
    /// The tables `FamilyGraph::in_cycle` says yes to, worked out once.
    pub(crate) cyclic: std::cell::OnceCell<std::collections::BTreeSet<RelId>>,
    /// `graph::tree`, the order of every call's result lines, drawn once.
    pub(crate) tree_lines: std::cell::OnceCell<Vec<crate::graph::TreeLine>>,
}

/// What a statement kept in a `StatementMemo` is planned from, besides the catalog and the graph.
/// A value, not a formatted string: building the key is part of every call (a broad family's
/// delete parts took tens of microseconds to format).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemoKey {
    /// `lock_in_key_order` of a table.
    Lock(RelId),
    /// `collect_children_batch`: each table, the indexes of its followed edges, what it takes.
    Batch(Vec<(RelId, Vec<usize>, Take)>),
    /// `collect_root`.
    Root(RootFilter, RootRead),
    /// `collect_children` of a table through these edges, locking or not.
    Children(RelId, Vec<usize>, bool),
    /// `collect_tree` of a table.
    Tree(RelId),
    /// `count_leaves_batch`: each leaf with its edges and whether any row is enough, whether
    /// edges take the found keys, and whether those of integer keys take them as runs.
    CountLeaves(Vec<(RelId, Vec<EdgeKey>, bool)>, bool, bool),
    /// `delete_statement_for`: the parts, the keys it returns, the large form.
    Delete(Vec<DeletePart>, Vec<(RelId, i16)>, bool),
    /// `delete_leaf_statement` of a join leaf's part.
    DeleteLeaf(DeletePart),
    /// `delete_root_by_key`.
    DeleteRoot(RootFilter),
    /// The set-based check of these foreign keys.
    Check(Vec<usize>),
}

/// An edge in a `MemoKey`: its foreign key, the table it starts from, its child.
pub type EdgeKey = (usize, RelId, RelId);

/// Statements kept per graph at most; past that the memo starts afresh.
pub const STATEMENT_MEMO_LIMIT: usize = 512;

impl StatementMemo {
    /// The statement planned under `key`, planned by `plan` the first time.
    pub fn get_or(&self, key: MemoKey, plan: impl FnOnce() -> Statement) -> std::rc::Rc<Statement> {
        if let Some(s) = self.statements.borrow().get(&key) {
            return s.clone();
        }
        let s = std::rc::Rc::new(plan());
        let mut memo = self.statements.borrow_mut();
        if memo.len() >= STATEMENT_MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(key, s.clone());
        s
    }

    pub fn len(&self) -> usize {
        self.statements.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Clone for StatementMemo {
    fn clone(&self) -> Self {
        StatementMemo::default()
    }
}

impl std::fmt::Debug for StatementMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StatementMemo({} statements)", self.len())
    }
}

/// `alias` is one of `rows`: `$n` tids (and `$m` oids for pairs).
pub(crate) fn in_set(ident: Ident, alias: &str, rows: Rows, params: &mut Params) -> String {
    match ident {
        Ident::Ctid => {
            let t = params.slot(Slot::Tids(rows));
            format!("{alias}.ctid OPERATOR(pg_catalog.=) ANY (${t}::pg_catalog.tid[])")
        }
        Ident::Pair => {
            let t = params.slot(Slot::Tids(rows));
            let o = params.slot(Slot::Oids(rows));
            format!(
                "EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(${t}::pg_catalog.tid[]), pg_catalog.unnest(${o}::pg_catalog.oid[])) AS k(t, o) \
                 WHERE k.t OPERATOR(pg_catalog.=) {alias}.ctid AND k.o OPERATOR(pg_catalog.=) {alias}.tableoid)"
            )
        }
    }
}

pub(crate) fn rel(cat: &Catalog, oid: RelId) -> &Relation {
    cat.relation(oid)
        .unwrap_or_else(|| panic!("relation {oid} missing from the catalog snapshot"))
}

/// `ORDER BY` that locks rows of `r` in key order: primary key, else physical order.
fn key_order(r: &Relation, alias: &str) -> String {
    match r.primary_key_columns() {
        Some(cols) if !cols.is_empty() => cols
            .iter()
            .map(|c| format!("{alias}.{}", quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => match Ident::of(r) {
            Ident::Ctid => format!("{alias}.ctid"),
            Ident::Pair => format!("{alias}.tableoid, {alias}.ctid"),
        },
    }
}

/// `EXISTS (...)`: row `c` of the edge's child references one of `from` (rows of `edge.from`).
///
/// A single-column FK between columns of one type is written `c.fk = ANY (ARRAY(SELECT p.key
/// ...))`: the parent keys are computed once, and the child is read with an index scan on its FK
/// column whatever its size; a semi-join, planned generically, may scan a small child whole.
pub fn references(
    cat: &Catalog,
    edge: &FamilyEdge,
    from: Rows,
    c: &str,
    params: &mut Params,
) -> String {
    let fk = &cat.foreign_keys[edge.fk];
    let parent_sql = rel(cat, edge.parent_sql_rel);
    let parent_names = rel(cat, fk.parent).column_names(&fk.parent_cols);
    let child_names = rel(cat, fk.child).column_names(&fk.child_cols);
    let from_ident = Ident::of(rel(cat, edge.from));
    let set = in_set(from_ident, "p", from, params);
    if references_by_key_array(cat, edge, params) {
        let op = fk.eq_operator(0);
        return format!(
            "{c}.{} {op} ANY (ARRAY(SELECT p.{} FROM {} p WHERE {set}))",
            quote_ident(&child_names[0]),
            quote_ident(&parent_names[0]),
            parent_sql.qualified()
        );
    }
    let mut conds = vec![set];
    for (i, (pc, cc)) in parent_names.iter().zip(child_names.iter()).enumerate() {
        let op = fk.eq_operator(i);
        conds.push(format!(
            "p.{} {op} {c}.{}",
            quote_ident(pc),
            quote_ident(cc)
        ));
    }
    format!(
        "EXISTS (SELECT 1 FROM {} p WHERE {})",
        parent_sql.qualified(),
        conds.join(" AND ")
    )
}

/// Does `references` write the edge as `c.fk = ANY (ARRAY(...))`, an index condition? Only for
/// a single-column FK between columns of one type.
///
/// `= ANY (ARRAY(...))` reads the child through one bitmap; when that bitmap grows lossy (a
/// large family spread over a large table), PostgreSQL rechecks every row of a lossy page
/// against the whole array, one element at a time. A large set takes the semi-join instead,
/// planned as an index probe per parent row (linear in the family, whatever the layout).
fn references_by_key_array(cat: &Catalog, edge: &FamilyEdge, params: &Params) -> bool {
    key_array_fk(cat, &cat.foreign_keys[edge.fk]) && !params.joined_references
}

/// A single-column FK between columns of one type: the parent's keys can stand for its rows.
fn key_array_fk(cat: &Catalog, fk: &ForeignKey) -> bool {
    let type_of = |r: RelId, col| rel(cat, r).column(col).map(|c| c.type_oid);
    fk.child_cols.len() == 1
        && type_of(fk.parent, fk.parent_cols[0]).is_some()
        && type_of(fk.parent, fk.parent_cols[0]) == type_of(fk.child, fk.child_cols[0])
}

/// Does the collect statement of `edge.child` take the parent rows' keys as the statement that
/// found those rows returned them (`Slot::FoundKeys`), instead of reading them again by ctid (a
/// TID scan of the parent per edge, every call)? For a single-column key of one type, from a
/// plain table outside any cycle (its rows are found by exactly one statement, before any
/// statement of its children runs), into a child that is collected (not a join leaf).
pub fn carries_keys(cat: &Catalog, g: &FamilyGraph, edge: &FamilyEdge) -> bool {
    hands_keys(cat, g, edge) && !is_join_leaf(cat, g, edge.child)
}

/// Runs of consecutive integer keys: the first and the last value of each, in order.
#[derive(Debug, Default, PartialEq)]
pub struct KeyRuns {
    pub first: Vec<i64>,
    pub last: Vec<i64>,
    /// How many distinct keys the runs hold.
    pub keys: usize,
}

impl KeyRuns {
    pub fn of(mut keys: Vec<i64>) -> KeyRuns {
        keys.sort_unstable();
        keys.dedup();
        let mut runs = KeyRuns {
            keys: keys.len(),
            ..KeyRuns::default()
        };
        for k in keys {
            match runs.last.last_mut() {
                Some(last) if last.checked_add(1) == Some(k) => *last = k,
                _ => {
                    runs.first.push(k);
                    runs.last.push(k);
                }
            }
        }
        runs
    }
}

/// May a count read `edge`'s child by runs of consecutive parent keys (`Slot::KeyRuns`), one
/// range scan of its index per run, instead of `= ANY` over the keys (PostgreSQL 15 and 16
/// descend the index once per key)? When the parent hands its keys on (`hands_keys`), the key is
/// one integer column of the same type on both sides, compared with PostgreSQL's own `=`: the
/// child rows whose value lies in `[first, last]` of a run are then exactly those equal to one of
/// its keys.
pub fn key_runs_edge(cat: &Catalog, g: &FamilyGraph, edge: &FamilyEdge) -> bool {
    const INTEGER_TYPES: [u32; 3] = [20, 21, 23]; // int8, int2, int4
    let fk = &cat.foreign_keys[edge.fk];
    let plain_equality = fk
        .eq_ops
        .first()
        .is_none_or(|(schema, name)| schema == "pg_catalog" && name == "=");
    hands_keys(cat, g, edge)
        && plain_equality
        && rel(cat, fk.child)
            .column(fk.child_cols[0])
            .is_some_and(|c| INTEGER_TYPES.contains(&c.type_oid))
}

/// Can the rows of `edge.from` be named by the keys the one statement that found them returned,
/// for the rows of `edge.child` that reference them? A single-column key of one type, from a
/// plain table outside any cycle: its rows are found by exactly one statement, before any
/// statement of its children runs.
pub fn hands_keys(cat: &Catalog, g: &FamilyGraph, edge: &FamilyEdge) -> bool {
    let fk = &cat.foreign_keys[edge.fk];
    edge.disposition == Disposition::Follow
        && edge.from == fk.parent
        && edge.parent_sql_rel == edge.from
        && edge.child != edge.from
        && Ident::of(rel(cat, edge.from)) == Ident::Ctid
        && key_array_fk(cat, fk)
        && !g.in_cycle(cat, edge.from)
}

/// The columns whose values the statement that finds `table`'s rows returns with their ctids,
/// one array each, in attnum order: the parent columns of the edges from it that `hands_keys`
/// (to the children it finds, and to the join leaves the family statement deletes).
pub fn carried_keys<'g>(cat: &Catalog, g: &'g FamilyGraph, table: RelId) -> &'g [i16] {
    let carried = g.planned.carried.get_or_init(|| {
        let mut carried: std::collections::BTreeMap<RelId, Vec<i16>> = Default::default();
        for e in g.followed().filter(|e| hands_keys(cat, g, e)) {
            let cols = carried.entry(e.from).or_default();
            let col = cat.foreign_keys[e.fk].parent_cols[0];
            if !cols.contains(&col) {
                cols.push(col);
                cols.sort_unstable();
            }
        }
        carried
    });
    carried.get(&table).map(Vec::as_slice).unwrap_or(&[])
}

/// The root rows: the keys slot, unless the filter is a predicate.
pub fn root_filter(
    cat: &Catalog,
    root: RelId,
    filter: &RootFilter,
    alias: &str,
    params: &mut Params,
) -> String {
    let r = rel(cat, root);
    let key_cols = r.primary_key_columns().unwrap_or_default();
    let ops = pk_ops(r);
    let mut keys = |cast: &Option<String>| {
        let n = params.slot(Slot::Keys);
        match cast {
            Some(t) => format!("CAST(${n} AS {t})"),
            None => format!("${n}"),
        }
    };
    match filter {
        RootFilter::Scalar { cast } => {
            let v = keys(cast);
            format!("{alias}.{} {} {v}", quote_ident(&key_cols[0].name), ops[0])
        }
        RootFilter::Array { cast } => {
            let v = keys(cast);
            format!(
                "{alias}.{} {} ANY ({v})",
                quote_ident(&key_cols[0].name),
                ops[0]
            )
        }
        RootFilter::Json => {
            let defs: Vec<String> = key_cols
                .iter()
                .map(|c| format!("{} {}", quote_ident(&c.name), c.type_name))
                .collect();
            let conds: Vec<String> = key_cols
                .iter()
                .zip(ops.iter())
                .map(|(c, op)| {
                    let n = quote_ident(&c.name);
                    format!("{alias}.{n} {op} k.{n}")
                })
                .collect();
            format!(
                "EXISTS (SELECT 1 FROM pg_catalog.jsonb_to_recordset({}::pg_catalog.jsonb) AS k({}) WHERE {})",
                keys(&None),
                defs.join(", "),
                conds.join(" AND ")
            )
        }
        // Newlines keep a trailing `--` comment from reaching the closing parenthesis.
        RootFilter::Predicate(p) => format!("(\n{p}\n)"),
    }
}

/// How the root rows are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RootRead {
    /// Lock them FOR UPDATE in key order.
    pub lock: bool,
    /// Skip rows other sessions hold locked (jobs leave them for the next run).
    pub skip_locked: bool,
    /// Take at most the limit slot's number of roots (in key order).
    pub limit: bool,
}

/// Select the root rows (and lock them in key order). Returns the row set arrays.
pub fn collect_root(
    cat: &Catalog,
    g: &FamilyGraph,
    filter: &RootFilter,
    read: RootRead,
) -> Statement {
    let root = g.root;
    let r = rel(cat, root);
    let alias = root_alias(r);
    let mut params = Params::default();
    let mut cond = root_filter(cat, root, filter, &alias, &mut params);
    let mut tail = String::new();
    if read.limit {
        let n = params.slot(Slot::Limit);
        tail = format!(" LIMIT ${n}::pg_catalog.int8");
        if !read.lock {
            // a preview of max_roots counts the first roots in key order, as archive takes them
            cond = format!("{cond} ORDER BY {}", key_order(r, &alias));
        }
    }
    let mut locking = String::new();
    if read.lock {
        locking = format!(" ORDER BY {} FOR UPDATE OF {alias}", key_order(r, &alias));
        if read.skip_locked {
            locking.push_str(" SKIP LOCKED");
        }
    }
    // and the values of the carried keys (`carried_keys`), one array each
    let keys = carried_keys(cat, g, root);
    let (mut aggregates, mut columns) = (Ident::of(r).aggregate("s"), Ident::of(r).columns(&alias));
    for (j, c) in r.column_names(keys).iter().enumerate() {
        aggregates.push_str(&format!(", pg_catalog.array_agg(s.k{})", j + 1));
        columns.push_str(&format!(", {alias}.{} AS k{}", quote_ident(c), j + 1));
    }
    params.statement(format!(
        "SELECT {aggregates} FROM (SELECT {columns} FROM {} {alias} WHERE {cond}{locking}{tail}) s",
        r.qualified()
    ))
}

/// Lock rows already found, by key, in key order (a concurrently updated row is locked in its
/// new version).
pub fn lock_in_key_order(cat: &Catalog, table: RelId) -> Statement {
    let r = rel(cat, table);
    let mut params = Params::default();
    let rows = Rows::Family(table);
    let cond = match r.primary_key_columns() {
        // one key column: the keys as one array, read through the key's index in key order (no
        // join, no sort)
        Some(pk) if pk.len() == 1 => {
            let k = quote_ident(&pk[0].name);
            format!(
                "r.{k} {} ANY (ARRAY(SELECT x.{k} FROM {} x WHERE {}))",
                r.pk_eq_operator(0),
                r.qualified(),
                in_set(Ident::of(r), "x", rows, &mut params),
            )
        }
        Some(pk) if !pk.is_empty() => format!(
            "EXISTS (SELECT 1 FROM {} x WHERE {} AND {})",
            r.qualified(),
            in_set(Ident::of(r), "x", rows, &mut params),
            pk_equal(r, "x", "r")
        ),
        _ => in_set(Ident::of(r), "r", rows, &mut params),
    };
    params.statement(collect_sql(r, "r", &cond, true))
}

/// The btree equality operator of each primary-key column, schema-qualified.
fn pk_ops(r: &Relation) -> Vec<String> {
    let n = r.primary_key.as_ref().map(|pk| pk.len()).unwrap_or(0);
    (0..n).map(|i| r.pk_eq_operator(i)).collect()
}

/// `left.k1 = right.k1 AND ...` over the primary key, with the key's own operators.
pub(crate) fn pk_equal(r: &Relation, left: &str, right: &str) -> String {
    let pk = r.primary_key_columns().unwrap_or_default();
    pk.iter()
        .zip(pk_ops(r))
        .map(|(c, op)| {
            let n = quote_ident(&c.name);
            format!("{left}.{n} {op} {right}.{n}")
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// The root is aliased by its own name, so a predicate may say `orders.created_at`.
fn root_alias(r: &Relation) -> String {
    quote_ident(&r.name)
}

/// The row set of the rows of `r` (alias `alias`) that meet `condition`, locked in key order
/// with `lock`. A plain table's is one `ARRAY(...)` of ctids (empty, never NULL, when no row
/// does): an aggregate over a subquery costs more to start and end, on every call, than a small
/// family costs to find.
pub(crate) fn collect_sql(r: &Relation, alias: &str, condition: &str, lock: bool) -> String {
    let locking = if lock {
        format!(" ORDER BY {} FOR UPDATE OF {alias}", key_order(r, alias))
    } else {
        String::new()
    };
    if Ident::of(r) == Ident::Ctid {
        return format!(
            "SELECT ARRAY(SELECT {alias}.ctid FROM {} {alias} WHERE {condition}{locking})",
            r.qualified()
        );
    }
    format!(
        "SELECT {} FROM (SELECT {} FROM {} {alias} WHERE {condition}{locking}) s",
        Ident::of(r).aggregate("s"),
        Ident::of(r).columns(alias),
        r.qualified()
    )
}

/// Rows of `child` that reference, through any of `edges` (each with its index in the graph's
/// edges), the rows of its parent set that the edge has not expanded yet.
pub fn collect_children(
    cat: &Catalog,
    g: &FamilyGraph,
    child: RelId,
    edges: &[(usize, &FamilyEdge)],
    lock: bool,
) -> Statement {
    let r = rel(cat, child);
    let mut params = Params::default();
    let condition = references_any(cat, g, r, edges, &mut params);
    let keys = carried_keys(cat, g, child);
    if keys.is_empty() {
        return params.statement(collect_sql(r, "r", &condition, lock));
    }
    let mut ctes = Vec::new();
    let take = if lock { Take::Lock } else { Take::Find };
    let items = collect_with_keys(r, 1, &condition, take, keys, &mut ctes);
    params.statement(format!(
        "WITH {} SELECT {}",
        ctes.join(", "),
        items.join(", ")
    ))
}

/// `collect_sql` for a plain table that also returns the values of its `keys` columns: the rows
/// are found (and locked) once, in CTE `c{n}` (pushed onto `ctes`), and read from it into the
/// ctid array and one array per key column: the select-list items, in that order.
fn collect_with_keys(
    r: &Relation,
    n: usize,
    condition: &str,
    take: Take,
    keys: &[i16],
    ctes: &mut Vec<String>,
) -> Vec<String> {
    let columns: Vec<String> = r
        .column_names(keys)
        .iter()
        .enumerate()
        .map(|(j, c)| format!(", r.{} AS k{}", quote_ident(c), j + 1))
        .collect();
    let (columns, table) = (columns.concat(), r.qualified());
    ctes.push(match take {
        Take::Find => {
            format!("c{n} AS (SELECT r.ctid AS t{columns} FROM {table} r WHERE {condition})")
        }
        Take::Lock => format!(
            "c{n} AS (SELECT r.ctid AS t{columns} FROM {table} r WHERE {condition} ORDER BY {} FOR UPDATE OF r)",
            key_order(r, "r")
        ),
        Take::Delete => format!(
            "c{n} AS (DELETE FROM {table} r WHERE {condition} RETURNING r.ctid AS t{columns})"
        ),
    });
    let mut items = vec![format!("ARRAY(SELECT c{n}.t FROM c{n})")];
    items.extend((1..=keys.len()).map(|j| format!("ARRAY(SELECT c{n}.k{j} FROM c{n})")));
    items
}

/// The condition on `r` (alias `r`) that its row references, through any of `edges` (each with
/// its index in the graph's edges), a row of the parent set the edge has not expanded yet.
fn references_any(
    cat: &Catalog,
    g: &FamilyGraph,
    r: &Relation,
    edges: &[(usize, &FamilyEdge)],
    params: &mut Params,
) -> String {
    let conds: Vec<String> = edges
        .iter()
        .map(|(i, e)| {
            let from = Rows::Unexpanded {
                edge: *i,
                from: e.from,
            };
            if carries_keys(cat, g, e) {
                by_found_keys(cat, e, from, "r", params)
            } else {
                references(cat, e, from, "r", params)
            }
        })
        .collect();
    // Index conditions joined with OR are read through one BitmapOr, each row once. OR over an
    // EXISTS is planned per row, so such conditions become one set of ctids first.
    let all_indexable = edges
        .iter()
        .all(|(_, e)| references_by_key_array(cat, e, params));
    if conds.len() == 1 {
        conds.into_iter().next().unwrap()
    } else if all_indexable {
        format!("({})", conds.join(" OR "))
    } else if Ident::of(r) == Ident::Ctid {
        union_of_ctids(r, &conds)
    } else {
        let branches: Vec<String> = conds
            .iter()
            .map(|c| {
                format!(
                    "SELECT r.ctid AS t, r.tableoid AS o FROM {} r WHERE {c}",
                    r.qualified()
                )
            })
            .collect();
        format!(
            "EXISTS (SELECT 1 FROM ({}) u WHERE u.t OPERATOR(pg_catalog.=) r.ctid AND u.o OPERATOR(pg_catalog.=) r.tableoid)",
            branches.join(" UNION ALL ")
        )
    }
}

/// The rows of a plain table that meet any of `conds`, as a TID scan of the ctids the branches
/// find: a semi-join on ctid is planned (generically, for any size of key set) as a hash join
/// over a sequential scan of the whole table.
fn union_of_ctids(r: &Relation, conds: &[String]) -> String {
    let branches: Vec<String> = conds
        .iter()
        .map(|c| format!("SELECT r.ctid AS t FROM {} r WHERE {c}", r.qualified()))
        .collect();
    format!(
        "r.ctid OPERATOR(pg_catalog.=) ANY (ARRAY({}))",
        branches.join(" UNION ALL ")
    )
}

/// The table of a component that `collect_tree` can read in one statement: one plain table
/// (no partitions: its rows are ctids alone) whose cycle is its own self-references, each a
/// foreign key from the table to itself.
pub fn tree_table(cat: &Catalog, g: &FamilyGraph, scc: &[RelId]) -> Option<RelId> {
    let [t] = scc else { return None };
    let mut self_edges = g.followed_into(*t).filter(|e| e.from == *t).peekable();
    self_edges.peek()?;
    let plain = Ident::of(rel(cat, *t)) == Ident::Ctid;
    let own = self_edges.all(|e| {
        let fk = &cat.foreign_keys[e.fk];
        e.parent_sql_rel == *t && fk.parent == *t && fk.child == *t
    });
    (plain && own).then_some(*t)
}

/// `collect_tree` runs only from this many start rows (parent rows not yet expanded) at most:
/// it probes the index once per row it finds, which costs more than a statement per level once
/// a level holds more than a few dozen rows (a bulk call), and less for one family's tree.
pub const TREE_START_LIMIT: usize = 16;

/// Without locks, the rows of a `tree_table` that reference the family and, through its
/// self-references, every row below them, in one recursive statement instead of one statement
/// per level. `edges` are all its followed incoming edges (with their indexes); the start rows
/// are found as `collect_children` finds them, and each level by an index probe per row found
/// (LATERAL ... OFFSET 0: planned generically, a join would estimate the recursion far too
/// large and scan the table). UNION stops at rows already found, so a cycle in the data ends.
pub fn collect_tree(
    cat: &Catalog,
    g: &FamilyGraph,
    table: RelId,
    edges: &[(usize, &FamilyEdge)],
) -> Statement {
    let r = rel(cat, table);
    let mut params = Params::default();
    let start = references_any(cat, g, r, edges, &mut params);
    // the referenced columns of the self-references, carried from each level to the next
    let mut keys: Vec<i16> = Vec::new();
    for (_, e) in edges.iter().filter(|(_, e)| e.from == table) {
        for a in &cat.foreign_keys[e.fk].parent_cols {
            if !keys.contains(a) {
                keys.push(*a);
            }
        }
    }
    let key_name = |a: &i16| format!("k{}", keys.iter().position(|k| k == a).unwrap_or(0) + 1);
    let columns: Vec<String> = keys
        .iter()
        .map(|a| {
            format!(
                "r.{} AS {}",
                quote_ident(&r.column_names(&[*a])[0]),
                key_name(a)
            )
        })
        .collect();
    let below: Vec<String> = edges
        .iter()
        .filter(|(_, e)| e.from == table)
        .map(|(_, e)| {
            let fk = &cat.foreign_keys[e.fk];
            let pairs: Vec<String> = fk
                .parent_cols
                .iter()
                .zip(r.column_names(&fk.child_cols))
                .enumerate()
                .map(|(i, (pa, cc))| {
                    format!(
                        "f.{} {} r.{}",
                        key_name(pa),
                        fk.eq_operator(i),
                        quote_ident(&cc)
                    )
                })
                .collect();
            format!("({})", pairs.join(" AND "))
        })
        .collect();
    let select = format!(
        "SELECT r.ctid AS t, {} FROM {} r",
        columns.join(", "),
        r.qualified()
    );
    params.statement(format!(
        "WITH RECURSIVE f AS ({select} WHERE {start} \
         UNION SELECT c.* FROM f CROSS JOIN LATERAL ({select} WHERE {} OFFSET 0) c) \
         SELECT ARRAY(SELECT f.t FROM f)",
        below.join(" OR ")
    ))
}

/// What the statement that finds a table's rows does with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Take {
    /// Reads them (a preview).
    Find,
    /// Locks them, in key order (`FOR UPDATE`); the family statement deletes them later.
    Lock,
    /// Deletes them (`deleted_when_found`), returning the same columns as a lock would.
    Delete,
}

/// One table of `collect_children_batch`: the table, its followed edges (each with its index in
/// the graph's edges), and what the statement does with its rows.
pub type BatchItem<'a> = (RelId, Vec<(usize, &'a FamilyEdge)>, Take);

/// The rows of several tables at once, each as `collect_children` finds (and locks) them, in
/// one statement: per table, in the order given, which is the order their rows are locked in,
/// a `tid[]` column, then one array per column of its `carried_keys`. For tables none of which is
/// a parent of another, all of them `Ident::Ctid` (each `(table, its incoming edges with their
/// indexes, lock)`).
pub fn collect_children_batch(
    cat: &Catalog,
    g: &FamilyGraph,
    tables: &[BatchItem<'_>],
) -> Statement {
    let mut params = Params::default();
    let mut ctes = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (n, (t, edges, take)) in tables.iter().enumerate() {
        let r = rel(cat, *t);
        let condition = references_any(cat, g, r, edges, &mut params);
        let keys = carried_keys(cat, g, *t);
        if keys.is_empty() {
            debug_assert!(
                *take != Take::Delete,
                "`deleted_when_found` tables carry keys"
            );
            let lock = *take != Take::Find;
            columns.push(format!("({})", collect_sql(r, "r", &condition, lock)));
        } else {
            columns.extend(collect_with_keys(
                r,
                n + 1,
                &condition,
                *take,
                keys,
                &mut ctes,
            ));
        }
    }
    let with = if ctes.is_empty() {
        String::new()
    } else {
        format!("WITH {} ", ctes.join(", "))
    };
    params.statement(format!("{with}SELECT {}", columns.join(", ")))
}

/// Row `alias` of the edge's child references the family rows of `edge.from` and, with
/// `exclude_family`, is not itself one of the child's family rows.
pub(crate) fn outside_family(
    cat: &Catalog,
    edge: &FamilyEdge,
    alias: &str,
    exclude_family: bool,
    params: &mut Params,
) -> String {
    let cond = references(cat, edge, Rows::Family(edge.from), alias, params);
    if exclude_family {
        let child = Ident::of(rel(cat, edge.child));
        let own = in_set(child, alias, Rows::Family(edge.child), params);
        format!("{cond} AND NOT {own}")
    } else {
        cond
    }
}

/// Count rows of the edge's child that reference the family, leaving out rows of the child's
/// own family set when `exclude_family`.
pub fn count_referencing(cat: &Catalog, edge: &FamilyEdge, exclude_family: bool) -> Statement {
    let r = rel(cat, edge.child);
    let mut params = Params::default();
    let cond = outside_family(cat, edge, "c", exclude_family, &mut params);
    params.statement(format!(
        "SELECT pg_catalog.count(*) FROM {} c WHERE {cond}",
        r.qualified()
    ))
}

/// Rows that a detach edge changes, locked in key order.
pub fn collect_detached(
    cat: &Catalog,
    edge: &FamilyEdge,
    exclude_family: bool,
    lock: bool,
) -> Statement {
    let r = rel(cat, edge.child);
    let mut params = Params::default();
    let cond = outside_family(cat, edge, "r", exclude_family, &mut params);
    params.statement(collect_sql(r, "r", &cond, lock))
}

/// Set the detached columns to NULL or their default, as PostgreSQL's own action would.
pub fn detach_update(cat: &Catalog, edge: &FamilyEdge, exclude_family: bool) -> Statement {
    let r = rel(cat, edge.child);
    let mut params = Params::default();
    let cond = outside_family(cat, edge, "c", exclude_family, &mut params);
    params.statement(format!(
        "UPDATE {} c SET {} WHERE {cond}",
        r.qualified(),
        detach_sets(cat, edge)
    ))
}

/// `col = NULL, ...` or `col = DEFAULT, ...` for the columns a detach edge changes.
pub(crate) fn detach_sets(cat: &Catalog, edge: &FamilyEdge) -> String {
    let fk = &cat.foreign_keys[edge.fk];
    let value = match edge.disposition {
        Disposition::Detach(crate::graph::DetachKind::SetDefault) => "DEFAULT",
        _ => "NULL",
    };
    rel(cat, edge.child)
        .column_names(fk.detached_cols())
        .iter()
        .map(|n| format!("{} = {value}", quote_ident(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One part of the delete statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeletePart {
    /// Delete the collected rows of a table.
    Collected(RelId),
    /// Delete the rows of a leaf table that reference a collected parent through one edge.
    Joined(FamilyEdge),
    /// `Joined`, the parent's rows named by the keys the statement that found them returned
    /// (`Slot::FoundKeys`, where `hands_keys`); by ctid in the large form (`delete_statement_for`).
    JoinedByKeys(FamilyEdge),
    /// `JoinedByKeys` whose parent's rows an earlier statement of the purge deleted
    /// (`deleted_when_found`): always by the keys that statement returned, in either form (the
    /// large form's statement of its own is planned for them: `spi::query_once`).
    AfterParent(FamilyEdge),
}

impl DeletePart {
    /// The table the part deletes from, and the condition on its rows (alias `d`).
    pub(crate) fn condition(&self, cat: &Catalog, params: &mut Params) -> (RelId, String) {
        match self {
            DeletePart::Collected(t) => {
                let ident = Ident::of(rel(cat, *t));
                (*t, in_set(ident, "d", Rows::Family(*t), params))
            }
            DeletePart::Joined(e) => (
                e.child,
                references(cat, e, Rows::Family(e.from), "d", params),
            ),
            DeletePart::JoinedByKeys(e) if params.joined_references => (
                e.child,
                references(cat, e, Rows::Family(e.from), "d", params),
            ),
            DeletePart::JoinedByKeys(e) | DeletePart::AfterParent(e) => (
                e.child,
                by_found_keys(cat, e, Rows::Family(e.from), "d", params),
            ),
        }
    }

    /// The edge of a part deleted through a join.
    pub fn joined(&self) -> Option<&FamilyEdge> {
        match self {
            DeletePart::Collected(_) => None,
            DeletePart::Joined(e) | DeletePart::JoinedByKeys(e) | DeletePart::AfterParent(e) => {
                Some(e)
            }
        }
    }

    /// The table the part deletes from.
    pub fn table(&self) -> RelId {
        match self {
            DeletePart::Collected(t) => *t,
            DeletePart::Joined(e) | DeletePart::JoinedByKeys(e) | DeletePart::AfterParent(e) => {
                e.child
            }
        }
    }
}

/// Row `alias` of the edge's child references one of `from`, named by the keys the statement
/// that found them returned (`hands_keys`).
fn by_found_keys(
    cat: &Catalog,
    e: &FamilyEdge,
    from: Rows,
    alias: &str,
    params: &mut Params,
) -> String {
    let fk = &cat.foreign_keys[e.fk];
    let n = params.slot(Slot::FoundKeys {
        rows: from,
        column: fk.parent_cols[0],
    });
    format!(
        "{alias}.{} {} ANY (${n})",
        quote_ident(&rel(cat, fk.child).column_names(&fk.child_cols)[0]),
        fk.eq_operator(0)
    )
}

/// All deletes in one statement, so that PostgreSQL's own NO ACTION / RESTRICT checks run once
/// at its end, when the whole family is gone. Returns one `int8[]` of counts, in part order.
pub fn delete_statement(cat: &Catalog, parts: &[DeletePart]) -> Statement {
    delete_statement_keyed(cat, parts, &[])
}

/// `delete_statement` that also returns, after the counts, one array per `(table, column)` of
/// `keys` (in that order) with the values of that column in the rows it deleted from the table
/// (an empty array when it deleted none): the keys the set-based foreign-key check looks for.
/// The columns of one table are aggregated in one pass, so that their arrays line up row by row.
pub fn delete_statement_keyed(
    cat: &Catalog,
    parts: &[DeletePart],
    keys: &[(RelId, i16)],
) -> Statement {
    family_delete(cat, parts, keys, false, false)
}

/// `delete_statement_keyed` in the form for the family's size. Small (no family table has
/// `LARGE_SET` rows): each count and single-column key array is an `ARRAY(...)` of its part's
/// rows. An aggregate per part costs more to start and end than a small family costs to
/// delete (a plan is started and ended whole on every call). With `large`, counts and keys are
/// aggregates (a count holds no rows in memory), and every reference of a joined part is written
/// as a semi-join.
pub fn delete_statement_for(
    cat: &Catalog,
    parts: &[DeletePart],
    keys: &[(RelId, i16)],
    large: bool,
) -> Statement {
    family_delete(cat, parts, keys, large, !large)
}

/// In the large form, a join leaf's rows are deleted by a statement of their own, before the
/// family statement (while the parent rows it names by ctid are still there), and counted by
/// SPI: the rows a data-modifying CTE returns are kept for its readers in a tuplestore, and
/// millions of them spill to disk only to be counted (a 4,950,000-row leaf: 6.6 s as a counted
/// CTE, 4.8 s on its own). The reference is a semi-join on the parent's ctids, as in the large
/// family statement.
pub fn delete_leaf_statement(cat: &Catalog, part: &DeletePart) -> Statement {
    let mut params = Params {
        joined_references: true,
        ..Params::default()
    };
    let (table, cond) = part.condition(cat, &mut params);
    params.statement(format!(
        "DELETE FROM {} d WHERE {cond}",
        rel(cat, table).qualified()
    ))
}

/// The delete statement: references of joined parts as semi-joins (`semi_join`), counts and
/// single-column keys as `ARRAY(...)` (`compact`).
fn family_delete(
    cat: &Catalog,
    parts: &[DeletePart],
    keys: &[(RelId, i16)],
    semi_join: bool,
    compact: bool,
) -> Statement {
    let mut params = Params {
        joined_references: semi_join,
        ..Params::default()
    };
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    let mut returned = ReturnedKeys::new(keys, compact);
    for (i, part) in parts.iter().enumerate() {
        let (table, cond) = part.condition(cat, &mut params);
        let cols = returned.add(cat, i, table);
        let returning = if cols.is_empty() {
            "1".to_string()
        } else {
            cols.iter()
                .map(|c| format!("d.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        ctes.push(format!(
            "d{i} AS (DELETE FROM {} d WHERE {cond} RETURNING {returning})",
            rel(cat, table).qualified()
        ));
        counts.push(part_count(&format!("d{i}"), compact));
    }
    returned.statement(params, &ctes, &counts)
}

/// The number of rows CTE `cte` returned, as `int8`: an aggregate, or (`compact`) the length of
/// an `ARRAY(...)` of them, which starts and ends with less work but holds a row per element.
pub(crate) fn part_count(cte: &str, compact: bool) -> String {
    if compact {
        format!("pg_catalog.cardinality(ARRAY(SELECT 1 FROM {cte}))::pg_catalog.int8")
    } else {
        format!("(SELECT pg_catalog.count(*) FROM {cte})")
    }
}

/// The deleted keys a family statement returns after its counts: for each part that deletes
/// from a table of `keys`, its key columns aggregated in one pass over the part's CTE `d<i>` (so
/// that the arrays of one table line up row by row), selected in the order of `keys`. `compact`:
/// a table's one key column is `ARRAY(SELECT ...)` instead (see `delete_statement_for`).
struct ReturnedKeys<'k> {
    keys: &'k [(RelId, i16)],
    compact: bool,
    sources: Vec<String>,
    exprs: Vec<((RelId, i16), String)>,
}

impl<'k> ReturnedKeys<'k> {
    fn new(keys: &'k [(RelId, i16)], compact: bool) -> Self {
        ReturnedKeys {
            keys,
            compact,
            sources: Vec::new(),
            exprs: Vec::new(),
        }
    }

    /// Part `i` deletes from `table`: aggregate its key columns; their quoted names (none when
    /// no key of `table` is asked for), which the part must return.
    fn add(&mut self, cat: &Catalog, i: usize, table: RelId) -> Vec<String> {
        let own: Vec<(RelId, i16)> = self
            .keys
            .iter()
            .filter(|(t, _)| *t == table)
            .copied()
            .collect();
        if own.is_empty() {
            return Vec::new();
        }
        let attnums: Vec<i16> = own.iter().map(|k| k.1).collect();
        let cols: Vec<String> = rel(cat, table)
            .column_names(&attnums)
            .iter()
            .map(|n| quote_ident(n))
            .collect();
        if self.compact && cols.len() == 1 {
            let expr = format!("ARRAY(SELECT d{i}.{} FROM d{i})", cols[0]);
            self.exprs.push((own[0], expr));
            return cols;
        }
        let aggs: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(j, c)| format!("COALESCE(pg_catalog.array_agg(d{i}.{c}), '{{}}') AS c{j}"))
            .collect();
        self.sources
            .push(format!("(SELECT {} FROM d{i}) k{i}", aggs.join(", ")));
        for (j, k) in own.iter().enumerate() {
            self.exprs.push((*k, format!("k{i}.c{j}")));
        }
        cols
    }

    /// `WITH <ctes> SELECT <counts as int8[]>, <the key arrays in the order of keys>`.
    fn statement(self, params: Params, ctes: &[String], counts: &[String]) -> Statement {
        if ctes.is_empty() {
            return Statement::fixed("SELECT ARRAY[]::pg_catalog.int8[]");
        }
        let mut select_keys = String::new();
        for k in self.keys {
            let (_, expr) = self
                .exprs
                .iter()
                .find(|(kk, _)| kk == k)
                .unwrap_or_else(|| panic!("no part deletes from relation {}", k.0));
            select_keys.push_str(&format!(", {expr}"));
        }
        let from = if self.sources.is_empty() {
            String::new()
        } else {
            format!(" FROM {}", self.sources.join(" CROSS JOIN "))
        };
        params.statement(format!(
            "WITH {} SELECT ARRAY[{}]::pg_catalog.int8[]{select_keys}{from}",
            ctes.join(",\n"),
            counts.join(", ")
        ))
    }
}

/// The rows of several join leaves, each counted through its one edge (rows of the family of its parent), in one statement: one
/// `int8` column per edge, in the order given (one statement instead of one per leaf: a broad
/// family has dozens).
pub fn count_joined_batch(cat: &Catalog, g: &FamilyGraph, edges: &[&FamilyEdge]) -> Statement {
    let leaves: Vec<LeafTally> = edges
        .iter()
        .map(|e| LeafTally {
            leaf: e.child,
            edges: vec![*e],
            any_row: false,
        })
        .collect();
    count_leaves_batch(cat, g, &leaves, false, false)
}

/// One leaf `count_leaves_batch` counts: the edges it is counted through, and whether only
/// "has it any row?" matters (an archive that may move it: 1 or 0, the index probe stops at
/// the first row instead of reading every one).
#[derive(Debug, Clone)]
pub struct LeafTally<'e> {
    pub leaf: RelId,
    pub edges: Vec<&'e FamilyEdge>,
    pub any_row: bool,
}

/// The rows of several leaf tables in one statement, a column each: the rows of a leaf that
/// reference a family row through any of its edges (`OR`: a row reached twice counts once).
/// `found_keys`: an edge from a parent whose rows one statement found with their keys
/// (`hands_keys`) takes those keys (`Slot::FoundKeys`) instead of reading them again by ctid.
/// `runs`: a leaf counted through one edge that `key_runs_edge` allows is counted by the runs
/// of its parent keys instead, one index range scan per run.
pub fn count_leaves_batch(
    cat: &Catalog,
    g: &FamilyGraph,
    leaves: &[LeafTally],
    found_keys: bool,
    runs: bool,
) -> Statement {
    let mut params = Params::default();
    let columns: Vec<String> = leaves
        .iter()
        .map(|tally| {
            if let [e] = tally.edges.as_slice() {
                if runs && found_keys && !tally.any_row && key_runs_edge(cat, g, e) {
                    return count_by_runs(cat, e, &mut params);
                }
            }
            let conds: Vec<String> = tally
                .edges
                .iter()
                .map(|e| {
                    if found_keys && hands_keys(cat, g, e) {
                        by_found_keys(cat, e, Rows::Family(e.from), "c", &mut params)
                    } else {
                        references(cat, e, Rows::Family(e.from), "c", &mut params)
                    }
                })
                .collect();
            let cond = match conds.as_slice() {
                [one] => one.clone(),
                _ => format!("({})", conds.join(" OR ")),
            };
            let table = rel(cat, tally.leaf).qualified();
            if tally.any_row {
                format!(
                    "(SELECT pg_catalog.count(*) FROM (SELECT FROM {table} c WHERE {cond} LIMIT 1) x)"
                )
            } else {
                format!("(SELECT pg_catalog.count(*) FROM {table} c WHERE {cond})")
            }
        })
        .collect();
    params.statement(format!("SELECT {}", columns.join(", ")))
}

/// The rows of `e`'s child whose key lies in one of the runs of its parent's found keys: a
/// nested loop over the runs, each an index range scan (an index-only count where the
/// visibility map allows). Ranges, not a key array: nothing to recheck row by row against a
/// long array, and no plan made for the values.
fn count_by_runs(cat: &Catalog, e: &FamilyEdge, params: &mut Params) -> String {
    let fk = &cat.foreign_keys[e.fk];
    let rows = Rows::Family(e.from);
    let column = fk.parent_cols[0];
    let first = params.slot(Slot::KeyRuns {
        rows,
        column,
        last: false,
    });
    let last = params.slot(Slot::KeyRuns {
        rows,
        column,
        last: true,
    });
    let col = quote_ident(&rel(cat, fk.child).column_names(&fk.child_cols)[0]);
    format!(
        "(SELECT COALESCE(pg_catalog.sum(x.n), 0)::pg_catalog.int8 \
           FROM ROWS FROM (pg_catalog.unnest(${first}::pg_catalog.int8[]), pg_catalog.unnest(${last}::pg_catalog.int8[])) u(lo, hi) \
          CROSS JOIN LATERAL (SELECT pg_catalog.count(*) AS n FROM {} c \
                WHERE c.{col} OPERATOR(pg_catalog.>=) u.lo AND c.{col} OPERATOR(pg_catalog.<=) u.hi) x)",
        rel(cat, fk.child).qualified()
    )
}

/// Fast path for one key: delete the root row directly (a single row needs no lock order, and
/// DELETE re-checks the key on a row updated while it waited).
pub fn delete_root_by_key(cat: &Catalog, root: RelId, filter: &RootFilter) -> Statement {
    let r = rel(cat, root);
    let alias = root_alias(r);
    let mut params = Params::default();
    let cond = root_filter(cat, root, filter, &alias, &mut params);
    params.statement(format!(
        "DELETE FROM {} {alias} WHERE {cond}",
        r.qualified()
    ))
}

/// Per-transaction counters of deleted and updated tuples of `relations` (each summed over its
/// leaf partitions by the caller).
pub fn xact_stats(relations: Vec<RelId>) -> Statement {
    let mut params = Params::default();
    let n = params.slot(Slot::Relations(relations));
    params.statement(format!(
        "SELECT pg_catalog.array_agg(pg_catalog.pg_stat_get_xact_tuples_deleted(u.o) ORDER BY u.n), \
            pg_catalog.array_agg(pg_catalog.pg_stat_get_xact_tuples_updated(u.o) ORDER BY u.n) \
       FROM pg_catalog.unnest(${n}::pg_catalog.oid[]) WITH ORDINALITY AS u(o, n)"
    ))
}

/// How many foreign keys a table has (as the referencing side), anywhere in the database.
fn fk_count(cat: &Catalog, table: RelId) -> usize {
    cat.foreign_keys.iter().filter(|f| f.child == table).count()
}

/// `ancestor` is `table` or one of its partition ancestors. Called for every pair of family
/// tables on every call: a table that is no partition answers without walking (or allocating).
fn in_partition_tree(cat: &Catalog, table: RelId, ancestor: RelId) -> bool {
    table == ancestor
        || cat.relation(table).is_some_and(|r| r.parent.is_some())
            && cat.self_and_ancestors(table).contains(&ancestor)
}

/// A table is deleted through a join, without being collected first, when nothing else needs
/// its rows: not the root, one incoming followed edge that is not a self-reference, no edges out,
/// and no other foreign key at all. Such rows cannot be reached by another operation without
/// first waiting on their one parent's lock, so they need no ordered lock of their own.
pub fn is_join_leaf(cat: &Catalog, g: &FamilyGraph, table: RelId) -> bool {
    g.planned
        .join_leaves
        .get_or_init(|| g.tables().filter(|&t| join_leaf(cat, g, t)).collect())
        .contains(&table)
}

fn join_leaf(cat: &Catalog, g: &FamilyGraph, table: RelId) -> bool {
    if table == g.root || fk_count(cat, table) != 1 {
        return false;
    }
    let incoming: Vec<&FamilyEdge> = g.followed_into(table).collect();
    if incoming.len() != 1 || incoming[0].from == table {
        return false;
    }
    let scc = g.scc_of(table).map(|i| g.sccs[i].len()).unwrap_or(0);
    // A table that is also a partition of (or parent of) another family table shares rows with it.
    // only a partitioned table or a partition can (and the test is for every table, every call)
    let partitioning = cat
        .relation(table)
        .is_some_and(|r| r.is_partitioned() || r.parent.is_some());
    let shares_rows = partitioning
        && g.tables().any(|t| {
            t != table && (in_partition_tree(cat, t, table) || in_partition_tree(cat, table, t))
        });
    scc == 1 && g.edges_from(table).next().is_none() && !shares_rows
}

/// May a purge delete this table's rows in the statement that finds them (with PostgreSQL's RI
/// triggers off for it, where the set-based check applies), instead of locking them there in key
/// order and deleting them in the family statement? Its one foreign key is the followed edge
/// from its one parent (not itself, not a declared relation): like a join leaf's, its rows
/// cannot be reached by another operation without first waiting on that parent's lock, so they
/// need no lock in key order, and the statements of its children still start after its rows are
/// locked (deleted). Nothing reads them again by ctid once deleted: a plain table outside any
/// cycle, every edge from it followed and handing its keys on (`hands_keys`), and every foreign
/// key that references it single-column, on one of those keys (the set-based check probes with
/// them).
pub fn deleted_when_found(cat: &Catalog, g: &FamilyGraph, table: RelId) -> bool {
    g.planned
        .deleted_when_found
        .get_or_init(|| {
            g.tables()
                .filter(|&t| may_delete_when_found(cat, g, t))
                .collect()
        })
        .contains(&table)
}

fn may_delete_when_found(cat: &Catalog, g: &FamilyGraph, table: RelId) -> bool {
    if table == g.root
        || fk_count(cat, table) != 1
        || is_join_leaf(cat, g, table)
        || g.in_cycle(cat, table)
    {
        return false;
    }
    let incoming: Vec<&FamilyEdge> = g.followed_into(table).collect();
    let [parent] = incoming.as_slice() else {
        return false;
    };
    let r = rel(cat, table);
    if parent.from == table
        || cat.foreign_keys[parent.fk].declared
        || r.kind != "r"
        || r.is_partition
        || Ident::of(r) != Ident::Ctid
    {
        return false;
    }
    let mut out = g.edges_from(table).peekable();
    if out.peek().is_none() || !out.all(|e| hands_keys(cat, g, e)) {
        return false;
    }
    let carried = carried_keys(cat, g, table);
    cat.foreign_keys
        .iter()
        .filter(|fk| fk.parent == table)
        .all(|fk| !fk.declared && matches!(fk.parent_cols.as_slice(), [c] if carried.contains(c)))
}

/// Can PostgreSQL's own cascade do the whole delete? Only when every followed edge is
/// `ON DELETE CASCADE`, the family is a tree of tables without cycles or self-references, every
/// table below the root has that one foreign key and no other (so its rows cannot be shared with
/// another family and are locked through their one parent, never in an order that deadlocks),
/// nothing is blocked, detached rows live outside the family in single-FK tables, and every
/// family table's RI triggers (which do the cascading) fire in the origin role, none disabled.
/// (The caller's role is the executor's to check: in the replica role they do not fire.)
pub fn native_cascade_applies(cat: &Catalog, g: &FamilyGraph) -> bool {
    *g.planned
        .native
        .get_or_init(|| native_cascade_possible(cat, g))
}

/// `native_cascade_applies`, worked out (once per graph).
fn native_cascade_possible(cat: &Catalog, g: &FamilyGraph) -> bool {
    use crate::graph::model::FkAction;
    if g.sccs.iter().any(|s| s.len() > 1) || g.tables().any(|t| g.in_cycle(cat, t)) {
        return false;
    }
    if !g.tables().all(|t| rel(cat, t).internal_triggers_on_origin) {
        return false;
    }
    if g.tables()
        .filter(|t| *t != g.root)
        .any(|t| fk_count(cat, t) != 1)
    {
        return false;
    }
    for e in &g.edges {
        let fk = &cat.foreign_keys[e.fk];
        // PostgreSQL cascades nothing through a NOT ENFORCED key
        if !fk.enforced {
            return false;
        }
        match e.disposition {
            Disposition::Follow if fk.action() != FkAction::Cascade => return false,
            Disposition::Follow => {}
            Disposition::Block(_) => return false,
            Disposition::Detach(kind) => {
                if g.contains(e.child) || fk_count(cat, e.child) != 1 {
                    return false;
                }
                let mixed = g.edges.iter().any(|o| {
                    o.child == e.child
                        && matches!(o.disposition, Disposition::Detach(k) if k != kind)
                });
                if mixed {
                    return false;
                }
            }
        }
    }
    g.tables().all(|t| {
        g.followed_into(t).filter(|e| e.from != t).count() <= 1
            // a partition and its ancestor both in the family would share rows
            && !(cat.relation(t).is_some_and(|r| r.is_partitioned())
                && g.tables().any(|o| o != t && in_partition_tree(cat, o, t)))
    })
}
