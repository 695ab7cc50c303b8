//! The set-based foreign-key check: after the family statement deleted the family with
//! PostgreSQL's per-row RI triggers off (see `exec::ri_check`), one statement asks, for every
//! foreign key that references a table it deleted from, "does any row still reference a key it
//! deleted?"; and, when another session may have changed the catalog meanwhile, whether anything
//! the fast path relies on did.

use super::{quote_ident, rel, Params, Slot, Statement};
use crate::graph::model::{Catalog, ForeignKey, RelId};

/// The foreign keys (indexes into `cat.foreign_keys`) that reference one of `deleted`, in
/// catalog order: followed, detached and blocked edges alike, and keys from outside the family.
/// Declared relations are no constraints: PostgreSQL never checks them, so neither does this.
pub fn referencing_fks(cat: &Catalog, deleted: &[RelId]) -> Vec<usize> {
    cat.foreign_keys
        .iter()
        .enumerate()
        .filter(|(_, fk)| !fk.declared && deleted.contains(&fk.parent))
        .map(|(i, _)| i)
        .collect()
}

/// The referenced columns whose deleted values the check needs, `(table, attnum)`, each once,
/// in a deterministic order: the key arrays the family statement returns.
pub fn returned_keys(cat: &Catalog, fks: &[usize]) -> Vec<(RelId, i16)> {
    let mut keys: Vec<(RelId, i16)> = fks
        .iter()
        .flat_map(|&i| {
            let fk = &cat.foreign_keys[i];
            fk.parent_cols.iter().map(move |a| (fk.parent, *a))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The check. It returns no row when all is well; otherwise one row `(n, key)`: foreign key
/// `fks[n - 1]` is violated; `key` is the referenced key as PostgreSQL's message shows it (`1`
/// or `1, 2`). `fks` is not empty.
///
/// It runs as its own statement after the family statement, so that it reads with a fresh
/// snapshot taken after its relation locks (READ COMMITTED), as PostgreSQL's RI check does.
pub fn reference_check(cat: &Catalog, fks: &[usize]) -> Statement {
    let mut params = Params::default();
    let mut branches = Vec::new();
    for (n, &i) in fks.iter().enumerate() {
        let fk = &cat.foreign_keys[i];
        let child = rel(cat, fk.child);
        if let Some(branch) = probe_branch(cat, i, n + 1, &mut params) {
            branches.push(branch);
            continue;
        }
        let k = deleted_key_join(cat, fk, &mut params);
        branches.push(format!(
            "(SELECT {}, {} FROM {} WHERE EXISTS (SELECT 1 FROM {} c WHERE {}) LIMIT 1)",
            n + 1,
            k.key_text,
            k.rows,
            child.qualified(),
            k.matches
        ));
    }
    params.statement(format!(
        "SELECT u.n, u.k FROM ({}) u(n, k) LIMIT 1",
        branches.join(" UNION ALL ")
    ))
}

/// The keys a statement deleted from `fk`'s parent, as rows `k(v0, v1, ...)` to match against the
/// child's rows `c`: what the set-based check and the check of declared relations both join.
pub struct DeletedKeyJoin {
    /// `ROWS FROM (pg_catalog.unnest($n), ...) AS k(v0, ...)`: one `Slot::DeletedKeys` array per
    /// parent column, in the key's order.
    pub rows: String,
    /// `k.v0 = c.col AND ...`, with the constraint's own equality operators (PostgreSQL's check
    /// compares `pk = fk` with conpfeqop).
    pub matches: String,
    /// The key as PostgreSQL's messages show it (`1` or `1, 2`).
    pub key_text: String,
    /// `k.v0, k.v1, ...`, to order by.
    pub columns: String,
}

pub fn deleted_key_join(cat: &Catalog, fk: &ForeignKey, params: &mut Params) -> DeletedKeyJoin {
    let child_names = rel(cat, fk.child).column_names(&fk.child_cols);
    let mut unnests = Vec::new();
    let mut aliases = Vec::new();
    let mut matches = Vec::new();
    for (j, (pc, cc)) in fk.parent_cols.iter().zip(&child_names).enumerate() {
        let slot = params.slot(Slot::DeletedKeys {
            table: fk.parent,
            column: *pc,
        });
        unnests.push(format!("pg_catalog.unnest(${slot})"));
        aliases.push(format!("v{j}"));
        let op = fk.eq_operator(j);
        matches.push(format!("k.v{j} {op} c.{}", quote_ident(cc)));
    }
    let columns: Vec<String> = aliases.iter().map(|v| format!("k.{v}")).collect();
    let texts: Vec<String> = columns
        .iter()
        .map(|c| format!("{c}::pg_catalog.text"))
        .collect();
    let key_text = if texts.len() == 1 {
        texts[0].clone()
    } else {
        format!("pg_catalog.concat_ws(', ', {})", texts.join(", "))
    };
    DeletedKeyJoin {
        rows: format!(
            "ROWS FROM ({}) AS k({})",
            unnests.join(", "),
            aliases.join(", ")
        ),
        matches: matches.join(" AND "),
        key_text,
        columns: columns.join(", "),
    }
}

/// Whether the catalog changed since the call decided on the fast path, read with a fresh
/// snapshot: one row, true when a foreign key was added to or dropped from a deleted table or
/// made deferrable; a user trigger, a rule, a disabled or ALWAYS/REPLICA RI trigger appeared on
/// an `affected` table; or row-level security on an affected or referencing table. It runs
/// only when an invalidation arrived since the catalog was read (`exec::ri_check`).
pub fn catalog_recheck(
    cat: &Catalog,
    fks: &[usize],
    deleted: &[RelId],
    affected: &[RelId],
) -> Statement {
    let mut params = Params::default();
    let mut referencing: Vec<RelId> = fks.iter().map(|&i| cat.foreign_keys[i].child).collect();
    referencing.extend(affected);
    referencing.sort();
    referencing.dedup();
    let d = params.slot(Slot::RelationOids(deleted.to_vec()));
    let e = params.slot(Slot::ConstraintOids(
        fks.iter().map(|&i| cat.foreign_keys[i].oid).collect(),
    ));
    let a = params.slot(Slot::RelationOids(affected.to_vec()));
    let r = params.slot(Slot::RelationOids(referencing));
    params.statement(format!(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c \
                  WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0 \
                    AND c.confrelid OPERATOR(pg_catalog.=) ANY (${d}::pg_catalog.oid[]) \
                    AND (c.oid OPERATOR(pg_catalog.<>) ALL (${e}::pg_catalog.oid[]) OR c.condeferrable)) \
         OR (SELECT pg_catalog.count(*) FROM pg_catalog.pg_constraint c \
              WHERE c.oid OPERATOR(pg_catalog.=) ANY (${e}::pg_catalog.oid[])) \
            OPERATOR(pg_catalog.<>) pg_catalog.cardinality(${e}::pg_catalog.oid[]) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
                     WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY (${a}::pg_catalog.oid[]) \
                       AND (NOT t.tgisinternal OR t.tgenabled OPERATOR(pg_catalog.<>) 'O')) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w \
                     WHERE w.ev_class OPERATOR(pg_catalog.=) ANY (${a}::pg_catalog.oid[])) \
         OR EXISTS (SELECT 1 FROM pg_catalog.pg_class r \
                     WHERE r.oid OPERATOR(pg_catalog.=) ANY (${r}::pg_catalog.oid[]) AND r.relrowsecurity)"
    ))
}

/// Key types whose equal values print alike: PostgreSQL's message shows the deleted key, and
/// the probe form (`probe_branch`) prints the referencing value instead.
const PRINTS_AS_EQUAL: [u32; 5] = [20, 21, 23, 26, 2950]; // int8, int2, int4, oid, uuid

/// The branch of foreign key `i` (number `n`) as one index probe, `c.fk = ANY ($keys)`, for a
/// single-column key between columns of one type in `PRINTS_AS_EQUAL`; None otherwise. It starts
/// and runs with less work than unnesting the keys into a join (no function scan, no join), which
/// a broad family pays once per foreign key on every call.
fn probe_branch(cat: &Catalog, i: usize, n: usize, params: &mut Params) -> Option<String> {
    let fk = &cat.foreign_keys[i];
    let (&[pc], &[cc]) = (fk.parent_cols.as_slice(), fk.child_cols.as_slice()) else {
        return None;
    };
    let child = rel(cat, fk.child);
    let parent_type = rel(cat, fk.parent).column(pc)?.type_oid;
    let child_col = child.column(cc)?;
    if child_col.type_oid != parent_type || !PRINTS_AS_EQUAL.contains(&parent_type) {
        return None;
    }
    let slot = params.slot(Slot::DeletedKeys {
        table: fk.parent,
        column: pc,
    });
    // one type on both sides: the constraint's `pk = fk` operator is symmetric
    let op = fk.eq_operator(0);
    let col = quote_ident(&child_col.name);
    Some(format!(
        "(SELECT {n}, c.{col}::pg_catalog.text FROM {} c WHERE c.{col} {op} ANY (${slot}) LIMIT 1)",
        child.qualified()
    ))
}
