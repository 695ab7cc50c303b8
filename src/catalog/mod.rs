//! Loads the FK graph with one catalog query and caches it per backend. Any relcache
//! invalidation of a cached relation (ALTER TABLE, ADD/DROP CONSTRAINT, DROP, rename, ...) or any
//! schema change marks the cache stale, and invalidations are accepted before every lookup, so a
//! stale graph is never used.

use crate::error::UprootError;
use crate::graph::model::Catalog;
use crate::graph::{FamilyGraph, Options};
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::collections::HashSet;
use std::rc::Rc;

const CATALOG_SQL: &str = include_str!("../../sql/catalog.sql");

thread_local! {
    static CACHED: RefCell<Option<Rc<Catalog>>> = const { RefCell::new(None) };
    static CACHED_JSON: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Relations in the cached catalog; read by the invalidation callback.
    static KNOWN: RefCell<HashSet<u32>> = RefCell::new(HashSet::new());
    static STALE: Cell<bool> = const { Cell::new(true) };
    static LOADS: Cell<u64> = const { Cell::new(0) };
    /// Family graphs of the cached catalog, by root and options.
    static GRAPHS: RefCell<HashMap<(u32, Options), Rc<FamilyGraph>>> = RefCell::new(HashMap::new());
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relid = relid.to_u32();
    let known = KNOWN.with(|k| k.try_borrow().map(|k| k.contains(&relid)).unwrap_or(true));
    if relid == 0 || known {
        STALE.with(|s| s.set(true));
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn syscache_changed(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    STALE.with(|s| s.set(true));
}

/// Called from `_PG_init`: watch for DDL.
pub fn register_invalidation_callbacks() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0usize));
        // schema renames change qualified names; new FKs add pg_constraint rows
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
            Some(syscache_changed),
            pg_sys::Datum::from(0usize),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::CONSTROID as i32,
            Some(syscache_changed),
            pg_sys::Datum::from(0usize),
        );
    }
}

/// How many times this backend has read the catalog (for tests of the cache).
pub fn load_count() -> u64 {
    LOADS.with(|l| l.get())
}

fn catalog_sql() -> String {
    if cfg!(any(feature = "pg13", feature = "pg14")) {
        // ON DELETE SET NULL (cols) arrived in PostgreSQL 15
        CATALOG_SQL.replace(
            "con.confdelsetcols,",
            "NULL::pg_catalog.int2[] AS confdelsetcols,",
        )
    } else {
        CATALOG_SQL.to_string()
    }
}

/// The catalog as JSON text. Read-only (no transaction ID is taken, so graph() and preview()
/// work on a standby), through a kept plan, so a reload costs execution only.
fn load_json(root: pg_sys::Oid) -> Result<String, UprootError> {
    let sql = format!("SELECT ({})::pg_catalog.text", catalog_sql());
    let json: Option<String> = Spi::connect_mut(|client| {
        crate::exec::spi::query(false, client, &sql, &[root.into()])
            .first()
            .get::<String>(1)
    })
    .map_err(UprootError::Catalog)?;
    LOADS.with(|l| l.set(l.get() + 1));
    json.ok_or_else(|| UprootError::Catalog("no result".into()))
}

/// The catalog, from the cache when it is fresh and knows `root`.
pub fn get(root: pg_sys::Oid) -> Result<Rc<Catalog>, UprootError> {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if !STALE.with(|s| s.get()) {
        if let Some(cat) = CACHED.with(|c| c.borrow().clone()) {
            if cat.relations.contains_key(&root.to_u32()) {
                return Ok(cat);
            }
        }
    }
    // Clear the flag first: an invalidation that arrives during the load marks it stale again.
    STALE.with(|s| s.set(false));
    let json = load_json(root)?;
    // ANALYZE and VACUUM invalidate relations too; when nothing we read changed, keep the graph
    if let Some(cat) = CACHED_JSON.with(|c| {
        (c.borrow().as_deref() == Some(json.as_str()))
            .then(|| CACHED.with(|c| c.borrow().clone()))
            .flatten()
    }) {
        return Ok(cat);
    }
    let cat = Rc::new(Catalog::from_json(&json).map_err(|e| UprootError::Catalog(e.to_string()))?);
    GRAPHS.with(|g| g.borrow_mut().clear());
    KNOWN.with(|k| *k.borrow_mut() = cat.relations.keys().copied().collect());
    CACHED.with(|c| *c.borrow_mut() = Some(cat.clone()));
    CACHED_JSON.with(|c| *c.borrow_mut() = Some(json));
    Ok(cat)
}

/// Graphs kept at most; past that the cache starts afresh.
const GRAPH_CACHE_LIMIT: usize = 256;

/// The catalog and the family graph of `root` under `opts`, the graph built once per catalog.
pub fn family(
    root: pg_sys::Oid,
    opts: &Options,
) -> Result<(Rc<Catalog>, Rc<FamilyGraph>), UprootError> {
    let cat = get(root)?;
    let key = (root.to_u32(), opts.clone());
    if let Some(g) = GRAPHS.with(|g| g.borrow().get(&key).cloned()) {
        return Ok((cat, g));
    }
    let g = Rc::new(crate::graph::build(&cat, root.to_u32(), opts)?);
    GRAPHS.with(|graphs| {
        let mut graphs = graphs.borrow_mut();
        if graphs.len() >= GRAPH_CACHE_LIMIT {
            graphs.clear();
        }
        graphs.insert(key, g.clone());
    });
    Ok((cat, g))
}
