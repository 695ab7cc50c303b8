//! Restore: putting an archived batch back.
//!
//! The ledger (uproot.batches, batch_relations, batch_detached) is read and written as the
//! extension's owner, by fixed statements. Every statement on a source or an archive table runs as
//! the caller, so PostgreSQL checks what the caller may do: SELECT and DELETE on the archive
//! tables, SELECT and INSERT on the sources, UPDATE where references are reattached.
//!
//! With `on_conflict => 'skip'`, an archived row whose key exists again stays in the archive, and
//! so does every archived row that references it (transitively, through the foreign keys between
//! the batch's relations): they would otherwise be attached to the new row that reused the key.
//! The batch is then partly restored; restoring it again later puts back what is left.

use super::archive_columns;
use crate::error::UprootError;
use crate::graph::model::{Catalog, RelId};
use crate::plan::archive as aplan;
use crate::plan::{Rows, Slot, Statement, Step};
use crate::privileged::as_extension_owner;
use crate::spi::{
    bind_values, in_subtransaction, read_i64_array, read_positions, read_row_set, run,
    tids_from_datum, Row, RowSet,
};
use pgrx::datum::DatumWithOid;
use pgrx::itemptr::u64_to_item_pointer;
use pgrx::pg_sys::panic::ErrorReportWithLevel;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::{HashMap, HashSet};

/// What restore reports: (relation, action, rows).
pub type RestoreRow = (RelId, RestoreAction, i64);

/// What restore did with rows of a relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreAction {
    Restored,
    /// Left in the archive (`on_conflict => 'skip'`).
    Skipped,
    /// Detached references set back.
    Reattached,
}

impl RestoreAction {
    /// As `uproot.restore` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreAction::Restored => "restored",
            RestoreAction::Skipped => "skipped",
            RestoreAction::Reattached => "reattached",
        }
    }
}

/// One relation of the batch being restored.
struct Part {
    relation: RelId,
    /// `"schema"."name"` of the archive table, quoted; empty when it no longer exists.
    archive: String,
    archive_oid: u32,
    /// The archive table's columns.
    columns: Vec<String>,
    /// Archived rows that stay in the archive, by position in the archive table.
    staying: RowSet,
    /// How many of them stay because their key exists again (the others reference those).
    conflicts: i64,
}

/// A reference archive detached (a row of uproot.batch_detached), as restore works through it.
struct Detached {
    /// Where the ledger row is, to update or delete it at the end.
    ledger_ctid: u64,
    relation: RelId,
    constraint: String,
    row_key: Option<String>,
    old_values: Option<String>,
    new_values: Option<String>,
    /// Where the detached row is: (tableoid, ctid).
    at: (u32, u64),
    /// Its parent stays archived: it is kept for a later restore.
    waits: bool,
}

/// Put a batch (or what is left of a partly restored one) back. With
/// `uproot.debug_check_explain`, every statement it bound must be one that explain shows for the
/// batch, given which rows stayed.
pub fn restore(
    client: &mut SpiClient<'_>,
    batch: i64,
    skip_conflicts: bool,
) -> Result<Vec<RestoreRow>, UprootError> {
    let recording = crate::debug::Recording::start();
    let caller = caller_name();
    let (root, mut parts) = as_extension_owner(|| read_ledger(client, batch, true))?;
    let cat = batch_catalog(root, &parts)?;
    check_privileges(client, &parts, batch)?;
    find_conflicts(client, &cat, &mut parts, batch, skip_conflicts)?;
    let edges = archived_edges(&cat, &parts);
    if parts.iter().any(|p| !p.staying.is_empty()) {
        stay_with_parents(client, &cat, &mut parts, &edges, batch);
    }

    let restored = put_back(client, &cat, &parts, batch)?;
    let mut out: Vec<RestoreRow> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        out.push((
            p.relation,
            RestoreAction::Restored,
            restored.get(i).copied().unwrap_or(0),
        ));
        if !p.staying.is_empty() {
            out.push((p.relation, RestoreAction::Skipped, p.staying.len() as i64));
        }
    }

    let mut detached = as_extension_owner(|| read_detached(client, batch))?;
    let groups = detached_groups(&detached);
    out.extend(reattach(client, &cat, &parts, &mut detached, batch));

    let staying: i64 = parts.iter().map(|p| p.staying.len() as i64).sum();
    as_extension_owner(|| record(client, batch, &caller, staying > 0, &detached));
    if staying > 0 {
        notice_partly_restored(&cat, batch, &parts, &detached);
    }
    if let Some(recording) = recording {
        let steps = restore_steps(&cat, &parts, &groups)?;
        recording.check(steps.iter().map(|s| s.statement.sql.as_str()))?;
    }
    Ok(out)
}

/// What `uproot.explain(operation => 'restore')` shows for a batch: its root, and the statements
/// a restore runs on the sources and archive tables, read from the ledger without locking or
/// changing anything.
pub fn explain(client: &mut SpiClient<'_>, batch: i64) -> Result<(RelId, Vec<Step>), UprootError> {
    let (root, parts) = as_extension_owner(|| read_ledger(client, batch, false))?;
    let cat = batch_catalog(root, &parts)?;
    let detached = as_extension_owner(|| read_detached(client, batch))?;
    Ok((
        root,
        restore_steps(&cat, &parts, &detached_groups(&detached))?,
    ))
}

/// Archived rows whose key exists again: an error, or (`skip_conflicts`) they stay.
fn find_conflicts(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &mut [Part],
    batch: i64,
    skip_conflicts: bool,
) -> Result<(), UprootError> {
    for part in parts.iter_mut() {
        let Some(stmt) = conflict_statement(cat, part, batch)? else {
            continue;
        };
        let t = run(client, &stmt.sql, &bind(&stmt, batch, &[]));
        let row = t.first();
        let count = row.value::<i64>(1, "a count")?;
        if count == 0 {
            continue;
        }
        let r = part_relation(cat, part)?;
        if !skip_conflicts {
            return Err(UprootError::RestoreConflict {
                id: batch,
                relation: r.display_name(),
                key: row.value::<String>(2, "the first conflicting key")?,
                count,
            });
        }
        let (tids, oids) = positions(&row, 3, 4);
        part.staying.extend(tids, Some(oids));
        part.conflicts = count;
    }
    Ok(())
}

/// A catalog that holds the batch's root and every table it archived: one whose foreign key to
/// the family was dropped since is no longer in the root's closure, but is restored all the same.
fn batch_catalog(
    root: RelId,
    parts: &[Part],
) -> Result<std::rc::Rc<crate::graph::model::Catalog>, UprootError> {
    let tables: Vec<RelId> = std::iter::once(root)
        .chain(parts.iter().map(|p| p.relation))
        .collect();
    crate::catalog::get_covering(&tables)
}

fn part_relation<'c>(
    cat: &'c Catalog,
    part: &Part,
) -> Result<&'c crate::graph::model::Relation, UprootError> {
    cat.relation(part.relation)
        .ok_or(UprootError::UnknownRelation { oid: part.relation })
}

/// The statement that finds archived rows of `part` whose key exists again (none for a table
/// without a primary key). An archive table dropped since is an error.
fn conflict_statement(
    cat: &Catalog,
    part: &Part,
    batch: i64,
) -> Result<Option<Statement>, UprootError> {
    let r = part_relation(cat, part)?;
    if part.archive.is_empty() {
        return Err(UprootError::BatchArchiveMissing {
            id: batch,
            relation: r.display_name(),
        });
    }
    Ok(aplan::restore_conflict(r, &part.archive))
}

/// The statements a restore of `parts` runs, in order, built by the same calls: conflicts, rows
/// that stay with them, the move back, the search for a missing parent after a failed move, and
/// the reattached references (`groups`, in the order `reattach` takes them).
fn restore_steps(
    cat: &Catalog,
    parts: &[Part],
    groups: &[(RelId, String)],
) -> Result<Vec<Step>, UprootError> {
    let name = |r: RelId| {
        cat.relation(r)
            .map(|r| r.display_name())
            .unwrap_or_else(|| r.to_string())
    };
    let step = |purpose: String, statement: Statement| Step { purpose, statement };
    let mut steps = Vec::new();
    for p in parts {
        if let Some(stmt) = conflict_statement(cat, p, 0)? {
            steps.push(step(
                format!(
                    "find archived rows of {} whose key exists again",
                    name(p.relation)
                ),
                stmt,
            ));
        }
    }
    for (fk, ci, pi) in archived_edges(cat, parts) {
        steps.push(step(
            format!("(only when rows stay: on_conflict => 'skip') keep archived the rows of {} that reference staying rows of {} ({}), repeated until no new rows", name(parts[ci].relation), name(parts[pi].relation), cat.foreign_keys[fk].name),
            dependents_statement(cat, parts, fk, ci, pi),
        ));
    }
    steps.push(step(
        "move the batch's rows back into their tables in one statement".into(),
        aplan::restore_statement(cat, &restore_parts(cat, parts)?),
    ));
    for (fk, c, stmt) in missing_parent_statements(cat, parts) {
        steps.push(step(
            format!("(only when the move fails on a foreign key) find archived rows of {} whose parent is missing ({})", name(parts[c].relation), cat.foreign_keys[fk].name),
            stmt,
        ));
    }
    for (child, fk) in reattach_order(cat, groups) {
        steps.push(step(
            format!(
                "set back the references of {} that archive detached ({})",
                name(child),
                cat.foreign_keys[fk].name
            ),
            aplan::reattach(cat, fk, &reattach_parents(cat, parts, fk)),
        ));
    }
    Ok(steps)
}

/// Restore runs as the caller: INSERT (and SELECT, for the conflict check) on every source,
/// SELECT and DELETE on the archive tables, UPDATE where references are reattached. The
/// archive tables' grants are brought in line with their sources first (whoever may DELETE
/// from a source may restore from its archive), then everything missing is reported at once.
fn check_privileges(
    client: &mut SpiClient<'_>,
    parts: &[Part],
    batch: i64,
) -> Result<(), UprootError> {
    for p in parts.iter().filter(|p| p.archive_oid != 0) {
        super::sync_access(client, p.relation, p.archive_oid, &p.archive);
    }
    let detached: Vec<pg_sys::Oid> = as_extension_owner(|| {
        run(
            client,
            "SELECT pg_catalog.array_agg(DISTINCT bd.relation::pg_catalog.oid) FROM uproot.batch_detached bd \
              WHERE bd.batch_id OPERATOR(pg_catalog.=) $1 AND bd.relation IS NOT NULL",
            &[DatumWithOid::from(batch)],
        )
        .first()
        .get::<Vec<pg_sys::Oid>>(1)
        .unwrap_or_default()
    });
    let mut rels: Vec<pg_sys::Oid> = Vec::new();
    let mut privs: Vec<String> = Vec::new();
    for p in parts {
        for privilege in ["SELECT", "INSERT", "DELETE"] {
            rels.push(pg_sys::Oid::from(p.relation));
            privs.push(privilege.into());
        }
    }
    for d in detached {
        rels.push(d);
        privs.push("UPDATE".into());
    }
    let missing: Vec<String> = run(
        client,
        "SELECT pg_catalog.format('GRANT %s ON TABLE %s TO %s;', \
                    pg_catalog.string_agg(u.privilege, ', ' ORDER BY pg_catalog.array_position(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'], u.privilege)), \
                    uproot_internal.quoted_name(u.rel), pg_catalog.quote_ident(CURRENT_USER::pg_catalog.text)) \
           FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.text[])) AS u(rel, privilege) \
          WHERE NOT pg_catalog.has_table_privilege(u.rel, u.privilege) \
          GROUP BY u.rel ORDER BY pg_catalog.min(pg_catalog.array_position($1::pg_catalog.oid[], u.rel))",
        &[DatumWithOid::from(rels), DatumWithOid::from(privs)],
    )
    .filter_map(|row| row.get::<String>(1))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    // the message names the first table and what it lacks; DETAIL lists every GRANT
    let first = &missing[0];
    let privilege = first
        .strip_prefix("GRANT ")
        .and_then(|s| s.split(" ON TABLE ").next())
        .unwrap_or_default()
        .to_string();
    let relation = first
        .split(" ON TABLE ")
        .nth(1)
        .and_then(|s| s.rsplit_once(" TO "))
        .map(|(r, _)| r.to_string())
        .unwrap_or_default();
    Err(UprootError::PermissionDenied {
        relation,
        privilege,
        why: "Restore puts rows back into their tables (INSERT, and SELECT to check for keys that exist again), takes them out of the archive tables (whose grants follow DELETE on the source), and reattaches references (UPDATE).".into(),
        grants: missing,
    })
}

/// The caller's role name (for restored_by: inside `as_extension_owner`, CURRENT_USER is the owner).
fn caller_name() -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(crate::privileged::current_user(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The batch's root and relations (restore order), with `lock` locked against a concurrent
/// restore or drop.
/// Runs as the extension's owner.
fn read_ledger(
    client: &mut SpiClient<'_>,
    batch: i64,
    lock: bool,
) -> Result<(u32, Vec<Part>), UprootError> {
    let sql = if lock {
        "SELECT restored_at::pg_catalog.text, root::pg_catalog.oid FROM uproot.batches \
          WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE"
    } else {
        "SELECT restored_at::pg_catalog.text, root::pg_catalog.oid FROM uproot.batches \
          WHERE id OPERATOR(pg_catalog.=) $1"
    };
    let t = run(client, sql, &[DatumWithOid::from(batch)]);
    if t.is_empty() {
        return Err(UprootError::UnknownBatch { id: batch });
    }
    let row = t.first();
    if let Some(at) = row.get::<String>(1) {
        return Err(UprootError::BatchRestored { id: batch, at });
    }
    // a batch whose root was dropped cannot be restored: its root is then NULL
    let root = row.get::<pg_sys::Oid>(2).map(|o| o.to_u32()).unwrap_or(0);
    let rels = ledger_relations(client, batch)?;
    // a source dropped since (the records keep its name): its rows have nowhere to go
    if let Some((_, _, _, name, archive)) = rels.iter().find(|r| r.0 == 0) {
        return Err(UprootError::BatchSourceDropped {
            id: batch,
            relation: name.clone(),
            archive: archive.clone(),
        });
    }
    let parts = rels
        .into_iter()
        .map(|(relation, archive_oid, archive, _, _)| {
            let columns = if archive_oid == 0 {
                Vec::new()
            } else {
                archive_columns(client, archive_oid)?
                    .into_iter()
                    .map(|c| c.0)
                    .collect()
            };
            Ok(Part {
                relation,
                archive_oid,
                columns,
                archive,
                staying: RowSet::default(),
                conflicts: 0,
            })
        })
        .collect::<Result<_, UprootError>>()?;
    Ok((root, parts))
}

/// One relation of a batch in the ledger: source, archive table, its quoted name (empty once
/// dropped), and the source's and archive table's names recorded when the batch was archived.
type LedgerRelation = (u32, u32, String, String, String);

/// The batch's relations in restore order. Runs as the extension's owner.
fn ledger_relations(
    client: &mut SpiClient<'_>,
    batch: i64,
) -> Result<Vec<LedgerRelation>, UprootError> {
    run(
        client,
        "SELECT br.relation::pg_catalog.oid, c.oid, \
                pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname), \
                br.relation_name, br.archive_name \
           FROM uproot.batch_relations br \
           LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) br.archive \
           LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE br.batch_id OPERATOR(pg_catalog.=) $1 ORDER BY br.position",
        &[DatumWithOid::from(batch)],
    )
    .map(|row| {
        let oid = |i| {
            row.get::<pg_sys::Oid>(i)
                .map(|o| o.to_u32())
                .unwrap_or(0)
        };
        // the source and the archive table are NULL once dropped
        Ok((
            oid(1),
            oid(2),
            row.get::<String>(3).unwrap_or_default(),
            row.value::<String>(4, "a batch relation's name")?,
            row.value::<String>(5, "a batch relation's archive name")?,
        ))
    })
    .collect()
}

/// Row positions from a `tid[]` and an `oid[]` column, as a row set takes them.
fn positions(row: &Row, tids: usize, oids: usize) -> (Vec<u64>, Vec<u32>) {
    let (o, t): (Vec<u32>, Vec<u64>) = read_positions(row, tids, oids).into_iter().unzip();
    (t, o)
}

/// Do `a` and `b` hold rows of one table (the same relation, or a partition and its ancestor)?
fn related(cat: &Catalog, a: RelId, b: RelId) -> bool {
    cat.self_and_ancestors(a).contains(&b) || cat.self_and_ancestors(b).contains(&a)
}

/// Does the archive table of `part` have the foreign key's columns of side `rel`?
fn archive_has(cat: &Catalog, rel: RelId, cols: &[i16], part: &Part) -> bool {
    cat.relation(rel)
        .map(|r| r.column_names(cols))
        .is_some_and(|names| names.iter().all(|n| part.columns.contains(n)))
}

/// Are the foreign key's columns in the child's and the parent's archive tables?
fn has_fk_columns(cat: &Catalog, fk: usize, child: &Part, parent: &Part) -> bool {
    let f = &cat.foreign_keys[fk];
    archive_has(cat, f.child, &f.child_cols, child)
        && archive_has(cat, f.parent, &f.parent_cols, parent)
}

/// The foreign keys between relations of the batch, as (fk, child part, parent part).
fn archived_edges(cat: &Catalog, parts: &[Part]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for (fk, f) in cat.foreign_keys.iter().enumerate() {
        for (ci, c) in parts.iter().enumerate() {
            if !cat.self_and_ancestors(c.relation).contains(&f.child) {
                continue;
            }
            for (pi, p) in parts.iter().enumerate() {
                if related(cat, p.relation, f.parent) && has_fk_columns(cat, fk, c, p) {
                    out.push((fk, ci, pi));
                }
            }
        }
    }
    out
}

/// Rows that reference a staying row stay too, to a fixpoint (cycles included).
fn stay_with_parents(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &mut [Part],
    edges: &[(usize, usize, usize)],
    batch: i64,
) {
    loop {
        let mut grew = false;
        for &(fk, ci, pi) in edges {
            if parts[pi].staying.is_empty() {
                continue;
            }
            let stmt = dependents_statement(cat, parts, fk, ci, pi);
            let args = bind(&stmt, batch, parts);
            let (tids, oids) = read_row_set(run(client, &stmt.sql, &args), true);
            if parts[ci].staying.extend(tids, oids) > 0 {
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
}

/// The statement that finds the archived rows of part `ci` referencing (through `fk`) staying
/// rows of part `pi`.
fn dependents_statement(
    cat: &Catalog,
    parts: &[Part],
    fk: usize,
    ci: usize,
    pi: usize,
) -> Statement {
    let (c, p) = (&parts[ci], &parts[pi]);
    aplan::restore_dependents(cat, fk, (c.relation, &c.archive), (p.relation, &p.archive))
}

/// What the move back does with each part: its columns, and whether rows stay behind.
fn restore_parts(cat: &Catalog, parts: &[Part]) -> Result<Vec<aplan::RestorePart>, UprootError> {
    parts
        .iter()
        .map(|p| {
            let r = part_relation(cat, p)?;
            Ok(aplan::RestorePart {
                source: p.relation,
                archive: p.archive.clone(),
                columns: aplan::restorable_columns(r, &p.columns),
                keeps_rows: !p.staying.is_empty(),
            })
        })
        .collect()
}

/// Move the rows back in one statement. A foreign key that fails names the row it missed.
fn put_back(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &[Part],
    batch: i64,
) -> Result<Vec<i64>, UprootError> {
    let plan = restore_parts(cat, parts)?;
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = aplan::restore_statement(cat, &plan);
    let (sql, args) = (&stmt.sql, bind(&stmt, batch, parts));
    let client_ptr = client as *mut SpiClient<'_> as usize;
    let moved = in_subtransaction(
        |e| e.sql_error_code() == PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
        || {
            // SAFETY: the client outlives this closure; the pointer only crosses the unwind boundary
            let client = unsafe { &mut *(client_ptr as *mut SpiClient<'_>) };
            read_i64_array(run(client, sql, &args), 1)
        },
    );
    moved.map_err(|said| missing_parent(client, cat, parts, batch, &said))
}

/// After a foreign-key failure (rolled back): find an archived row whose parent is neither live
/// nor in the batch, and say which.
fn missing_parent(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &[Part],
    batch: i64,
    said: &ErrorReportWithLevel,
) -> UprootError {
    let name = |r: RelId| {
        cat.relation(r)
            .map(|r| r.display_name())
            .unwrap_or_else(|| r.to_string())
    };
    for (fk, ci, stmt) in missing_parent_statements(cat, parts) {
        let f = &cat.foreign_keys[fk];
        let t = run(client, &stmt.sql, &bind(&stmt, batch, parts));
        let row = t.first();
        let count = match row.value::<i64>(1, "a count") {
            Ok(n) => n,
            Err(e) => return e,
        };
        if count > 0 {
            return UprootError::RestoreMissingParent {
                id: batch,
                relation: name(parts[ci].relation),
                parent: name(f.parent),
                constraint: f.name.clone(),
                key: match row.value::<String>(2, "the first key without its parent") {
                    Ok(k) => k,
                    Err(e) => return e,
                },
                count,
            };
        }
    }
    UprootError::RestoreReference {
        id: batch,
        said: match said.detail() {
            Some(d) => format!("{} ({d})", said.message()),
            None => said.message().to_string(),
        },
    }
}

/// The statements that look for an archived row whose parent is missing, per (foreign key, part
/// of the child): the parent is neither live nor among the batch's rows that move back.
fn missing_parent_statements(cat: &Catalog, parts: &[Part]) -> Vec<(usize, usize, Statement)> {
    let mut out = Vec::new();
    for (ci, c) in parts.iter().enumerate() {
        for (fk, f) in cat.foreign_keys.iter().enumerate() {
            if !cat.self_and_ancestors(c.relation).contains(&f.child)
                || !archive_has(cat, f.child, &f.child_cols, c)
            {
                continue;
            }
            let parent_archives: Vec<String> = parts
                .iter()
                .filter(|p| related(cat, p.relation, f.parent))
                .filter(|p| archive_has(cat, f.parent, &f.parent_cols, p))
                .map(|p| p.archive.clone())
                .collect();
            let keeps = !c.staying.is_empty();
            let stmt =
                aplan::missing_parent(cat, fk, (c.relation, &c.archive), &parent_archives, keeps);
            out.push((fk, ci, stmt));
        }
    }
    out
}

/// The references archive detached for this batch. Runs as the extension's owner.
fn read_detached(client: &mut SpiClient<'_>, batch: i64) -> Result<Vec<Detached>, UprootError> {
    let t = run(
        client,
        "SELECT pg_catalog.array_agg(bd.ctid), pg_catalog.array_agg(bd.relation::pg_catalog.oid), \
                pg_catalog.array_agg(bd.constraint_name), pg_catalog.array_agg(bd.row_key::pg_catalog.text), \
                pg_catalog.array_agg(bd.old_values::pg_catalog.text), pg_catalog.array_agg(bd.new_values::pg_catalog.text), \
                pg_catalog.array_agg(bd.row_tableoid), pg_catalog.array_agg(bd.row_ctid) \
           FROM uproot.batch_detached bd WHERE bd.batch_id OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(batch)],
    );
    let row = t.first();
    // array_agg over no rows is NULL: nothing was detached
    let tids = |i: usize| match row.datum(i) {
        Some((d, _)) => unsafe { tids_from_datum(d) },
        None => Vec::new(),
    };
    let oids = |i: usize| -> Vec<u32> {
        row.get::<Vec<pg_sys::Oid>>(i)
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.to_u32())
            .collect()
    };
    let texts =
        |i: usize| -> Vec<Option<String>> { row.get::<Vec<Option<String>>>(i).unwrap_or_default() };
    let (ledger, relations, constraints) = (tids(1), oids(2), texts(3));
    let (keys, old, new) = (texts(4), texts(5), texts(6));
    let (row_oids, row_tids) = (oids(7), tids(8));
    (0..ledger.len())
        .map(|i| {
            Ok(Detached {
                ledger_ctid: ledger[i],
                relation: relations[i],
                constraint: constraints[i].clone().ok_or(UprootError::UnexpectedNull {
                    what: "a detached reference's constraint name".into(),
                })?,
                row_key: keys[i].clone(),
                old_values: old[i].clone(),
                new_values: new[i].clone(),
                at: (row_oids[i], row_tids[i]),
                waits: false,
            })
        })
        .collect()
}

fn tid(v: u64) -> pg_sys::ItemPointerData {
    let mut t = pg_sys::ItemPointerData::default();
    u64_to_item_pointer(v, &mut t);
    t
}

/// Put back the references archive detached, constraint by constraint in the reverse of
/// archive's order, except those whose parent stays archived (they wait). Returns the
/// 'reattached' rows of the result.
fn reattach(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &[Part],
    detached: &mut [Detached],
    batch: i64,
) -> Vec<RestoreRow> {
    let groups = detached_groups(detached);
    let mut out: Vec<RestoreRow> = Vec::new();
    let mut reattached_at: HashMap<RelId, HashMap<(u32, u64), HashSet<bool>>> = HashMap::new();
    for (child, fk) in reattach_order(cat, &groups) {
        let moves = reattach_constraint(client, cat, parts, detached, batch, fk);
        let f = &cat.foreign_keys[fk];
        let kind = f.action() == crate::graph::model::FkAction::SetNull;
        let here = reattached_at.entry(child).or_default();
        let mut n = 0;
        for (was, now) in &moves {
            let mut kinds = here.remove(was).unwrap_or_default();
            if kinds.insert(kind) {
                n += 1;
            }
            here.insert(*now, kinds);
        }
        for d in detached.iter_mut().filter(|d| d.relation == child) {
            if let Some(now) = moves.get(&d.at) {
                d.at = *now;
            }
        }
        if let Some(o) = out.iter_mut().find(|(r, _, _)| *r == child) {
            o.2 += n;
        } else {
            out.push((child, RestoreAction::Reattached, n));
        }
    }
    out
}

/// The (relation, constraint) groups of the detached references, in the order restore sets them
/// back: archive detached table by table, constraints in name order; restore undoes in reverse.
fn detached_groups(detached: &[Detached]) -> Vec<(RelId, String)> {
    let mut groups: Vec<(RelId, String)> = detached
        .iter()
        .map(|d| (d.relation, d.constraint.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    groups.reverse();
    groups
}

/// The groups' foreign keys (those that still exist), as (child, fk).
fn reattach_order(cat: &Catalog, groups: &[(RelId, String)]) -> Vec<(RelId, usize)> {
    groups
        .iter()
        .filter_map(|(child, con)| {
            cat.foreign_keys
                .iter()
                .position(|f| f.child == *child && f.name == *con)
                .map(|fk| (*child, fk))
        })
        .collect()
}

/// The archive tables that, after the move, hold parents of `fk` that stayed archived.
fn reattach_parents(cat: &Catalog, parts: &[Part], fk: usize) -> Vec<String> {
    let f = &cat.foreign_keys[fk];
    parts
        .iter()
        .filter(|p| !p.staying.is_empty() && related(cat, p.relation, f.parent))
        .filter(|p| archive_has(cat, f.parent, &f.parent_cols, p))
        .map(|p| p.archive.clone())
        .collect()
}

/// Set back the references constraint `fk` detached; mark those that wait for a parent that
/// stays archived. Returns where each reattached row moved (the update moves rows).
fn reattach_constraint(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    parts: &[Part],
    detached: &mut [Detached],
    batch: i64,
    fk: usize,
) -> HashMap<(u32, u64), (u32, u64)> {
    let f = &cat.foreign_keys[fk];
    // After the move, an archive table holds only the batch's rows that stayed.
    let parent_archives = reattach_parents(cat, parts, fk);
    let members: Vec<usize> = (0..detached.len())
        .filter(|&i| detached[i].relation == f.child && detached[i].constraint == f.name)
        .collect();
    let idx: Vec<i32> = members.iter().map(|&i| i as i32).collect();
    let keys: Vec<Option<String>> = members
        .iter()
        .map(|&i| detached[i].row_key.clone())
        .collect();
    let old: Vec<Option<String>> = members
        .iter()
        .map(|&i| detached[i].old_values.clone())
        .collect();
    let new: Vec<Option<String>> = members
        .iter()
        .map(|&i| detached[i].new_values.clone())
        .collect();
    let row_oids: Vec<pg_sys::Oid> = members
        .iter()
        .map(|&i| pg_sys::Oid::from(detached[i].at.0))
        .collect();
    let row_tids: Vec<pg_sys::ItemPointerData> =
        members.iter().map(|&i| tid(detached[i].at.1)).collect();
    let stmt = aplan::reattach(cat, fk, &parent_archives);
    let values = vec![
        (Slot::Named("reference numbers"), DatumWithOid::from(idx)),
        (Slot::Named("row keys"), DatumWithOid::from(keys)),
        (Slot::Named("old values"), DatumWithOid::from(old)),
        (Slot::Named("new values"), DatumWithOid::from(new)),
        (Slot::Named("row tableoids"), DatumWithOid::from(row_oids)),
        (Slot::Named("row ctids"), DatumWithOid::from(row_tids)),
        (Slot::Batch, DatumWithOid::from(batch)),
    ];
    let t = run(client, &stmt.sql, &bind_values(&stmt, values));
    let row = t.first();
    let waiting: Vec<i32> = row.get(1).unwrap_or_default();
    let done: Vec<i32> = row.get(2).unwrap_or_default();
    let (now_tids, now_oids) = positions(&row, 3, 4);
    for i in waiting {
        detached[i as usize].waits = true;
    }
    // The update moved the rows: references of later groups find them at their new place.
    // Counted like archive counts: a row once per kind (nullified / defaulted) it was
    // detached as; a row another constraint already reattached has moved since.
    let moves: HashMap<(u32, u64), (u32, u64)> = done
        .iter()
        .zip(now_oids.into_iter().zip(now_tids))
        .map(|(&i, now)| (detached[i as usize].at, now))
        .collect();
    moves
}

/// Record the restore in the ledger: restored, or partly restored with the references that
/// wait for their parent kept (at their rows' current place). Runs as the extension's owner.
fn record(
    client: &mut SpiClient<'_>,
    batch: i64,
    caller: &str,
    partly: bool,
    detached: &[Detached],
) {
    let waiting: Vec<&Detached> = detached.iter().filter(|d| d.waits).collect();
    let ledger: Vec<pg_sys::ItemPointerData> = waiting.iter().map(|d| tid(d.ledger_ctid)).collect();
    run(
        client,
        "DELETE FROM uproot.batch_detached WHERE batch_id OPERATOR(pg_catalog.=) $1 \
            AND NOT ctid OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.tid[])",
        &[
            DatumWithOid::from(batch),
            DatumWithOid::from(ledger.clone()),
        ],
    );
    if !waiting.is_empty() {
        let oids: Vec<pg_sys::Oid> = waiting.iter().map(|d| pg_sys::Oid::from(d.at.0)).collect();
        let tids: Vec<pg_sys::ItemPointerData> = waiting.iter().map(|d| tid(d.at.1)).collect();
        run(
            client,
            "UPDATE uproot.batch_detached bd SET row_tableoid = u.o, row_ctid = u.t \
               FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.tid[]), pg_catalog.unnest($3::pg_catalog.oid[]), pg_catalog.unnest($4::pg_catalog.tid[])) AS u(l, o, t) \
              WHERE bd.batch_id OPERATOR(pg_catalog.=) $1 AND bd.ctid OPERATOR(pg_catalog.=) u.l",
            &[
                DatumWithOid::from(batch),
                DatumWithOid::from(ledger),
                DatumWithOid::from(oids),
                DatumWithOid::from(tids),
            ],
        );
    }
    let sql = if partly {
        "UPDATE uproot.batches SET partly_restored_at = pg_catalog.now(), restored_by = $2 WHERE id OPERATOR(pg_catalog.=) $1"
    } else {
        "UPDATE uproot.batches SET restored_at = pg_catalog.now(), restored_by = $2 WHERE id OPERATOR(pg_catalog.=) $1"
    };
    run(
        client,
        sql,
        &[
            DatumWithOid::from(batch),
            DatumWithOid::from(caller.to_string()),
        ],
    );
}

/// Say that rows stayed, how many and why, and what to do about them.
fn notice_partly_restored(cat: &Catalog, batch: i64, parts: &[Part], detached: &[Detached]) {
    let name = |r: RelId| {
        cat.relation(r)
            .map(|r| r.display_name())
            .unwrap_or_else(|| r.to_string())
    };
    let staying: i64 = parts.iter().map(|p| p.staying.len() as i64).sum();
    let conflicts: i64 = parts.iter().map(|p| p.conflicts).sum();
    let list = |n: &dyn Fn(&Part) -> i64| {
        parts
            .iter()
            .filter(|p| n(p) > 0)
            .map(|p| format!("{} of {}", n(p), name(p.relation)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut detail = vec![format!(
        "{conflicts} row(s) have a key that exists again ({}).",
        list(&|p| p.conflicts)
    )];
    if staying > conflicts {
        detail.push(format!(
            "{} row(s) reference those and stay with them ({}).",
            staying - conflicts,
            list(&|p| p.staying.len() as i64 - p.conflicts)
        ));
    }
    let waiting = detached.iter().filter(|d| d.waits).count();
    if waiting > 0 {
        detail.push(format!(
            "{waiting} detached reference(s) to those rows stay detached until they are restored."
        ));
    }
    pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!("uproot: batch {batch} is partly restored: {staying} row(s) stay in the archive"),
        "",
    )
    .set_detail(detail.join(" "))
    .set_hint(format!(
        "Once the rows with those keys are gone, uproot.restore({batch}) puts back the rest; uproot.drop_batch({batch}) erases it."
    ))
    .report(PgLogLevel::NOTICE);
}

/// The values of a restore statement's slots: the batch, and the archived rows of a relation
/// that stay. Restore plans no other slot. The statement is recorded for
/// `uproot.debug_check_explain`.
fn bind(stmt: &Statement, batch: i64, parts: &[Part]) -> Vec<DatumWithOid<'static>> {
    crate::debug::record(&stmt.sql);
    let staying = |r: &RelId| {
        &parts
            .iter()
            .find(|p| p.relation == *r)
            .expect("a staying slot names a part of the batch")
            .staying
    };
    stmt.slots
        .iter()
        .map(|slot| match slot {
            Slot::Batch => DatumWithOid::from(batch),
            Slot::Tids(Rows::Staying(r)) => staying(r).tids_param(0),
            Slot::Oids(Rows::Staying(r)) => staying(r).oids_param(0),
            other => panic!("uproot: restore has no value for {other:?}"),
        })
        .collect()
}
