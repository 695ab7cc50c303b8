//! Loads the FK graph from the system caches (`load`) and caches it per backend.
//!
//! A load reads the closure of one root (`load::closure`: the tables its families may reach),
//! not the whole database: the first call in a session pays for its own tables only, and DDL
//! or ANALYZE elsewhere does not throw the cache away. A catalog serves every root in its
//! closure; a backend keeps a few (`CATALOGS_KEPT`), the most recently loaded last.
//!
//! Any relcache invalidation of a cached relation (ALTER TABLE, ADD/DROP CONSTRAINT, DROP,
//! rename, ...), any constraint change and any schema change moves a generation counter on.
//! A cached catalog is valid only at the generation its load started at, so it is valid only
//! after a load that completed and saw everything invalidated before it began: an error or a
//! cancel anywhere in a load leaves the old entry invalid, never stale. The catalog is read with
//! the latest snapshot, so it agrees with PostgreSQL's own caches and foreign-key checks even
//! under REPEATABLE READ.
//!
//! A call that changes rows is guarded (`guard`): if the family's foreign keys changed while it
//! ran, it fails with a 40001 error that says to retry instead of acting on an outdated graph.

use crate::error::UprootError;
use crate::graph::model::Catalog;
use crate::graph::{FamilyGraph, Options};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

mod load;

/// The catalog as one query: no longer how the catalog is read, but the oracle that
/// `uproot.debug_check_catalog` compares the loader with.
const CATALOG_SQL: &str = include_str!("../../sql/catalog.sql");

/// The catalog query for this server version: NOT ENFORCED foreign keys (conenforced) arrived in
/// PostgreSQL 18; before, every foreign key is enforced.
fn catalog_sql() -> String {
    if cfg!(any(feature = "pg15", feature = "pg16", feature = "pg17")) {
        CATALOG_SQL.replace("con.conenforced", "true AS conenforced")
    } else {
        CATALOG_SQL.to_string()
    }
}

/// One loaded catalog and what was derived from it.
struct Cached {
    /// The generation at which the load that produced this entry started.
    generation: u64,
    catalog: Rc<Catalog>,
    /// The roots this catalog serves: the closure it was loaded for.
    closure: BTreeSet<u32>,
    /// Relations in the catalog; read by the invalidation callback.
    known: HashSet<u32>,
    /// Family graphs of this catalog, by root and options.
    graphs: HashMap<(u32, Options), Rc<FamilyGraph>>,
}

/// Catalogs kept per backend (of different closures); past that the oldest is dropped.
const CATALOGS_KEPT: usize = 8;

thread_local! {
    static CACHE: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
    /// Moves on with every invalidation that may concern a cached catalog.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    static LOADS: Cell<u64> = const { Cell::new(0) };
}

/// `f` of the cached entry that holds `cat`, if any.
fn with_entry<T>(cat: &Catalog, f: impl FnOnce(&mut Cached) -> T) -> Option<T> {
    CACHE.with(|c| {
        c.borrow_mut()
            .iter_mut()
            .find(|e| std::ptr::eq(Rc::as_ptr(&e.catalog), cat))
            .map(f)
    })
}

fn invalidate() {
    GENERATION.with(|g| g.set(g.get() + 1));
}

fn generation() -> u64 {
    GENERATION.with(|g| g.get())
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relid = relid.to_u32();
    // relid 0 means "every relation"; a cache busy elsewhere counts as knowing the relation
    let known = CACHE.with(|c| {
        c.try_borrow()
            .map(|c| c.iter().any(|e| e.known.contains(&relid)))
            .unwrap_or(true)
    });
    if relid == 0 || known {
        invalidate();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn syscache_changed(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    invalidate();
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

/// The catalog as the query in `sql/catalog.sql` returns it (JSON text), read with the latest
/// snapshot through a kept plan: the oracle of `uproot.debug_check_catalog`. Read-only: no
/// transaction ID is taken, so the check works on a standby too.
///
/// Planned without JIT: on a database with many catalog rows the query's estimated cost passes
/// `jit_above_cost`, and compiling it took longer (about 300 ms) than running it. The caller's
/// `jit` is back when the load returns, fails or is cancelled.
fn load_json(roots: &[u32]) -> Result<String, UprootError> {
    let sql = format!("SELECT ({})::pg_catalog.text", catalog_sql());
    let caller_jit = unsafe { pg_sys::jit_enabled };
    let json = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        unsafe { pg_sys::jit_enabled = false };
        Spi::connect_mut(|client| {
            let roots: Vec<pg_sys::Oid> = roots.iter().map(|r| pg_sys::Oid::from(*r)).collect();
            crate::spi::query_latest(client, &sql, &[roots.into()])
                .first()
                .value::<String>(1, "the catalog")
        })
    }))
    .finally(move || unsafe { pg_sys::jit_enabled = caller_jit })
    .execute()?;
    Ok(json)
}

/// The catalog, read from the system caches. With `uproot.debug_check_catalog` on, it is also
/// read with the catalog query, and any difference is an internal error naming the first one.
fn load(roots: &[u32]) -> Result<(Catalog, BTreeSet<u32>), UprootError> {
    let (mut cat, closure) = load::load(roots)?;
    LOADS.with(|l| l.set(l.get() + 1));
    crate::debug::fail_point("catalog_load");
    if crate::debug::fail_at_is(crate::debug::CATALOG_DIFFERS) {
        // one wrong fact, for the test that shows the check catches it
        if let Some(r) = roots.first().and_then(|root| cat.relations.get_mut(root)) {
            r.has_rules = !r.has_rules;
        }
    }
    if crate::debug::check_catalog() {
        let expected =
            Catalog::from_json(&load_json(roots)?).map_err(|e| UprootError::CatalogUnreadable {
                said: e.to_string(),
            })?;
        if let Some(difference) = cat.first_difference(&expected) {
            return Err(UprootError::Internal {
                what: format!(
                    "uproot.debug_check_catalog: the catalog read from the system caches is not the catalog query's: {difference}"
                ),
            });
        }
    }
    Ok((cat, closure))
}

/// A cached catalog that is valid and serves every one of `roots`.
fn cached(roots: &[u32]) -> Option<Rc<Catalog>> {
    let now = generation();
    CACHE.with(|c| {
        c.borrow()
            .iter()
            .rev()
            .find(|e| e.generation == now && roots.iter().all(|r| e.closure.contains(r)))
            .map(|e| e.catalog.clone())
    })
}

/// The catalog, from the cache when a valid one serves `root`.
pub fn get(root: pg_sys::Oid) -> Result<Rc<Catalog>, UprootError> {
    get_covering(&[root.to_u32()])
}

/// A catalog that serves every one of `roots` (a restore's: the batch's root and every table
/// it archived, even one a dropped foreign key no longer links to the root), from the cache
/// when a valid one does.
pub fn get_covering(roots: &[u32]) -> Result<Rc<Catalog>, UprootError> {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    crate::debug::fail_point("invalidation");
    if let Some(cat) = cached(roots) {
        return Ok(cat);
    }
    // Invalidations that arrive from here on move the generation past this one, so what this
    // load stores is valid only if none did.
    let started = generation();
    let (loaded, closure) = load(roots)?;
    // ANALYZE and VACUUM invalidate relations too; when nothing we read changed, the cached
    // catalog and its graphs are as good as new.
    let same = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let e = c
            .iter_mut()
            .find(|e| e.closure == closure && *e.catalog == loaded)?;
        e.generation = started;
        Some(e.catalog.clone())
    });
    if let Some(cat) = same {
        return Ok(cat);
    }
    let cat = Rc::new(loaded);
    crate::debug::fail_point("catalog_parse");
    let entry = Cached {
        generation: started,
        catalog: cat.clone(),
        closure,
        known: cat.relations.keys().copied().collect(),
        graphs: HashMap::new(),
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        // an entry for the same closure is out of date; past the limit, the oldest goes
        c.retain(|e| e.closure != entry.closure);
        if c.len() >= CATALOGS_KEPT {
            c.remove(0);
        }
        c.push(entry);
    });
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
    let hit = with_entry(&cat, |e| e.graphs.get(&key).cloned()).flatten();
    if let Some(g) = hit {
        return Ok((cat, g));
    }
    let g = Rc::new(crate::graph::build(&cat, root.to_u32(), opts)?);
    crate::debug::fail_point("graph_build");
    with_entry(&cat, |e| {
        if e.graphs.len() >= GRAPH_CACHE_LIMIT {
            e.graphs.clear();
        }
        e.graphs.insert(key, g.clone());
    });
    Ok((cat, g))
}

/// The generation `cat` was loaded at; 0 (older than any) when it is no longer the cached one.
fn loaded_at(cat: &Rc<Catalog>) -> u64 {
    with_entry(cat, |e| e.generation).unwrap_or(0)
}

/// Whether no invalidation that may concern `cat` arrived since it was read: then every fact it
/// holds about `relations` (foreign keys, triggers, rules, row-level security) is still true.
/// Invalidations are taken in first, so a change committed before this backend's locks on those
/// relations were granted is seen. False for a relation the catalog does not hold (the callback
/// does not watch it) or for a catalog that is no longer the cached one.
pub fn unchanged_since_read(cat: &Catalog, relations: &[u32]) -> bool {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let now = generation();
    relations.iter().all(|r| cat.relations.contains_key(r))
        && with_entry(cat, |e| e.generation == now).unwrap_or(false)
}

/// Errors that a concurrent schema change can cause: integrity violations (a new foreign key's
/// check) and syntax or access errors (a table or column renamed or dropped).
fn schema_sensitive(code: PgSqlErrorCode) -> bool {
    let sqlstate = crate::error::sqlstate_text(code as i32);
    sqlstate.starts_with("23") || sqlstate.starts_with("42")
}

/// Run `operation`, which uses `cat` and `g` (the family of `root` under `opts`), and make sure
/// it did not act on foreign keys that changed while it ran: either the call saw every FK, or
/// it fails with `CatalogChanged` (40001) so that the caller retries.
///
/// Nothing is checked unless an invalidation arrived since `cat` was read. Then:
/// - an ERROR raised inside the operation (a new FK's check, a dropped table) that such a
///   change can cause becomes `CatalogChanged`, PostgreSQL's message its detail: the
///   transaction is failing, so the catalog cannot be read again to be sure;
/// - an uproot error, or success when `writes` (a new CASCADE FK would have deleted rows the
///   call did not count or archive), reads the catalog again: if the family is not the same,
///   the call fails with `CatalogChanged`; otherwise it stands, and the new catalog is cached.
pub fn guard<T>(
    root: pg_sys::Oid,
    opts: &Options,
    cat: &Rc<Catalog>,
    g: &FamilyGraph,
    writes: bool,
    operation: impl FnOnce() -> Result<T, UprootError>,
) -> Result<T, UprootError> {
    let loaded = loaded_at(cat);
    let root_name = cat
        .relation(root.to_u32())
        .map(|r| r.display_name())
        .unwrap_or_default();
    let caught_root = root_name.clone();
    let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(operation))
        .catch_others(move |e| {
            let report = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
                CaughtError::RustPanic { .. } => e.rethrow(),
            };
            if generation() != loaded && schema_sensitive(report.sql_error_code()) {
                crate::report::raise(UprootError::CatalogChanged {
                    root: caught_root.clone(),
                    said: Some(report.message().to_string()),
                })
            }
            e.rethrow()
        })
        .execute();
    if result.is_err() || writes {
        unsafe { pg_sys::AcceptInvalidationMessages() };
        if generation() != loaded {
            let (now_cat, now_g) = family(root, opts)?;
            if !crate::graph::same_family(cat, g, &now_cat, &now_g) {
                return Err(UprootError::CatalogChanged {
                    root: root_name,
                    said: result.err().map(|e| e.message()),
                });
            }
        }
    }
    result
}
