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
//!
//! Also as ri_triggers.c does, what a trigger needs of its declaration, and the lookup's plan
//! (kept; PostgreSQL's plan cache revalidates it), are cached per backend by the trigger's OID
//! and the relation it fired on (a re-declared relation has a new trigger). Any relcache
//! invalidation of a relation an entry names (rename, column change, owner change, DDL, the
//! declaration dropped or made) and any schema change drop every entry. An entry is stored only
//! once built, and only if nothing was invalidated while it was built: an error or a cancel
//! leaves nothing behind, never a stale entry.

use super::declaration_error;
use crate::error::UprootError;
use crate::graph::model::quote_ident;
use crate::privileged::as_role;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::num::NonZeroUsize;
use std::rc::Rc;

/// What the trigger needs of its declaration, with the lookup of the parent row.
struct Declared {
    /// The child table (or partition) the trigger fired on, schema-qualified.
    table: String,
    parent_qualified: String,
    parent_owner: pg_sys::Oid,
    child_columns: Vec<String>,
    /// Attribute number and type of each child column in the relation the trigger fired on.
    /// None for a column that is not there.
    key: Vec<Option<(NonZeroUsize, pg_sys::Oid)>>,
    parent_columns: Vec<String>,
    /// `SELECT EXISTS (... FOR KEY SHARE OF p)`, kept; its parameters are the key's types.
    /// Prepared for the first row whose key has no NULL, as the uncached check did.
    lookup: OnceCell<OwnedPreparedStatement>,
    /// The relations whose change makes this entry stale: the one fired on, the declaration's
    /// child and its parent.
    relations: [u32; 3],
}

/// The entries, by trigger OID and the relation the trigger fired on.
#[derive(Default)]
struct Cache {
    entries: HashMap<(u32, u32), Rc<Declared>>,
    /// Every relation an entry names (read by the invalidation callback).
    watched: HashSet<u32>,
    /// The generation the entries were built at.
    generation: u64,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    /// Moves on with every invalidation that may concern a cached entry.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// Entries being built: their relations are not watched yet, so every invalidation counts.
    static BUILDING: Cell<u32> = const { Cell::new(0) };
}

/// Counts a build while it runs, also when it fails.
struct Building;

impl Building {
    fn start() -> Self {
        BUILDING.with(|b| b.set(b.get() + 1));
        Building
    }
}

impl Drop for Building {
    fn drop(&mut self) {
        BUILDING.with(|b| b.set(b.get() - 1));
    }
}

fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

fn invalidate() {
    GENERATION.with(|g| g.set(g.get() + 1));
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // relid 0 means "every relation"; a cache busy elsewhere counts as watching the relation
    let watched = CACHE.with(|c| {
        c.try_borrow()
            .map(|c| c.watched.contains(&relid.to_u32()))
            .unwrap_or(true)
    });
    let building = BUILDING.with(|b| b.get()) > 0;
    if relid == pg_sys::InvalidOid || watched || building {
        invalidate();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn namespace_changed(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    // a schema renamed: the qualified names in messages change
    invalidate();
}

/// Called from `_PG_init`: watch for DDL on the relations of cached entries.
pub fn register_invalidation_callbacks() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0usize));
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
            Some(namespace_changed),
            pg_sys::Datum::from(0usize),
        );
    }
}

/// The cached entry of (`trigger`, `relid`), if still valid. Stale entries are dropped here,
/// never in the callback: a plan may be running when an invalidation arrives (an outer call
/// still holding an entry keeps it alive through its Rc).
fn cached(trigger: pg_sys::Oid, relid: pg_sys::Oid) -> Option<Rc<Declared>> {
    let now = generation();
    let stale = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.generation == now {
            return None;
        }
        c.generation = now;
        c.watched.clear();
        Some(std::mem::take(&mut c.entries))
    });
    // freeing the plans (SPI_freeplan) must not run under a borrow
    drop(stale);
    CACHE.with(|c| {
        c.borrow()
            .entries
            .get(&(trigger.to_u32(), relid.to_u32()))
            .cloned()
    })
}

/// Keep `d` if nothing was invalidated since `started`, the generation its build began at.
fn store(trigger: pg_sys::Oid, relid: pg_sys::Oid, started: u64, d: &Rc<Declared>) {
    if generation() != started {
        return;
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.generation != started {
            return;
        }
        c.watched.extend(d.relations);
        c.entries
            .insert((trigger.to_u32(), relid.to_u32()), d.clone());
    });
}

/// The declaration `name`, if it still exists and the relation of `call` is its child (or a
/// partition of it: a trigger on a partitioned table is cloned to its partitions), without its
/// lookup.
fn declared(call: &Call) -> Result<Option<Declared>, UprootError> {
    let read = Spi::connect(|client| {
        let rows = client.select(
            "SELECT uproot_internal.quoted_name($2), uproot_internal.quoted_name(d.parent::pg_catalog.oid), c.relowner, \
                    d.child_columns, d.parent_columns, d.child::pg_catalog.oid, d.parent::pg_catalog.oid \
               FROM uproot.declared_relations d \
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.parent::pg_catalog.oid \
              WHERE d.name OPERATOR(pg_catalog.=) $1 \
                AND (d.child::pg_catalog.oid OPERATOR(pg_catalog.=) $2 \
                     OR d.child::pg_catalog.oid IN (SELECT a.relid FROM pg_catalog.pg_partition_ancestors($2) a))",
            None,
            &[DatumWithOid::from(call.name.as_str()), DatumWithOid::from(call.relid)],
        )?;
        let mut out = None;
        for r in rows {
            out = Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<Vec<String>>(4)?.unwrap_or_default(),
                r.get::<Vec<String>>(5)?.unwrap_or_default(),
                r.get::<pg_sys::Oid>(6)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<pg_sys::Oid>(7)?.unwrap_or(pg_sys::InvalidOid),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(super::spi_failed)?;
    let Some((table, parent_qualified, parent_owner, child_columns, parent_columns, child, parent)) =
        read
    else {
        return Ok(None);
    };
    let key = unsafe { key_columns(call, &child_columns) };
    Ok(Some(Declared {
        table,
        parent_qualified,
        parent_owner,
        child_columns,
        key,
        parent_columns,
        lookup: OnceCell::new(),
        relations: [call.relid.to_u32(), child.to_u32(), parent.to_u32()],
    }))
}

/// The trigger's event, relation, first argument and the row to check.
struct Call {
    trigger: pg_sys::Oid,
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
        trigger: (*trigger).tgoid,
        relid,
        name,
        tuple,
        tupdesc: (*rel).rd_att,
    })
}

/// The attribute number and type of each child column in the relation the trigger fired on;
/// None for one that is not there (renamed or dropped: an error for a row that reaches it).
///
/// # Safety
/// `call.tupdesc` comes from the running trigger.
unsafe fn key_columns(
    call: &Call,
    child_columns: &[String],
) -> Vec<Option<(NonZeroUsize, pg_sys::Oid)>> {
    let desc = pgrx::PgTupleDesc::from_pg_unchecked(call.tupdesc);
    child_columns
        .iter()
        .map(|col| {
            (0..desc.len()).find_map(|i| {
                let a = desc.get(i)?;
                (!a.is_dropped() && a.name() == col.as_str()).then(|| {
                    let attno = NonZeroUsize::new(i + 1).expect("attribute numbers start at 1");
                    (attno, a.type_oid().value())
                })
            })
        })
        .collect()
}

/// The new row's value of each child column, with its type; None when one is NULL.
///
/// # Safety
/// `call.tuple` and `call.tupdesc` come from the running trigger, whose relation `d` was built
/// for (a change of its columns invalidates `d`).
unsafe fn key_of<'a>(
    call: &Call,
    d: &Declared,
) -> Result<Option<Vec<DatumWithOid<'a>>>, UprootError> {
    let mut key = Vec::with_capacity(d.key.len());
    for (col, found) in d.child_columns.iter().zip(&d.key) {
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
        match pgrx::heap_getattr_raw(call.tuple, *attno, call.tupdesc) {
            // the datum is the new row's value of a column of that type
            Some(datum) => key.push(DatumWithOid::new(datum, *typ)),
            None => return Ok(None),
        }
    }
    Ok(Some(key))
}

/// Prepare and keep the lookup of the parent row, as the parent's owner (the plan records the
/// role row-level security was decided for).
fn prepare_lookup(d: &Declared) -> Result<OwnedPreparedStatement, UprootError> {
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
    let types: Vec<PgOid> = d
        .key
        .iter()
        .flatten()
        .map(|(_, typ)| PgOid::from(*typ))
        .collect();
    as_role(d.parent_owner, pg_sys::SECURITY_NOFORCE_RLS, || {
        Spi::connect(|client| {
            // volatile (prepare_mut): each execution takes a fresh snapshot, as the RI check's
            Ok::<_, pgrx::spi::SpiError>(client.prepare_mut(lookup.as_str(), &types)?.keep())
        })
    })
    .map_err(super::spi_failed)
}

/// Does the parent row exist? Locks it `FOR KEY SHARE`, as the parent's owner.
fn parent_exists(d: &Declared, key: &[DatumWithOid]) -> Result<bool, UprootError> {
    if d.lookup.get().is_none() {
        // a nested call may have set it meanwhile: then this one is dropped (freed)
        let _ = d.lookup.set(prepare_lookup(d)?);
    }
    let lookup = d.lookup.get().expect("the lookup was just prepared");
    // RLS is off for the owner
    as_role(d.parent_owner, pg_sys::SECURITY_NOFORCE_RLS, || {
        Spi::connect_mut(|client| client.update(lookup, None, key)?.first().get_one::<bool>())
    })
    .map(|found| found.unwrap_or(false))
    .map_err(super::spi_failed)
}

/// The check of one row (the trigger function uproot_internal.check_declared_reference, in
/// src/api/declared.rs).
pub fn check(fcinfo: pg_sys::FunctionCallInfo) -> Result<(), UprootError> {
    let call = unsafe { trigger_call(fcinfo) }?;
    // changes committed by others before this row are seen, as by a fresh read
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let d = match cached(call.trigger, call.relid) {
        Some(d) => d,
        None => {
            let started = generation();
            let building = Building::start();
            // the declaration is gone (its trigger goes with uproot.drop_relation())
            let Some(d) = declared(&call)? else {
                return Ok(());
            };
            let d = Rc::new(d);
            crate::debug::fail_point("declared_check_build");
            store(call.trigger, call.relid, started, &d);
            drop(building);
            d
        }
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
