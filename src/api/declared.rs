//! The SQL API of declared relations (src/declared): declare and drop relations and owned
//! parents, drain async relations, find leftovers.

#![allow(clippy::result_large_err)]
// the SQL functions take their arguments one by one
#![allow(clippy::too_many_arguments)]

use crate::declared::{self, Declaration, OnDelete};
use crate::error::UprootError;
use crate::report::report;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

fn given<T>(value: Option<T>, argument: &str, hint: &str) -> Result<T, UprootError> {
    value.ok_or_else(|| UprootError::InvalidArgument {
        argument: argument.into(),
        message: format!("{argument} must not be NULL"),
        hint: hint.into(),
    })
}

fn column_list(
    value: Option<Vec<Option<String>>>,
    argument: &str,
) -> Result<Vec<String>, UprootError> {
    let hint = "List the columns in order, e.g. array['project_id'].";
    given(value, argument, hint)?
        .into_iter()
        .map(|c| given(c, argument, hint))
        .collect()
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.declare_relation(name text, child regclass, child_columns text[], parent regclass, parent_columns text[], on_delete text, check_trigger boolean DEFAULT false, required boolean DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'declare_relation_wrapper';
COMMENT ON FUNCTION uproot.declare_relation(text, regclass, text[], regclass, text[], text, boolean, boolean) IS
'Declare a relation the schema has no constraint for: child_columns of child reference parent_columns of parent, and on_delete (cascade, set null, restrict: followed by purge and archive; async cascade, async set null: queued and drained) says what deleting a parent does to its rows. check_trigger installs a trigger that rejects references to missing parents; required says a NULL reference is a leftover. Needs ownership of child and REFERENCES on parent (and ownership of parent for async).';
"#)]
fn declare_relation(
    name: Option<String>,
    child: Option<pg_sys::Oid>,
    child_columns: Option<Vec<Option<String>>>,
    parent: Option<pg_sys::Oid>,
    parent_columns: Option<Vec<Option<String>>>,
    on_delete: Option<String>,
    check_trigger: Option<bool>,
    required: Option<bool>,
) -> Result<(), ErrorReport> {
    let declaration = (|| {
        crate::api::ensure_schema_current()?;
        let on_delete_text = given(on_delete, "on_delete", "Say what deleting a parent does: 'cascade', 'set null' or 'restrict'.")?;
        let on_delete = OnDelete::parse(&on_delete_text).ok_or_else(|| UprootError::InvalidArgument {
            argument: "on_delete".into(),
            message: format!("unknown on_delete {}", crate::graph::model::quote_literal(&on_delete_text)),
            hint: "Use 'cascade', 'set null' or 'restrict' (followed by purge and archive), or 'async cascade' or 'async set null' (queued, then drained).".into(),
        })?;
        Ok::<_, UprootError>(Declaration {
            name: given(name, "name", "Name the relation like a constraint, e.g. 'ci_builds_project'.")?,
            child: given(child, "child", "Name the table whose rows reference the parent.")?,
            child_columns: column_list(child_columns, "child_columns")?,
            parent: given(parent, "parent", "Name the table whose rows are referenced.")?,
            parent_columns: column_list(parent_columns, "parent_columns")?,
            on_delete,
            check_trigger: check_trigger.unwrap_or(false),
            required: required.unwrap_or(false),
        })
    })()
    .map_err(report)?;
    declared::declare(&declaration).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.drop_relation(name text)
RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drop_relation_wrapper';
COMMENT ON FUNCTION uproot.drop_relation(text) IS
'Forget a declared relation (and drop its check trigger). Needs ownership of its child table.';
"#)]
fn drop_relation(name: Option<String>) -> Result<(), ErrorReport> {
    let name = given(
        name,
        "name",
        "Name a relation of uproot.declared_relations.",
    )
    .map_err(report)?;
    crate::api::ensure_schema_current().map_err(report)?;
    declared::drop(&name).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.declare_owned(child regclass, via text)
RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'declare_owned_wrapper';
COMMENT ON FUNCTION uproot.declare_owned(regclass, text) IS
'Declare that the parent rows child references through via (a foreign key of child, or a declared relation) are owned by the rows that reference them: purge and archive take each such parent that no remaining row references. Needs ownership of both tables.';
"#)]
fn declare_owned(child: Option<pg_sys::Oid>, via: Option<String>) -> Result<(), ErrorReport> {
    let (child, via) = owned_args(child, via)?;
    declared::declare_owned(child, &via).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.drop_owned(child regclass, via text)
RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drop_owned_wrapper';
COMMENT ON FUNCTION uproot.drop_owned(regclass, text) IS
'Undo uproot.declare_owned: parents reached through via are no longer taken with their last referencing row.';
"#)]
fn drop_owned(child: Option<pg_sys::Oid>, via: Option<String>) -> Result<(), ErrorReport> {
    let (child, via) = owned_args(child, via)?;
    declared::drop_owned(child, &via).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.check_declared_reference() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'check_declared_reference_wrapper';
COMMENT ON FUNCTION uproot_internal.check_declared_reference() IS
'Trigger of a declared relation with check_trigger: a reference to a missing parent fails with 23503, and one to a parent a purge holds waits for it. The lookup runs as the parent table''s owner, as PostgreSQL''s foreign-key checks do.';
"#)]
fn check_declared_reference(fcinfo: pg_sys::FunctionCallInfo) -> Result<(), ErrorReport> {
    declared::check::check(fcinfo).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.drain(relation text, batch_size int DEFAULT 1000)
RETURNS TABLE(keys bigint, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drain_wrapper';
COMMENT ON FUNCTION uproot.drain(text, int) IS
'One batch of an async declared relation''s queue, in the caller''s transaction: delete (or nullify) the child rows that reference up to batch_size queued parent keys, then unqueue those keys. Returns the keys and rows handled; 0 keys when the queue is empty.';
"#)]
fn drain(
    relation: Option<String>,
    batch_size: Option<i32>,
) -> Result<TableIterator<'static, (i64, i64)>, ErrorReport> {
    let relation =
        given(relation, "relation", "Name an async declared relation.").map_err(report)?;
    crate::api::ensure_schema_current().map_err(report)?;
    let done = declared::drain::drain(&relation, batch_size.unwrap_or(1000)).map_err(report)?;
    Ok(TableIterator::new(vec![done]))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.async_lag()
RETURNS TABLE(relation text, pending bigint, oldest_pending timestamptz)
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'async_lag_wrapper';
COMMENT ON FUNCTION uproot.async_lag() IS
'Per async declared relation: how many deleted parent keys wait for the drain, and when the oldest was queued (NULL: nothing waits).';
"#)]
fn async_lag() -> TableIterator<'static, (String, i64, Option<pgrx::datum::TimestampWithTimeZone>)>
{
    TableIterator::new(declared::drain::lag())
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.drain_run_start(relation text) RETURNS bigint
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drain_run_start_wrapper';
COMMENT ON FUNCTION uproot_internal.drain_run_start(text) IS
'Used by uproot.run_drain: a new row of uproot.drain_runs.';
"#)]
fn drain_run_start(relation: Option<String>) -> Result<i64, ErrorReport> {
    let relation =
        given(relation, "relation", "Name an async declared relation.").map_err(report)?;
    declared::drain::run_start(&relation).map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.drain_run_record(run bigint, batches int, keys bigint, "rows" bigint, stop_reason text) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drain_run_record_wrapper';
COMMENT ON FUNCTION uproot_internal.drain_run_record(bigint, int, bigint, bigint, text) IS
'Used by uproot.run_drain: record a run''s progress, and its end with the stop reason.';
"#)]
fn drain_run_record(
    run: Option<i64>,
    batches: Option<i32>,
    keys: Option<i64>,
    rows: Option<i64>,
    stop_reason: Option<String>,
) -> Result<(), ErrorReport> {
    declared::drain::run_record(
        run.unwrap_or(0),
        batches.unwrap_or(0),
        keys.unwrap_or(0),
        rows.unwrap_or(0),
        stop_reason,
    )
    .map_err(report)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.count_leftovers(relation text DEFAULT NULL)
RETURNS TABLE(relation text, child regclass, missing_parent bigint, null_reference bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'count_leftovers_wrapper';
COMMENT ON FUNCTION uproot.count_leftovers(text) IS
'Per declared relation (or the one named): how many child rows reference a parent that no longer exists, and, for a required relation, how many have a NULL reference. Scans the child tables, with the caller''s privileges.';
"#)]
fn count_leftovers(
    relation: Option<String>,
) -> Result<TableIterator<'static, (String, pg_sys::Oid, i64, i64)>, ErrorReport> {
    crate::api::ensure_schema_current().map_err(report)?;
    let rows = declared::leftovers::count(relation.as_deref()).map_err(report)?;
    Ok(TableIterator::new(rows))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.leftovers(relation text, max_rows bigint DEFAULT 100)
RETURNS TABLE(reason text, "row" jsonb)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'leftovers_wrapper';
COMMENT ON FUNCTION uproot.leftovers(text, bigint) IS
'The child rows of a declared relation that were left behind (reason: missing parent, or null reference for a required relation), as jsonb, at most max_rows, in primary-key order.';
"#)]
fn leftovers(
    relation: Option<String>,
    max_rows: Option<i64>,
) -> Result<TableIterator<'static, (String, pgrx::JsonB)>, ErrorReport> {
    let relation = given(relation, "relation", "Name a declared relation.").map_err(report)?;
    crate::api::ensure_schema_current().map_err(report)?;
    let rows = declared::leftovers::list(&relation, max_rows.unwrap_or(100)).map_err(report)?;
    Ok(TableIterator::new(rows))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.leftovers_predicate(relation text)
RETURNS text
LANGUAGE c STABLE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'leftovers_predicate_wrapper';
COMMENT ON FUNCTION uproot.leftovers_predicate(text) IS
'A predicate over the child table of a declared relation that matches its leftover rows: pass it to uproot.create_job (root: the child table) to sweep them, whole families each, by purge or archive.';
"#)]
fn leftovers_predicate(relation: Option<String>) -> Result<String, ErrorReport> {
    let relation = given(relation, "relation", "Name a declared relation.").map_err(report)?;
    crate::api::ensure_schema_current().map_err(report)?;
    declared::leftovers::predicate(&relation).map_err(report)
}

/// The arguments of declare_owned and drop_owned, both required; the schema must be current.
fn owned_args(
    child: Option<pg_sys::Oid>,
    via: Option<String>,
) -> Result<(pg_sys::Oid, String), ErrorReport> {
    let child = given(
        child,
        "child",
        "Name the table whose rows own their parents.",
    )
    .map_err(report)?;
    let via = given(
        via,
        "via",
        "Name the foreign key (or declared relation) of child.",
    )
    .map_err(report)?;
    crate::api::ensure_schema_current().map_err(report)?;
    Ok((child, via))
}
