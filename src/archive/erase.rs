//! Erasing archived data: dropping batches, and finding the archived copies of given root keys
//! (so that an erasure request covers the archive too).
//!
//! As in restore, the ledger is read and written as the extension's owner, while every statement
//! on an archive table runs as the caller: dropping a batch needs DELETE on its archive tables,
//! finding or counting archived rows needs SELECT.

use crate::error::UprootError;
use crate::graph::model::{Catalog, RelId};
use crate::plan::{self, archive::BATCH_COLUMN, RootFilter};
use crate::privileged::as_extension_owner;
use crate::spi::{query, read_count, run};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// A batch's state, as find_archived and drop_batches report it.
const STATE: &str = "CASE WHEN b.restored_at IS NOT NULL THEN 'restored' \
                          WHEN b.partly_restored_at IS NOT NULL THEN 'partly restored' \
                          ELSE 'archived' END";

/// A batch as the ledger has it, with its archive tables.
pub struct Batch {
    pub id: i64,
    pub root: RelId,
    pub archived_at: Option<TimestampWithTimeZone>,
    pub state: String,
    /// (relation, archive table quoted, or None when it no longer exists), in restore order.
    pub relations: Vec<(RelId, Option<String>)>,
}

/// Which batches drop_batches considers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    Restored,
    /// Archived or partly restored: they still hold rows.
    Unrestored,
}

/// Batches matching `cond` (over `b`, uproot.batches), by id; locked when `lock`. Runs as the
/// extension's owner, with fixed conditions only.
fn read_batches(
    client: &mut SpiClient<'_>,
    cond: &str,
    args: &[DatumWithOid<'_>],
    lock: bool,
) -> Result<Vec<Batch>, UprootError> {
    let sql = format!(
        "SELECT b.id, b.root::pg_catalog.oid, b.archived_at, {STATE}, br.relation::pg_catalog.oid, \
                pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
           FROM uproot.batches b \
           LEFT JOIN uproot.batch_relations br ON br.batch_id OPERATOR(pg_catalog.=) b.id \
           LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) br.archive \
           LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE {cond} ORDER BY b.id, br.position{}",
        if lock { " FOR UPDATE OF b" } else { "" }
    );
    let mut out: Vec<Batch> = Vec::new();
    for row in query(lock, client, &sql, args) {
        let oid = |i| row.get::<pg_sys::Oid>(i).map(|o| o.to_u32());
        let id = row.value::<i64>(1, "a batch id")?;
        if out.last().is_none_or(|b| b.id != id) {
            out.push(Batch {
                id,
                // NULL once the root table was dropped
                root: oid(2).unwrap_or(0),
                archived_at: row.get::<TimestampWithTimeZone>(3),
                state: row.value::<String>(4, "a batch's state")?,
                relations: Vec::new(),
            });
        }
        if let Some(rel) = oid(5) {
            let archive = row.get::<String>(6);
            out.last_mut()
                .expect("pushed")
                .relations
                .push((rel, archive));
        }
    }
    Ok(out)
}

/// May the caller forget a batch's rows of `rel` whose archive table is gone? Whoever may delete
/// from the source may; so may the extension's owner.
fn may_forget(client: &mut SpiClient<'_>, rel: RelId) -> Result<bool, UprootError> {
    query(
        false,
        client,
        "SELECT COALESCE(pg_catalog.has_table_privilege($1::pg_catalog.oid, 'DELETE'), false) \
             OR pg_catalog.pg_has_role((SELECT e.extowner FROM pg_catalog.pg_extension e \
                                         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_uproot'), 'USAGE')",
        &[DatumWithOid::from(pg_sys::Oid::from(rel))],
    )
    .first()
    .value::<bool>(1, "whether the caller may forget a batch's rows")
}

/// Rows a batch holds in one archive table: deleted (as the caller), or only counted.
fn archived_rows(client: &mut SpiClient<'_>, archive: &str, batch: i64, delete: bool) -> i64 {
    let col = crate::graph::model::quote_ident(BATCH_COLUMN);
    let sql = if delete {
        format!(
            "WITH d AS (DELETE FROM {archive} a WHERE a.{col} OPERATOR(pg_catalog.=) $1 RETURNING 1) \
             SELECT pg_catalog.count(*) FROM d"
        )
    } else {
        format!(
            "SELECT pg_catalog.count(*) FROM {archive} a WHERE a.{col} OPERATOR(pg_catalog.=) $1"
        )
    };
    read_count(query(delete, client, &sql, &[DatumWithOid::from(batch)]))
}

/// Remove (or with `dry_run`, count) the archived rows of each batch as the caller, then the
/// batches' ledger rows as the extension's owner. Returns the rows per batch and relation.
fn drop_all(
    client: &mut SpiClient<'_>,
    batches: &[Batch],
    dry_run: bool,
) -> Result<Vec<Vec<(RelId, i64)>>, UprootError> {
    let mut out = Vec::new();
    for b in batches {
        let mut rows = Vec::new();
        for (rel, archive) in &b.relations {
            match archive {
                Some(a) => rows.push((*rel, archived_rows(client, a, b.id, !dry_run))),
                None => {
                    if !dry_run && !may_forget(client, *rel)? {
                        return Err(not_allowed(b.id, *rel));
                    }
                    rows.push((*rel, 0));
                }
            }
        }
        if b.relations.is_empty() && !dry_run && !may_forget(client, b.root)? {
            return Err(not_allowed(b.id, b.root));
        }
        out.push(rows);
    }
    if !dry_run && !batches.is_empty() {
        let ids: Vec<i64> = batches.iter().map(|b| b.id).collect();
        as_extension_owner(|| {
            run(
                client,
                "DELETE FROM uproot.batches WHERE id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])",
                &[DatumWithOid::from(ids)],
            );
        });
    }
    Ok(out)
}

fn not_allowed(id: i64, rel: RelId) -> UprootError {
    let relation = Spi::get_one_with_args::<String>(
        "SELECT $1::pg_catalog.oid::pg_catalog.regclass::pg_catalog.text",
        &[DatumWithOid::from(pg_sys::Oid::from(rel))],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| rel.to_string());
    UprootError::DropNotAllowed { id, relation }
}

/// `ids` and the batches holding the owned parents archived with them, transitively
/// (uproot.batch_owned), by id.
fn with_owned(client: &mut SpiClient<'_>, ids: Vec<i64>) -> Result<Vec<i64>, UprootError> {
    as_extension_owner(|| {
        query(
            false,
            client,
            "WITH RECURSIVE o(id) AS (SELECT pg_catalog.unnest($1::pg_catalog.int8[]) \
                UNION SELECT bo.owned_batch FROM uproot.batch_owned bo JOIN o ON bo.batch_id OPERATOR(pg_catalog.=) o.id) \
             SELECT COALESCE(pg_catalog.array_agg(o.id ORDER BY o.id), '{}') FROM o",
            &[DatumWithOid::from(ids)],
        )
        .first()
        .value::<Vec<i64>>(1, "the batches of owned parents")
    })
}

/// (owned batch, owning batch) for the batches among `ids` that still hold owned parents of a
/// batch not among them that still holds rows: restoring that one later would bring back rows
/// whose parents were erased. (Owned parents already restored are live rows again.)
fn owned_by_others(
    client: &mut SpiClient<'_>,
    ids: &[i64],
) -> Result<Vec<(i64, i64)>, UprootError> {
    as_extension_owner(|| {
        query(
            false,
            client,
            "SELECT bo.owned_batch, bo.batch_id FROM uproot.batch_owned bo \
               JOIN uproot.batches b ON b.id OPERATOR(pg_catalog.=) bo.batch_id \
               JOIN uproot.batches ob ON ob.id OPERATOR(pg_catalog.=) bo.owned_batch \
              WHERE bo.owned_batch OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[]) \
                AND NOT bo.batch_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[]) \
                AND b.restored_at IS NULL AND ob.restored_at IS NULL \
              ORDER BY 1, 2",
            &[DatumWithOid::from(ids.to_vec())],
        )
        .map(|row| {
            Ok((
                row.value::<i64>(1, "an owned batch")?,
                row.value::<i64>(2, "its owning batch")?,
            ))
        })
        .collect()
    })
}

/// `uproot.drop_batch`: one batch, whatever its state, with the batches that hold the owned
/// parents archived with it (they would otherwise stay behind as rows of a family that is
/// gone). A batch of owned parents whose owning batch still holds rows is refused: restoring
/// that one would bring back rows without their parents. Returns the rows removed per relation.
pub fn drop_batch(
    client: &mut SpiClient<'_>,
    batch: i64,
) -> Result<Vec<(RelId, i64)>, UprootError> {
    let ids = with_owned(client, vec![batch])?;
    let found = as_extension_owner(|| {
        read_batches(
            client,
            "b.id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])",
            &[DatumWithOid::from(ids.clone())],
            true,
        )
    })?;
    if !found.iter().any(|b| b.id == batch) {
        return Err(UprootError::UnknownBatch { id: batch });
    }
    if let Some(&(_, owner)) = owned_by_others(client, &ids)?.first() {
        return Err(UprootError::DropOwnedBatch { id: batch, owner });
    }
    // the rows per relation, over the batch and its owned batches
    let mut out: Vec<(RelId, i64)> = Vec::new();
    for (rel, n) in drop_all(client, &found, false)?.into_iter().flatten() {
        match out.iter_mut().find(|r| r.0 == rel) {
            Some(r) => r.1 += n,
            None => out.push((rel, n)),
        }
    }
    Ok(out)
}

/// `uproot.drop_batches`: the batches archived longer ago than `older_than` (an interval
/// parameter), of the kind `which`. Returns each batch with the rows it held.
pub fn drop_batches(
    client: &mut SpiClient<'_>,
    older_than: DatumWithOid<'_>,
    which: Which,
    dry_run: bool,
) -> Result<Vec<(Batch, i64)>, UprootError> {
    let kind = match which {
        Which::All => "",
        Which::Restored => " AND b.restored_at IS NOT NULL",
        Which::Unrestored => " AND b.restored_at IS NULL",
    };
    let cond = format!(
        "b.archived_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1::pg_catalog.interval){kind}"
    );
    let chosen = as_extension_owner(|| read_batches(client, &cond, &[older_than], false))?;
    // the batches of owned parents go with the batch that owned them, as in drop_batch; one
    // whose owning batch stays and still holds rows stays too
    let mut ids = with_owned(client, chosen.iter().map(|b| b.id).collect())?;
    loop {
        let staying = owned_by_others(client, &ids)?;
        if staying.is_empty() {
            break;
        }
        ids.retain(|id| !staying.iter().any(|s| s.0 == *id));
    }
    let batches = as_extension_owner(|| {
        read_batches(
            client,
            "b.id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])",
            &[DatumWithOid::from(ids)],
            !dry_run,
        )
    })?;
    let rows = drop_all(client, &batches, dry_run)?;
    Ok(batches
        .into_iter()
        .zip(rows)
        .map(|(b, r)| (b, r.iter().map(|x| x.1).sum()))
        .collect())
}

/// The root's archive table (quoted name and OID), if it has one that exists.
fn root_archive(
    client: &mut SpiClient<'_>,
    root: RelId,
) -> Result<Option<(String, u32)>, UprootError> {
    let m = as_extension_owner(|| super::mapping(client, root))?;
    Ok(m.and_then(|m| m.exists.then_some((m.qualified, m.archive_oid))))
}

/// Batches whose archive table of `root` holds rows with the given keys, with how many of the
/// keys each holds. Runs as the caller. None when the root has no archive table.
pub fn archived_copies(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    root: RelId,
    filter: &RootFilter,
    args: &[DatumWithOid<'_>],
    only_if_readable: bool,
) -> Result<Vec<(i64, i64)>, UprootError> {
    let Some((archive, oid)) = root_archive(client, root)? else {
        return Ok(Vec::new());
    };
    if only_if_readable {
        let readable = unsafe {
            pg_sys::pg_class_aclcheck(
                pg_sys::Oid::from(oid),
                pg_sys::GetUserId(),
                pg_sys::ACL_SELECT as pg_sys::AclMode,
            ) == pg_sys::AclResult::ACLCHECK_OK
        };
        if !readable {
            return Ok(Vec::new());
        }
    }
    let col = crate::graph::model::quote_ident(BATCH_COLUMN);
    let mut params = plan::Params::default();
    let cond = plan::root_filter(cat, root, filter, "a", &mut params);
    let stmt = params.statement(format!(
        "SELECT a.{col}, pg_catalog.count(*) FROM {archive} a WHERE {cond} GROUP BY 1 ORDER BY 1"
    ));
    // the keys are the one value this statement can take (none for a predicate)
    let keys = args
        .first()
        .filter(|_| stmt.slots.contains(&plan::Slot::Keys))
        .map(|k| {
            (plan::Slot::Keys, unsafe {
                DatumWithOid::new_from_datum(k.datum(), k.oid())
            })
        });
    let bound = crate::spi::bind_unrecorded(&stmt, keys.into_iter().collect());
    query(false, client, &stmt.sql, &bound)
        .map(|row| {
            Ok((
                row.value::<i64>(1, "an archived row's batch")?,
                row.value::<i64>(2, "a count")?,
            ))
        })
        .collect()
}

/// One line of find_archived: a batch holding some of the keys, and one of its relations with
/// the rows the batch holds there now.
pub struct Found {
    pub batch: i64,
    pub archived_at: Option<TimestampWithTimeZone>,
    pub state: String,
    pub matched: i64,
    pub relation: RelId,
    pub rows: i64,
}

/// `uproot.find_archived`: the batches whose archive holds these root keys.
pub fn find_archived(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    root: RelId,
    filter: &RootFilter,
    args: &[DatumWithOid<'_>],
) -> Result<Vec<Found>, UprootError> {
    let copies = archived_copies(client, cat, root, filter, args, false)?;
    if copies.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = copies.iter().map(|c| c.0).collect();
    let batches = as_extension_owner(|| {
        read_batches(
            client,
            "b.id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int8[])",
            &[DatumWithOid::from(ids)],
            false,
        )
    })?;
    let mut out = Vec::new();
    // archived rows whose batch the ledger does not know (it was dropped by hand, or lost)
    for &(id, matched) in copies
        .iter()
        .filter(|c| !batches.iter().any(|b| b.id == c.0))
    {
        let rows = match root_archive(client, root)? {
            Some((a, _)) => archived_rows(client, &a, id, false),
            None => 0,
        };
        out.push(Found {
            batch: id,
            archived_at: None,
            state: "not in the ledger".into(),
            matched,
            relation: root,
            rows,
        });
    }
    for b in batches {
        let matched = copies
            .iter()
            .find(|c| c.0 == b.id)
            .map(|c| c.1)
            .unwrap_or(0);
        for (rel, archive) in &b.relations {
            let rows = match archive {
                Some(a) => archived_rows(client, a, b.id, false),
                None => 0,
            };
            out.push(Found {
                batch: b.id,
                archived_at: b.archived_at,
                state: b.state.clone(),
                matched,
                relation: *rel,
                rows,
            });
        }
    }
    out.sort_by_key(|f| f.batch);
    Ok(out)
}
