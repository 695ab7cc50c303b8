//! The SPI seam: prepared-statement cache, row sets of ctids, parameter binding.

use crate::error::UprootError;
use pgrx::datum::DatumWithOid;
use pgrx::itemptr::{item_pointer_to_u64, u64_to_item_pointer};
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::rc::Rc;

/// Plans stay cached until the cache grows past this many (then it starts afresh).
const PLAN_CACHE_LIMIT: usize = 512;

/// A statement prepared once and kept for the backend's life (SPI_keepplan), planned
/// generically: our parameters are row sets whose size changes every call, and re-planning
/// for each one cost more than the plan it found (single-family purges re-planned every call).
struct KeptPlan(NonNull<pg_sys::_SPI_plan>);

impl Drop for KeptPlan {
    fn drop(&mut self) {
        unsafe {
            pg_sys::SPI_freeplan(self.0.as_ptr());
        }
    }
}

thread_local! {
    static PLANS: RefCell<HashMap<String, Rc<KeptPlan>>> = RefCell::new(HashMap::new());
}

pub fn plan_cache_clear() {
    // Take the map out first: dropping plans calls SPI_freeplan, which must not run under a borrow.
    let old = PLANS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    drop(old);
}

pub fn plan_cache_len() -> usize {
    PLANS.with(|p| p.borrow().len())
}

/// The result of one statement: valid until the next statement runs through SPI.
pub struct Rows {
    table: *mut pg_sys::SPITupleTable,
    processed: usize,
    next: usize,
}

/// One row of `Rows`.
pub struct Row {
    table: *mut pg_sys::SPITupleTable,
    index: usize,
}

impl Rows {
    /// No rows returned (or, for a statement without RETURNING, none affected).
    pub fn is_empty(&self) -> bool {
        self.processed == 0
    }

    /// Rows returned (or, for a statement without RETURNING, affected).
    pub fn len(&self) -> usize {
        self.processed
    }

    pub fn first(&self) -> Row {
        Row {
            table: self.table,
            index: 0,
        }
    }
}

impl Iterator for Rows {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        if self.table.is_null() || self.next >= self.processed {
            return None;
        }
        self.next += 1;
        Some(Row {
            table: self.table,
            index: self.next - 1,
        })
    }
}

impl Row {
    /// Column `col` (1-based) as a raw datum; None for SQL NULL or no such row.
    pub fn datum(&self, col: usize) -> Option<(pg_sys::Datum, pg_sys::Oid)> {
        unsafe {
            if self.table.is_null() || self.index as u64 >= (*self.table).numvals {
                return None;
            }
            let tupdesc = (*self.table).tupdesc;
            let tuple = *(*self.table).vals.add(self.index);
            let mut isnull = false;
            let d = pg_sys::SPI_getbinval(tuple, tupdesc, col as i32, &mut isnull);
            (!isnull).then(|| (d, pg_sys::SPI_gettypeid(tupdesc, col as i32)))
        }
    }

    /// Column `col` (1-based) converted to `T`, as SPI returned it: None for SQL NULL.
    pub fn get<T: FromDatum>(&self, col: usize) -> Option<T> {
        let (d, typ) = self.datum(col)?;
        unsafe { T::from_polymorphic_datum(d, false, typ) }
    }

    /// Column `col` (1-based), which the statement's SQL cannot return as NULL (`what` says what
    /// it is): a NULL is an error, never a default.
    pub fn value<T: FromDatum>(&self, col: usize, what: &str) -> Result<T, UprootError> {
        self.get(col)
            .ok_or_else(|| UprootError::UnexpectedNull { what: what.into() })
    }
}

/// The arguments of `stmt`, each slot bound to the value given for it by name; a value the
/// statement does not take (the batch of a statement that needs none) is left out. The
/// statement is a step of an operation: it is recorded for `uproot.debug_check_explain`.
pub fn bind_values<'a>(
    stmt: &crate::plan::Statement,
    values: Vec<(crate::plan::Slot, DatumWithOid<'a>)>,
) -> Vec<DatumWithOid<'a>> {
    crate::debug::record(&stmt.sql);
    bind_unrecorded(stmt, values)
}

/// `bind_values` for a statement that is no step of an operation (a diagnostic for a NOTICE):
/// not recorded.
pub fn bind_unrecorded<'a>(
    stmt: &crate::plan::Statement,
    mut values: Vec<(crate::plan::Slot, DatumWithOid<'a>)>,
) -> Vec<DatumWithOid<'a>> {
    stmt.slots
        .iter()
        .map(|slot| {
            let i = values
                .iter()
                .position(|(s, _)| s == slot)
                .unwrap_or_else(|| panic!("uproot: no value for {slot:?}"));
            values.swap_remove(i).1
        })
        .collect()
}

/// A value pgrx's SPI API returned for a column whose SQL cannot be NULL (`what` says what it
/// is): an SPI error or a NULL is an internal error, never a default.
pub fn required<T>(got: Result<Option<T>, pgrx::spi::Error>, what: &str) -> Result<T, UprootError> {
    got.map_err(failed(what))?
        .ok_or_else(|| UprootError::UnexpectedNull { what: what.into() })
}

/// An SPI failure on one of pg_uproot's own statements, `what` saying what it was doing.
pub fn failed(what: &str) -> impl Fn(pgrx::spi::Error) -> UprootError + '_ {
    move |e| UprootError::Spi {
        what: what.to_string(),
        said: e.to_string(),
    }
}

/// Run `sql` with `args` through a prepared plan that is kept across calls, as a statement that
/// may write: it runs with a fresh snapshot (READ COMMITTED), after the previous one's effects.
pub fn run(client: &mut SpiClient<'_>, sql: &str, args: &[DatumWithOid<'_>]) -> Rows {
    query(true, client, sql, args)
}

/// Run `sql` through a kept plan. A statement that does not write runs read-only: it takes no
/// transaction ID, so preview and graph work on a hot standby. The client is only proof that
/// SPI is connected.
pub fn query(
    writes: bool,
    _client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Rows {
    let plan = kept_plan(sql, args);
    let (mut values, nulls) = bind(args);
    // No borrow is held while SQL runs: a trigger may call uproot again.
    let status = unsafe {
        pg_sys::SPI_tuptable = std::ptr::null_mut();
        pg_sys::SPI_execute_plan(
            plan.0.as_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            !writes,
            0,
        )
    };
    rows(status, sql)
}

/// `query_once` where `for_values`, otherwise `query` (its kept plan).
pub fn query_planned(
    for_values: bool,
    writes: bool,
    client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Rows {
    if for_values {
        query_once(writes, client, sql, args)
    } else {
        query(writes, client, sql, args)
    }
}

/// Run `sql` once, planned for these values: the parameters are constants to the planner, which
/// then sees how many keys an array holds (a generic plan takes it for 10). For one large
/// statement per call, where planning costs little next to a plan's wrong guess. Read-only
/// unless it `writes`, as `query`.
pub fn query_once(
    writes: bool,
    _client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Rows {
    let csql = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    let mut argtypes: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let (mut values, nulls) = bind(args);
    let status = unsafe {
        pg_sys::SPI_tuptable = std::ptr::null_mut();
        pg_sys::SPI_execute_with_args(
            csql.as_ptr(),
            argtypes.len() as i32,
            argtypes.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            !writes,
            0,
        )
    };
    rows(status, sql)
}

/// Does the kept generic plan of `sql` read key arrays of any length at a cost that grows with
/// the keys alone (`plan_shape::scales_with_keys`)? Makes the generic plan if there is none yet,
/// the one the next `query` of `sql` runs.
pub fn kept_plan_scales_with_keys(sql: &str, args: &[DatumWithOid<'_>]) -> bool {
    let plan = kept_plan(sql, args);
    unsafe {
        let cached = pg_sys::SPI_plan_get_cached_plan(plan.0.as_ptr());
        if cached.is_null() {
            return false;
        }
        let scales = crate::plan_shape::scales_with_keys((*cached).stmt_list);
        pg_sys::ReleaseCachedPlan(cached, pg_sys::CurrentResourceOwner);
        scales
    }
}

/// Run a read-only `sql` through a kept plan with the latest snapshot, whatever the isolation
/// level: it sees everything committed so far, as PostgreSQL's own catalog caches and
/// foreign-key checks do. For reads that must agree with those (the catalog) or that look for
/// another session's work a REPEATABLE READ snapshot cannot see.
pub fn query_latest(_client: &mut SpiClient<'_>, sql: &str, args: &[DatumWithOid<'_>]) -> Rows {
    let plan = kept_plan(sql, args);
    let (mut values, nulls) = bind(args);
    let status = unsafe {
        pg_sys::SPI_tuptable = std::ptr::null_mut();
        pg_sys::SPI_execute_snapshot(
            plan.0.as_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            pg_sys::GetLatestSnapshot(),
            std::ptr::null_mut(),
            true,
            false,
            0,
        )
    };
    rows(status, sql)
}

/// The kept plan of `sql` for these argument types, prepared on first use.
///
/// A plan is registered in the cache only once SPI_keepplan has moved it out of SPI's
/// per-call memory, and nothing that can fail runs between the two: an error or cancel before
/// SPI_keepplan leaves the plan to be freed with that memory and the cache without it, so the
/// next call prepares it again.
fn kept_plan(sql: &str, args: &[DatumWithOid<'_>]) -> Rc<KeptPlan> {
    let oids: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    // The same text can be prepared for different parameter types (keys of any type).
    let key = format!(
        "{:?}\n{sql}",
        oids.iter().map(|o| o.to_u32()).collect::<Vec<_>>()
    );
    if let Some(plan) = PLANS.with(|p| p.borrow().get(&key).cloned()) {
        return plan;
    }
    if plan_cache_len() >= PLAN_CACHE_LIMIT {
        plan_cache_clear();
    }
    let csql = std::ffi::CString::new(sql).expect("generated SQL has no NUL");
    let mut argtypes = oids;
    let raw = unsafe {
        pg_sys::SPI_prepare_cursor(
            csql.as_ptr(),
            argtypes.len() as i32,
            argtypes.as_mut_ptr(),
            pg_sys::CURSOR_OPT_GENERIC_PLAN as i32,
        )
    };
    let raw = NonNull::new(raw).unwrap_or_else(|| {
        panic!(
            "uproot: could not prepare generated SQL (SPI code {})\n{sql}",
            unsafe { pg_sys::SPI_result }
        )
    });
    crate::debug::fail_point("plan_keep");
    unsafe { pg_sys::SPI_keepplan(raw.as_ptr()) };
    let plan = Rc::new(KeptPlan(raw));
    PLANS.with(|p| p.borrow_mut().insert(key, plan.clone()));
    plan
}

/// Values and null flags of `args`, as SPI takes them.
fn bind(args: &[DatumWithOid<'_>]) -> (Vec<pg_sys::Datum>, Vec<std::ffi::c_char>) {
    let mut values: Vec<pg_sys::Datum> = Vec::with_capacity(args.len());
    let mut nulls: Vec<std::ffi::c_char> = Vec::with_capacity(args.len());
    for a in args {
        match a.datum() {
            Some(d) => {
                values.push(d.sans_lifetime());
                nulls.push(b' ' as std::ffi::c_char);
            }
            None => {
                values.push(pg_sys::Datum::from(0usize));
                nulls.push(b'n' as std::ffi::c_char);
            }
        }
    }
    (values, nulls)
}

fn rows(status: i32, sql: &str) -> Rows {
    if status < 0 {
        panic!("uproot: generated SQL failed with SPI code {status}\n{sql}");
    }
    unsafe {
        Rows {
            table: pg_sys::SPI_tuptable,
            processed: pg_sys::SPI_processed as usize,
            next: 0,
        }
    }
}

/// The rows of one family table, identified by ctid (and tableoid for partitioned tables).
#[derive(Debug, Default, Clone)]
pub struct RowSet {
    pub tids: Vec<u64>,
    pub oids: Vec<u32>,
    /// Every row of `tids`, once a second batch of rows needs checking against them (built
    /// then: most sets get all their rows from one statement, which returns each row once).
    seen: HashSet<(u32, u64)>,
    /// The key arrays the statement that found every row of the set returned with them, per
    /// column (None: SQL NULL, no rows). Gone once rows found by another statement join the set.
    found_keys: Option<FoundKeys>,
}

/// The key arrays a collect statement returned for one table (`RowSet::found_keys`), per column:
/// array datums (None: SQL NULL) in SPI's memory, valid while SPI stays connected.
pub type FoundKeys = Vec<(i16, Option<usize>)>;

impl RowSet {
    pub fn len(&self) -> usize {
        self.tids.len()
    }

    /// No rows returned (or, for a statement without RETURNING, none affected).
    pub fn is_empty(&self) -> bool {
        self.tids.is_empty()
    }

    /// Add the rows one statement found, with the key arrays it returned for them: the set's
    /// keys only when the set had no rows before (otherwise as `extend`).
    pub fn extend_found(
        &mut self,
        tids: Vec<u64>,
        oids: Option<Vec<u32>>,
        keys: FoundKeys,
    ) -> usize {
        let first = self.tids.is_empty() && self.found_keys.is_none();
        let added = self.extend(tids, oids);
        if first && !keys.is_empty() {
            self.found_keys = Some(keys);
        }
        added
    }

    /// The array of `column`'s values that the statement that found every row of the set
    /// returned: Some(None) for SQL NULL (no rows); None when no one statement found them all.
    pub fn found_key(&self, column: i16) -> Option<Option<pg_sys::Datum>> {
        let keys = self.found_keys.as_ref()?;
        keys.iter()
            .find(|(c, _)| *c == column)
            .map(|(_, k)| k.map(pg_sys::Datum::from))
    }

    /// Add rows not already present; returns how many were new. The first batch comes from one
    /// statement (a scan returns each row once) and is taken as it is.
    pub fn extend(&mut self, tids: Vec<u64>, oids: Option<Vec<u32>>) -> usize {
        let before = self.tids.len();
        if before == 0 {
            debug_assert!(
                {
                    let o = oids.as_deref();
                    let mut rows: Vec<(u32, u64)> = tids
                        .iter()
                        .enumerate()
                        .map(|(i, &t)| (o.map(|o| o[i]).unwrap_or(0), t))
                        .collect();
                    rows.sort_unstable();
                    rows.windows(2).all(|w| w[0] != w[1])
                },
                "a statement returned a row twice"
            );
            if let Some(oids) = &oids {
                self.oids = oids.clone();
            }
            self.tids = tids;
            self.seen.clear();
            if !self.tids.is_empty() {
                self.found_keys = None;
            }
            return self.tids.len();
        }
        self.index_rows();
        for (i, t) in tids.into_iter().enumerate() {
            let o = oids.as_ref().map(|o| o[i]).unwrap_or(0);
            if self.seen.insert((o, t)) {
                self.tids.push(t);
                if oids.is_some() {
                    self.oids.push(o);
                }
            }
        }
        if self.tids.len() > before {
            // rows no one statement found together: their keys are read again by ctid
            self.found_keys = None;
        }
        self.tids.len() - before
    }

    fn oids_of(&self) -> Option<Vec<u32>> {
        (!self.oids.is_empty()).then(|| self.oids.clone())
    }

    /// Fill `seen` with every row, where it does not hold them yet.
    fn index_rows(&mut self) {
        if self.seen.len() != self.tids.len() {
            self.seen = self.rows().collect();
        }
    }

    /// Every row as (tableoid or 0, ctid).
    fn rows(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.tids
            .iter()
            .enumerate()
            .map(|(i, &t)| (self.oids.get(i).copied().unwrap_or(0), t))
    }

    /// Add the rows of `other` not already present.
    pub fn add(&mut self, other: &RowSet) {
        self.extend(other.tids.clone(), other.oids_of());
    }

    /// This set less the rows of `other`.
    pub fn without(&self, other: &RowSet) -> RowSet {
        let gone: HashSet<(u32, u64)> = other.rows().collect();
        let mut out = RowSet::default();
        for (i, &t) in self.tids.iter().enumerate() {
            let o = self.oids.get(i).copied();
            if !gone.contains(&(o.unwrap_or(0), t)) {
                out.extend(vec![t], o.map(|o| vec![o]));
            }
        }
        out
    }

    /// Rows `from..` of this set as a `tid[]` parameter.
    pub fn tids_param(&self, from: usize) -> DatumWithOid<'static> {
        let tids: Vec<pg_sys::ItemPointerData> = self.tids[from..]
            .iter()
            .map(|&v| {
                let mut tid = pg_sys::ItemPointerData::default();
                u64_to_item_pointer(v, &mut tid);
                tid
            })
            .collect();
        DatumWithOid::from(tids)
    }

    /// The tableoids of rows `from..` of this set (of a partitioned table) as an `oid[]`.
    pub fn oids_param(&self, from: usize) -> DatumWithOid<'static> {
        let oids: Vec<pg_sys::Oid> = self.oids[from..]
            .iter()
            .map(|&o| pg_sys::Oid::from(o))
            .collect();
        DatumWithOid::from(oids)
    }
}

/// The key arrays of `columns` a collect statement returned in its first row, from column
/// `first` (1-based) on.
pub fn read_found_keys(row: &Row, first: usize, columns: &[i16]) -> FoundKeys {
    columns
        .iter()
        .enumerate()
        .map(|(j, c)| (*c, row.datum(first + j).map(|(d, _)| d.value())))
        .collect()
}

/// Read the row-set arrays a collect statement returns (`tid[]`, and `oid[]` for pairs).
pub fn read_row_set(table: Rows, pair: bool) -> (Vec<u64>, Option<Vec<u32>>) {
    let row = table.first();
    let tids = match row.datum(1) {
        Some((d, _)) => unsafe { tids_from_datum(d) },
        None => Vec::new(),
    };
    let oids = if pair {
        // array_agg over no rows is NULL: no rows
        let o: Option<Vec<pg_sys::Oid>> = row.get(2);
        Some(
            o.unwrap_or_default()
                .into_iter()
                .map(|o| o.to_u32())
                .collect(),
        )
    } else {
        None
    };
    (tids, oids)
}

/// # Safety
/// `d` must be a non-null `tid[]` datum.
pub(crate) unsafe fn tids_from_datum(d: pg_sys::Datum) -> Vec<u64> {
    let arr = pg_sys::pg_detoast_datum(d.cast_mut_ptr()) as *mut pg_sys::ArrayType;
    let mut elems: *mut pg_sys::Datum = std::ptr::null_mut();
    let mut nulls: *mut bool = std::ptr::null_mut();
    let mut n: i32 = 0;
    pg_sys::deconstruct_array(
        arr,
        pg_sys::TIDOID,
        std::mem::size_of::<pg_sys::ItemPointerData>() as i32,
        false,
        pg_sys::TYPALIGN_SHORT as std::ffi::c_char,
        &mut elems,
        &mut nulls,
        &mut n,
    );
    (0..n as usize)
        .map(|i| {
            let p = (*elems.add(i)).cast_mut_ptr::<pg_sys::ItemPointerData>();
            item_pointer_to_u64(*p)
        })
        .collect()
}

/// Row positions, (tableoid, ctid), from a `tid[]` column and an `oid[]` column of the first row.
pub fn read_positions(row: &Row, tids: usize, oids: usize) -> Vec<(u32, u64)> {
    let t = match row.datum(tids) {
        Some((d, _)) => unsafe { tids_from_datum(d) },
        None => Vec::new(),
    };
    let o: Vec<pg_sys::Oid> = row.get(oids).unwrap_or_default();
    o.into_iter().map(|o| o.to_u32()).zip(t).collect()
}

/// The first column of the first row, as a count.
pub fn read_count(table: Rows) -> i64 {
    table.first().get::<i64>(1).unwrap_or(0)
}

/// Per-relation sums of an `int8[]` column, e.g. the counts the delete statement returns.
pub fn read_i64_array(table: Rows, ordinal: usize) -> Vec<i64> {
    table.first().get::<Vec<i64>>(ordinal).unwrap_or_default()
}

/// Cache of looked-up privilege answers for one operation.
#[derive(Default)]
pub struct Privileges {
    answers: HashMap<(u32, u32), bool>,
}

impl Privileges {
    pub fn has(&mut self, rel: u32, mode: u32) -> bool {
        *self.answers.entry((rel, mode)).or_insert_with(|| unsafe {
            pg_sys::pg_class_aclcheck(
                pg_sys::Oid::from(rel),
                pg_sys::GetUserId(),
                mode as pg_sys::AclMode,
            ) == pg_sys::AclResult::ACLCHECK_OK
        })
    }
}

/// Is row-level security in force for the current user on this table?
pub fn rls_active(rel: u32) -> bool {
    unsafe {
        pg_sys::check_enable_rls(pg_sys::Oid::from(rel), pg_sys::InvalidOid, true)
            == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }
}

/// Run `f` in a subtransaction. An error that `caught` accepts rolls it back and is returned, so
/// that the caller may look into it (run statements) before reporting it; any other error rolls
/// it back too and goes on up. The subtransaction is what makes carrying on after a caught ERROR
/// safe: its rollback releases whatever the failed statement held.
pub fn in_subtransaction<T>(
    caught: fn(&ErrorReportWithLevel) -> bool,
    f: impl FnOnce() -> T,
) -> Result<T, Box<ErrorReportWithLevel>> {
    let (cx, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    let (cx, owner) = (cx as usize, owner as usize);
    let back = move || unsafe {
        pg_sys::MemoryContextSwitchTo(cx as pg_sys::MemoryContext);
        pg_sys::CurrentResourceOwner = owner as pg_sys::ResourceOwner;
    };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cx as pg_sys::MemoryContext);
    }
    PgTryBuilder::new(AssertUnwindSafe(move || {
        let v = f();
        unsafe { pg_sys::ReleaseCurrentSubTransaction() };
        back();
        Ok(v)
    }))
    .catch_others(move |e| {
        unsafe {
            pg_sys::MemoryContextSwitchTo(cx as pg_sys::MemoryContext);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        back();
        match e {
            CaughtError::PostgresError(r) if caught(&r) => Err(Box::new(r)),
            other => other.rethrow(),
        }
    })
    .execute()
}
