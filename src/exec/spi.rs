//! The SPI seam: prepared-statement cache, row sets of ctids, parameter binding.

use pgrx::datum::DatumWithOid;
use pgrx::itemptr::{item_pointer_to_u64, u64_to_item_pointer};
use pgrx::prelude::*;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiTupleTable};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Plans stay cached until the catalog changes or the cache grows past this many.
const PLAN_CACHE_LIMIT: usize = 512;

thread_local! {
    static PLANS: RefCell<HashMap<String, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

pub fn plan_cache_clear() {
    // Take the map out first: dropping plans calls SPI_freeplan, which must not run under a borrow.
    let old = PLANS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    drop(old);
}

pub fn plan_cache_len() -> usize {
    PLANS.with(|p| p.borrow().len())
}

/// Run `sql` with `args` through a prepared plan that is kept across calls, as a statement that
/// may write: it runs with a fresh snapshot (READ COMMITTED), after the previous one's effects.
pub fn run<'conn>(client: &mut SpiClient<'conn>, sql: &str, args: &[DatumWithOid<'_>]) -> SpiTupleTable<'conn> {
    query(true, client, sql, args)
}

pub fn query<'conn>(
    writes: bool,
    client: &mut SpiClient<'conn>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> SpiTupleTable<'conn> {
    // The same text can be prepared for different parameter types (keys of any type).
    let key = format!("{writes} {:?}\n{sql}", args.iter().map(|a| a.oid().to_u32()).collect::<Vec<_>>());
    let cached = PLANS.with(|p| p.borrow().get(&key).cloned());
    let plan = match cached {
        Some(plan) => plan,
        None => {
            let oids: Vec<pg_sys::PgOid> = args.iter().map(|a| pg_sys::PgOid::from(a.oid())).collect();
            let prepared = if writes { client.prepare_mut(sql, &oids) } else { client.prepare(sql, &oids) };
            let plan = Rc::new(
                prepared
                    .unwrap_or_else(|e| panic!("uproot: could not prepare generated SQL: {e}\n{sql}"))
                    .keep(),
            );
            if plan_cache_len() >= PLAN_CACHE_LIMIT {
                plan_cache_clear();
            }
            PLANS.with(|p| p.borrow_mut().insert(key, plan.clone()));
            plan
        }
    };
    // No borrow is held while SQL runs: a trigger may call uproot again.
    let result = if writes { client.update(&*plan, None, args) } else { client.select(&*plan, None, args) };
    result.unwrap_or_else(|e| panic!("uproot: generated SQL failed: {e}\n{sql}"))
}

/// The rows of one family table, identified by ctid (and tableoid for partitioned tables).
#[derive(Debug, Default, Clone)]
pub struct RowSet {
    pub tids: Vec<u64>,
    pub oids: Vec<u32>,
    seen: HashSet<(u32, u64)>,
}

impl RowSet {
    pub fn len(&self) -> usize {
        self.tids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tids.is_empty()
    }

    /// Add rows not already present; returns how many were new.
    pub fn extend(&mut self, tids: Vec<u64>, oids: Option<Vec<u32>>) -> usize {
        let before = self.tids.len();
        for (i, t) in tids.into_iter().enumerate() {
            let o = oids.as_ref().map(|o| o[i]).unwrap_or(0);
            if self.seen.insert((o, t)) {
                self.tids.push(t);
                if oids.is_some() {
                    self.oids.push(o);
                }
            }
        }
        self.tids.len() - before
    }

    /// The parameters naming rows `from..` of this set: tid[] and, for pairs, oid[].
    pub fn params(&self, from: usize, pair: bool) -> Vec<DatumWithOid<'static>> {
        let tids: Vec<pg_sys::ItemPointerData> = self.tids[from..]
            .iter()
            .map(|&v| {
                let mut tid = pg_sys::ItemPointerData::default();
                u64_to_item_pointer(v, &mut tid);
                tid
            })
            .collect();
        let mut out = vec![DatumWithOid::from(tids)];
        if pair {
            let oids: Vec<pg_sys::Oid> = self.oids[from..].iter().map(|&o| pg_sys::Oid::from(o)).collect();
            out.push(DatumWithOid::from(oids));
        }
        out
    }
}

/// Read the row-set arrays a collect statement returns (`tid[]`, and `oid[]` for pairs).
pub fn read_row_set(table: SpiTupleTable<'_>, pair: bool) -> (Vec<u64>, Option<Vec<u32>>) {
    let row = table.first();
    let tids = match row.get_datum_by_ordinal(1).expect("collect returns a column") {
        Some(d) => unsafe { tids_from_datum(d) },
        None => Vec::new(),
    };
    let oids = if pair {
        let o: Option<Vec<pg_sys::Oid>> = row.get(2).expect("collect returns tableoids");
        Some(o.unwrap_or_default().into_iter().map(|o| o.to_u32()).collect())
    } else {
        None
    };
    (tids, oids)
}

/// # Safety
/// `d` must be a non-null `tid[]` datum.
unsafe fn tids_from_datum(d: pg_sys::Datum) -> Vec<u64> {
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

/// The first column of the first row, as a count.
pub fn read_count(table: SpiTupleTable<'_>) -> i64 {
    table.first().get::<i64>(1).ok().flatten().unwrap_or(0)
}

/// Per-relation sums of an `int8[]` column, e.g. the counts the delete statement returns.
pub fn read_i64_array(table: SpiTupleTable<'_>, ordinal: usize) -> Vec<i64> {
    table
        .first()
        .get::<Vec<i64>>(ordinal)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Cache of looked-up privilege answers for one operation.
#[derive(Default)]
pub struct Privileges {
    answers: HashMap<(u32, u32), bool>,
}

impl Privileges {
    pub fn has(&mut self, rel: u32, mode: u32) -> bool {
        *self.answers.entry((rel, mode)).or_insert_with(|| unsafe {
            pg_sys::pg_class_aclcheck(pg_sys::Oid::from(rel), pg_sys::GetUserId(), mode as pg_sys::AclMode)
                == pg_sys::AclResult::ACLCHECK_OK
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
