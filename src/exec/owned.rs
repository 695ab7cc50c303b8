//! Owned parents (uproot.owned_parents): the parents that rows of the family referenced through
//! an owned edge, and which go with the family when nothing else references them.
//!
//! A parent is kept alive only by references through owned edges (another release that uses
//! the config); the rest of what references it is its own family, which goes with it.
//!
//! `candidates` runs inside the family operation, once the family's rows are known: it lists the
//! parents the family's rows reference through each owned edge (preview: only those that no
//! row outside what its rounds found so far references through an owned edge; see
//! `Request::taken`). `settle` runs after the family is gone, in the same
//! transaction: it locks the candidates in key order (`FOR UPDATE`), then, with the latest
//! snapshot, keeps those that no row references any more, and purges or archives them as a
//! family of their own, whose own owned parents are settled in turn. A reference inserted
//! concurrently locks its parent `FOR KEY SHARE` (PostgreSQL's FK check, or a declared
//! relation's check trigger): it either committed before the lock was granted, and is seen, so
//! the parent stays; or it waits for this transaction, and then fails with the FK error.

use super::{run_operation, Mode, Outcome, Request, State};
use crate::error::UprootError;
use crate::graph::model::{quote_ident, quote_literal, Catalog, ForeignKey, RelId, Relation};
use crate::graph::{FamilyGraph, Options};
use crate::plan::{Ident, Params, RootFilter, Rows, Slot, Statement, Step};
use crate::spi;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

/// The parents one owned edge reaches from the family's rows.
#[derive(Debug, Clone)]
pub struct OwnedCandidates {
    /// The owned edge: index into `Catalog::foreign_keys` of the catalog it was found in.
    pub via: String,
    pub parent: RelId,
    /// jsonb array of the parents' primary keys, as objects keyed by column name.
    pub keys: String,
}

/// An owned parent operation: the parents of one edge, purged or archived (or previewed) as a
/// family of their own.
pub struct OwnedOutcome {
    pub cat: Rc<Catalog>,
    pub g: Rc<FamilyGraph>,
    pub outcome: Outcome,
    pub via: String,
}

fn rel(cat: &Catalog, oid: RelId) -> &Relation {
    cat.relation(oid)
        .unwrap_or_else(|| panic!("relation {oid} missing from the catalog snapshot"))
}

/// `alias` is one of `rows` (as the planner writes it).
fn in_set(ident: Ident, alias: &str, rows: Rows, params: &mut Params) -> String {
    let t = params.slot(Slot::Tids(rows));
    match ident {
        Ident::Ctid => format!("{alias}.ctid OPERATOR(pg_catalog.=) ANY (${t}::pg_catalog.tid[])"),
        Ident::Pair => {
            let o = params.slot(Slot::Oids(rows));
            format!(
                "EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest(${t}::pg_catalog.tid[]), pg_catalog.unnest(${o}::pg_catalog.oid[])) AS k(t, o) \
                 WHERE k.t OPERATOR(pg_catalog.=) {alias}.ctid AND k.o OPERATOR(pg_catalog.=) {alias}.tableoid)"
            )
        }
    }
}

/// `p.k1 = c.f1 AND ...`: row `c` of `fk`'s child references row `p` of its parent.
fn join(cat: &Catalog, fk: &ForeignKey, p: &str, c: &str) -> String {
    let parent = rel(cat, fk.parent);
    let child = rel(cat, fk.child);
    let pn = parent.column_names(&fk.parent_cols);
    let cn = child.column_names(&fk.child_cols);
    pn.iter()
        .zip(&cn)
        .enumerate()
        .map(|(i, (a, b))| {
            format!(
                "{p}.{} {} {c}.{}",
                quote_ident(a),
                fk.eq_operator(i),
                quote_ident(b)
            )
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `jsonb_build_object('k1', p.k1, ...)` over the primary key.
fn key_object(parent: &Relation, p: &str) -> Option<String> {
    let cols = parent.primary_key_columns().filter(|c| !c.is_empty())?;
    let parts: Vec<String> = cols
        .iter()
        .map(|c| format!("{}, {p}.{}", quote_literal(&c.name), quote_ident(&c.name)))
        .collect();
    Some(format!(
        "pg_catalog.jsonb_build_object({})",
        parts.join(", ")
    ))
}

/// Whether any owned edge starts at a family table (the native cascade path cannot settle it).
pub(super) fn any(cat: &Catalog, g: &FamilyGraph) -> bool {
    cat.foreign_keys
        .iter()
        .any(|fk| fk.owned && g.contains(fk.child))
}

/// How the owned parents of one owned edge from the family are found.
struct Finding<'f> {
    fk: &'f ForeignKey,
    /// Lists the parents rows of `fk.child` reference through `fk` (jsonb text). Preview lists
    /// `[key, referenced columns]` pairs of those outside what its rounds found so far.
    find: Statement,
    /// Preview: for each owned edge into the parent, which of the pairs rows outside what the
    /// rounds found so far reference, run as that table's owner (see `reference_check`).
    checks: Vec<(&'f ForeignKey, Statement)>,
}

/// For each owned edge from a family table that may have rows, how its parents are found.
/// Preview keeps only those no row outside what its rounds found so far references (it cannot
/// delete the family first), checked as purge checks them after the family went.
fn findings<'f>(st: &State<'f>) -> Vec<Finding<'f>> {
    let cat = st.cat;
    let preview = st.mode == Mode::Preview;
    let mut out = Vec::new();
    for fk in &cat.foreign_keys {
        if !fk.owned || !st.g.contains(fk.child) || fk.is_self_reference() {
            continue;
        }
        if !st.may_have_rows(fk.child) || fk.missing_column() {
            continue;
        }
        let parent = rel(cat, fk.parent);
        let child = rel(cat, fk.child);
        let Some(key) = key_object(parent, "p") else {
            continue;
        };
        let mut params = Params::default();
        let member = in_set(Ident::of(child), "c", Rows::Family(fk.child), &mut params);
        let (listed, referenced) = if preview {
            (
                "pg_catalog.jsonb_build_array(s.k, s.r)",
                format!(", {} AS r", referenced_object(cat, fk.parent)),
            )
        } else {
            ("s.k", String::new())
        };
        let mut sql = format!(
            "SELECT pg_catalog.jsonb_agg({listed} ORDER BY s.k)::pg_catalog.text FROM (SELECT DISTINCT {key} AS k{referenced} FROM {} p \
              WHERE EXISTS (SELECT 1 FROM {} c WHERE {member} AND {})",
            parent.qualified(),
            child.qualified(),
            join(cat, fk, "p", "c")
        );
        // parents in the family go with it anyway (purge: settle finds them gone); a preview's
        // sets hold every row its rounds found so far
        if preview && st.may_have_rows(fk.parent) {
            let m = in_set(Ident::of(parent), "p", Rows::Family(fk.parent), &mut params);
            sql.push_str(&format!(" AND NOT {m}"));
        }
        sql.push_str(") s");
        let checks = if preview {
            cat.foreign_keys
                .iter()
                .filter(|o| o.owned && o.parent == fk.parent)
                .map(|o| (o, reference_check(cat, o, st.may_have_rows(o.child))))
                .collect()
        } else {
            Vec::new()
        };
        out.push(Finding {
            fk,
            find: params.statement(sql),
            checks,
        });
    }
    out
}

/// The owned parents the family's rows reference, one entry per owned edge with any.
pub(super) fn candidates(st: &State, client: &mut SpiClient<'_>) -> Vec<OwnedCandidates> {
    let mut out = Vec::new();
    for f in findings(st) {
        let Some(found) = spi::query(false, client, &f.find.sql, &st.bind(&f.find))
            .first()
            .get::<String>(1)
        else {
            continue;
        };
        let keys = if st.mode == Mode::Preview {
            // (the statement builds this array; were it ever unreadable, no parent goes)
            let Ok(pairs) = serde_json::from_str(&found) else {
                continue;
            };
            let free = still_free(pairs, &f.checks, |fk, check, refs| {
                let mut args = vec![DatumWithOid::from(refs)];
                args.extend(check.slots.iter().skip(1).map(|slot| st.value(slot)));
                crate::debug::record(&check.sql);
                crate::privileged::as_table_owner(pg_sys::Oid::from(fk.child), || {
                    spi::query(false, client, &check.sql, &args)
                        .first()
                        .get::<Vec<i64>>(1)
                })
                .unwrap_or_default()
            });
            match free {
                Some(keys) => keys,
                None => continue,
            }
        } else {
            found
        };
        out.push(OwnedCandidates {
            via: f.fk.name.clone(),
            parent: f.fk.parent,
            keys,
        });
    }
    out
}

/// The keys (jsonb text) of the `[key, referenced columns]` pairs that no check finds
/// referenced, or None. `referenced(edge, check, referenced columns as jsonb text)` runs a
/// check: the 1-based positions of the referenced ones.
fn still_free<'f>(
    mut free: Vec<(serde_json::Value, serde_json::Value)>,
    checks: &[(&'f ForeignKey, Statement)],
    mut referenced: impl FnMut(&'f ForeignKey, &Statement, &str) -> Vec<i64>,
) -> Option<String> {
    for (fk, check) in checks {
        if free.is_empty() {
            break;
        }
        let refs = serde_json::Value::Array(free.iter().map(|f| f.1.clone()).collect());
        let taken: HashSet<i64> = referenced(fk, check, &refs.to_string())
            .into_iter()
            .collect();
        let mut position = 0i64;
        free.retain(|_| {
            position += 1;
            !taken.contains(&position)
        });
    }
    (!free.is_empty())
        .then(|| serde_json::Value::Array(free.into_iter().map(|f| f.0).collect()).to_string())
}

/// What explain shows of finding owned parents (with the family, before it goes).
pub(super) fn steps(st: &State) -> Vec<Step> {
    let mut out = Vec::new();
    for f in findings(st) {
        out.push(Step {
            purpose: format!(
                "find the owned parents in {} that rows of {} reference ({})",
                st.name(f.fk.parent),
                st.name(f.fk.child),
                f.fk.name
            ),
            statement: f.find,
        });
        for (o, check) in f.checks {
            out.push(Step {
                purpose: format!(
                    "(only when owned parents are found) keep those in {} that rows of {} outside the family found so far reference ({}; checked as the table's owner)",
                    st.name(o.parent),
                    st.name(o.child),
                    o.name
                ),
                statement: check,
            });
        }
    }
    out
}

/// What explain shows of settling owned parents after a purge or archive of a family of `g`:
/// locking the parents of each owned edge from it, and checking each owned edge into them for
/// references. Each parent that goes is a family of its own, whose statements are those of any
/// family.
pub fn settle_steps(cat: &Catalog, g: &FamilyGraph) -> Vec<Step> {
    let mut parents: Vec<RelId> = Vec::new();
    for fk in &cat.foreign_keys {
        let from_family = fk.owned && g.contains(fk.child) && !fk.is_self_reference();
        if from_family && !fk.missing_column() && !parents.contains(&fk.parent) {
            parents.push(fk.parent);
        }
    }
    let mut out = Vec::new();
    for parent in parents {
        let Some(settle) = settle_statements(cat, parent) else {
            continue;
        };
        let name = rel(cat, parent).display_name();
        out.push(Step {
            purpose: format!("(only when owned parents are found) after the family went, lock the owned parents in {name} in key order"),
            statement: settle.lock,
        });
        for (fk, check) in settle.checks {
            out.push(Step {
                purpose: format!(
                    "(only when owned parents are found) keep those in {name} that rows of {} still reference ({}; checked as the table's owner, latest snapshot); each other goes as a family of its own",
                    rel(cat, fk.child).display_name(),
                    fk.name
                ),
                statement: check,
            });
        }
    }
    out
}

/// `p JOIN jsonb_to_recordset($1) k ON p.k1 = k.k1 ...`: the parent rows the keys name.
fn keyed(parent: &Relation) -> String {
    let cols = parent.primary_key_columns().unwrap_or_default();
    let defs: Vec<String> = cols
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.type_name))
        .collect();
    let on: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let op = parent.pk_eq_operator(i);
            format!("p.{0} {op} k.{0}", quote_ident(&c.name))
        })
        .collect();
    format!(
        "{} p JOIN pg_catalog.jsonb_to_recordset($1::pg_catalog.jsonb) AS k({}) ON {}",
        parent.qualified(),
        defs.join(", "),
        on.join(" AND ")
    )
}

/// How the owned parents of one table are settled.
struct Settle<'c> {
    /// Lock the candidates in key order (as the caller); returns `[key, referenced columns]`
    /// for each parent still there.
    lock: Statement,
    /// For each owned edge into the parent: which of the parents (by their referenced columns,
    /// a jsonb array) a row of the edge's child references, as 1-based positions. Run as the
    /// child's owner (`privileged::as_table_owner`) with the latest snapshot, which sees every
    /// reference committed before the lock was granted, including rows the caller cannot see.
    checks: Vec<(&'c ForeignKey, Statement)>,
}

fn settle_statements(cat: &Catalog, parent_id: RelId) -> Option<Settle<'_>> {
    let parent = rel(cat, parent_id);
    let key = key_object(parent, "p")?;
    let order: Vec<String> = parent
        .primary_key_columns()
        .unwrap_or_default()
        .iter()
        .map(|col| format!("p.{}", quote_ident(&col.name)))
        .collect();
    let edges: Vec<&ForeignKey> = cat
        .foreign_keys
        .iter()
        .filter(|f| f.owned && f.parent == parent_id)
        .collect();
    let referenced_object = referenced_object(cat, parent_id);
    let lock = format!(
        "SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(s.k, s.r))::pg_catalog.text \
           FROM (SELECT {key} AS k, {referenced_object} AS r FROM {} ORDER BY {} FOR UPDATE OF p) s",
        keyed(parent),
        order.join(", ")
    );
    let checks = edges
        .into_iter()
        .map(|fk| (fk, reference_check(cat, fk, false)))
        .collect();
    Some(Settle {
        lock: Statement {
            sql: lock,
            slots: vec![Slot::Named("owned parent keys")],
        },
        checks,
    })
}

/// `jsonb_build_object('c1', p.c1, ...)` over the columns of `parent_id` that owned edges
/// reference, each once: what `reference_check` compares.
fn referenced_object(cat: &Catalog, parent_id: RelId) -> String {
    let parent = rel(cat, parent_id);
    let mut referenced: Vec<&crate::graph::model::Column> = Vec::new();
    for fk in cat
        .foreign_keys
        .iter()
        .filter(|f| f.owned && f.parent == parent_id)
    {
        for a in &fk.parent_cols {
            if let Some(c) = parent.column(*a) {
                if !referenced.iter().any(|r| r.attnum == c.attnum) {
                    referenced.push(c);
                }
            }
        }
    }
    format!(
        "pg_catalog.jsonb_build_object({})",
        referenced
            .iter()
            .map(|c| format!("{}, p.{}", quote_literal(&c.name), quote_ident(&c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Which of the parents `$1` names (a jsonb array of `referenced_object`s) a row of `fk.child`
/// references through `fk`, as 1-based positions; with `outside_found`, rows of its set (what
/// a preview's rounds found so far) do not count. Reads only `fk.child`, and is run as its
/// owner with row-level security off (`privileged::as_table_owner`), as PostgreSQL's RI checks
/// are: a row the caller cannot see still counts.
fn reference_check(cat: &Catalog, fk: &ForeignKey, outside_found: bool) -> Statement {
    let parent = rel(cat, fk.parent);
    let child = rel(cat, fk.child);
    let mut params = Params::default();
    params.slot(Slot::Named("owned parents' referenced columns"));
    let cn = child.column_names(&fk.child_cols);
    let mut on: Vec<String> = fk
        .parent_cols
        .iter()
        .zip(&cn)
        .enumerate()
        .map(|(i, (a, c))| {
            let col = parent.column(*a);
            let name = col.map(|c| c.name.clone()).unwrap_or_default();
            let ty = col.map(|c| c.type_name.clone()).unwrap_or_default();
            format!(
                "CAST(k.v OPERATOR(pg_catalog.->>) {} AS {ty}) {} x.{}",
                quote_literal(&name),
                fk.eq_operator(i),
                quote_ident(c)
            )
        })
        .collect();
    if outside_found {
        let m = in_set(Ident::of(child), "x", Rows::Family(fk.child), &mut params);
        on.push(format!("NOT {m}"));
    }
    params.statement(format!(
        "SELECT pg_catalog.array_agg(k.i) FROM pg_catalog.jsonb_array_elements($1::pg_catalog.jsonb) WITH ORDINALITY AS k(v, i) \
          WHERE EXISTS (SELECT 1 FROM {} x WHERE {})",
        child.qualified(),
        on.join(" AND ")
    ))
}

/// Lock the candidates, then keep those no row references (as jsonb text, None: none).
fn unreferenced(cat: &Catalog, c: &OwnedCandidates) -> Option<String> {
    let settle = settle_statements(cat, c.parent)?;
    Spi::connect_mut(|client| {
        let args = [DatumWithOid::from(c.keys.as_str())];
        crate::debug::record(&settle.lock.sql);
        let locked = spi::run(client, &settle.lock.sql, &args)
            .first()
            .get::<String>(1)?;
        crate::debug::fail_point("owned_locked");
        // (the lock statement builds this array of [key, referenced columns]; were it ever
        // unreadable, the parents stay)
        let locked = serde_json::from_str(&locked).ok()?;
        still_free(locked, &settle.checks, |fk, check, refs| {
            crate::debug::record(&check.sql);
            crate::privileged::as_table_owner(pg_sys::Oid::from(fk.child), || {
                spi::query_latest(client, &check.sql, &[DatumWithOid::from(refs)])
                    .first()
                    .get::<Vec<i64>>(1)
            })
            .unwrap_or_default()
        })
    })
}

/// Purge or archive (`mode`) the owned parents of a family that just went, and theirs in turn.
/// Archive links each owned batch to the batch whose rows owned it (uproot.batch_owned).
pub fn settle(
    opts: &Options,
    mode: Mode,
    owner: (Rc<Catalog>, Rc<FamilyGraph>),
    first: Vec<OwnedCandidates>,
    batch: Option<i64>,
    found: Option<super::Taken>,
    archiver: &dyn super::Archiver,
) -> Result<Vec<OwnedOutcome>, UprootError> {
    // each candidate with the batch and the family (catalog, graph) whose rows owned it
    type Owner = (Rc<Catalog>, Rc<FamilyGraph>);
    let mut queue: VecDeque<(OwnedCandidates, Option<i64>, Owner)> = first
        .into_iter()
        .map(|c| (c, batch, owner.clone()))
        .collect();
    let mut out = Vec::new();
    // A preview takes each parent row once: it deletes nothing, so owned edges that form a cycle
    // would offer the same parents again and again. A purge or archive offers a parent again
    // when rows that went later referenced it too (it may be free now); one that went cannot
    // come back, so that ends.
    let mut taken: HashSet<(RelId, String)> = HashSet::new();
    while let Some((mut c, from_batch, (owner_cat, owner_g))) = queue.pop_front() {
        if opts.stop_at.contains(&c.parent) {
            continue;
        }
        let fresh: Vec<serde_json::Value> = serde_json::from_str::<Vec<serde_json::Value>>(&c.keys)
            .unwrap_or_default()
            .into_iter()
            .filter(|k| mode != Mode::Preview || taken.insert((c.parent, k.to_string())))
            .collect();
        if fresh.is_empty() {
            continue;
        }
        c.keys = serde_json::Value::Array(fresh).to_string();
        // Every edge is followed, as for any family: a purge or archive finds nothing referencing
        // the parents through an owned edge any more (a reference written since would have had
        // to wait for their lock); a preview finds only rows of its earlier rounds there, which
        // it does not count again (`Request::taken`).
        let (cat, g) = crate::catalog::family(pg_sys::Oid::from(c.parent), opts)?;
        let keys = match mode {
            Mode::Preview => Some(c.keys.clone()),
            _ => {
                // `uproot.debug_check_explain`: the owning family's explain shows these statements
                let recording = crate::debug::Recording::start();
                let keys = unreferenced(&cat, &c);
                if let Some(recording) = recording {
                    let shown = settle_steps(&owner_cat, &owner_g);
                    recording.check(shown.iter().map(|s| s.statement.sql.as_str()))?;
                }
                keys
            }
        };
        let Some(keys) = keys else { continue };
        let req = Request {
            filter: RootFilter::Json,
            root_args: vec![DatumWithOid::from(keys.clone())],
            mode,
            max_roots: None,
            skip_locked: false,
            keys_json: (mode == Mode::Archive).then(|| keys.clone()),
            predicate: None,
            taken: found.clone(),
            later_round: true,
        };
        let mut outcome = run_operation(&cat, &g, req, archiver)?;
        if let (Some(from), Some(to)) = (from_batch, outcome.batch) {
            link(from, to);
        }
        for next in std::mem::take(&mut outcome.owned) {
            queue.push_back((next, outcome.batch, (cat.clone(), g.clone())));
        }
        out.push(OwnedOutcome {
            cat,
            g,
            outcome,
            via: c.via,
        });
    }
    Ok(out)
}

fn link(batch: i64, owned_batch: i64) {
    crate::privileged::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO uproot.batch_owned (batch_id, owned_batch) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[DatumWithOid::from(batch), DatumWithOid::from(owned_batch)],
        )
    })
    .expect("uproot: recording an owned batch");
}

/// The batches that hold the owned parents archived with `batch`, not restored yet, newest
/// first (those of a later round own nothing of an earlier one).
pub fn owned_batches(batch: i64) -> Vec<i64> {
    crate::privileged::as_extension_owner(|| {
        Spi::get_one_with_args::<Vec<i64>>(
            "SELECT COALESCE(pg_catalog.array_agg(o.owned_batch ORDER BY o.owned_batch DESC), '{}') \
               FROM uproot.batch_owned o JOIN uproot.batches b ON b.id OPERATOR(pg_catalog.=) o.owned_batch \
              WHERE o.batch_id OPERATOR(pg_catalog.=) $1 AND b.restored_at IS NULL",
            &[DatumWithOid::from(batch)],
        )
    })
    .ok()
    .flatten()
    .unwrap_or_default()
}
