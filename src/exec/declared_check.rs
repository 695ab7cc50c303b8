//! No orphan behind a declared relation, even when the caller cannot see the rows.
//!
//! pg_uproot follows a sync declared relation as the caller, so a child row that row-level
//! security hides from the caller is not collected; and since the relation has no constraint,
//! no RI trigger of PostgreSQL stops the parent's deletion either (for a foreign key, the RI
//! trigger runs as the table's owner and sees the row). For every declared edge (followed,
//! detached or blocked) whose child has row-level security that applies to the caller, the
//! operation reads the keys it is about to delete from the parent (as the caller: the rows are
//! locked), and after the family statement (and so after the detach of a `set null` relation)
//! checks, as the child's owner with row-level security off, that no row still references one of
//! them (`plan::declared_check`). One that does fails the operation with 42501 (as hidden rows behind an FK do) for every action
//! (`cascade`, `set null`, `restrict`): pg_uproot never deletes or changes rows the caller cannot
//! see (for a foreign key, the statistics counters catch PostgreSQL's own action on them), and
//! leaving them would orphan them. The error aborts the statement, so nothing changes.
//!
//! The keys are read from the family's rows rather than returned by the family statement: it
//! returns keys only on the set-based path (`ri_check`), which never applies where a declared
//! child that the family deletes from or detaches has row-level security. A parent whose DELETE
//! policy is narrower than its SELECT policy may keep a family row: its key then counts as
//! deleted, and a hidden row referencing it fails the operation (never the other way round).
//!
//! A caller without SELECT on the child never gets here: finding the family needs SELECT on
//! every table an edge reaches (`check_read_privileges`). Where no row-level security applies
//! (the common case), nothing runs.

use super::{step, Mode, State, Step};
use crate::error::UprootError;
use crate::graph::model::RelId;
use crate::graph::FamilyEdge;
use crate::plan::declared_check;
use crate::spi::{self, run};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::panic::AssertUnwindSafe;

/// The keys the family statement is about to delete, per (parent, column), as `deleted_keys`
/// read them: arrays in SPI's memory, valid while SPI stays connected.
pub(super) struct Keys(Vec<((RelId, i16), (pg_sys::Datum, pg_sys::Oid))>);

/// The declared edges whose child has row-level security that applies to the caller. A purge or
/// an archive only: preview warns instead (`warn_hidden_rows`).
fn checked_edges(st: &State) -> Vec<FamilyEdge> {
    if st.mode == Mode::Preview {
        return Vec::new();
    }
    st.g.edges
        .iter()
        .filter(|e| st.cat.foreign_keys[e.fk].declared && spi::rls_active(e.child))
        .cloned()
        .collect()
}

/// The parent columns of a declared edge, as the check's `DeletedKeys` slots name them.
fn key_columns(st: &State, e: &FamilyEdge) -> Vec<(RelId, i16)> {
    let fk = &st.cat.foreign_keys[e.fk];
    fk.parent_cols.iter().map(|c| (fk.parent, *c)).collect()
}

/// Before the family statement: the keys it will delete from the parents of the checked
/// edges (nothing runs when there are none, or their parents have no rows).
pub(super) fn read_keys(st: &State, client: &mut SpiClient<'_>) -> Result<Keys, UprootError> {
    let mut keys = Keys(Vec::new());
    for e in checked_edges(st) {
        let cols = key_columns(st, &e);
        if st.set(e.from).is_empty() || cols.iter().all(|c| keys.0.iter().any(|k| k.0 == *c)) {
            continue;
        }
        let stmt = declared_check::deleted_keys(st.cat, &e);
        let rows = run(client, &stmt.sql, &st.bind(&stmt));
        let row = rows.first();
        for (j, c) in cols.into_iter().enumerate() {
            // (the statement coalesces each array to '{}')
            let value = row
                .datum(j + 1)
                .ok_or_else(|| UprootError::UnexpectedNull {
                    what: "the keys a declared relation's check looks for".into(),
                })?;
            keys.0.push((c, value));
        }
    }
    Ok(keys)
}

/// After the family statement: fail if a row of a checked edge's child still references a key
/// it deleted. Each check runs as the child's owner with row-level security off.
pub(super) fn check(
    st: &mut State,
    client: &mut SpiClient<'_>,
    keys: Keys,
) -> Result<(), UprootError> {
    // bound as `Slot::DeletedKeys`, like the keys the family statement returns (same values)
    for (c, value) in keys.0 {
        st.deleted_keys.insert(c, value);
    }
    for e in checked_edges(st) {
        if st.set(e.from).is_empty() {
            continue;
        }
        let stmt = declared_check::hidden_references(st.cat, e.fk);
        let args = st.bind(&stmt);
        let fk = &st.cat.foreign_keys[e.fk];
        let (relation, child) = (relation_name(&fk.name), st.name(e.child));
        let client_ptr = client as *mut SpiClient<'_> as usize;
        let (count, key) = PgTryBuilder::new(AssertUnwindSafe(|| {
            crate::privileged::as_table_owner(pg_sys::Oid::from(e.child), || {
                // SAFETY: the client outlives this closure; the pointer only crosses the unwind boundary
                let client = unsafe { &mut *(client_ptr as *mut SpiClient<'_>) };
                let row = run(client, &stmt.sql, &args).first();
                let count =
                    row.value::<i64>(1, "the count of rows still referencing a deleted key");
                count.map(|n| (n, row.get::<String>(2)))
            })
        }))
        // an owner without USAGE on its schema (or SELECT on its table): say so as uproot
        .catch_when(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, |e| {
            let said = match &e {
                pg_sys::panic::CaughtError::PostgresError(r) => r.message().to_string(),
                _ => e.rethrow(),
            };
            crate::report::raise(UprootError::DeclaredCheckDenied {
                relation: relation.clone(),
                child: child.clone(),
                said,
            })
        })
        .execute()?;
        if count == 0 {
            continue;
        }
        let columns = st
            .cat
            .relation(fk.parent)
            .map(|p| p.column_names(&fk.parent_cols).join(", "))
            .unwrap_or_default();
        return Err(UprootError::DeclaredHiddenRows {
            relation,
            parent: st.name(fk.parent),
            child,
            count,
            key: format!("({columns})=({})", key.unwrap_or_default()),
        });
    }
    Ok(())
}

/// A declared relation's own name (the catalog adds ` (declared)`).
fn relation_name(name: &str) -> String {
    name.strip_suffix(" (declared)").unwrap_or(name).to_string()
}

/// What `uproot.explain` shows before the family statement: the statements that read the keys
/// it deletes, marked as running only when row-level security applies.
pub(super) fn key_steps(st: &State) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut read: Vec<(RelId, i16)> = Vec::new();
    for e in checked_edges(st) {
        let cols = key_columns(st, &e);
        if cols.iter().all(|c| read.contains(c)) {
            continue;
        }
        read.extend(cols);
        let fk = &st.cat.foreign_keys[e.fk];
        steps.push(step(
            format!(
                "(only when row-level security on {} applies to the caller) read the keys the family statement deletes from {} (declared relation {})",
                st.name(e.child),
                st.name(fk.parent),
                relation_name(&fk.name)
            ),
            declared_check::deleted_keys(st.cat, &e),
        ));
    }
    steps
}

/// What `uproot.explain` shows after the family statement: the checks, as `check` runs them.
pub(super) fn check_steps(st: &State) -> Vec<Step> {
    checked_edges(st)
        .iter()
        .map(|e| {
            let child = st.name(e.child);
            step(
                format!(
                    "(only when row-level security on {child} applies to the caller) check, as the owner of {child} with row-level security off, that no row of it still references a deleted key (declared relation {})",
                    relation_name(&st.cat.foreign_keys[e.fk].name)
                ),
                declared_check::hidden_references(st.cat, e.fk),
            )
        })
        .collect()
}
