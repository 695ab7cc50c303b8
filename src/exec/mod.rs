//! Runs a family operation through SPI: collect and lock top-down, then change everything in as
//! few statements as possible.
//!
//! Concurrency: every collect statement runs with a fresh snapshot (READ COMMITTED) after the
//! rows it starts from are locked FOR UPDATE. A writer that attached a child to one of those rows
//! held a KEY SHARE lock on it until it committed, so by the time our lock is granted its child
//! is visible to the next statement; a writer that comes later waits for us and then fails with
//! PostgreSQL's own FK error. Under REPEATABLE READ the same conflict is a serialization error.

pub mod predicate;
pub mod roots;
pub mod spi;

use crate::error::UprootError;
use crate::graph::model::{Catalog, RelId};
use crate::graph::{BlockReason, DetachKind, Disposition, FamilyEdge, FamilyGraph};
use crate::plan::{self, DeletePart, Ident, RootFilter};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::BTreeMap;

pub use spi::{plan_cache_clear, plan_cache_len};
use spi::{read_count, read_i64_array, read_row_set, run, Privileges, RowSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preview,
    Purge,
}

/// One line of what an operation did (or, for preview, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    pub relation: RelId,
    pub action: &'static str,
    pub rows: i64,
}

pub const DELETED: &str = "deleted";
pub const BLOCKED: &str = "blocked";

struct State<'a> {
    cat: &'a Catalog,
    g: &'a FamilyGraph,
    mode: Mode,
    sets: BTreeMap<RelId, RowSet>,
    /// How far each followed edge has expanded its parent's set (index into the edge list).
    cursors: BTreeMap<usize, usize>,
    privileges: Privileges,
}

impl<'a> State<'a> {
    fn pair(&self, rel: RelId) -> bool {
        Ident::of(self.cat.relation(rel).expect("family table in catalog")) == Ident::Pair
    }

    fn set(&self, rel: RelId) -> &RowSet {
        static EMPTY: std::sync::OnceLock<RowSet> = std::sync::OnceLock::new();
        self.sets.get(&rel).unwrap_or_else(|| EMPTY.get_or_init(RowSet::default))
    }

    fn name(&self, rel: RelId) -> String {
        self.cat.relation(rel).map(|r| r.display_name()).unwrap_or_else(|| rel.to_string())
    }

    fn require(&mut self, rel: RelId, mode: u32, privilege: &str, why: String) -> Result<(), UprootError> {
        if self.privileges.has(rel, mode) {
            Ok(())
        } else {
            Err(UprootError::PermissionDenied { relation: self.name(rel), privilege: privilege.into(), why })
        }
    }

    /// Lock rows only when purging and the caller may; otherwise read them and let the caller's
    /// missing privilege surface only if there are rows.
    fn may_lock(&mut self, rel: RelId) -> bool {
        self.mode == Mode::Purge && self.privileges.has(rel, pg_sys::ACL_UPDATE)
    }

    fn edge_params(&self, e: &FamilyEdge, from: usize) -> Vec<DatumWithOid<'static>> {
        self.set(e.from).params(from, self.pair(e.from))
    }

    fn family_params(&self, rel: RelId) -> Vec<DatumWithOid<'static>> {
        self.set(rel).params(0, self.pair(rel))
    }
}

/// Preview or purge the family of the rows named by `filter`.
pub fn run_operation(
    cat: &Catalog,
    g: &FamilyGraph,
    filter: &RootFilter,
    root_args: Vec<DatumWithOid<'static>>,
    mode: Mode,
) -> Result<Vec<Touched>, UprootError> {
    Spi::connect_mut(|client| {
        let mut st = State {
            cat,
            g,
            mode,
            sets: BTreeMap::new(),
            cursors: BTreeMap::new(),
            privileges: Privileges::default(),
        };
        check_read_privileges(&mut st)?;
        if mode == Mode::Purge && native_cascade_ok(&mut st, client) {
            return native_cascade(&mut st, client, filter, root_args);
        }
        collect_family(&mut st, client, filter, root_args)?;
        let blocked = check_blocked(&mut st, client)?;
        let detached = collect_detached(&mut st, client)?;
        let mut out = match mode {
            Mode::Preview => preview_counts(&mut st, client, &detached),
            Mode::Purge => apply(&mut st, client, &detached)?,
        };
        out.extend(blocked);
        Ok(out)
    })
}

fn check_read_privileges(st: &mut State) -> Result<(), UprootError> {
    let mut read: Vec<RelId> = st.g.tables().collect();
    read.extend(st.g.edges.iter().map(|e| e.child));
    read.extend(st.g.edges.iter().map(|e| e.parent_sql_rel));
    read.sort();
    read.dedup();
    for rel in read {
        st.require(
            rel,
            pg_sys::ACL_SELECT,
            "SELECT",
            "Finding the family reads every table its foreign keys reach.".into(),
        )?;
    }
    Ok(())
}

/// Collect (and when purging, lock) the family top-down to a fixpoint.
fn collect_family(
    st: &mut State,
    client: &mut SpiClient<'_>,
    filter: &RootFilter,
    root_args: Vec<DatumWithOid<'static>>,
) -> Result<(), UprootError> {
    let root = st.g.root;
    let lock = st.may_lock(root);
    let sql = plan::collect_root(st.cat, root, filter, lock);
    let (tids, oids) = read_row_set(run(client, &sql, &root_args), st.pair(root));
    st.sets.entry(root).or_default().extend(tids, oids);
    check_lockable(st, root)?;

    let edges: Vec<(usize, FamilyEdge)> = st
        .g
        .edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.disposition == Disposition::Follow)
        .map(|(i, e)| (i, e.clone()))
        .collect();
    for scc in st.g.sccs.clone() {
        loop {
            let mut grew = false;
            for &table in &scc {
                if plan::is_join_leaf(st.cat, st.g, table) {
                    continue;
                }
                // each incoming edge with parent rows it has not expanded yet
                let pending: Vec<(usize, FamilyEdge, usize)> = edges
                    .iter()
                    .filter(|(_, e)| e.child == table)
                    .filter_map(|(i, e)| {
                        let done = st.cursors.get(i).copied().unwrap_or(0);
                        (st.set(e.from).len() > done).then(|| (*i, e.clone(), done))
                    })
                    .collect();
                if pending.is_empty() {
                    continue;
                }
                let lock = st.may_lock(table);
                let refs: Vec<&FamilyEdge> = pending.iter().map(|(_, e, _)| e).collect();
                let sql = plan::collect_children(st.cat, table, &refs, lock);
                let mut args = Vec::new();
                for (i, e, done) in &pending {
                    args.extend(st.edge_params(e, *done));
                    st.cursors.insert(*i, st.set(e.from).len());
                }
                let (tids, oids) = read_row_set(run(client, &sql, &args), st.pair(table));
                if st.sets.entry(table).or_default().extend(tids, oids) > 0 {
                    grew = true;
                }
                check_lockable(st, table)?;
            }
            if !grew {
                break;
            }
        }
    }
    Ok(())
}

/// A purge that found rows in a table it could not lock reports the missing privilege.
fn check_lockable(st: &mut State, table: RelId) -> Result<(), UprootError> {
    if st.mode != Mode::Purge || st.set(table).is_empty() {
        return Ok(());
    }
    let n = st.set(table).len();
    st.require(
        table,
        pg_sys::ACL_DELETE,
        "DELETE",
        format!("{n} row(s) of {} belong to the family.", st.name(table)),
    )?;
    st.require(
        table,
        pg_sys::ACL_UPDATE,
        "UPDATE",
        format!(
            "{n} row(s) of {} belong to the family and are locked FOR UPDATE first, which needs UPDATE.",
            st.name(table)
        ),
    )
}

/// Blocked edges (respect_restrict, stop_at): a purge fails if they have rows; preview reports.
fn check_blocked(st: &mut State, client: &mut SpiClient<'_>) -> Result<Vec<Touched>, UprootError> {
    let mut out: BTreeMap<RelId, i64> = BTreeMap::new();
    for e in st.g.edges.clone() {
        let Disposition::Block(reason) = e.disposition else { continue };
        if st.set(e.from).is_empty() {
            continue;
        }
        let exclude = !st.set(e.child).is_empty();
        let sql = plan::count_referencing(st.cat, &e, exclude);
        let mut args = st.edge_params(&e, 0);
        if exclude {
            args.extend(st.family_params(e.child));
        }
        let count = read_count(run(client, &sql, &args));
        if count == 0 {
            continue;
        }
        if st.mode == Mode::Preview {
            *out.entry(e.child).or_default() += count;
            continue;
        }
        let fk = &st.cat.foreign_keys[e.fk];
        return Err(match reason {
            BlockReason::RespectRestrict => UprootError::RestrictBlocked {
                child: st.name(e.child),
                parent: st.name(fk.parent),
                constraint: fk.name.clone(),
                action: fk.action().sql_name().into(),
                count,
            },
            BlockReason::StopAt => UprootError::StopAtBlocked {
                child: st.name(e.child),
                parent: st.name(fk.parent),
                constraint: fk.name.clone(),
                count,
            },
        });
    }
    Ok(out
        .into_iter()
        .map(|(relation, rows)| Touched { relation, action: BLOCKED, rows })
        .collect())
}

/// Rows that detach edges will change, per (table, kind), locked in key order when purging.
struct Detached {
    per_edge: Vec<(FamilyEdge, usize)>,
    per_table: BTreeMap<(RelId, DetachKind), RowSet>,
}

fn collect_detached(st: &mut State, client: &mut SpiClient<'_>) -> Result<Detached, UprootError> {
    let mut d = Detached { per_edge: Vec::new(), per_table: BTreeMap::new() };
    for e in st.g.edges.clone() {
        let Disposition::Detach(kind) = e.disposition else { continue };
        if st.set(e.from).is_empty() {
            continue;
        }
        let exclude = !st.set(e.child).is_empty();
        let lock = st.may_lock(e.child);
        let sql = plan::collect_detached(st.cat, &e, exclude, lock);
        let mut args = st.edge_params(&e, 0);
        if exclude {
            args.extend(st.family_params(e.child));
        }
        let (tids, oids) = read_row_set(run(client, &sql, &args), st.pair(e.child));
        let n = tids.len();
        if n > 0 && st.mode == Mode::Purge {
            st.require(
                e.child,
                pg_sys::ACL_UPDATE,
                "UPDATE",
                format!(
                    "{n} row(s) of {} reference the family through {} and are set to {}.",
                    st.name(e.child),
                    st.cat.foreign_keys[e.fk].name,
                    if kind == DetachKind::SetNull { "NULL" } else { "their default" }
                ),
            )?;
        }
        d.per_table.entry((e.child, kind)).or_default().extend(tids, oids);
        d.per_edge.push((e, n));
    }
    Ok(d)
}

fn join_leaves(st: &State) -> Vec<FamilyEdge> {
    st.g
        .tables()
        .filter(|t| plan::is_join_leaf(st.cat, st.g, *t))
        .filter_map(|t| st.g.followed_into(t).next().cloned())
        .collect()
}

fn preview_counts(st: &mut State, client: &mut SpiClient<'_>, detached: &Detached) -> Vec<Touched> {
    let mut out = Vec::new();
    let leaves = join_leaves(st);
    for t in st.g.tables().collect::<Vec<_>>() {
        let rows = match leaves.iter().find(|e| e.child == t) {
            Some(e) if !st.set(e.from).is_empty() => {
                let args = st.edge_params(e, 0);
                read_count(run(client, &plan::count_joined(st.cat, e), &args))
            }
            Some(_) => 0,
            None => st.set(t).len() as i64,
        };
        out.push(Touched { relation: t, action: DELETED, rows });
    }
    out.extend(detached_rows(st, detached));
    out
}

/// Every (table, detach kind) the graph has, with its row count (zero included).
fn detached_rows(st: &State, detached: &Detached) -> Vec<Touched> {
    let mut kinds: Vec<(RelId, DetachKind)> = st
        .g
        .edges
        .iter()
        .filter_map(|e| match e.disposition {
            Disposition::Detach(k) => Some((e.child, k)),
            _ => None,
        })
        .collect();
    kinds.sort_by_key(|(r, k)| (*r, *k == DetachKind::SetDefault));
    kinds.dedup();
    kinds
        .into_iter()
        .map(|(rel, kind)| Touched {
            relation: rel,
            action: kind.action_word(),
            rows: detached.per_table.get(&(rel, kind)).map(|s| s.len() as i64).unwrap_or(0),
        })
        .collect()
}

/// Statistics counters (deleted, updated) per relation, summed over leaf partitions.
fn stats(st: &State, client: &mut SpiClient<'_>, rels: &[RelId]) -> Vec<(i64, i64)> {
    let mut oids: Vec<pg_sys::Oid> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (i, rel) in rels.iter().enumerate() {
        let r = st.cat.relation(*rel).expect("relation in catalog");
        let leaves: Vec<RelId> = if r.is_partitioned() { r.leaf_partitions.clone() } else { vec![*rel] };
        for l in leaves {
            oids.push(pg_sys::Oid::from(l));
            owner.push(i);
        }
    }
    let table = run(client, &plan::xact_stats(), &[DatumWithOid::from(oids)]);
    let row = table.first();
    let del: Vec<i64> = row.get::<Vec<i64>>(1).ok().flatten().unwrap_or_default();
    let upd: Vec<i64> = row.get::<Vec<i64>>(2).ok().flatten().unwrap_or_default();
    let mut out = vec![(0i64, 0i64); rels.len()];
    for (k, i) in owner.into_iter().enumerate() {
        out[i].0 += del.get(k).copied().unwrap_or(0);
        out[i].1 += upd.get(k).copied().unwrap_or(0);
    }
    out
}

fn apply(st: &mut State, client: &mut SpiClient<'_>, detached: &Detached) -> Result<Vec<Touched>, UprootError> {
    let leaves = join_leaves(st);
    // join leaves the caller cannot delete from are fine only when they have no rows
    for e in &leaves {
        if st.set(e.from).is_empty() || st.privileges.has(e.child, pg_sys::ACL_DELETE) {
            continue;
        }
        let args = st.edge_params(e, 0);
        let n = read_count(run(client, &plan::count_joined(st.cat, e), &args));
        if n > 0 {
            st.require(e.child, pg_sys::ACL_DELETE, "DELETE", format!("{n} row(s) of {} belong to the family.", st.name(e.child)))?;
        }
    }

    // Tables where row-level security may hide rows that PostgreSQL's own FK actions would
    // still change: compare the statistics counters with what we did.
    let mut watched: Vec<RelId> = st.g.tables().collect();
    watched.extend(detached.per_table.keys().map(|(r, _)| *r));
    watched.sort();
    watched.dedup();
    watched.retain(|r| spi::rls_active(*r));
    let before = if watched.is_empty() { Vec::new() } else { stats(st, client, &watched) };

    for (e, n) in &detached.per_edge {
        if *n == 0 {
            continue;
        }
        let exclude = !st.set(e.child).is_empty();
        let sql = plan::detach_update(st.cat, e, exclude);
        let mut args = st.edge_params(e, 0);
        if exclude {
            args.extend(st.family_params(e.child));
        }
        run(client, &sql, &args);
    }

    let mut parts = Vec::new();
    let mut args = Vec::new();
    let mut part_tables = Vec::new();
    for t in st.g.tables().collect::<Vec<_>>() {
        if let Some(e) = leaves.iter().find(|e| e.child == t) {
            if !st.set(e.from).is_empty() && st.privileges.has(t, pg_sys::ACL_DELETE) {
                args.extend(st.edge_params(e, 0));
                parts.push(DeletePart::Joined(e.clone()));
                part_tables.push(t);
            }
        } else if !st.set(t).is_empty() {
            args.extend(st.family_params(t));
            parts.push(DeletePart::Collected(t));
            part_tables.push(t);
        }
    }
    let counts = if parts.is_empty() {
        Vec::new()
    } else {
        read_i64_array(run(client, &plan::delete_statement(st.cat, &parts), &args), 1)
    };
    let deleted: BTreeMap<RelId, i64> = part_tables.iter().copied().zip(counts).collect();

    if !watched.is_empty() {
        let after = stats(st, client, &watched);
        for (i, rel) in watched.iter().enumerate() {
            let ours_deleted = deleted.get(rel).copied().unwrap_or(0);
            let ours_updated: i64 = detached
                .per_table
                .iter()
                .filter(|((r, _), _)| r == rel)
                .map(|(_, s)| s.len() as i64)
                .sum();
            let extra_del = after[i].0 - before[i].0 - ours_deleted;
            let extra_upd = after[i].1 - before[i].1 - ours_updated;
            if extra_del > 0 || extra_upd > 0 {
                return Err(UprootError::HiddenRows { relation: st.name(*rel), count: extra_del.max(extra_upd) });
            }
        }
    }

    let mut out: Vec<Touched> = st
        .g
        .tables()
        .map(|t| Touched { relation: t, action: DELETED, rows: deleted.get(&t).copied().unwrap_or(0) })
        .collect();
    out.extend(detached_rows(st, detached));
    Ok(out)
}

/// PostgreSQL's own cascade can do the whole purge: the plan allows it, and so do the caller's
/// privileges, row-level security and the statistics counters we count with.
fn native_cascade_ok(st: &mut State, client: &mut SpiClient<'_>) -> bool {
    if !plan::native_cascade_applies(st.cat, st.g) {
        return false;
    }
    let mut tables: Vec<RelId> = st.g.tables().collect();
    let detach: Vec<RelId> = st.g.edges.iter().filter(|e| matches!(e.disposition, Disposition::Detach(_))).map(|e| e.child).collect();
    for t in &tables {
        if !st.privileges.has(*t, pg_sys::ACL_DELETE) || !st.privileges.has(*t, pg_sys::ACL_UPDATE) {
            return false;
        }
    }
    for t in &detach {
        if !st.privileges.has(*t, pg_sys::ACL_UPDATE) {
            return false;
        }
    }
    tables.extend(detach);
    if tables.iter().any(|t| spi::rls_active(*t)) {
        return false;
    }
    let track = run(client, "SELECT pg_catalog.current_setting('track_counts')::pg_catalog.bool", &[]);
    track.first().get::<bool>(1).ok().flatten().unwrap_or(false)
}

fn native_cascade(
    st: &mut State,
    client: &mut SpiClient<'_>,
    filter: &RootFilter,
    root_args: Vec<DatumWithOid<'static>>,
) -> Result<Vec<Touched>, UprootError> {
    let tables: Vec<RelId> = st.g.tables().collect();
    let detached: Vec<(RelId, DetachKind)> = {
        let mut v: Vec<(RelId, DetachKind)> = st
            .g
            .edges
            .iter()
            .filter_map(|e| match e.disposition {
                Disposition::Detach(k) => Some((e.child, k)),
                _ => None,
            })
            .collect();
        v.sort_by_key(|(r, _)| *r);
        v.dedup();
        v
    };
    let mut watched = tables.clone();
    watched.extend(detached.iter().map(|(r, _)| *r));
    let before = stats(st, client, &watched);
    let table = run(client, &plan::native_cascade_delete(st.cat, st.g.root, filter), &root_args);
    let root_deleted = table.len() as i64;
    drop(table);
    let after = stats(st, client, &watched);
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let rows = if *t == st.g.root { root_deleted.max(after[i].0 - before[i].0) } else { after[i].0 - before[i].0 };
        out.push(Touched { relation: *t, action: DELETED, rows });
    }
    for (k, (rel, kind)) in detached.iter().enumerate() {
        let i = tables.len() + k;
        out.push(Touched { relation: *rel, action: kind.action_word(), rows: after[i].1 - before[i].1 });
    }
    Ok(out)
}
