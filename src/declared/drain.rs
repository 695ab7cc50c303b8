//! The drain of async declared relations: the keys the queue trigger recorded when parents were
//! deleted are handled in batches. One batch is one transaction's work: take the oldest queued
//! keys (`FOR UPDATE SKIP LOCKED`, so concurrent drains share the queue), delete or nullify the
//! child rows that reference them, as the caller, then remove those keys from the queue. An
//! error or a kill anywhere rolls the whole batch back, keys included, so the next drain does it
//! again; a child behind postgres_fdw commits with the local transaction, and if the local
//! commit is lost after the remote one, the rerun finds nothing left to delete or nullify: it
//! touches no row twice.

use super::{declaration_error, no_such_relation, qualified, stored_or_error};
use crate::error::UprootError;
use crate::graph::model::quote_ident;
use crate::privileged::as_extension_owner;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// An async declared relation, as the drain needs it.
struct Async {
    child: pg_sys::Oid,
    child_columns: Vec<String>,
    nullify: bool,
}

fn async_relation(name: &str) -> Result<Async, UprootError> {
    let stored = stored_or_error(name)?;
    let Some(child) = stored.child else {
        return Err(no_such_relation(name));
    };
    if !stored.asynchronous() {
        return Err(declaration_error(
            "22023",
            format!(
                "declared relation {name} is {}, not async: it has no queue",
                stored.on_delete
            ),
            None,
            "Only 'async cascade' and 'async set null' relations are drained; sync ones are followed by purge and archive.",
        ));
    }
    Ok(Async {
        child,
        nullify: stored.on_delete == "async set null",
        child_columns: stored.child_columns,
    })
}

/// The child statement of one batch: `$1` is a jsonb array of key objects (child column names).
/// One column: `col = ANY (ARRAY(...))`, which postgres_fdw can send to the remote server with
/// the array as a parameter; several columns: a join with the keys.
fn child_statement(rel: &Async, child: &str) -> String {
    let cols: Vec<String> = rel.child_columns.iter().map(|c| quote_ident(c)).collect();
    let change = if rel.nullify {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = NULL")).collect();
        format!("UPDATE {child} c SET {}", sets.join(", "))
    } else {
        format!("DELETE FROM {child} c")
    };
    let keys =
        format!("pg_catalog.jsonb_populate_recordset(NULL::{child}, $1::pg_catalog.jsonb) k");
    let body = if cols.len() == 1 {
        format!(
            "{change} WHERE c.{0} OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT DISTINCT k.{0} FROM {keys} WHERE k.{0} IS NOT NULL))",
            cols[0]
        )
    } else {
        let on: Vec<String> = cols
            .iter()
            .map(|c| format!("c.{c} OPERATOR(pg_catalog.=) k.{c}"))
            .collect();
        let using = if rel.nullify { "FROM" } else { "USING" };
        format!("{change} {using} {keys} WHERE {}", on.join(" AND "))
    };
    format!("WITH d AS ({body} RETURNING 1) SELECT pg_catalog.count(*) FROM d")
}

/// The caller may delete (or nullify) the child rows and read their key columns, and no
/// row-level security policy hides rows from it: checked before any key is taken, so a drain
/// that cannot do all its work changes nothing.
fn check_privileges(relation: &str, rel: &Async, child: &str) -> Result<(), UprootError> {
    let (action, granted) = if rel.nullify {
        (
            "UPDATE",
            "pg_catalog.bool_and(pg_catalog.has_column_privilege($1, c, 'SELECT') \
                AND pg_catalog.has_column_privilege($1, c, 'UPDATE'))",
        )
    } else {
        (
            "DELETE",
            "pg_catalog.bool_and(pg_catalog.has_column_privilege($1, c, 'SELECT')) \
                AND pg_catalog.has_table_privilege($1, 'DELETE')",
        )
    };
    let may = Spi::get_one_with_args::<bool>(
        &format!("SELECT {granted} FROM pg_catalog.unnest($2::pg_catalog.text[]) AS c"),
        &[
            DatumWithOid::from(rel.child),
            DatumWithOid::from(rel.child_columns.clone()),
        ],
    )
    .map_err(super::spi_failed)?
    .unwrap_or(false);
    if may {
        // rows a policy hides from the caller would stay behind while their keys leave the queue
        if !crate::spi::rls_active(rel.child.to_u32()) {
            return Ok(());
        }
        return Err(declaration_error(
            "42501",
            format!(
                "draining {relation}: row-level security on {child} applies to role {}, so rows it hides would stay behind while their keys leave the queue",
                super::caller_name()
            ),
            Some("Nothing was changed and the keys stay queued.".into()),
            "Run the drain as a role that row-level security does not apply to: the table's owner (without FORCE ROW LEVEL SECURITY) or a role with BYPASSRLS.",
        ));
    }
    Err(declaration_error(
        "42501",
        format!("permission denied: draining {relation} needs SELECT and {action} on {child}"),
        Some(format!(
            "The drain {} the rows of {child} that reference the queued keys, as the role that runs it ({}); nothing was changed and the keys stay queued.",
            if rel.nullify { "sets to NULL the key columns of" } else { "deletes" },
            super::caller_name()
        )),
        format!("GRANT SELECT, {action} ON {child} TO {};", quote_ident(&super::caller_name())),
    ))
}

/// Drain one batch of `relation`'s queue: (keys handled, child rows deleted or nullified).
pub fn drain(relation: &str, batch_size: i32) -> Result<(i64, i64), UprootError> {
    if batch_size < 1 {
        return Err(UprootError::InvalidArgument {
            argument: "batch_size".into(),
            message: format!("batch_size must be at least 1, not {batch_size}"),
            hint: "Pass how many queued keys one batch takes, e.g. 1000.".into(),
        });
    }
    let rel = async_relation(relation)?;
    let child = qualified(rel.child);
    check_privileges(relation, &rel, &child)?;
    let (ids, keys) = as_extension_owner(|| {
        Spi::get_two_with_args::<Vec<i64>, String>(
            "SELECT pg_catalog.array_agg(q.id ORDER BY q.id), pg_catalog.jsonb_agg(q.keys ORDER BY q.id)::pg_catalog.text \
               FROM (SELECT a.id, a.keys FROM uproot.async_queue a WHERE a.relation OPERATOR(pg_catalog.=) $1 \
                      ORDER BY a.id LIMIT $2 FOR UPDATE SKIP LOCKED) q",
            &[DatumWithOid::from(relation), DatumWithOid::from(i64::from(batch_size))],
        )
    })
    .map_err(super::spi_failed)?;
    let (Some(ids), Some(keys)) = (ids, keys) else {
        return Ok((0, 0));
    };
    // Not a kept plan: `NULL::child` names the child's row type by OID, which a kept plan would
    // keep after the table was dropped and created again.
    let stmt = child_statement(&rel, &child);
    let rows = Spi::connect_mut(|client| {
        client
            .update(&stmt, None, &[DatumWithOid::from(keys.as_str())])?
            .first()
            .get_one::<i64>()
    })
    .map_err(super::spi_failed)?
    .unwrap_or(0);
    crate::debug::fail_point("drain_changed");
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM uproot.async_queue WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
            &[DatumWithOid::from(ids.clone())],
        )
    })
    .map_err(super::spi_failed)?;
    Ok((ids.len() as i64, rows))
}

/// An error unless `relation` is an async declared relation (for uproot.create_drain_job).
pub fn check_async(relation: &str) -> Result<(), UprootError> {
    async_relation(relation).map(|_| ())
}

/// Per async relation: keys waiting, and when the oldest was queued.
pub fn lag() -> Vec<(String, i64, Option<pgrx::datum::TimestampWithTimeZone>)> {
    as_extension_owner(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT d.name, pg_catalog.count(q.id), pg_catalog.min(q.queued_at) \
                   FROM uproot.declared_relations d LEFT JOIN uproot.async_queue q ON q.relation OPERATOR(pg_catalog.=) d.name \
                  WHERE d.on_delete OPERATOR(pg_catalog.=) ANY ('{async cascade,async set null}'::pg_catalog.text[]) \
                  GROUP BY d.name ORDER BY d.name",
                None,
                &[],
            )?;
            let mut out = Vec::new();
            for r in rows {
                out.push((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<i64>(2)?.unwrap_or(0),
                    r.get::<pgrx::datum::TimestampWithTimeZone>(3)?,
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .unwrap_or_default()
}

/// A new row of uproot.drain_runs, after checking the relation is async.
pub fn run_start(relation: &str) -> Result<i64, UprootError> {
    async_relation(relation)?;
    let by = super::caller_name();
    as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO uproot.drain_runs (relation, run_by) VALUES ($1, $2) RETURNING run_id",
            &[
                DatumWithOid::from(relation),
                DatumWithOid::from(by.as_str()),
            ],
        )
    })
    .map_err(super::spi_failed)?
    .ok_or_else(|| UprootError::UnexpectedNull {
        what: "the drain run id".into(),
    })
}

/// Record a run's progress, and its end when `stop_reason` is given.
pub fn run_record(
    run: i64,
    batches: i32,
    keys: i64,
    rows: i64,
    stop_reason: Option<String>,
) -> Result<(), UprootError> {
    // only the role that started the run records it
    let by = super::caller_name();
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE uproot.drain_runs SET batches = $2, keys = $3, rows = $4, stop_reason = $5, \
                    finished_at = CASE WHEN $5 IS NULL THEN NULL ELSE pg_catalog.clock_timestamp() END \
              WHERE run_id OPERATOR(pg_catalog.=) $1 AND run_by OPERATOR(pg_catalog.=) $6",
            &[
                DatumWithOid::from(run),
                DatumWithOid::from(batches),
                DatumWithOid::from(keys),
                DatumWithOid::from(rows),
                match stop_reason {
                    Some(r) => DatumWithOid::from(r),
                    None => DatumWithOid::null::<String>(),
                },
                DatumWithOid::from(by.as_str()),
            ],
        )
    })
    .map_err(super::spi_failed)
}
