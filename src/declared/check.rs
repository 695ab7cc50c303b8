//! The check trigger of a declared relation (`check_trigger => true`): a new or changed reference
//! of the child must name an existing parent row, which it locks `FOR KEY SHARE`, so that it
//! waits for a purge that holds the parent and fails once the parent is gone. MATCH SIMPLE: a
//! NULL column skips the check.
//!
//! As PostgreSQL's own RI check does (ri_triggers.c, `ri_PerformCheck`), the lookup runs as the
//! owner of the parent table, with row-level security off for it: the inserting role needs no
//! privilege on the parent, and no policy hides a parent from the check. Only the fixed lookup
//! runs as the owner: the parent's key columns compared with the new row's values, passed as
//! parameters. The declaration is read as the inserting role.

use super::declaration_error;
use crate::error::UprootError;
use crate::graph::model::quote_ident;
use crate::privileged::as_role;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::ffi::CStr;
use std::num::NonZeroUsize;

/// What the trigger needs of its declaration.
struct Declared {
    /// The child table (or partition) the trigger fired on, schema-qualified.
    table: String,
    parent_qualified: String,
    parent_owner: pg_sys::Oid,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
}

/// The declaration `name`, if it still exists and `relid` is its child (or a partition of it:
/// a trigger on a partitioned table is cloned to its partitions).
fn declared(name: &str, relid: pg_sys::Oid) -> Result<Option<Declared>, UprootError> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT uproot_internal.quoted_name($2), uproot_internal.quoted_name(d.parent::pg_catalog.oid), c.relowner, \
                    d.child_columns, d.parent_columns \
               FROM uproot.declared_relations d \
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.parent::pg_catalog.oid \
              WHERE d.name OPERATOR(pg_catalog.=) $1 \
                AND (d.child::pg_catalog.oid OPERATOR(pg_catalog.=) $2 \
                     OR d.child::pg_catalog.oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors($2) a))",
            None,
            &[DatumWithOid::from(name), DatumWithOid::from(relid)],
        )?;
        let mut out = None;
        for r in rows {
            out = Some(Declared {
                table: r.get::<String>(1)?.unwrap_or_default(),
                parent_qualified: r.get::<String>(2)?.unwrap_or_default(),
                parent_owner: r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                child_columns: r.get::<Vec<String>>(4)?.unwrap_or_default(),
                parent_columns: r.get::<Vec<String>>(5)?.unwrap_or_default(),
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(super::spi_failed)
}

/// The trigger's event, relation, first argument and the row to check.
struct Call {
    relid: pg_sys::Oid,
    name: String,
    tuple: *mut pg_sys::HeapTupleData,
    tupdesc: pg_sys::TupleDesc,
}

/// # Safety
/// `fcinfo` is the call of a function; a trigger call carries its TriggerData.
unsafe fn trigger_call(fcinfo: pg_sys::FunctionCallInfo) -> Result<Call, UprootError> {
    let context = (*fcinfo).context;
    let misuse = |why: &str| {
        declaration_error(
            "39P01",
            format!("check_declared_reference {why}"),
            None,
            "It is the check trigger uproot.declare_relation(..., check_trigger => true) installs; do not call or attach it by hand.",
        )
    };
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        return Err(misuse("was not called as a trigger"));
    }
    let td = context as *mut pg_sys::TriggerData;
    let event = (*td).tg_event;
    let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
    if event & pg_sys::TRIGGER_EVENT_ROW == 0
        || (op != pg_sys::TRIGGER_EVENT_INSERT && op != pg_sys::TRIGGER_EVENT_UPDATE)
    {
        return Err(misuse("must fire for each row on INSERT or UPDATE"));
    }
    let trigger = (*td).tg_trigger;
    if (*trigger).tgnargs < 1 {
        return Err(misuse("needs the declared relation's name as its argument"));
    }
    let name = CStr::from_ptr(*(*trigger).tgargs)
        .to_string_lossy()
        .into_owned();
    let rel = (*td).tg_relation;
    let relid = (*rel).rd_id;
    let tuple = if op == pg_sys::TRIGGER_EVENT_UPDATE {
        (*td).tg_newtuple
    } else {
        (*td).tg_trigtuple
    };
    Ok(Call {
        relid,
        name,
        tuple,
        tupdesc: (*rel).rd_att,
    })
}

/// The new row's value of each child column, with its type; None when one is NULL.
///
/// # Safety
/// `call.tuple` and `call.tupdesc` come from the running trigger.
unsafe fn key_of(
    call: &Call,
    d: &Declared,
) -> Result<Option<Vec<(pg_sys::Datum, pg_sys::Oid)>>, UprootError> {
    let desc = pgrx::PgTupleDesc::from_pg_unchecked(call.tupdesc);
    let mut key = Vec::new();
    for col in &d.child_columns {
        let found = (0..desc.len()).find_map(|i| {
            let a = desc.get(i)?;
            (!a.is_dropped() && a.name() == col.as_str()).then_some((i + 1, a.type_oid().value()))
        });
        let Some((attno, typ)) = found else {
            return Err(declaration_error(
                "42703",
                format!(
                    "column {} of table {} named by declared relation {} does not exist",
                    quote_ident(col),
                    d.table,
                    call.name
                ),
                None,
                "The column was renamed or dropped after the declaration: declare the relation again (uproot.drop_relation, then uproot.declare_relation).",
            ));
        };
        let attno = NonZeroUsize::new(attno).expect("attribute numbers start at 1");
        match pgrx::heap_getattr_raw(call.tuple, attno, call.tupdesc) {
            Some(datum) => key.push((datum, typ)),
            None => return Ok(None),
        }
    }
    Ok(Some(key))
}

/// Does the parent row exist? Locks it `FOR KEY SHARE`, as the parent's owner.
fn parent_exists(d: &Declared, key: &[(pg_sys::Datum, pg_sys::Oid)]) -> Result<bool, UprootError> {
    let conditions: Vec<String> = d
        .parent_columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("p.{} OPERATOR(pg_catalog.=) ${}", quote_ident(c), i + 1))
        .collect();
    let lookup = format!(
        "SELECT EXISTS (SELECT FROM {} p WHERE {} FOR KEY SHARE OF p)",
        d.parent_qualified,
        conditions.join(" AND ")
    );
    // SAFETY: each datum is the new row's value of a column of that type
    let args: Vec<DatumWithOid> = key
        .iter()
        .map(|(datum, typ)| unsafe { DatumWithOid::new(*datum, *typ) })
        .collect();
    // a volatile lookup (a fresh snapshot), as the RI check's; RLS is off for the owner
    as_role(d.parent_owner, pg_sys::SECURITY_NOFORCE_RLS, || {
        Spi::connect_mut(|client| {
            client
                .update(&lookup, None, &args)?
                .first()
                .get_one::<bool>()
        })
    })
    .map(|found| found.unwrap_or(false))
    .map_err(super::spi_failed)
}

/// The check of one row (the trigger function uproot_internal.check_declared_reference, in
/// src/api/declared.rs).
pub fn check(fcinfo: pg_sys::FunctionCallInfo) -> Result<(), UprootError> {
    let call = unsafe { trigger_call(fcinfo) }?;
    // the declaration is gone (its trigger goes with uproot.drop_relation())
    let Some(d) = declared(&call.name, call.relid)? else {
        return Ok(());
    };
    let Some(key) = (unsafe { key_of(&call, &d) })? else {
        return Ok(());
    };
    if parent_exists(&d, &key)? {
        return Ok(());
    }
    Err(declaration_error(
        "23503",
        format!(
            "insert or update on table {} violates declared relation {}",
            d.table, call.name
        ),
        Some(format!(
            "Key ({}) is not present in table {}.",
            d.child_columns.join(", "),
            d.parent_qualified
        )),
        "Insert the parent row first, or reference one that exists.",
    ))
}
