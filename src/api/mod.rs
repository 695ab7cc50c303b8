//! The SQL API: thin `#[pg_extern]` functions. Each checks its arguments, calls the layers below,
//! and returns a `Result`: an `UprootError` becomes an `ErrorReport` (`report::report`), which
//! pgrx raises with its SQLSTATE, detail and hint.
//!
//! The SQL declarations are written out so that `root` is a `regclass` and options have
//! defaults; a `regclass` is an `oid` datum, which is what the Rust side reads and returns.

// pgrx raises an `Err` with its own SQLSTATE only when it is an `ErrorReport` (not boxed), and
// the row types of RETURNS TABLE are spelled out in the signatures.
#![allow(clippy::result_large_err, clippy::type_complexity)]

use crate::catalog;
use crate::error::UprootError;
use crate::exec::{self, roots, Action, Mode, Touched};
use crate::graph::{self, model::Catalog, Disposition, FamilyGraph, Options};
use crate::plan::access::Operation;
use crate::plan::RootFilter;
use crate::predicate;
use crate::report::report;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::AnyElement;
use std::rc::Rc;

mod access;
mod declared;
mod explain;
mod uninstall;

/// The archive module behind exec's `Archiver`: exec runs the family's statements, the archive
/// module keeps the archive tables and the ledger.
pub(crate) struct ArchiveTables;

impl exec::Archiver for ArchiveTables {
    fn prepare(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        cat: &Catalog,
        root: u32,
        sources: &[u32],
    ) -> Result<Vec<crate::plan::archive::Prepared>, UprootError> {
        crate::archive::ensure_targets(client, cat, root, sources, false)
    }

    fn planned(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        cat: &Catalog,
        sources: &[u32],
    ) -> Result<Vec<crate::plan::archive::Target>, UprootError> {
        crate::archive::planned_targets(client, cat, sources)
    }

    fn open_batch(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        root: u32,
        root_name: &str,
        keys_json: Option<String>,
        predicate: Option<String>,
    ) -> Result<i64, UprootError> {
        crate::archive::open_batch(client, root, root_name, keys_json, predicate)
    }

    fn record_detached(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        batch: i64,
        child: u32,
        constraint: &str,
        changed: crate::spi::Rows,
        forget: &[String],
    ) {
        crate::archive::record_detached(client, batch, child, constraint, changed, forget)
    }

    fn archived_copies(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        cat: &Catalog,
        root: u32,
        filter: &RootFilter,
        args: &[pgrx::datum::DatumWithOid<'static>],
    ) -> Result<Vec<(i64, i64)>, UprootError> {
        crate::archive::erase::archived_copies(client, cat, root, filter, args, true)
    }

    fn close_batch(
        &self,
        client: &mut pgrx::spi::SpiClient<'_>,
        batch: i64,
        rows: &[(u32, u32, i64)],
        counts_json: String,
    ) {
        crate::archive::close_batch(client, batch, rows, counts_json)
    }
}

pub(crate) fn options(
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<Options, UprootError> {
    let mut stop = std::collections::BTreeSet::new();
    for o in stop_at.unwrap_or_default() {
        match o {
            Some(o) => {
                stop.insert(o.to_u32());
            }
            None => return Err(UprootError::InvalidArgument {
                argument: "stop_at".into(),
                message: "stop_at must not contain NULL".into(),
                hint: "List the tables to stop at, e.g. stop_at => array['audit_log']::regclass[]."
                    .into(),
            }),
        }
    }
    Ok(Options {
        respect_restrict: respect_restrict.unwrap_or(false),
        follow_set_null: follow_set_null.unwrap_or(false),
        stop_at: stop,
    })
}

pub(crate) fn root_oid(root: Option<pg_sys::Oid>) -> Result<pg_sys::Oid, UprootError> {
    root.ok_or_else(|| UprootError::InvalidArgument {
        argument: "root".into(),
        message: "root must not be NULL".into(),
        hint: "Name the table whose rows go, e.g. 'public.orders'.".into(),
    })
}

/// Catalog and family graph for one call, both cached per backend.
pub(crate) fn family(
    root: pg_sys::Oid,
    opts: &Options,
) -> Result<(Rc<Catalog>, Rc<FamilyGraph>), UprootError> {
    ensure_schema_current()?;
    catalog::family(root, opts)
}

thread_local! {
    /// The extension's SQL objects were found at this library's version (checked once).
    static SCHEMA_CURRENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// After a package upgrade and before `ALTER EXTENSION pg_uproot UPDATE`, the new library would
/// run against the old version's tables and functions: say so instead of failing obscurely.
pub(crate) fn ensure_schema_current() -> Result<(), UprootError> {
    if SCHEMA_CURRENT.with(|c| c.get()) {
        return Ok(());
    }
    let installed = crate::spi::required(
        Spi::get_one::<String>(
            "SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_uproot'",
        ),
        "the installed version of pg_uproot",
    )?;
    let library = env!("CARGO_PKG_VERSION");
    if installed != library {
        return Err(UprootError::ExtensionOutdated {
            installed,
            library: library.into(),
        });
    }
    SCHEMA_CURRENT.with(|c| c.set(true));
    Ok(())
}

pub(crate) enum Named {
    Keys(Option<AnyElement>),
    Predicate(Option<String>),
}

pub(crate) fn resolve_roots(
    cat: &Catalog,
    g: &FamilyGraph,
    named: Named,
    function: &str,
) -> Result<roots::Roots, UprootError> {
    let root = cat.relation(g.root).expect("root in catalog");
    match named {
        Named::Keys(k) => roots::from_keys(root, k, function),
        Named::Predicate(p) => {
            let checked = predicate::check(p.as_deref(), &root.display_name())?;
            Ok(roots::Roots {
                filter: RootFilter::Predicate(checked),
                args: Vec::new(),
            })
        }
    }
}

/// `max_roots` and `skip_locked` of the `_where` functions.
#[derive(Default, Clone, Copy)]
struct Batching {
    max_roots: Option<i32>,
    skip_locked: bool,
}

fn batching(max_roots: Option<i32>, skip_locked: Option<bool>) -> Batching {
    Batching {
        max_roots,
        skip_locked: skip_locked.unwrap_or(false),
    }
}

/// `max_roots`: NULL for no limit, else at least 1.
pub(crate) fn max_roots_arg(max_roots: Option<i32>) -> Result<Option<i64>, UprootError> {
    match max_roots {
        Some(n) if n < 1 => Err(UprootError::InvalidArgument {
            argument: "max_roots".into(),
            message: format!("max_roots must be at least 1, not {n}"),
            hint: "Pass NULL for no limit.".into(),
        }),
        other => Ok(other.map(i64::from)),
    }
}

fn operate(
    root: Option<pg_sys::Oid>,
    named: Named,
    opts: Result<Options, UprootError>,
    mode: Mode,
    function: &str,
    batching: Batching,
) -> Result<(Rc<Catalog>, Rc<FamilyGraph>, exec::Outcome), UprootError> {
    let Batching {
        max_roots,
        skip_locked,
    } = batching;
    let root = root_oid(root)?;
    let opts = opts?;
    let max_roots = max_roots_arg(max_roots)?;
    let (cat, g) = family(root, &opts)?;
    let predicate = match &named {
        Named::Predicate(p) => p.clone(),
        Named::Keys(_) => None,
    };
    let r = resolve_roots(&cat, &g, named, function)?;
    let keys_json = if mode == Mode::Archive && predicate.is_none() {
        Some(roots::keys_as_json(&r))
    } else {
        None
    };
    // a preview's rounds share the rows found so far (see exec::Request::taken)
    let taken: Option<exec::Taken> = (mode == Mode::Preview).then(Default::default);
    let req = exec::Request {
        filter: r.filter,
        root_args: r.args,
        mode,
        max_roots,
        skip_locked,
        keys_json,
        predicate,
        taken: taken.clone(),
        later_round: false,
    };
    let op = match mode {
        Mode::Preview => Operation::Preview,
        Mode::Purge => Operation::Purge,
        Mode::Archive => Operation::Archive,
    };
    // fails with 40001 if the family's foreign keys changed while it ran
    let mut outcome = catalog::guard(root, &opts, &cat, &g, mode != Mode::Preview, || {
        exec::run_operation(&cat, &g, req, &ArchiveTables)
    })
    .map_err(|e| access::with_missing_grants(e, &cat, &g, op))?;
    // owned parents the family's rows referenced go after it, as families of their own
    let owned = std::mem::take(&mut outcome.owned);
    if !owned.is_empty() {
        outcome.settled = exec::owned::settle(
            &opts,
            mode,
            (cat.clone(), g.clone()),
            owned,
            outcome.batch,
            taken,
            &ArchiveTables,
        )?;
    }
    Ok((cat, g, outcome))
}

type PreviewRow = (i32, pg_sys::Oid, String, i64, String, String);

/// Preview rows in tree order, one per (relation, action).
fn preview_rows(cat: &Catalog, g: &FamilyGraph, touched: Vec<Touched>) -> Vec<PreviewRow> {
    let mut out = Vec::new();
    for line in graph::tree_lines(cat, g) {
        for t in touched.iter().filter(|t| t.relation == line.relation) {
            let via: Vec<String> = g
                .edges
                .iter()
                .filter(|e| e.child == t.relation)
                .filter(|e| match (t.action, e.disposition) {
                    (Action::Deleted | Action::Archived, Disposition::Follow) => true,
                    (Action::Blocked, Disposition::Block(_)) => true,
                    (Action::Detached(a), Disposition::Detach(k)) => a == k,
                    _ => false,
                })
                .map(|e| cat.foreign_keys[e.fk].name.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let moved = t.action.moved();
            let via = if t.relation == g.root && moved && via.is_empty() {
                "root".to_string()
            } else if t.relation == g.root && moved {
                format!("root, {}", via.join(", "))
            } else {
                via.join(", ")
            };
            out.push((
                line.depth as i32,
                pg_sys::Oid::from(t.relation),
                t.action.as_str().to_string(),
                t.rows,
                via,
                line.label.clone(),
            ));
        }
    }
    out
}

/// The lines of one owned-parent operation that moved rows: its root is marked with the owned
/// edge that took it, and its label with "(owned)".
fn owned_lines(s: &exec::owned::OwnedOutcome) -> Vec<PreviewRow> {
    preview_rows(&s.cat, &s.g, s.outcome.touched.clone())
        .into_iter()
        .filter(|r| r.3 > 0)
        .map(|(d, rel, action, n, via, label)| {
            let via = if via == "root" {
                format!("owned via {}", s.via)
            } else {
                via
            };
            (d, rel, action, n, via, format!("{label} (owned)"))
        })
        .collect()
}

/// Preview lines, with the NOTICE about followed RESTRICT constraints for the family and for
/// each owned parent's family.
fn family_preview_rows_noticed(
    cat: &Catalog,
    g: &FamilyGraph,
    mut o: exec::Outcome,
) -> Vec<PreviewRow> {
    let settled = std::mem::take(&mut o.settled);
    let mut rows = preview_rows(cat, g, o.touched);
    notice_restrict_followed(cat, g, &rows);
    for s in &settled {
        let lines = owned_lines(s);
        notice_restrict_followed(&s.cat, &s.g, &lines);
        rows.extend(lines);
    }
    rows
}

/// What purge returns: the family's lines, then those of the owned parents that moved rows.
fn family_purge_rows(
    cat: &Catalog,
    g: &FamilyGraph,
    o: exec::Outcome,
) -> Vec<(pg_sys::Oid, String, i64)> {
    let mut rows = purge_rows(cat, g, o.touched);
    for s in &o.settled {
        let lines = purge_rows(&s.cat, &s.g, s.outcome.touched.clone());
        rows.extend(lines.into_iter().filter(|(_, _, n)| *n > 0));
    }
    rows
}

/// A NOTICE naming the ON DELETE RESTRICT constraints the previewed family goes through.
fn notice_restrict_followed(cat: &Catalog, g: &FamilyGraph, rows: &[PreviewRow]) {
    let family_rows = |rel: u32| {
        rows.iter()
            .filter(|r| r.1.to_u32() == rel && r.2 == Action::Deleted.as_str())
            .map(|r| r.3)
            .sum()
    };
    if let Some((message, hint)) = graph::restrict_notice(cat, g, family_rows) {
        pg_sys::panic::ErrorReport::new(PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, message, "")
            .set_hint(hint)
            .report(PgLogLevel::NOTICE);
    }
}

/// (relation, action, rows) in tree order, as `preview_rows` orders them, without the `via` and
/// label a preview shows (worked out per line against every edge: a broad family has hundreds).
fn purge_rows(
    cat: &Catalog,
    g: &FamilyGraph,
    touched: Vec<Touched>,
) -> Vec<(pg_sys::Oid, String, i64)> {
    let mut out = Vec::new();
    for line in graph::tree_lines(cat, g) {
        for t in touched.iter().filter(|t| t.relation == line.relation) {
            out.push((
                pg_sys::Oid::from(t.relation),
                t.action.as_str().to_string(),
                t.rows,
            ));
        }
    }
    out
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.preview(root regclass, keys anyelement, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(depth int, relation regclass, action text, "rows" bigint, via text, label text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'preview_wrapper';
COMMENT ON FUNCTION uproot.preview(regclass, anyelement, boolean, boolean, regclass[]) IS
'What purging the rows with these primary keys would delete, nullify or set to default: exact distinct counts per relation, read-only, no locks.';
"#)]
fn preview(
    root: Option<pg_sys::Oid>,
    keys: Option<AnyElement>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (i32, pg_sys::Oid, String, i64, String, String)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Keys(keys),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Preview,
        "uproot.preview",
        Batching::default(),
    )
    .map_err(report)?;
    let rows = family_preview_rows_noticed(&cat, &g, o);
    Ok(TableIterator::new(rows))
}

// The _where functions share one argument order: root, predicate, max_roots, then the options.
// Their C symbols changed with that order in 0.2.0 (`*_where_v2`), so that a 0.1.0 declaration
// still in place before ALTER EXTENSION ... UPDATE can never call them with the old layout.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot.preview_where(root regclass, predicate text, max_roots int DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(depth int, relation regclass, action text, "rows" bigint, via text, label text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'preview_where_v2_wrapper';
COMMENT ON FUNCTION uproot.preview_where(regclass, text, int, boolean, boolean, regclass[]) IS
'What purge_where would delete, nullify or set to default for the root rows matching the predicate (at most max_roots of them): exact distinct counts, read-only, no locks.';
"#)]
fn preview_where_v2(
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
    max_roots: Option<i32>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (i32, pg_sys::Oid, String, i64, String, String)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Predicate(predicate),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Preview,
        "uproot.preview_where",
        batching(max_roots, None),
    )
    .map_err(report)?;
    let rows = family_preview_rows_noticed(&cat, &g, o);
    Ok(TableIterator::new(rows))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.purge(root regclass, keys anyelement, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'purge_wrapper';
COMMENT ON FUNCTION uproot.purge(regclass, anyelement, boolean, boolean, regclass[]) IS
'Delete the rows with these primary keys and every row that transitively references them, in the caller''s transaction.';
"#)]
fn purge(
    root: Option<pg_sys::Oid>,
    keys: Option<AnyElement>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (pg_sys::Oid, String, i64)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Keys(keys),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Purge,
        "uproot.purge",
        Batching::default(),
    )
    .map_err(report)?;
    Ok(TableIterator::new(family_purge_rows(&cat, &g, o)))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.purge_where(root regclass, predicate text, max_roots int DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}', skip_locked boolean DEFAULT false)
RETURNS TABLE(relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'purge_where_v2_wrapper';
COMMENT ON FUNCTION uproot.purge_where(regclass, text, int, boolean, boolean, regclass[], boolean) IS
'Delete the root rows matching the predicate (at most max_roots, whole families each; skip_locked leaves roots others hold locked) and every row that transitively references them, in the caller''s transaction.';
"#)]
fn purge_where_v2(
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
    max_roots: Option<i32>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
    skip_locked: Option<bool>,
) -> Result<TableIterator<'static, (pg_sys::Oid, String, i64)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Predicate(predicate),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Purge,
        "uproot.purge_where",
        batching(max_roots, skip_locked),
    )
    .map_err(report)?;
    Ok(TableIterator::new(family_purge_rows(&cat, &g, o)))
}

type GraphRow = (
    i32,
    pg_sys::Oid,
    Option<pg_sys::Oid>,
    Option<String>,
    Option<String>,
    String,
    bool,
    Option<bool>,
    Vec<String>,
);

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.graph(root regclass, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(depth int, child regclass, parent regclass, constraint_name text, on_delete text, disposition text, in_cycle boolean, indexed boolean, warnings text[])
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'graph_wrapper';
COMMENT ON FUNCTION uproot.graph(regclass, boolean, boolean, regclass[]) IS
'The foreign-key edges a purge of this root would walk, with what each does and warnings (unindexed FKs, tables without primary key, triggers, row-level security, deferrable or NOT VALID constraints).';
"#)]
// pgrx needs the row type spelled out in the signature
#[allow(clippy::type_complexity)]
fn graph(
    root: Option<pg_sys::Oid>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<
    TableIterator<
        'static,
        (
            i32,
            pg_sys::Oid,
            Option<pg_sys::Oid>,
            Option<String>,
            Option<String>,
            String,
            bool,
            Option<bool>,
            Vec<String>,
        ),
    >,
    ErrorReport,
> {
    let root = root_oid(root).map_err(report)?;
    let opts = options(respect_restrict, follow_set_null, stop_at).map_err(report)?;
    let (cat, g) = family(root, &opts).map_err(report)?;
    let mut warnings = graph::graph_warnings(&cat, &g).into_iter();
    let mut rows: Vec<GraphRow> = vec![(
        0,
        root,
        None,
        None,
        None,
        "root".to_string(),
        g.in_cycle(&cat, g.root),
        None,
        warnings.next().unwrap_or_default(),
    )];
    for e in &g.edges {
        let fk = &cat.foreign_keys[e.fk];
        let warnings = warnings.next().unwrap_or_default();
        rows.push((
            g.depth.get(&e.child).copied().unwrap_or(0) as i32,
            pg_sys::Oid::from(e.child),
            Some(pg_sys::Oid::from(fk.parent)),
            Some(fk.name.clone()),
            Some(fk.action().sql_name().to_string()),
            e.disposition.describe().to_string(),
            g.in_cycle(&cat, e.child) && e.disposition == Disposition::Follow,
            Some(fk.child_indexed),
            warnings,
        ));
    }
    // async declared relations from family tables: listed, not followed (the drain handles them)
    let tables: Vec<pg_sys::Oid> = g.tables().map(pg_sys::Oid::from).collect();
    for a in crate::declared::async_relations(tables) {
        let depth = g.depth.get(&a.parent.to_u32()).copied().unwrap_or(0) as i32 + 1;
        rows.push((
            depth,
            a.child,
            Some(a.parent),
            Some(format!("{} (declared)", a.name)),
            Some(a.on_delete.to_uppercase()),
            "not followed (async: the drain handles it)".to_string(),
            false,
            None,
            Vec::new(),
        ));
    }
    Ok(TableIterator::new(rows))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.cache_info()
RETURNS TABLE(catalog_loads bigint, cached_plans int)
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'cache_info_wrapper';
COMMENT ON FUNCTION uproot.cache_info() IS
'This backend''s cache: how often the FK graph was read from the catalog, and how many prepared statements are kept.';
"#)]
fn cache_info() -> Result<TableIterator<'static, (i64, i32)>, ErrorReport> {
    Ok(TableIterator::once((
        catalog::load_count() as i64,
        crate::spi::plan_cache_len() as i32,
    )))
}

type ArchiveRow = (i64, pg_sys::Oid, String, i64);

fn archive_rows(cat: &Catalog, g: &FamilyGraph, mut o: exec::Outcome) -> Vec<ArchiveRow> {
    let Some(batch) = o.batch else {
        return Vec::new();
    };
    let settled = std::mem::take(&mut o.settled);
    let mut rows: Vec<ArchiveRow> = purge_rows(cat, g, o.touched)
        .into_iter()
        .map(|(r, a, n)| (batch, r, a, n))
        .collect();
    for s in settled {
        let Some(b) = s.outcome.batch else { continue };
        rows.extend(
            owned_lines(&s)
                .into_iter()
                .map(|(_, r, a, n, _, _)| (b, r, a, n)),
        );
    }
    rows
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.archive(root regclass, keys anyelement, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(batch_id bigint, relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'archive_wrapper';
COMMENT ON FUNCTION uproot.archive(regclass, anyelement, boolean, boolean, regclass[]) IS
'Move the rows with these primary keys and every row that transitively references them into archive tables, as one new batch.';
"#)]
fn archive(
    root: Option<pg_sys::Oid>,
    keys: Option<AnyElement>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (i64, pg_sys::Oid, String, i64)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Keys(keys),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Archive,
        "uproot.archive",
        Batching::default(),
    )
    .map_err(report)?;
    Ok(TableIterator::new(archive_rows(&cat, &g, o)))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.archive_where(root regclass, predicate text, max_roots int DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}', skip_locked boolean DEFAULT false)
RETURNS TABLE(batch_id bigint, relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'archive_where_wrapper';
COMMENT ON FUNCTION uproot.archive_where(regclass, text, int, boolean, boolean, regclass[], boolean) IS
'Move the root rows matching the predicate (at most max_roots of them, whole families each; skip_locked leaves roots others hold locked) and every row that transitively references them into archive tables, as one new batch.';
"#)]
fn archive_where(
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
    max_roots: Option<i32>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
    skip_locked: Option<bool>,
) -> Result<TableIterator<'static, (i64, pg_sys::Oid, String, i64)>, ErrorReport> {
    let (cat, g, o) = operate(
        root,
        Named::Predicate(predicate),
        options(respect_restrict, follow_set_null, stop_at),
        Mode::Archive,
        "uproot.archive_where",
        batching(max_roots, skip_locked),
    )
    .map_err(report)?;
    Ok(TableIterator::new(archive_rows(&cat, &g, o)))
}

/// Restore the batches holding the owned parents archived with `batch` (theirs first), then
/// `batch`: parents go back before the rows that reference them.
fn restore_with_owned(
    batch: i64,
    skip: bool,
) -> Result<Vec<crate::archive::restore::RestoreRow>, UprootError> {
    let mut rows = Vec::new();
    for owned in exec::owned::owned_batches(batch) {
        rows.extend(restore_with_owned(owned, skip)?);
    }
    rows.extend(Spi::connect_mut(|client| {
        crate::archive::restore(client, batch, skip)
    })?);
    Ok(rows)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.restore(batch_id bigint, on_conflict text DEFAULT 'error')
RETURNS TABLE(relation regclass, action text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'restore_wrapper';
COMMENT ON FUNCTION uproot.restore(bigint, text) IS
'Put an archived batch back, parents first, reattach the references archive detached, empty the batch and mark it restored. on_conflict => ''skip'' leaves rows whose key exists again in the archive, with the rows that reference them, and marks the batch partly restored; restoring it again later puts back the rest.';
"#)]
fn restore(
    batch_id: Option<i64>,
    on_conflict: Option<String>,
) -> Result<TableIterator<'static, (pg_sys::Oid, String, i64)>, ErrorReport> {
    let batch = batch_id
        .ok_or_else(|| UprootError::InvalidArgument {
            argument: "batch_id".into(),
            message: "batch_id must not be NULL".into(),
            hint: "List batches with SELECT * FROM uproot.batches ORDER BY id DESC.".into(),
        })
        .map_err(report)?;
    let skip =
        match on_conflict.as_deref().unwrap_or("NULL") {
            "error" => false,
            "skip" => true,
            other => return Err(report(UprootError::InvalidArgument {
                argument: "on_conflict".into(),
                message: format!("on_conflict must be 'error' or 'skip', not '{other}'"),
                hint:
                    "Use on_conflict => 'skip' to leave rows whose key exists again in the archive."
                        .into(),
            })),
        };
    let rows = restore_with_owned(batch, skip).map_err(report)?;
    Ok(TableIterator::new(rows.into_iter().map(|(r, a, n)| {
        (pg_sys::Oid::from(r), a.as_str().to_string(), n)
    })))
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.prepare_archive(root regclass, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(source regclass, archive regclass, action text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'prepare_archive_wrapper';
COMMENT ON FUNCTION uproot.prepare_archive(regclass, boolean, boolean, regclass[]) IS
'Create or update the archive table of every relation in the family of root. Meant for migrations run by the schema owner.';
"#)]
fn prepare_archive(
    root: Option<pg_sys::Oid>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (pg_sys::Oid, pg_sys::Oid, String)>, ErrorReport> {
    let root = root_oid(root).map_err(report)?;
    let opts = options(respect_restrict, follow_set_null, stop_at).map_err(report)?;
    let (cat, g) = family(root, &opts).map_err(report)?;
    let tables: Vec<u32> = g.tables().collect();
    let prepared = Spi::connect_mut(|client| {
        crate::archive::ensure_targets(client, &cat, g.root, &tables, true)
    })
    .map_err(report)?;
    Ok(TableIterator::new(prepared.into_iter().map(|p| {
        (
            pg_sys::Oid::from(p.target.source),
            pg_sys::Oid::from(p.archive_oid),
            p.action,
        )
    })))
}

fn batch_id_arg(batch_id: Option<i64>) -> Result<i64, UprootError> {
    batch_id.ok_or_else(|| UprootError::InvalidArgument {
        argument: "batch_id".into(),
        message: "batch_id must not be NULL".into(),
        hint: "Name one batch, e.g. a batch_id from uproot.find_archived(...).".into(),
    })
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.drop_batch(batch_id bigint)
RETURNS TABLE(relation regclass, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drop_batch_wrapper';
COMMENT ON FUNCTION uproot.drop_batch(bigint) IS
'Erase one batch, whatever its state, with the batches of the owned parents archived with it: their rows in the archive tables (the caller needs DELETE on them) and their ledger rows. A batch of owned parents whose owning batch still holds rows is refused. Returns the archived rows removed per relation.';
"#)]
fn drop_batch(
    batch_id: Option<i64>,
) -> Result<TableIterator<'static, (pg_sys::Oid, i64)>, ErrorReport> {
    let batch = batch_id_arg(batch_id).map_err(report)?;
    let rows = Spi::connect_mut(|client| crate::archive::erase::drop_batch(client, batch))
        .map_err(report)?;
    Ok(TableIterator::new(
        rows.into_iter().map(|(r, n)| (pg_sys::Oid::from(r), n)),
    ))
}

type DroppedRow = (
    i64,
    pg_sys::Oid,
    Option<pgrx::datum::TimestampWithTimeZone>,
    String,
    i64,
);

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.drop_batches(older_than interval, which text DEFAULT 'all', dry_run boolean DEFAULT false)
RETURNS TABLE(batch_id bigint, root regclass, archived_at timestamptz, state text, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drop_batches_wrapper';
COMMENT ON FUNCTION uproot.drop_batches(interval, text, boolean) IS
'Erase the batches archived longer ago than older_than: their rows in the archive tables and their ledger rows. which => ''restored'' or ''unrestored'' (archived or partly restored) limits which; dry_run => true only lists them. Returns each batch with the archived rows it held.';
"#)]
#[allow(clippy::type_complexity)]
fn drop_batches(
    older_than: Option<pgrx::datum::Interval>,
    which: Option<String>,
    dry_run: Option<bool>,
) -> Result<
    TableIterator<
        'static,
        (
            i64,
            pg_sys::Oid,
            Option<pgrx::datum::TimestampWithTimeZone>,
            String,
            i64,
        ),
    >,
    ErrorReport,
> {
    use crate::archive::erase::Which;
    let age_error = |shown: String| UprootError::InvalidArgument {
        argument: "older_than".into(),
        message: format!("it must be an age of zero or more, not {shown}"),
        hint: "Pass an age, e.g. uproot.drop_batches('90 days').".into(),
    };
    let Some(older_than) = older_than else {
        return Err(report(age_error("NULL".into())));
    };
    let negative = crate::spi::required(
        Spi::get_one_with_args::<bool>(
            "SELECT $1 OPERATOR(pg_catalog.<) '0'::pg_catalog.interval",
            &[older_than.into()],
        ),
        "comparing older_than with zero",
    )
    .map_err(report)?;
    if negative {
        return Err(report(age_error(older_than.to_string())));
    }
    let which = match which.as_deref() {
        Some("all") => Which::All,
        Some("restored") => Which::Restored,
        Some("unrestored") => Which::Unrestored,
        other => return Err(report(UprootError::InvalidArgument {
            argument: "which".into(),
            message: format!(
                "which must be 'all', 'restored' or 'unrestored', not {}",
                other.map(|o| format!("'{o}'")).unwrap_or("NULL".into())
            ),
            hint:
                "'unrestored' takes the batches that still hold rows (archived or partly restored)."
                    .into(),
        })),
    };
    let Some(dry_run) = dry_run else {
        return Err(report(UprootError::InvalidArgument {
            argument: "dry_run".into(),
            message: "dry_run must not be NULL".into(),
            hint: "Pass dry_run => true to list what would go, false to drop it.".into(),
        }));
    };
    let dropped = Spi::connect_mut(|client| {
        crate::archive::erase::drop_batches(client, older_than.into(), which, dry_run)
    })
    .map_err(report)?;
    let rows: Vec<DroppedRow> = dropped
        .into_iter()
        .map(|(b, n)| (b.id, pg_sys::Oid::from(b.root), b.archived_at, b.state, n))
        .collect();
    Ok(TableIterator::new(rows))
}

type FoundRow = (
    i64,
    Option<pgrx::datum::TimestampWithTimeZone>,
    String,
    i64,
    pg_sys::Oid,
    i64,
);

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.find_archived(root regclass, keys anyelement)
RETURNS TABLE(batch_id bigint, archived_at timestamptz, state text, matched bigint, relation regclass, "rows" bigint)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'find_archived_wrapper';
COMMENT ON FUNCTION uproot.find_archived(regclass, anyelement) IS
'The batches whose archive holds rows of root with these primary keys (named as for purge): per batch, how many of the keys it holds (matched), and per relation the archived rows it holds now. For erasure requests: uproot.drop_batch(batch_id) erases a batch.';
"#)]
#[allow(clippy::type_complexity)]
fn find_archived(
    root: Option<pg_sys::Oid>,
    keys: Option<AnyElement>,
) -> Result<
    TableIterator<
        'static,
        (
            i64,
            Option<pgrx::datum::TimestampWithTimeZone>,
            String,
            i64,
            pg_sys::Oid,
            i64,
        ),
    >,
    ErrorReport,
> {
    let root = root_oid(root).map_err(report)?;
    let cat = catalog::get(root).map_err(report)?;
    let rel = cat
        .relation(root.to_u32())
        .ok_or(UprootError::UnknownRelation { oid: root.to_u32() })
        .map_err(report)?;
    let r = roots::from_keys(rel, keys, "uproot.find_archived").map_err(report)?;
    let found = Spi::connect_mut(|client| {
        crate::archive::erase::find_archived(client, &cat, root.to_u32(), &r.filter, &r.args)
    })
    .map_err(report)?;
    let rows: Vec<FoundRow> = found
        .into_iter()
        .map(|f| {
            (
                f.batch,
                f.archived_at,
                f.state,
                f.matched,
                pg_sys::Oid::from(f.relation),
                f.rows,
            )
        })
        .collect();
    Ok(TableIterator::new(rows))
}
