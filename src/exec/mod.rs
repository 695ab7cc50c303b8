//! Runs a family operation through SPI: collect and lock top-down, then change everything in as
//! few statements as possible.
//!
//! Concurrency: every collect statement runs with a fresh snapshot (READ COMMITTED) after the
//! rows it starts from are locked FOR UPDATE. A writer that attached a child to one of those rows
//! held a KEY SHARE lock on it until it committed, so by the time our lock is granted its child
//! is visible to the next statement; a writer that comes later waits for us and then fails with
//! PostgreSQL's own FK error. Under REPEATABLE READ the same conflict is a serialization error.

mod declared_check;
pub mod owned;
mod ri_check;
pub mod roots;

use crate::error::{sqlstate_text, UprootError};
use crate::graph::model::{Catalog, RelId};
use crate::graph::{BlockReason, DetachKind, Disposition, FamilyEdge, FamilyGraph};
use crate::plan::archive::{Prepared, Target};
use crate::plan::{self, DeletePart, Ident, MemoKey, RootFilter, Rows, Slot, Statement};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::spi::{self, read_count, read_i64_array, read_row_set, Privileges, RowSet};

/// Statements of the finding phase: read-only for preview, locking otherwise.
fn find(st: &State, client: &mut SpiClient<'_>, stmt: &Statement) -> spi::Rows {
    execute(st, client, stmt, st.writes())
}

/// A statement that writes (or must see the previous one's effects).
fn run_stmt(st: &State, client: &mut SpiClient<'_>, stmt: &Statement) -> spi::Rows {
    execute(st, client, stmt, true)
}

/// Run a planned statement through its kept plan, or planned for its values where
/// `planned_for_values` says so.
fn execute(st: &State, client: &mut SpiClient<'_>, stmt: &Statement, writes: bool) -> spi::Rows {
    let args = st.bind(stmt);
    execute_bound(st, client, stmt, &args, writes)
}

/// `execute` with the arguments already bound.
fn execute_bound(
    st: &State,
    client: &mut SpiClient<'_>,
    stmt: &Statement,
    args: &[DatumWithOid<'static>],
    writes: bool,
) -> spi::Rows {
    let for_values = planned_for_values(st, stmt, args);
    spi::query_planned(for_values, writes, client, &stmt.sql, args)
}

/// The non-NULL elements of an `int2[]`, `int4[]` or `int8[]`, widened; None for an array of
/// another type.
fn integer_keys(array: pg_sys::Datum, array_type: pg_sys::Oid) -> Option<Vec<i64>> {
    fn widened<T>(array: pg_sys::Datum, array_type: pg_sys::Oid) -> Option<Vec<i64>>
    where
        for<'arr> T: pgrx::datum::UnboxDatum<As<'arr> = T> + Into<i64> + 'arr,
    {
        // SAFETY: an array of the type the collect statement returned
        let keys = unsafe { Vec::<Option<T>>::from_polymorphic_datum(array, false, array_type) }?;
        Some(keys.into_iter().flatten().map(Into::into).collect())
    }
    match array_type {
        pg_sys::INT2ARRAYOID => widened::<i16>(array, array_type),
        pg_sys::INT4ARRAYOID => widened::<i32>(array, array_type),
        pg_sys::INT8ARRAYOID => widened::<i64>(array, array_type),
        _ => None,
    }
}

/// From this many keys in one array a statement is planned for its values.
const MANY_KEYS: usize = 1_000;

/// Is `stmt` planned for its values (`spi::query_once`) rather than run by its kept generic
/// plan? When it binds the keys of `MANY_KEYS`+ rows of one table (`Slot::FoundKeys`). A
/// generic plan takes a key array for 10 keys; the bitmap scan it may then pick goes lossy once
/// it outgrows `work_mem`, and PostgreSQL rechecks each row of a lossy page by a linear search
/// of the array (9,999 orders over 2.5 million lines at `work_mem = 256kB`: 65 s against 3 s;
/// 100,000 orders: still running after 150 s). A plan made for the array sees its size, and
/// PostgreSQL hashes `= ANY` over a constant array. Planning it costs about 0.4 µs a key (each
/// one is estimated), little next to the rows that many keys reach in a purge.
///
/// A preview only reads, mostly from indexes, and planning is a large share of it: where its
/// kept plan reads every key array through an index, as ctids, or through a bitmap too small to
/// go lossy (`spi::kept_plan_scales_with_keys`), that plan serves any number of keys and runs as
/// it is. Purges and archives keep the plan made for the values: their bitmap heap scans visit
/// each page once, where an index scan of a large family spread over its table would visit
/// pages in random order.
///
/// Any keys at all under `uproot.debug_plan_for_values`, so that small families in tests take
/// this path too.
fn planned_for_values(st: &State, stmt: &Statement, args: &[DatumWithOid<'static>]) -> bool {
    let many = if crate::debug::plan_for_values() {
        1
    } else {
        MANY_KEYS
    };
    let keys = stmt
        .slots
        .iter()
        .filter_map(|s| match s {
            Slot::FoundKeys { rows, .. } => Some(st.set(rows.relation()).len()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    if keys < many {
        return false;
    }
    if st.mode == Mode::Preview && spi::kept_plan_scales_with_keys(&stmt.sql, args) {
        pgrx::debug1!(
            "uproot: a preview statement binding the keys of {keys} rows runs its kept generic plan, \
             which reads every key array through an index, as ctids or by an exact bitmap"
        );
        return false;
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Preview,
    Purge,
    Archive,
}

/// What the caller asked for, beyond the family graph.
pub struct Request {
    pub filter: RootFilter,
    pub root_args: Vec<DatumWithOid<'static>>,
    pub mode: Mode,
    /// `max_roots`: at most this many roots, whole families each.
    pub max_roots: Option<i64>,
    /// Leave roots other sessions hold locked (jobs).
    pub skip_locked: bool,
    /// For the ledger: the keys as jsonb text, or the predicate.
    pub keys_json: Option<String>,
    pub predicate: Option<String>,
    /// Preview of owned parents: the rows earlier rounds found, per table (a purge would have
    /// taken them already). This round counts only rows outside them, and adds its own.
    pub taken: Option<Taken>,
    /// A round after others (owned parents): the rows earlier rounds found are left out.
    pub later_round: bool,
}

/// The rows a preview's rounds found so far, per table.
pub type Taken = std::rc::Rc<std::cell::RefCell<BTreeMap<RelId, RowSet>>>;

/// What an operation did; `batch` is the archive batch, if one was written.
pub struct Outcome {
    pub touched: Vec<Touched>,
    pub batch: Option<i64>,
    /// Owned parents the family's rows referenced (`owned::settle` takes them afterwards).
    pub owned: Vec<owned::OwnedCandidates>,
    /// What `owned::settle` did with them.
    pub settled: Vec<owned::OwnedOutcome>,
}

/// One line of what an operation did (or, for preview, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct Touched {
    pub relation: RelId,
    pub action: Action,
    pub rows: i64,
}

/// What happened to rows of a relation (or, for preview, would happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deleted,
    Archived,
    /// Rows behind a blocked edge (preview only: purge and archive fail instead).
    Blocked,
    /// References set to NULL or to their default.
    Detached(DetachKind),
}

impl Action {
    /// As the SQL functions show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deleted => "deleted",
            Action::Archived => "archived",
            Action::Blocked => "blocked",
            Action::Detached(kind) => kind.action_word(),
        }
    }

    /// The rows left their table (deleted or archived).
    pub fn moved(self) -> bool {
        matches!(self, Action::Deleted | Action::Archived)
    }
}

struct State<'a> {
    cat: &'a Catalog,
    g: &'a FamilyGraph,
    req: &'a Request,
    mode: Mode,
    sets: BTreeMap<RelId, RowSet>,
    /// How far each followed edge has expanded its parent's set (index into the edge list).
    cursors: BTreeMap<usize, usize>,
    privileges: Privileges,
    /// The archive batch, once opened.
    batch: Option<i64>,
    /// The archive tables, once ready.
    targets: Vec<Prepared>,
    /// The rows of each join leaf, where they were counted.
    leaf_rows: BTreeMap<RelId, i64>,
    /// For `uproot.explain` before anything ran: every table is taken to have rows.
    explaining: bool,
    archiver: &'a dyn Archiver,
    /// The keys the family statement deleted, per (table, column), for the set-based check:
    /// arrays in SPI's memory, valid while SPI stays connected.
    deleted_keys: BTreeMap<(RelId, i16), (pg_sys::Datum, pg_sys::Oid)>,
    /// The tables this purge deletes in the statements that find them, in the graph's table
    /// order (`decide_delete_when_found`); empty for any other operation.
    deleted_when_found: Vec<RelId>,
    /// The runs of consecutive values of found integer keys, per (table, column), worked out
    /// once each (`State::key_runs`).
    key_runs: std::cell::RefCell<BTreeMap<(RelId, i16), Rc<plan::KeyRuns>>>,
}

/// The archive tables and the batch ledger, as an archive needs them. Exec plans and runs the
/// family's statements; the archive module, above it (wired in by the API), owns the archive
/// tables and the ledger.
pub trait Archiver {
    /// Make the archive tables of `sources` ready (created when missing and allowed).
    fn prepare(
        &self,
        client: &mut SpiClient<'_>,
        cat: &Catalog,
        root: RelId,
        sources: &[RelId],
    ) -> Result<Vec<Prepared>, UprootError>;
    /// The archive tables `prepare` would use, found without changing anything (for explain).
    fn planned(
        &self,
        client: &mut SpiClient<'_>,
        cat: &Catalog,
        sources: &[RelId],
    ) -> Result<Vec<Target>, UprootError>;
    /// Open a batch in the ledger; its id.
    fn open_batch(
        &self,
        client: &mut SpiClient<'_>,
        root: RelId,
        root_name: &str,
        keys_json: Option<String>,
        predicate: Option<String>,
    ) -> Result<i64, UprootError>;
    /// Record the references a `plan::archive::detach_returning` statement changed.
    fn record_detached(
        &self,
        client: &mut SpiClient<'_>,
        batch: i64,
        child: RelId,
        constraint: &str,
        changed: spi::Rows,
        forget: &[String],
    );
    /// (batch, rows) of the archived copies of the root rows `filter` names that the caller may
    /// read (for a NOTICE when no live row has the keys).
    fn archived_copies(
        &self,
        client: &mut SpiClient<'_>,
        cat: &Catalog,
        root: RelId,
        filter: &RootFilter,
        args: &[DatumWithOid<'static>],
    ) -> Result<Vec<(i64, i64)>, UprootError>;
    /// Close the batch: (source, archive table, rows) per relation, and the counts by name.
    fn close_batch(
        &self,
        client: &mut SpiClient<'_>,
        batch: i64,
        rows: &[(RelId, u32, i64)],
        counts_json: String,
    );
}

impl<'a> State<'a> {
    fn pair(&self, rel: RelId) -> bool {
        Ident::of(self.cat.relation(rel).expect("family table in catalog")) == Ident::Pair
    }

    fn set(&self, rel: RelId) -> &RowSet {
        static EMPTY: std::sync::OnceLock<RowSet> = std::sync::OnceLock::new();
        self.sets
            .get(&rel)
            .unwrap_or_else(|| EMPTY.get_or_init(RowSet::default))
    }

    fn name(&self, rel: RelId) -> String {
        self.cat
            .relation(rel)
            .map(|r| r.display_name())
            .unwrap_or_else(|| rel.to_string())
    }

    fn require(
        &mut self,
        rel: RelId,
        mode: u32,
        privilege: &str,
        why: String,
    ) -> Result<(), UprootError> {
        if self.privileges.has(rel, mode) {
            Ok(())
        } else {
            Err(UprootError::PermissionDenied {
                relation: self.name(rel),
                privilege: privilege.into(),
                why,
                grants: Vec::new(),
            })
        }
    }

    /// Lock rows only when purging and the caller may; otherwise read them and let the caller's
    /// missing privilege surface only if there are rows.
    fn may_lock(&mut self, rel: RelId) -> bool {
        self.writes() && self.privileges.has(rel, pg_sys::ACL_UPDATE)
    }

    fn writes(&self) -> bool {
        self.mode != Mode::Preview
    }

    /// The values of a statement's slots, in `$n` order: the one place where planned statements
    /// meet values.
    fn bind(&self, stmt: &Statement) -> Vec<DatumWithOid<'static>> {
        crate::debug::record(&stmt.sql);
        stmt.slots.iter().map(|slot| self.value(slot)).collect()
    }

    fn value(&self, slot: &Slot) -> DatumWithOid<'static> {
        match slot {
            Slot::Keys => {
                let keys = self
                    .req
                    .root_args
                    .first()
                    .expect("a keys slot only with keys");
                // SAFETY: the keys live as long as the request, which outlives the operation
                unsafe { DatumWithOid::new_from_datum(keys.datum(), keys.oid()) }
            }
            Slot::Limit => DatumWithOid::from(
                self.req
                    .max_roots
                    .expect("a limit slot only with max_roots"),
            ),
            Slot::Batch => DatumWithOid::from(self.batch.expect("a batch slot only once opened")),
            Slot::Tids(rows) => self.set(rows.relation()).tids_param(self.start(rows)),
            Slot::Oids(rows) => self.set(rows.relation()).oids_param(self.start(rows)),
            Slot::Relations(rels) => {
                let oids: Vec<pg_sys::Oid> = rels
                    .iter()
                    .flat_map(|r| self.leaves(*r))
                    .map(pg_sys::Oid::from)
                    .collect();
                DatumWithOid::from(oids)
            }
            Slot::DeletedKeys { table, column } => {
                let (d, oid) = self
                    .deleted_keys
                    .get(&(*table, *column))
                    .copied()
                    .expect("the family statement returned these keys");
                // SAFETY: an array of the column's type, with the type OID the family statement returned
                unsafe { DatumWithOid::new(d, oid) }
            }
            Slot::FoundKeys { rows, column } => match self.found_keys(rows, *column) {
                // SAFETY: an array of the column's type, as the collect statement returned it
                (Some(d), array_type) => unsafe { DatumWithOid::new(d, array_type) },
                (None, array_type) => DatumWithOid::null_oid(array_type),
            },
            Slot::KeyRuns { rows, column, last } => {
                let runs = self
                    .key_runs(rows.relation(), *column)
                    .expect("runs only of keys one statement returned");
                DatumWithOid::from(if *last {
                    runs.last.clone()
                } else {
                    runs.first.clone()
                })
            }
            Slot::RelationOids(rels) => DatumWithOid::from(
                rels.iter()
                    .map(|r| pg_sys::Oid::from(*r))
                    .collect::<Vec<_>>(),
            ),
            Slot::ConstraintOids(oids) => DatumWithOid::from(
                oids.iter()
                    .map(|o| pg_sys::Oid::from(*o))
                    .collect::<Vec<_>>(),
            ),
            Slot::Named(name) => panic!("uproot: a family operation has no value named {name}"),
        }
    }

    /// The array of `column`'s values (None: no rows) that the one statement that found the
    /// rows `rows` names returned, and the array type.
    fn found_keys(&self, rows: &Rows, column: i16) -> (Option<pg_sys::Datum>, pg_sys::Oid) {
        let table = rows.relation();
        let column_type = self
            .cat
            .relation(table)
            .and_then(|r| r.column(column))
            .map_or(0, |c| c.type_oid);
        // SAFETY: a lookup of a type in the catalog
        let array_type = unsafe { pg_sys::get_array_type(pg_sys::Oid::from(column_type)) };
        let set = self.set(table);
        let start = self.start(rows);
        let keys = match set.found_key(column) {
            // every row already followed (a cycle below binds all its edges again)
            _ if start == set.len() => None,
            _ if start != 0 => panic!(
                "uproot: the keys of {} stand for some rows already followed",
                self.name(table)
            ),
            Some(keys) => keys,
            None if set.is_empty() => None,
            None => panic!(
                "uproot: the rows of {} were found by more than one statement, so no one array holds their keys",
                self.name(table)
            ),
        };
        (keys, array_type)
    }

    /// Where the rows a slot names start in their set.
    fn start(&self, rows: &Rows) -> usize {
        match rows {
            Rows::Family(_) => 0,
            Rows::Unexpanded { edge, .. } => self.cursors.get(edge).copied().unwrap_or(0),
            Rows::Staying(_) => panic!("uproot: a family operation has no staying rows"),
        }
    }

    /// A relation's leaf partitions (itself when it is not partitioned): the statistics
    /// counters are kept per leaf.
    fn leaves(&self, rel: RelId) -> Vec<RelId> {
        match self.cat.relation(rel) {
            Some(r) if r.is_partitioned() => r.leaf_partitions.clone(),
            _ => vec![rel],
        }
    }
}

/// Preview, purge or archive the family of the rows the request names. With
/// `uproot.debug_check_explain`, every statement it bound must be one that explain shows for the
/// same request, given what it found.
pub fn run_operation(
    cat: &Catalog,
    g: &FamilyGraph,
    req: Request,
    archiver: &dyn Archiver,
) -> Result<Outcome, UprootError> {
    // `uproot.debug_skip_edge`: a closure corrupted on purpose, for the tests
    let corrupted = ri_check::debug_corrupted(g, cat);
    let g = corrupted.as_ref().unwrap_or(g);
    Spi::connect_mut(|client| {
        let mut st = State::new(cat, g, &req, archiver);
        st.decide_delete_when_found();
        let recording = crate::debug::Recording::start();
        let out = operate(&mut st, client, &req)?;
        if let Some(recording) = recording {
            let steps = explain_steps(&mut st, client)?;
            recording.check(steps.iter().map(|s| s.statement.sql.as_str()))?;
        }
        Ok(out)
    })
}

impl<'a> State<'a> {
    fn new(
        cat: &'a Catalog,
        g: &'a FamilyGraph,
        req: &'a Request,
        archiver: &'a dyn Archiver,
    ) -> State<'a> {
        State {
            cat,
            g,
            req,
            mode: req.mode,
            sets: BTreeMap::new(),
            cursors: BTreeMap::new(),
            privileges: Privileges::default(),
            batch: None,
            targets: Vec::new(),
            leaf_rows: BTreeMap::new(),
            explaining: false,
            archiver,
            deleted_keys: BTreeMap::new(),
            deleted_when_found: Vec::new(),
            key_runs: Default::default(),
        }
    }

    /// The runs the found keys of `table`'s `column` form (an integer column: `key_runs_edge`);
    /// None for a column of another type.
    fn key_runs(&self, table: RelId, column: i16) -> Option<Rc<plan::KeyRuns>> {
        if let Some(runs) = self.key_runs.borrow().get(&(table, column)) {
            return Some(runs.clone());
        }
        let keys = match self.found_keys(&Rows::Family(table), column) {
            (Some(d), array_type) => integer_keys(d, array_type)?,
            (None, _) => Vec::new(),
        };
        let runs = Rc::new(plan::KeyRuns::of(keys));
        self.key_runs
            .borrow_mut()
            .insert((table, column), runs.clone());
        Some(runs)
    }

    /// Decide, before anything runs, which tables this purge deletes when it finds them: those
    /// `plan::deleted_when_found` names, in a purge without owned relations (their candidates
    /// are read from the family's rows by ctid) whose family statement the set-based check
    /// covers, where the caller may delete from the table and from its children (otherwise its
    /// rows are locked, and the usual checks say which privilege is missing before anything is
    /// deleted).
    fn decide_delete_when_found(&mut self) {
        let (cat, g) = (self.cat, self.g);
        if self.mode != Mode::Purge
            || owned::any(cat, g)
            || ri_check::SetCheck::for_operation(self).is_none()
        {
            return;
        }
        let privileges = &mut self.privileges;
        self.deleted_when_found = g
            .tables()
            .filter(|&t| {
                plan::deleted_when_found(cat, g, t)
                    && privileges.has(t, pg_sys::ACL_DELETE)
                    && g.edges_from(t)
                        .all(|e| privileges.has(e.child, pg_sys::ACL_DELETE))
            })
            .collect();
    }

    /// Does this purge delete `t`'s rows in the statement that finds them?
    fn deletes_when_found(&self, t: RelId) -> bool {
        self.deleted_when_found.contains(&t)
    }

    /// One column's values in the rows of `table`, as the one statement that found them
    /// returned them: an array of the column's type, with its type OID; an empty one where no
    /// statement looked (its parents had no rows).
    fn found_keys_datum(&self, table: RelId, column: i16) -> Option<(pg_sys::Datum, pg_sys::Oid)> {
        let column_type = pg_sys::Oid::from(self.cat.relation(table)?.column(column)?.type_oid);
        // SAFETY: a lookup of a type in the catalog
        let array_type = unsafe { pg_sys::get_array_type(column_type) };
        let d = match self.set(table).found_key(column) {
            Some(Some(d)) => d,
            // SAFETY: a new empty array of the column's type, in the call's memory context
            _ => pg_sys::Datum::from(unsafe { pg_sys::construct_empty_array(column_type) }),
        };
        Some((d, array_type))
    }

    /// Does `rel`'s set have rows (before anything ran, for explain: it may)?
    fn may_have_rows(&self, rel: RelId) -> bool {
        self.explaining || !self.set(rel).is_empty()
    }
}

/// Preview, purge or archive, with SPI connected.
fn operate(
    st: &mut State,
    client: &mut SpiClient<'_>,
    req: &Request,
) -> Result<Outcome, UprootError> {
    let g = st.g;
    {
        check_read_privileges(st)?;
        if req.mode == Mode::Purge && native_cascade_ok(st) {
            let touched = native_cascade(st, client, req)?;
            if touched
                .iter()
                .any(|t| t.relation == g.root && t.action == Action::Deleted && t.rows == 0)
            {
                notice_no_match(st, client, req)?;
            }
            return Ok(Outcome {
                touched,
                batch: None,
                owned: Vec::new(),
                settled: Vec::new(),
            });
        }
        collect_family(st, client, req)?;
        if st.set(g.root).is_empty() {
            notice_no_match(st, client, req)?;
        }
        // rows an earlier round of the preview found are gone by the time a purge gets here (a
        // preview's rounds only: purge and archive have no `taken`)
        if let Some(taken) = &req.taken {
            for (rel, rows) in taken.borrow().iter() {
                if let Some(set) = st.sets.get_mut(rel) {
                    *set = set.without(rows);
                }
            }
        }
        let blocked = check_blocked(st, client)?;
        let mut detached = collect_detached(st, client)?;
        if let Some(taken) = &req.taken {
            let taken = taken.borrow();
            for ((rel, _), rows) in detached.per_table.iter_mut() {
                if let Some(gone) = taken.get(rel) {
                    *rows = rows.without(gone);
                }
            }
        }
        let mut out = match req.mode {
            Mode::Preview => {
                warn_hidden_rows(st);
                let touched = preview_counts(st, client, &detached);
                // everything found so far: owned parents are free only if no row outside it
                // references them
                if let Some(taken) = &req.taken {
                    let mut taken = taken.borrow_mut();
                    for (rel, rows) in &st.sets {
                        taken.entry(*rel).or_default().add(rows);
                    }
                    st.sets = taken.clone();
                }
                Outcome {
                    touched,
                    batch: None,
                    owned: owned::candidates(st, client),
                    settled: Vec::new(),
                }
            }
            Mode::Purge | Mode::Archive => {
                let owned = owned::candidates(st, client);
                let mut out = apply(st, client, &detached, req)?;
                out.owned = owned;
                out
            }
        };
        out.touched.extend(blocked);
        Ok(out)
    }
}

/// A NOTICE when the keys or the predicate name no row. When the keys name no live row but the
/// archive holds rows with them, it says where, so that an erasure request covers the archive
/// too. Not for `skip_locked` calls: a job's last batch finds nothing by design.
fn notice_no_match(
    st: &State,
    client: &mut SpiClient<'_>,
    req: &Request,
) -> Result<(), UprootError> {
    if req.skip_locked {
        return Ok(());
    }
    let root = st.name(st.g.root);
    let count_keys = match req.filter {
        RootFilter::Predicate(_) => {
            pgrx::notice!("uproot: the predicate matches no row of {root}");
            return Ok(());
        }
        RootFilter::Scalar { .. } => None,
        RootFilter::Array { .. } => Some("SELECT pg_catalog.cardinality($1)::pg_catalog.int8"),
        RootFilter::Json => {
            Some("SELECT pg_catalog.jsonb_array_length($1::pg_catalog.jsonb)::pg_catalog.int8")
        }
    };
    let count_keys = count_keys.map(|sql| Statement {
        sql: sql.into(),
        slots: vec![Slot::Keys],
    });
    // an empty list of keys asks for nothing
    // a diagnostic, not a step of the operation: bound here, not through the state
    let keys = |stmt: &Statement| {
        let k = &req.root_args[0];
        let k = unsafe { DatumWithOid::new_from_datum(k.datum(), k.oid()) };
        spi::bind_unrecorded(stmt, vec![(Slot::Keys, k)])
    };
    if count_keys
        .is_some_and(|stmt| read_count(spi::query(false, client, &stmt.sql, &keys(&stmt))) == 0)
    {
        return Ok(());
    }
    let copies =
        st.archiver
            .archived_copies(client, st.cat, st.g.root, &req.filter, &req.root_args)?;
    if copies.is_empty() {
        pgrx::notice!("uproot: no row of {root} has the given keys");
        return Ok(());
    }
    let rows: i64 = copies.iter().map(|c| c.1).sum();
    let batches: Vec<String> = copies.iter().map(|c| c.0.to_string()).collect();
    pg_sys::panic::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
        format!("uproot: no row of {root} has the given keys, but the archive holds {rows} row(s) of {root} with them"),
        "",
    )
    .set_detail(format!("They were archived in batch(es) {}.", batches.join(", ")))
    .set_hint(format!(
        "To erase them too, uproot.find_archived('{root}', <the same keys>) lists those batches and uproot.drop_batch(batch_id) erases one."
    ))
    .report(PgLogLevel::NOTICE);
    Ok(())
}

/// Preview counts what the caller can see; with row-level security, purge may find more.
fn warn_hidden_rows(st: &State) {
    let mut tables: Vec<RelId> =
        st.g.tables()
            .chain(st.g.edges.iter().map(|e| e.child))
            .collect();
    tables.sort();
    tables.dedup();
    // an owned parent's round: a table an earlier round found rows of was warned about there
    if let Some(taken) = &st.req.taken {
        let taken = taken.borrow();
        tables.retain(|t| taken.get(t).is_none_or(|rows| rows.is_empty()));
    }
    for t in tables.into_iter().filter(|t| spi::rls_active(*t)) {
        pgrx::notice!(
            "uproot: row-level security is active on {}: preview counts only the rows you can see, and purge fails if others reference the family",
            st.name(t)
        );
    }
}

fn check_read_privileges(st: &mut State) -> Result<(), UprootError> {
    let mut read: Vec<RelId> = st.g.tables().collect();
    read.extend(st.g.edges.iter().map(|e| e.child));
    read.extend(st.g.edges.iter().map(|e| e.parent_sql_rel));
    read.sort();
    read.dedup();
    for rel in read {
        st.require(
            rel,
            pg_sys::ACL_SELECT,
            "SELECT",
            "Finding the family reads every table its foreign keys reach.".into(),
        )?;
    }
    Ok(())
}

/// Collect (and when writing, lock) the family top-down, component by component, to a fixpoint.
///
/// A cyclic component (self-reference, cycle) is first found without locks, then locked all at
/// once table by table in key order, then found again with locks: two operations whose families
/// overlap inside one tree then lock the shared rows in the same order instead of deadlocking.
fn collect_family(
    st: &mut State,
    client: &mut SpiClient<'_>,
    req: &Request,
) -> Result<(), UprootError> {
    let root = st.g.root;
    if !st.g.sccs.first().is_some_and(|c| c.contains(&root)) {
        return Err(UprootError::Internal {
            what: "the root must lead the lock order".into(),
        });
    }
    for group in collect_groups(st) {
        let scc = match group {
            Collect::Component(scc) => scc,
            Collect::Batch(tables) => {
                collect_batch(st, client, &tables, st.writes())?;
                continue;
            }
        };
        let cyclic = scc.iter().any(|t| st.g.in_cycle(st.cat, *t));
        if cyclic && st.writes() {
            let tree = expand_component(st, client, req, &scc, false)? && st.may_lock(scc[0]);
            for &t in &scc {
                if !st.set(t).is_empty() && st.may_lock(t) {
                    let lock = planned(st, MemoKey::Lock(t), || plan::lock_in_key_order(st.cat, t));
                    find(st, client, &lock);
                }
            }
            // what the first read found, to compare the second with (a tree is one table)
            let found = tree.then(|| sorted_tids(st.set(scc[0])));
            forget_component(st, &scc);
            if let Some(found) = found {
                // Every row found is locked now; read the tree again the same way, with a
                // snapshot taken after those locks. The same rows: they are the family, and no
                // row can join them without waiting for us. Otherwise (a row changed or joined
                // in between), collect and lock level by level as for any cycle.
                if scc.contains(&st.g.root) {
                    collect_roots(st, client, req, true)?;
                }
                collect_tree(st, client, scc[0]);
                if sorted_tids(st.set(scc[0])) == found {
                    check_lockable(st, scc[0])?;
                    continue;
                }
                forget_component(st, &scc);
            }
        }
        expand_component(st, client, req, &scc, st.writes())?;
    }
    Ok(())
}

fn sorted_tids(set: &RowSet) -> Vec<u64> {
    let mut tids = set.tids.clone();
    tids.sort_unstable();
    tids
}

/// Forget a component's rows and how far its edges were expanded, to read it again.
fn forget_component(st: &mut State, scc: &[RelId]) {
    for &t in scc {
        st.sets.remove(&t);
    }
    let into_scc: Vec<usize> =
        st.g.edges
            .iter()
            .enumerate()
            .filter(|(_, e)| scc.contains(&e.child))
            .map(|(i, _)| i)
            .collect();
    for i in into_scc {
        st.cursors.remove(&i);
    }
}

/// How the components are collected, in lock order.
enum Collect {
    /// One component, as `expand_component` finds it.
    Component(Vec<RelId>),
    /// Several tables of one row each in lock order, none the parent of another: one statement
    /// finds (and locks, in this order) the rows of all of them (`collect_batch`).
    Batch(Vec<RelId>),
}

/// The components in lock order, runs of plain tables batched: a table that is its own
/// component, not in a cycle, not the root, not deleted through a join, not partitioned, with
/// followed edges only from tables collected before the run. Every statement of a run starts
/// from parent rows that earlier statements locked, so each still reads with a fresh snapshot
/// taken after those locks; one statement instead of one per table cuts the fixed cost of broad
/// schemas.
fn collect_groups(st: &State) -> Vec<Collect> {
    let (cat, g) = (st.cat, st.g);
    let mut out = Vec::new();
    let mut run: Vec<RelId> = Vec::new();
    // a table deleted when found is deleted by a batch statement, even alone
    let alone = |t: RelId| !st.deletes_when_found(t);
    let flush = |run: &mut Vec<RelId>, out: &mut Vec<Collect>| match run.as_slice() {
        [] => {}
        [t] if alone(*t) => out.push(Collect::Component(std::mem::take(run))),
        _ => out.push(Collect::Batch(std::mem::take(run))),
    };
    for scc in &g.sccs {
        // a join leaf is deleted through a join, never collected (nor a leaf a preview only
        // counts): it breaks no run
        if let [t] = scc.as_slice() {
            if plan::is_join_leaf(cat, g, *t) || counted_leaf(st, *t) {
                continue;
            }
        }
        let plain = match scc.as_slice() {
            [t] => collected_after_parents(st, *t),
            _ => false,
        };
        if !plain {
            flush(&mut run, &mut out);
            out.push(Collect::Component(scc.clone()));
            continue;
        }
        let t = scc[0];
        if g.followed_into(t).any(|e| run.contains(&e.from)) {
            flush(&mut run, &mut out);
        }
        run.push(t);
    }
    flush(&mut run, &mut out);
    out
}

/// A table collected (with the predicate of every followed edge into it) only after all of its
/// parents' rows are found and locked: not the root, not in a cycle, not deleted through a join,
/// not identified by (tableoid, ctid), with at least one followed edge into it.
fn collected_after_parents(st: &State, t: RelId) -> bool {
    let (cat, g) = (st.cat, st.g);
    t != g.root
        && !g.in_cycle(cat, t)
        && !plan::is_join_leaf(cat, g, t)
        && !st.pair(t)
        && g.followed_into(t).next().is_some()
}

/// A table of a cyclic component without the root that a purge or an archive collected: its
/// rows were found, and locked, to a fixpoint through every followed edge into it (the tree read
/// again after its locks, or level by level with locks), each parent row locked before the
/// statement that read its children took its snapshot.
fn collected_to_fixpoint(st: &State, t: RelId) -> bool {
    let (cat, g) = (st.cat, st.g);
    st.writes()
        && g.in_cycle(cat, t)
        && !st.pair(t)
        && g.scc_of(t).is_some_and(|i| !g.sccs[i].contains(&g.root))
}

/// A table whose collect ran each followed edge's own predicate (`fk = ANY (parent keys)`) over
/// every parent row, with the parents locked first: once the family statement deleted every
/// row found there, nothing that predicate could find is left.
fn walked_with_parents_locked(st: &State, t: RelId) -> bool {
    collected_after_parents(st, t) || collected_to_fixpoint(st, t)
}

/// The items of a batch: each table with its followed edges and what its statement does with
/// its rows (`lock`: a purge or an archive).
fn batch_items<'g>(st: &mut State<'g>, tables: &[RelId], lock: bool) -> Vec<plan::BatchItem<'g>> {
    let g = st.g;
    tables
        .iter()
        .map(|&t| {
            let take = if lock && st.deletes_when_found(t) {
                plan::Take::Delete
            } else if lock && st.may_lock(t) {
                plan::Take::Lock
            } else {
                plan::Take::Find
            };
            (t, g.followed_into_indexed(t).collect(), take)
        })
        .collect()
}

/// Find (and lock) the rows of a batch of tables in one statement; nothing runs when none of
/// their parents has new rows (the statement always names every table of the batch: the one
/// explain shows).
fn collect_batch(
    st: &mut State,
    client: &mut SpiClient<'_>,
    tables: &[RelId],
    lock: bool,
) -> Result<(), UprootError> {
    let pending = tables.iter().any(|&t| {
        st.g.followed_into_indexed(t)
            .any(|(i, e)| st.set(e.from).len() > st.cursors.get(&i).copied().unwrap_or(0))
    });
    if !pending {
        return Ok(());
    }
    let items = batch_items(st, tables, lock);
    let key = items
        .iter()
        .map(|(t, refs, lock)| (*t, refs.iter().map(|(i, _)| *i).collect(), *lock))
        .collect();
    let stmt = planned(st, MemoKey::Batch(key), || {
        plan::collect_children_batch(st.cat, st.g, &items)
    });
    let args = st.bind(&stmt);
    for (_, refs, _) in &items {
        for (i, e) in refs {
            st.cursors.insert(*i, st.set(e.from).len());
        }
    }
    let deletes = items.iter().any(|(_, _, take)| *take == plan::Take::Delete);
    let rows = if deletes {
        // its deletes run as the family statement does, with the RI triggers off: the
        // set-based check covers their tables (`deleted_when_found_parts`)
        ri_check::without_ri_triggers(|| execute_bound(st, client, &stmt, &args, true))
    } else {
        execute_bound(st, client, &stmt, &args, st.writes())
    };
    let row = rows.first();
    // per table its tid[] column, then its key arrays
    let mut column = 1;
    for (&t, (_, _, take)) in tables.iter().zip(&items) {
        let tids = match row.datum(column) {
            // SAFETY: a non-null tid[] (array_agg of ctids)
            Some((d, _)) => unsafe { spi::tids_from_datum(d) },
            None => Vec::new(),
        };
        let carried = plan::carried_keys(st.cat, st.g, t);
        let keys = spi::read_found_keys(&row, column + 1, carried);
        column += 1 + carried.len();
        st.sets.entry(t).or_default().extend_found(tids, None, keys);
        if lock && *take != plan::Take::Delete {
            check_lockable(st, t)?;
        }
    }
    Ok(())
}

/// Find (and lock) the roots. The caller's predicate or key values fail here if they are wrong:
/// that is said as uproot's error, with PostgreSQL's SQLSTATE for a predicate.
fn collect_roots(
    st: &mut State,
    client: &mut SpiClient<'_>,
    req: &Request,
    lock: bool,
) -> Result<(), UprootError> {
    let root = st.g.root;
    let read = root_read(st, lock);
    let stmt = planned(st, MemoKey::Root(req.filter.clone(), read), || {
        plan::collect_root(st.cat, st.g, &req.filter, read)
    });
    let args = st.bind(&stmt);
    let sql = stmt.sql.clone();
    let (writes, pair) = (st.writes(), st.pair(root));
    let relation = st.name(root);
    let filter = req.filter.clone();
    let client_ptr = client as *mut SpiClient<'_> as usize;
    let carried = plan::carried_keys(st.cat, st.g, root);
    // The caller's predicate or key values fail here if they are wrong: say so as uproot.
    let (tids, oids, keys) = PgTryBuilder::new(|| {
        // SAFETY: the client outlives this closure; the pointer only crosses the unwind boundary
        let client = unsafe { &mut *(client_ptr as *mut SpiClient<'_>) };
        let rows = spi::query(writes, client, &sql, &args);
        // after the tids (and oids of a pair), the carried keys' arrays
        let keys = spi::read_found_keys(&rows.first(), if pair { 3 } else { 2 }, carried);
        let (tids, oids) = read_row_set(rows, pair);
        (tids, oids, keys)
    })
    .catch_others(move |e| {
        let pgrx::pg_sys::panic::CaughtError::PostgresError(r) = &e else {
            e.rethrow()
        };
        let code = r.sql_error_code() as i32;
        let denied = r.sql_error_code() == PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE;
        let ours = match &filter {
            RootFilter::Predicate(_) if is_class_42(code) && !denied => {
                UprootError::PredicateRejected {
                    relation: relation.clone(),
                    sqlstate: sqlstate_text(code),
                    said: r.message().to_string(),
                }
            }
            RootFilter::Json if is_class_22(code) => UprootError::InvalidArgument {
                argument: "keys".into(),
                message: format!("a key value does not fit its column: {}", r.message()),
                hint: "Pass key values of the primary-key columns' types.".into(),
            },
            _ => e.rethrow(),
        };
        crate::report::raise(ours)
    })
    .execute();
    st.sets
        .entry(root)
        .or_default()
        .extend_found(tids, oids, keys);
    if lock {
        check_lockable(st, root)?;
    }
    Ok(())
}

/// Find the rows of one component: the roots (if it holds the root), then children of rows not
/// yet expanded, until nothing new appears. True when one recursive statement read it whole
/// (`collect_tree`: a tree table, without locks, from few start rows).
fn expand_component(
    st: &mut State,
    client: &mut SpiClient<'_>,
    req: &Request,
    scc: &[RelId],
    lock: bool,
) -> Result<bool, UprootError> {
    if scc.contains(&st.g.root) {
        collect_roots(st, client, req, lock)?;
    }
    if let Some(t) = plan::tree_table(st.cat, st.g, scc).filter(|_| !lock) {
        let start: usize =
            st.g.followed_into_indexed(t)
                .map(|(i, e)| st.set(e.from).len() - st.cursors.get(&i).copied().unwrap_or(0))
                .sum();
        if start <= plan::TREE_START_LIMIT {
            collect_tree(st, client, t);
            return Ok(true);
        }
    }
    loop {
        let mut grew = false;
        for &table in scc {
            if plan::is_join_leaf(st.cat, st.g, table) {
                continue;
            }
            // run when an incoming edge has parent rows it has not expanded yet
            let pending =
                st.g.followed_into_indexed(table)
                    .any(|(i, e)| st.set(e.from).len() > st.cursors.get(&i).copied().unwrap_or(0));
            if !pending {
                continue;
            }
            let lock_table = lock && st.may_lock(table);
            // every incoming edge, the ones with nothing new too (they bind no rows): one
            // statement per table and lock mode, the one explain shows
            let refs: Vec<(usize, &FamilyEdge)> = st.g.followed_into_indexed(table).collect();
            let key = MemoKey::Children(table, refs.iter().map(|(i, _)| *i).collect(), lock_table);
            let stmt = planned(st, key, || {
                plan::collect_children(st.cat, st.g, table, &refs, lock_table)
            });
            let args = st.bind(&stmt);
            for (i, e) in refs {
                st.cursors.insert(i, st.set(e.from).len());
            }
            let rows = execute_bound(st, client, &stmt, &args, st.writes());
            let keys =
                spi::read_found_keys(&rows.first(), 2, plan::carried_keys(st.cat, st.g, table));
            let (tids, oids) = read_row_set(rows, st.pair(table));
            if st
                .sets
                .entry(table)
                .or_default()
                .extend_found(tids, oids, keys)
                > 0
            {
                grew = true;
            }
            if lock {
                check_lockable(st, table)?;
            }
        }
        if !grew {
            break;
        }
    }
    Ok(false)
}

/// Without locks, the rows of a self-referencing table that reference the family, and all rows
/// below them, in one statement (`plan::collect_tree`); every edge into it is then expanded.
fn collect_tree(st: &mut State, client: &mut SpiClient<'_>, table: RelId) {
    let refs: Vec<(usize, &FamilyEdge)> = st.g.followed_into_indexed(table).collect();
    let stmt = planned(st, MemoKey::Tree(table), || {
        plan::collect_tree(st.cat, st.g, table, &refs)
    });
    let args = st.bind(&stmt);
    let rows = execute_bound(st, client, &stmt, &args, st.writes());
    let (tids, oids) = read_row_set(rows, st.pair(table));
    st.sets.entry(table).or_default().extend(tids, oids);
    for (i, e) in refs {
        st.cursors.insert(i, st.set(e.from).len());
    }
}

/// A purge that found rows in a table it could not lock reports the missing privilege.
fn check_lockable(st: &mut State, table: RelId) -> Result<(), UprootError> {
    if !st.writes() || st.set(table).is_empty() {
        return Ok(());
    }
    let n = st.set(table).len();
    st.require(
        table,
        pg_sys::ACL_DELETE,
        "DELETE",
        format!("{n} row(s) of {} belong to the family.", st.name(table)),
    )?;
    st.require(
        table,
        pg_sys::ACL_UPDATE,
        "UPDATE",
        format!(
            "{n} row(s) of {} belong to the family and are locked FOR UPDATE first, which needs UPDATE.",
            st.name(table)
        ),
    )
}

/// Blocked edges (respect_restrict, stop_at): a purge fails if they have rows; preview reports.
fn check_blocked(st: &mut State, client: &mut SpiClient<'_>) -> Result<Vec<Touched>, UprootError> {
    let mut out: BTreeMap<RelId, i64> = BTreeMap::new();
    for e in st.g.edges.clone() {
        let Disposition::Block(reason) = e.disposition else {
            continue;
        };
        if st.set(e.from).is_empty() {
            continue;
        }
        // a preview's earlier rounds took these rows already: they do not block (a purge would
        // have deleted them by now)
        let count = match earlier_rows(st, e.child) {
            None => {
                let stmt = plan::count_referencing(st.cat, &e, st.g.contains(e.child));
                read_count(find(st, client, &stmt))
            }
            Some(earlier) => {
                let stmt = plan::count_referencing(st.cat, &e, true);
                let mut all = st.set(e.child).clone();
                all.add(&earlier);
                read_count(with_set(st, e.child, all, |st| find(st, client, &stmt)))
            }
        };
        if count == 0 {
            continue;
        }
        if st.mode == Mode::Preview {
            *out.entry(e.child).or_default() += count;
            continue;
        }
        let fk = &st.cat.foreign_keys[e.fk];
        return Err(match reason {
            BlockReason::RespectRestrict => UprootError::RestrictBlocked {
                child: st.name(e.child),
                parent: st.name(fk.parent),
                constraint: fk.name.clone(),
                action: fk.action().sql_name().into(),
                count,
            },
            BlockReason::StopAt => UprootError::StopAtBlocked {
                child: st.name(e.child),
                parent: st.name(fk.parent),
                constraint: fk.name.clone(),
                count,
            },
        });
    }
    Ok(out
        .into_iter()
        .map(|(relation, rows)| Touched {
            relation,
            action: Action::Blocked,
            rows,
        })
        .collect())
}

/// The rows of `rel` that a preview's earlier rounds found (`Request::taken`), if any: a purge
/// would have taken them by now, so this round neither counts them nor lets them block.
fn earlier_rows(st: &State, rel: RelId) -> Option<RowSet> {
    let taken = st.req.taken.as_ref()?.borrow();
    taken.get(&rel).filter(|rows| !rows.is_empty()).cloned()
}

/// Explain, after a preview's round: did `earlier_rows` have rows of `rel`? They are in the
/// set by then (the round adds the rows found so far to it, see `operate`).
fn had_earlier_rows(st: &State, rel: RelId) -> bool {
    st.req.taken.is_some() && !st.set(rel).is_empty()
}

/// Run `f` with `rows` as the set of `rel` (a statement binding `Rows::Family(rel)` then leaves
/// them out), and the set as it was afterwards.
fn with_set<T>(st: &mut State, rel: RelId, rows: RowSet, f: impl FnOnce(&mut State) -> T) -> T {
    let own = std::mem::replace(st.sets.entry(rel).or_default(), rows);
    let out = f(st);
    st.sets.insert(rel, own);
    out
}

/// Rows that detach edges will change, per (table, kind), locked in key order when purging.
struct Detached {
    per_edge: Vec<(FamilyEdge, RowSet)>,
    per_table: BTreeMap<(RelId, DetachKind), RowSet>,
}

fn collect_detached(st: &mut State, client: &mut SpiClient<'_>) -> Result<Detached, UprootError> {
    let mut d = Detached {
        per_edge: Vec::new(),
        per_table: BTreeMap::new(),
    };
    for e in st.g.edges.clone() {
        let Disposition::Detach(kind) = e.disposition else {
            continue;
        };
        if st.set(e.from).is_empty() {
            continue;
        }
        let exclude = st.g.contains(e.child);
        let lock = st.may_lock(e.child);
        let stmt = plan::collect_detached(st.cat, &e, exclude, lock);
        let (tids, oids) = read_row_set(find(st, client, &stmt), st.pair(e.child));
        let n = tids.len();
        if n > 0 && st.writes() {
            st.require(
                e.child,
                pg_sys::ACL_UPDATE,
                "UPDATE",
                format!(
                    "{n} row(s) of {} reference the family through {} and are set to {}.",
                    st.name(e.child),
                    st.cat.foreign_keys[e.fk].name,
                    if kind == DetachKind::SetNull {
                        "NULL"
                    } else {
                        "their default"
                    }
                ),
            )?;
        }
        let mut edge_rows = RowSet::default();
        edge_rows.extend(tids.clone(), oids.clone());
        d.per_table
            .entry((e.child, kind))
            .or_default()
            .extend(tids, oids);
        d.per_edge.push((e, edge_rows));
    }
    Ok(d)
}

/// A preview counts a table without edges out that several followed edges reach (a diamond's
/// leaf) in the statement that counts the join leaves, instead of collecting its rows first:
/// nothing else needs them. Not for a partition or a partitioned table, a table a detach or
/// blocked edge reaches too (its detached rows leave out the family's), or a family with owned
/// parents, or an owned parent's round (a preview's rounds share the rows they found).
fn counted_leaf(st: &State, t: RelId) -> bool {
    let (cat, g) = (st.cat, st.g);
    st.mode == Mode::Preview
        && t != g.root
        && !plan::is_join_leaf(cat, g, t)
        && g.edges_from(t).next().is_none()
        && g.followed_into(t).next().is_some()
        && g.edges
            .iter()
            .filter(|e| e.child == t)
            .all(|e| matches!(e.disposition, Disposition::Follow))
        && cat
            .relation(t)
            .is_some_and(|r| !r.is_partitioned() && r.parent.is_none())
        && !owned::any(cat, g)
        && !st.req.later_round
}

/// What a preview counts in one statement: each join leaf no earlier round found rows of
/// (through its one edge; `earlier`: `earlier_rows` when running, `had_earlier_rows` when
/// explaining) and each `counted_leaf` (through every edge into it).
fn preview_leaf_groups<'g>(
    st: &State<'g>,
    leaves: &'g [FamilyEdge],
    earlier: fn(&State, RelId) -> bool,
) -> Vec<(RelId, Vec<&'g FamilyEdge>)> {
    let g = st.g;
    let mut groups: Vec<(RelId, Vec<&FamilyEdge>)> = leaves
        .iter()
        .filter(|e| !earlier(st, e.child))
        .map(|e| (e.child, vec![e]))
        .collect();
    for t in g.tables().filter(|t| counted_leaf(st, *t)) {
        groups.push((t, g.followed_into(t).collect()));
    }
    groups
}

/// Each join leaf of `edges` (its one edge into it) as a group `count_joined` counts.
fn one_edge_groups<'e>(edges: &[&'e FamilyEdge]) -> Vec<(RelId, Vec<&'e FamilyEdge>)> {
    edges.iter().map(|e| (e.child, vec![*e])).collect()
}

/// `plan::count_leaves_batch` of `groups`, planned once per graph. An archive needs only
/// whether a leaf it may move has rows (it moves, and needs an archive table for, only those
/// that do; the family statement counts what it moved); a leaf the caller may not delete from
/// is counted, for the error. Edges from a table whose keys its one statement returned take
/// those keys, except in a preview's later round or with owned parents (rows found by rounds).
fn count_leaves_statement(
    st: &mut State,
    groups: &[(RelId, Vec<&FamilyEdge>)],
    runs: bool,
) -> Rc<Statement> {
    let tallies: Vec<plan::LeafTally> = groups
        .iter()
        .map(|(t, edges)| plan::LeafTally {
            leaf: *t,
            edges: edges.clone(),
            any_row: st.mode == Mode::Archive && st.privileges.has(*t, pg_sys::ACL_DELETE),
        })
        .collect();
    let found_keys = !st.req.later_round && !owned::any(st.cat, st.g);
    let key = tallies
        .iter()
        .map(|l| {
            let edges = l.edges.iter().map(|e| (e.fk, e.from, e.child)).collect();
            (l.leaf, edges, l.any_row)
        })
        .collect();
    planned(st, MemoKey::CountLeaves(key, found_keys, runs), || {
        plan::count_leaves_batch(st.cat, st.g, &tallies, found_keys, runs)
    })
}

/// The leaves of `groups` a preview's count may read by runs of their parent keys: one edge
/// each, which `plan::key_runs_edge` allows, in a call whose edges take the found keys.
fn run_groups<'g>(st: &State, groups: &'g [(RelId, Vec<&FamilyEdge>)]) -> Vec<&'g FamilyEdge> {
    if st.mode != Mode::Preview || st.req.later_round || owned::any(st.cat, st.g) {
        return Vec::new();
    }
    groups
        .iter()
        .filter_map(|(_, edges)| match edges.as_slice() {
            [e] if plan::key_runs_edge(st.cat, st.g, e) => Some(*e),
            _ => None,
        })
        .collect()
}

/// Does a preview count by runs (`plan::count_by_runs`)? When the keys those leaves are read by
/// number `MANY_KEYS` or more and form long runs: at most one run per `KEYS_PER_RUN` keys, as a
/// family's children stored together with consecutive ids do. A range scan per run then reads
/// what `= ANY` reads with a descent of the index per key, and needs no plan made for the
/// values (planning `= ANY` over 20,000 keys estimates each one: about 8 ms). Keys spread apart
/// keep `= ANY`, which steps through them faster than a scan per run of one. Always, where
/// possible, under `uproot.debug_key_runs`.
fn counts_by_runs(st: &State, groups: &[(RelId, Vec<&FamilyEdge>)]) -> bool {
    const KEYS_PER_RUN: usize = 4;
    let edges = run_groups(st, groups);
    let mut parents: Vec<(RelId, i16)> = edges
        .iter()
        .map(|e| (e.from, st.cat.foreign_keys[e.fk].parent_cols[0]))
        .collect();
    parents.sort_unstable();
    parents.dedup();
    let mut keys = 0;
    let mut runs = 0;
    for (table, column) in parents {
        match st.key_runs(table, column) {
            Some(r) => {
                keys += r.keys;
                runs += r.first.len();
            }
            None => return false,
        }
    }
    if crate::debug::key_runs() {
        return keys > 0;
    }
    keys >= MANY_KEYS && runs * KEYS_PER_RUN <= keys
}

/// What a preview's leaf count counts, as explain names it (join leaves alone as before).
fn leaf_group_names(st: &State, groups: &[(RelId, Vec<&FamilyEdge>)]) -> String {
    if groups.iter().all(|(_, edges)| edges.len() == 1) {
        let edges: Vec<&FamilyEdge> = groups.iter().map(|(_, e)| e[0]).collect();
        return leaf_names(st, &edges);
    }
    let names: Vec<String> = groups.iter().map(|(t, _)| st.name(*t)).collect();
    format!(
        "{} through every edge into each (a row reached twice counts once), in one statement",
        names.join(", ")
    )
}

fn join_leaves(st: &State) -> Vec<FamilyEdge> {
    st.g.tables()
        .filter(|t| plan::is_join_leaf(st.cat, st.g, *t))
        .filter_map(|t| st.g.followed_into(t).next().cloned())
        .collect()
}

fn preview_counts(st: &mut State, client: &mut SpiClient<'_>, detached: &Detached) -> Vec<Touched> {
    let mut out = Vec::new();
    let leaves = join_leaves(st);
    // the leaves no earlier round found rows of, and the leaves a preview only counts, counted
    // in one statement when some parent has rows
    let groups = preview_leaf_groups(st, &leaves, |st, t| earlier_rows(st, t).is_some());
    let counted = count_joined(st, client, &groups, false);
    for t in st.g.tables().collect::<Vec<_>>() {
        if counted_leaf(st, t) {
            out.push(Touched {
                relation: t,
                action: Action::Deleted,
                rows: counted.get(&t).copied().unwrap_or(0),
            });
            continue;
        }
        let rows = match leaves.iter().find(|e| e.child == t) {
            Some(e) if !st.set(e.from).is_empty() => match earlier_rows(st, t) {
                None => counted.get(&t).copied().unwrap_or(0),
                // rows of the leaf an earlier round found are not counted again
                Some(earlier) => {
                    let stmt = plan::count_referencing(st.cat, e, true);
                    read_count(with_set(st, t, earlier, |st| find(st, client, &stmt)))
                }
            },
            Some(_) => 0,
            None => st.set(t).len() as i64,
        };
        out.push(Touched {
            relation: t,
            action: Action::Deleted,
            rows,
        });
    }
    out.extend(detached_rows(st, detached));
    out
}

/// The rows of each leaf of `groups` (a leaf with the edges it is counted through), counted in
/// one statement that runs only when some leaf's parent has rows (`plan::count_leaves_batch`).
fn count_joined(
    st: &mut State,
    client: &mut SpiClient<'_>,
    groups: &[(RelId, Vec<&FamilyEdge>)],
    writes: bool,
) -> BTreeMap<RelId, i64> {
    if !groups
        .iter()
        .any(|(_, edges)| edges.iter().any(|e| !st.set(e.from).is_empty()))
    {
        return BTreeMap::new();
    }
    let runs = counts_by_runs(st, groups);
    let stmt = count_leaves_statement(st, groups, runs);
    let rows = if writes {
        run_stmt(st, client, &stmt)
    } else {
        find(st, client, &stmt)
    };
    let row = rows.first();
    groups
        .iter()
        .enumerate()
        .map(|(i, (t, _))| (*t, row.get::<i64>(i + 1).unwrap_or(0)))
        .collect()
}

/// What `count_joined` counts, as explain names it.
fn leaf_names(st: &State, edges: &[&FamilyEdge]) -> String {
    let names: Vec<String> = edges.iter().map(|e| st.name(e.child)).collect();
    match names.as_slice() {
        [one] => format!("{one} through its one foreign key"),
        _ => format!(
            "{} through their one foreign key each, in one statement",
            names.join(", ")
        ),
    }
}

/// The leaves `count_leaves` counts: an archive every one (it moves only those with rows), a
/// purge those the caller may not delete from.
fn leaves_to_count<'l>(st: &mut State, leaves: &'l [FamilyEdge]) -> Vec<&'l FamilyEdge> {
    leaves
        .iter()
        .filter(|e| st.mode == Mode::Archive || !st.privileges.has(e.child, pg_sys::ACL_DELETE))
        .collect()
}

/// Every (table, detach kind) the graph has, with its row count (zero included).
fn detached_rows(st: &State, detached: &Detached) -> Vec<Touched> {
    st.g.detach_targets()
        .into_iter()
        .map(|(rel, kind)| Touched {
            relation: rel,
            action: Action::Detached(kind),
            rows: detached
                .per_table
                .get(&(rel, kind))
                .map(|s| s.len() as i64)
                .unwrap_or(0),
        })
        .collect()
}

/// Statistics counters (deleted, updated) per relation, summed over leaf partitions: this
/// transaction's own, read in process through the functions `plan::xact_stats` calls (what
/// explain shows), without a statement (two per native-cascade purge).
fn stats(st: &State, rels: &[RelId]) -> Vec<(i64, i64)> {
    let counter = |function: u32, leaf: RelId| {
        // SAFETY: a builtin taking one oid and returning int8, never NULL (0 for a relation
        // this transaction has not touched)
        unsafe {
            pg_sys::OidFunctionCall1Coll(
                pg_sys::Oid::from(function),
                pg_sys::InvalidOid,
                pg_sys::Oid::from(leaf).into(),
            )
            .value() as i64
        }
    };
    rels.iter()
        .map(|rel| {
            st.leaves(*rel).into_iter().fold((0, 0), |(d, u), leaf| {
                (
                    d + counter(pg_sys::F_PG_STAT_GET_XACT_TUPLES_DELETED, leaf),
                    u + counter(pg_sys::F_PG_STAT_GET_XACT_TUPLES_UPDATED, leaf),
                )
            })
        })
        .collect()
}

fn is_class_42(code: i32) -> bool {
    sqlstate_text(code).starts_with("42")
}

fn is_class_22(code: i32) -> bool {
    sqlstate_text(code).starts_with("22")
}

/// Run the statement that deletes (or archives) the family. Under REPEATABLE READ and
/// SERIALIZABLE, a row that references the family but is newer than the snapshot makes
/// PostgreSQL's NO ACTION check fail with 23503; that is a serialization failure, and is
/// reported as one so that retry loops see 40001.
fn run_family_statement(
    client: &mut SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'static>],
    rls: bool,
    for_values: bool,
) -> Vec<i64> {
    let snapshot_xact = unsafe { pg_sys::XactIsoLevel >= pg_sys::XACT_REPEATABLE_READ as i32 };
    let client_ptr = client as *mut SpiClient<'_> as usize;
    PgTryBuilder::new(|| {
        // SAFETY: the client outlives this closure; the pointer only crosses the unwind boundary
        let client = unsafe { &mut *(client_ptr as *mut SpiClient<'_>) };
        read_i64_array(spi::query_planned(for_values, true, client, sql, args), 1)
    })
    .catch_when(PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION, move |e| {
        if !snapshot_xact {
            if rls {
                // a row the caller cannot see still references the family
                let said = match &e {
                    pg_sys::panic::CaughtError::PostgresError(r) => format!("{} {}", r.message(), r.detail().unwrap_or_default()),
                    _ => String::new(),
                };
                pg_sys::panic::ErrorReport::new(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    "uproot: rows hidden from the caller by row-level security reference the family",
                    "",
                )
                .set_detail(format!("PostgreSQL's foreign-key check found them: {said}"))
                .set_hint("Run the operation as a role that can see every row of the referencing table, or adjust its row-level security policies.")
                .report(PgLogLevel::ERROR);
            }
            e.rethrow()
        }
        let original = match &e {
            pg_sys::panic::CaughtError::PostgresError(r) => {
                format!("{} {}", r.message(), r.detail().unwrap_or_default())
            }
            _ => String::new(),
        };
        let report = pg_sys::panic::ErrorReport::new(
            PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            "uproot: could not serialize access due to a concurrent insert referencing the family",
            "",
        )
        .set_detail(format!("A row newer than this transaction's snapshot references the family: {original}"))
        .set_hint("Retry the transaction.");
        report.report(PgLogLevel::ERROR);
        unreachable!()
    })
    .execute()
}

fn apply(
    st: &mut State,
    client: &mut SpiClient<'_>,
    detached: &Detached,
    req: &Request,
) -> Result<Outcome, UprootError> {
    let leaves = join_leaves(st);
    count_leaves(st, client, &leaves)?;
    let (part_tables, parts): (Vec<RelId>, Vec<DeletePart>) =
        delete_parts(st, &leaves).into_iter().unzip();
    // Archive: the archive tables must be ready before anything moves; then a batch is opened.
    match st.mode {
        Mode::Archive if st.set(st.g.root).is_empty() => {
            return Ok(Outcome {
                touched: Vec::new(),
                batch: None,
                owned: Vec::new(),
                settled: Vec::new(),
            })
        }
        Mode::Archive => open_archive(st, client, &part_tables, req)?,
        _ => {}
    };
    let watched = watched_relations(st, detached);
    let before = stats(st, &watched);
    detach(st, client, detached);
    // rows of a declared relation's child hidden from the caller must not be orphaned
    let keys = declared_check::read_keys(st, client)?;
    let counts = move_family(st, client, &parts)?;
    declared_check::check(st, client, keys)?;
    let mut deleted: BTreeMap<RelId, i64> = part_tables.iter().copied().zip(counts).collect();
    let after = stats(st, &watched);
    // the counters were read after the tables deleted when found lost their rows
    check_counters(st, detached, &watched, &before, &after, &deleted)?;
    for &t in &st.deleted_when_found {
        deleted.insert(t, st.set(t).len() as i64);
    }

    let mut touched: Vec<Touched> =
        st.g.tables()
            .map(|t| Touched {
                relation: t,
                action: Action::Deleted,
                rows: deleted.get(&t).copied().unwrap_or(0),
            })
            .collect();
    touched.extend(detached_rows(st, detached));
    if let Some(b) = st.batch {
        close_archive(st, client, b, &deleted);
        for t in touched.iter_mut() {
            if t.action == Action::Deleted {
                t.action = Action::Archived;
            }
        }
    }
    Ok(Outcome {
        touched,
        batch: st.batch,
        owned: Vec::new(),
        settled: Vec::new(),
    })
}

/// Count the rows of the join leaves that need counting: an archive moves only those with rows
/// (whether there is one is enough, `count_leaves_statement`); join leaves the caller cannot
/// delete from are fine only when they have no rows.
fn count_leaves(
    st: &mut State,
    client: &mut SpiClient<'_>,
    leaves: &[FamilyEdge],
) -> Result<(), UprootError> {
    let counted = leaves_to_count(st, leaves);
    for (child, n) in count_joined(st, client, &one_edge_groups(&counted), true) {
        st.leaf_rows.insert(child, n);
    }
    for e in counted {
        let n = st.leaf_rows.get(&e.child).copied().unwrap_or(0);
        if n > 0 {
            st.require(
                e.child,
                pg_sys::ACL_DELETE,
                "DELETE",
                format!("{n} row(s) of {} belong to the family.", st.name(e.child)),
            )?;
        }
    }
    Ok(())
}

/// Make the archive tables ready for the tables whose rows move, and open the batch.
fn open_archive(
    st: &mut State,
    client: &mut SpiClient<'_>,
    part_tables: &[RelId],
    req: &Request,
) -> Result<(), UprootError> {
    st.targets = st
        .archiver
        .prepare(client, st.cat, st.g.root, part_tables)?;
    let root_name = st
        .cat
        .relation(st.g.root)
        .map(|r| r.qualified())
        .unwrap_or_default();
    st.batch = Some(st.archiver.open_batch(
        client,
        st.g.root,
        &root_name,
        req.keys_json.clone(),
        req.predicate.clone(),
    )?);
    Ok(())
}

/// The relations whose statistics counters tell whether PostgreSQL's own FK actions changed
/// rows we did not: rows hidden by row-level security, or (archive) a row deleted without being
/// archived. None when nothing can hide (a purge without row-level security).
fn watched_relations(st: &State, detached: &Detached) -> Vec<RelId> {
    let mut watched: Vec<RelId> = st.g.tables().collect();
    watched.extend(detached.per_table.keys().map(|(r, _)| *r));
    watched.sort();
    watched.dedup();
    if st.mode != Mode::Archive {
        watched.retain(|r| spi::rls_active(*r));
    }
    watched
}

/// Set the detached references to NULL or their default; an archive records each change.
fn detach(st: &State, client: &mut SpiClient<'_>, detached: &Detached) {
    for (e, rows) in &detached.per_edge {
        if rows.is_empty() {
            continue;
        }
        let exclude = st.g.contains(e.child);
        match st.batch {
            Some(b) => {
                let stmt = plan::archive::detach_returning(st.cat, e, exclude);
                let changed = run_stmt(st, client, &stmt);
                st.archiver.record_detached(
                    client,
                    b,
                    e.child,
                    &st.cat.foreign_keys[e.fk].name,
                    changed,
                    &plan::archive::detached_key_forgets(st.cat, e),
                );
            }
            None => {
                run_stmt(st, client, &plan::detach_update(st.cat, e, exclude));
            }
        }
    }
}

/// The set-based foreign-key check of this purge or archive, where it applies (`ri_check`):
/// decided by the same call for the operation and for explain. An archive's tables come with
/// their OIDs (None: not created yet; the archive creates it without triggers).
fn set_check(st: &State, archive_tables: &[(Target, Option<u32>)]) -> Option<ri_check::SetCheck> {
    let check = ri_check::SetCheck::for_operation(st)?;
    match st.mode {
        Mode::Archive => check.with_archive(st, archive_tables),
        _ => Some(check),
    }
}

/// The archive tables an archive writes, with their OIDs, once ready.
fn prepared_tables(st: &State) -> Vec<(Target, Option<u32>)> {
    st.targets
        .iter()
        .map(|p| (p.target.clone(), Some(p.archive_oid)))
        .collect()
}

/// The statement that deletes (or archives into `targets`) the family's `parts`; with a
/// set-based check it also returns the deleted keys the check needs. `large`: the form for
/// large families (`plan::delete_statement_for`; an archive's statement counts by aggregates in
/// either form).
fn family_statement(
    st: &State,
    parts: &[DeletePart],
    targets: &[Target],
    check: Option<&ri_check::SetCheck>,
    large: bool,
) -> Rc<Statement> {
    let keys = check.map(|c| c.returned_keys(parts)).unwrap_or_default();
    if st.mode == Mode::Archive {
        // the archive tables are not the catalog's: planned anew every time
        Rc::new(plan::archive::archive_statement_keyed(
            st.cat, parts, targets, &keys,
        ))
    } else {
        planned(
            st,
            MemoKey::Delete(parts.to_vec(), keys.clone(), large),
            || plan::delete_statement_for(st.cat, parts, &keys, large),
        )
    }
}

/// `plan`'s statement, planned once per family graph under `key`, which names everything the
/// statement is planned from besides the catalog and the graph (`plan::StatementMemo`).
fn planned(st: &State, key: MemoKey, plan: impl FnOnce() -> Statement) -> Rc<Statement> {
    st.g.planned.get_or(key, plan)
}

/// The family statement takes its large form (`plan::delete_statement_for`): a table of the
/// family has `plan::LARGE_SET` or more rows (for a join leaf: its parent has), or a test asks
/// for it (`uproot.debug_large_form`).
fn large_family(st: &State, parts: &[DeletePart]) -> bool {
    crate::debug::large_form()
        || parts.iter().any(|p| match p {
            DeletePart::Joined(e) | DeletePart::JoinedByKeys(e) | DeletePart::AfterParent(e) => {
                st.set(e.from).len() >= plan::LARGE_SET
            }
            DeletePart::Collected(t) => st.set(*t).len() >= plan::LARGE_SET,
        })
}

/// Delete (or archive) the family in one statement; the rows per part. Where the set-based
/// check applies, the statement runs with PostgreSQL's RI triggers off and the check follows.
/// The large form deletes (an archive: moves) its join leaves first, each by a statement of its
/// own (`plan::delete_leaf_statement`, `plan::archive::archive_leaf_statement`), with the
/// triggers off too where the check applies (it covers their tables as it covers the family
/// statement's).
fn move_family(
    st: &mut State,
    client: &mut SpiClient<'_>,
    parts: &[DeletePart],
) -> Result<Vec<i64>, UprootError> {
    if parts.is_empty() {
        return Ok(Vec::new());
    }
    let targets: Vec<Target> = st.targets.iter().map(|p| p.target.clone()).collect();
    let large = large_family(st, parts);
    let (first, rest) = leaves_first(st, parts, large);
    let check = set_check(st, &prepared_tables(st));
    let mut first_counts = Vec::new();
    for p in &first {
        first_counts.push(match &check {
            // with the RI triggers off, as the family statement: the check covers their tables
            Some(_) => ri_check::without_ri_triggers(|| delete_leaf(st, client, p, &targets)),
            None => delete_leaf(st, client, p, &targets),
        });
    }
    let rest_counts = if let Some(check) = check {
        let stmt = family_statement(st, &rest, &targets, Some(&check), large);
        // the tables deleted when found: the check covers them as parts (with or without rows,
        // so that its statement is the one explain shows)
        let mut before = deleted_when_found_parts(st);
        before.extend(first.iter().cloned());
        check.delete_and_check(st, client, &stmt, &rest, &before)?
    } else if st.deleted_when_found.iter().any(|&t| !st.set(t).is_empty()) {
        return Err(UprootError::Internal {
            what: "rows were deleted when found, but the set-based check does not apply".into(),
        });
    } else {
        let stmt = family_statement(st, &rest, &targets, None, large);
        let rls = st.g.edges.iter().any(|e| spi::rls_active(e.child));
        let args = st.bind(&stmt);
        let for_values = planned_for_values(st, &stmt, &args);
        run_family_statement(client, &stmt.sql, &args, rls, for_values)
    };
    // back in the order of `parts`
    let (mut first_counts, mut rest_counts) = (first_counts.into_iter(), rest_counts.into_iter());
    Ok(parts
        .iter()
        .map(|p| {
            let n = if first.contains(p) {
                first_counts.next()
            } else {
                rest_counts.next()
            };
            n.unwrap_or(0)
        })
        .collect())
}

/// The parts the large form deletes (or archives) before the family statement, each by a statement of
/// its own: the join leaves (see `plan::delete_leaf_statement`) that no foreign key or declared
/// relation of the catalog references (none does, unless the closure lost an edge:
/// `uproot.debug_skip_edge`; the check then needs the keys only the family statement returns);
/// and the rest. `large`: the purge takes its large form (callers decide; an archive has none).
fn leaves_first(
    st: &State,
    parts: &[DeletePart],
    large: bool,
) -> (Vec<DeletePart>, Vec<DeletePart>) {
    let unreferenced = |t: RelId| !st.cat.foreign_keys.iter().any(|fk| fk.parent == t);
    parts
        .iter()
        .cloned()
        .partition(|p| large && p.joined().is_some() && unreferenced(p.table()))
}

/// The tables a purge deletes when it finds them, as parts.
fn deleted_when_found_parts(st: &State) -> Vec<DeletePart> {
    st.deleted_when_found
        .iter()
        .map(|&t| DeletePart::Collected(t))
        .collect()
}

/// A join leaf's statement of its own in the large form: a purge's delete, planned once per
/// graph; an archive's move into its archive table (one of `targets`), planned anew as the
/// archive's family statement is.
fn leaf_statement(st: &State, part: &DeletePart, targets: &[Target]) -> Rc<Statement> {
    if st.mode == Mode::Archive {
        return Rc::new(plan::archive::archive_leaf_statement(st.cat, part, targets));
    }
    planned(st, MemoKey::DeleteLeaf(part.clone()), || {
        plan::delete_leaf_statement(st.cat, part)
    })
}

/// Delete (or archive) a join leaf's rows that reference the family, by a statement of its own;
/// how many.
/// Below a table deleted when found, `fk = ANY (keys its delete returned)` by a plan made for
/// those keys: in a generic plan tens of thousands of them are guessed to be 10, and a bitmap
/// scan that goes lossy searches the array from its start for every row (the 5M-row family,
/// spread, ran for minutes; by a nested loop of index scans over the keys, 48 s against native
/// cascade's 8.6). A custom plan sees the array, and PostgreSQL hashes `= ANY` over a constant.
fn delete_leaf(
    st: &State,
    client: &mut SpiClient<'_>,
    part: &DeletePart,
    targets: &[Target],
) -> i64 {
    let stmt = leaf_statement(st, part, targets);
    match part {
        DeletePart::AfterParent(_) => {
            spi::query_once(true, client, &stmt.sql, &st.bind(&stmt)).len() as i64
        }
        _ => run_stmt(st, client, &stmt).len() as i64,
    }
}

/// The counters moved by exactly what we deleted and detached; more means rows we did not see
/// (row-level security) or did not archive.
fn check_counters(
    st: &State,
    detached: &Detached,
    watched: &[RelId],
    before: &[(i64, i64)],
    after: &[(i64, i64)],
    deleted: &BTreeMap<RelId, i64>,
) -> Result<(), UprootError> {
    for (i, rel) in watched.iter().enumerate() {
        let ours_deleted = deleted.get(rel).copied().unwrap_or(0);
        // one UPDATE per detach edge: a row two edges detach is updated twice
        let ours_updated: i64 = detached
            .per_edge
            .iter()
            .filter(|(e, _)| e.child == *rel)
            .map(|(_, s)| s.len() as i64)
            .sum();
        let extra_del = after[i].0 - before[i].0 - ours_deleted;
        let extra_upd = after[i].1 - before[i].1 - ours_updated;
        if extra_del > 0 || extra_upd > 0 {
            let (relation, count) = (st.name(*rel), extra_del.max(extra_upd));
            return Err(if spi::rls_active(*rel) {
                UprootError::HiddenRows { relation, count }
            } else {
                UprootError::Unarchived { relation, count }
            });
        }
    }
    Ok(())
}

/// Close the batch: each archive table with the rows it received, and the counts by name.
fn close_archive(
    st: &State,
    client: &mut SpiClient<'_>,
    batch: i64,
    deleted: &BTreeMap<RelId, i64>,
) {
    let rows: Vec<(RelId, u32, i64)> = st
        .targets
        .iter()
        .map(|p| {
            let n = deleted.get(&p.target.source).copied().unwrap_or(0);
            (p.target.source, p.archive_oid, n)
        })
        .collect();
    let counts: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(r, _, n)| {
            let name = st
                .cat
                .relation(*r)
                .map(|x| format!("{}.{}", x.schema, x.name))
                .unwrap_or_default();
            (name, serde_json::Value::from(*n))
        })
        .collect();
    st.archiver.close_batch(
        client,
        batch,
        &rows,
        serde_json::Value::Object(counts).to_string(),
    );
}

/// The parts of the delete (or archive) statement, parents first. A purge deletes from every
/// family table (an empty set deletes nothing), so that its statement is the one explain shows;
/// an archive moves only the tables with rows (for explain before it ran: every table), each of
/// which needs an archive table.
fn delete_parts(st: &mut State, leaves: &[FamilyEdge]) -> Vec<(RelId, DeletePart)> {
    let every = st.mode == Mode::Purge;
    let mut parts = Vec::new();
    for t in st.g.tables().collect::<Vec<_>>() {
        if let Some(e) = leaves.iter().find(|e| e.child == t) {
            let has_rows = every
                || (st.may_have_rows(e.from) && st.leaf_rows.get(&t).copied().unwrap_or(1) > 0);
            if has_rows && st.privileges.has(t, pg_sys::ACL_DELETE) {
                // the parent's keys, where the statement that found its rows returned them
                let part = if st.deletes_when_found(e.from) {
                    DeletePart::AfterParent(e.clone())
                } else if plan::hands_keys(st.cat, st.g, e) {
                    DeletePart::JoinedByKeys(e.clone())
                } else {
                    DeletePart::Joined(e.clone())
                };
                parts.push((t, part));
            }
        } else if st.deletes_when_found(t) {
            // deleted by the statement that found its rows
        } else if every || st.may_have_rows(t) {
            parts.push((t, DeletePart::Collected(t)));
        }
    }
    parts
}

pub use crate::plan::Step;

/// What `uproot.explain` shows: the statements the request's operation (preview, purge or
/// archive) runs for the caller, before anything ran: every table may have rows.
pub fn explain(
    cat: &Catalog,
    g: &FamilyGraph,
    req: &Request,
    archiver: &dyn Archiver,
) -> Result<Vec<Step>, UprootError> {
    let corrupted = ri_check::debug_corrupted(g, cat);
    let g = corrupted.as_ref().unwrap_or(g);
    Spi::connect_mut(|client| {
        let mut st = State::new(cat, g, req, archiver);
        st.explaining = true;
        st.decide_delete_when_found();
        explain_steps(&mut st, client)
    })
}

/// The statements `operate` runs for this request and caller, in the order it first runs them,
/// built by the same plan calls with the same choices (fast paths, locks by privilege,
/// statistics reads under row-level security, the tables an archive moves). A step whose rows
/// decide whether it runs (a blocked edge with no parent rows) is listed all the same; the
/// fixpoint of a component runs its collect steps until nothing new appears.
fn explain_steps(st: &mut State, client: &mut SpiClient<'_>) -> Result<Vec<Step>, UprootError> {
    if st.mode == Mode::Purge && native_cascade_ok(st) {
        return Ok(native_steps(st));
    }
    let mut steps = find_steps(st);
    steps.extend(owned::steps(st));
    steps.extend(change_steps(st, client)?);
    if st.writes() {
        steps.extend(owned::settle_steps(st.cat, st.g));
    }
    Ok(steps)
}

/// The fast path: PostgreSQL's own cascade deletes the family.
fn native_steps(st: &mut State) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut step = |purpose: String, statement: Statement| steps.push(Step { purpose, statement });
    let (cat, g, req) = (st.cat, st.g, st.req);
    let root = g.root;
    let mut watched: Vec<RelId> = g.tables().collect();
    watched.extend(g.detach_targets().iter().map(|(r, _)| *r));
    let stats = || plan::xact_stats(watched.clone());
    if matches!(req.filter, RootFilter::Scalar { .. }) {
        step(
            "read statistics counters in process, as this query would (to count what the cascade deletes)".into(),
            stats(),
        );
        step(
            format!("delete the root of {} by its key; ON DELETE CASCADE deletes the rest (fast path: all edges CASCADE, a tree of single-FK tables)", st.name(root)),
            plan::delete_root_by_key(cat, root, &req.filter),
        );
    } else {
        step(
            format!("collect and lock roots of {} in key order", st.name(root)),
            plan::collect_root(cat, st.g, &req.filter, root_read(st, true)),
        );
        step(
            "read statistics counters in process, as this query would (to count what the cascade deletes)".into(),
            stats(),
        );
        step(
            "delete the roots; ON DELETE CASCADE deletes the rest (fast path: all edges CASCADE, a tree of single-FK tables)".into(),
            plan::delete_statement(cat, &[DeletePart::Collected(root)]),
        );
    }
    step("read statistics counters again, in process".into(), stats());
    steps
}

/// Finding the family: the components top-down, then blocked and detached rows.
fn find_steps(st: &mut State) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut step = |purpose: String, statement: Statement| steps.push(Step { purpose, statement });
    let (cat, g) = (st.cat, st.g);
    for group in collect_groups(st) {
        let scc = match group {
            Collect::Component(scc) => scc,
            Collect::Batch(tables) => {
                let lock = st.writes();
                let items = batch_items(st, &tables, lock);
                let names = |take: plan::Take| -> Vec<String> {
                    items
                        .iter()
                        .filter(|(_, _, t)| *t == take)
                        .map(|(t, _, _)| st.name(*t))
                        .collect()
                };
                let (found, locked, deleted) = (
                    names(plan::Take::Find),
                    names(plan::Take::Lock),
                    names(plan::Take::Delete),
                );
                let purpose = if deleted.is_empty() {
                    let all: Vec<String> = tables.iter().map(|t| st.name(*t)).collect();
                    format!(
                        "{} the rows of {} that reference the family, in one statement",
                        if locked.is_empty() {
                            "collect"
                        } else {
                            "collect and lock"
                        },
                        all.join(", ")
                    )
                } else {
                    let kept: Vec<String> = found.into_iter().chain(locked).collect();
                    let lock = if kept.is_empty() {
                        String::new()
                    } else {
                        format!("collect and lock the rows of {}, and ", kept.join(", "))
                    };
                    format!(
                        "{lock}delete the rows of {} that reference the family (each has one foreign key, from a parent locked before), in one statement, FK triggers off (set-based check)",
                        deleted.join(", ")
                    )
                };
                step(purpose, plan::collect_children_batch(cat, g, &items));
                continue;
            }
        };
        let scc = &scc;
        let cyclic = scc.iter().any(|t| g.in_cycle(cat, *t));
        if cyclic && st.writes() {
            for (purpose, statement) in component_steps(st, scc, false) {
                step(
                    format!(
                        "{purpose}, without locks (a cycle is found first, then locked by key)"
                    ),
                    statement,
                );
            }
            for &t in scc {
                if st.may_lock(t) {
                    step(
                        format!("lock the rows of {} found so far in key order", st.name(t)),
                        plan::lock_in_key_order(cat, t),
                    );
                }
            }
        }
        let lock = st.writes();
        let mut steps = component_steps(st, scc, lock);
        let tree = plan::tree_table(cat, g, scc).filter(|t| cyclic && st.may_lock(*t));
        if let Some(t) = tree {
            let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(t).collect();
            let after_roots = usize::from(scc.contains(&g.root));
            steps.insert(
                after_roots,
                (
                    format!(
                        "(when the first read was the recursive statement) read the rows of {} again the same way: the same rows are the family, locked (otherwise the next step)",
                        st.name(t)
                    ),
                    plan::collect_tree(cat, g, t, &edges),
                ),
            );
        }
        for (purpose, statement) in steps {
            step(purpose, statement);
        }
    }
    for e in &g.edges {
        let exclude = g.contains(e.child);
        match e.disposition {
            Disposition::Block(_) => step(
                format!(
                    "check that no row of {} references the family ({})",
                    st.name(e.child),
                    cat.foreign_keys[e.fk].name
                ),
                plan::count_referencing(cat, e, exclude || had_earlier_rows(st, e.child)),
            ),
            Disposition::Detach(_) => {
                let lock = st.may_lock(e.child);
                step(
                    format!(
                        "find{} the rows of {} to detach ({})",
                        if lock { " and lock" } else { "" },
                        st.name(e.child),
                        cat.foreign_keys[e.fk].name
                    ),
                    plan::collect_detached(cat, e, exclude, lock),
                );
            }
            Disposition::Follow => {}
        }
    }
    steps
}

fn step(purpose: impl Into<String>, statement: Statement) -> Step {
    Step {
        purpose: purpose.into(),
        statement,
    }
}

/// Counting (preview) or changing (purge, archive) what was found.
fn change_steps(st: &mut State, client: &mut SpiClient<'_>) -> Result<Vec<Step>, UprootError> {
    let leaves = join_leaves(st);
    if st.mode == Mode::Preview {
        let earlier: Vec<&FamilyEdge> = leaves
            .iter()
            .filter(|e| had_earlier_rows(st, e.child))
            .collect();
        let groups = preview_leaf_groups(st, &leaves, had_earlier_rows);
        let mut steps = Vec::new();
        if !groups.is_empty() {
            steps.push(step(
                format!("count the rows of {}", leaf_group_names(st, &groups)),
                Statement::clone(&count_leaves_statement(st, &groups, false)),
            ));
        }
        let by_runs: Vec<String> = run_groups(st, &groups)
            .iter()
            .map(|e| st.name(e.child))
            .collect();
        if !by_runs.is_empty() {
            steps.push(step(
                format!(
                    "(only when the parent keys number 1,000 or more and form runs of consecutive values, 4 keys or more per run) the same counts, the rows of {} read by one index range per run",
                    by_runs.join(", ")
                ),
                Statement::clone(&count_leaves_statement(st, &groups, true)),
            ));
        }
        for e in earlier {
            steps.push(step(
                format!(
                    "count the rows of {} an earlier round did not find",
                    st.name(e.child)
                ),
                plan::count_referencing(st.cat, e, true),
            ));
        }
        return Ok(steps);
    }
    let mut steps = leaf_count_steps(st, &leaves);
    if st.mode == Mode::Archive && !st.may_have_rows(st.g.root) {
        // no root: nothing is archived and no batch is opened
        return Ok(steps);
    }
    let (part_tables, parts): (Vec<RelId>, Vec<DeletePart>) =
        delete_parts(st, &leaves).into_iter().unzip();
    let archive_tables: Vec<(Target, Option<u32>)> = if st.explaining && st.mode == Mode::Archive {
        let planned = st.archiver.planned(client, st.cat, &part_tables)?;
        planned
            .into_iter()
            .map(|t| {
                let oid = ri_check::existing_table(client, &t.archive)?;
                Ok((t, oid))
            })
            .collect::<Result<_, UprootError>>()?
    } else {
        prepared_tables(st)
    };
    let targets: Vec<Target> = archive_tables.iter().map(|(t, _)| t.clone()).collect();
    if st.mode == Mode::Archive {
        let names: Vec<String> = part_tables.iter().map(|t| st.name(*t)).collect();
        steps.push(step(
            format!("make the archive tables of {} ready (as uproot.prepare_archive does), then open a batch", names.join(", ")),
            plan::archive::open_batch(),
        ));
    }
    let mut watched: Vec<RelId> = st.g.tables().collect();
    watched.extend(st.g.detach_targets().iter().map(|(r, _)| *r));
    if st.mode != Mode::Archive {
        watched.retain(|r| spi::rls_active(*r));
    }
    let stats = plan::xact_stats(watched.clone());
    let why = if st.mode == Mode::Archive {
        "PostgreSQL's own actions must change only rows that are archived"
    } else {
        "row-level security may hide rows PostgreSQL's own actions change"
    };
    if !watched.is_empty() {
        steps.push(step(
            format!("read statistics counters in process, as this query would ({why})"),
            stats.clone(),
        ));
    }
    steps.extend(detach_steps(st));
    steps.extend(declared_check::key_steps(st));
    let found_first = deleted_when_found_parts(st);
    steps.extend(family_steps(
        st,
        &parts,
        &found_first,
        &targets,
        &archive_tables,
    ));
    steps.extend(declared_check::check_steps(st));
    if !watched.is_empty() {
        steps.push(step("read statistics counters again, in process", stats));
    }
    if st.mode == Mode::Archive {
        steps.push(step(
            "record the batch's relations in the ledger",
            plan::archive::close_batch_relations(),
        ));
        steps.push(step(
            "record the batch's counts",
            plan::archive::close_batch_counts(),
        ));
    }
    Ok(steps)
}

/// The statement that moves the family: with a set-based check, its keyed form and the check;
/// and the form it takes for large families.
fn family_steps(
    st: &State,
    parts: &[DeletePart],
    found_first: &[DeletePart],
    targets: &[Target],
    archive_tables: &[(Target, Option<u32>)],
) -> Vec<Step> {
    let mut steps = Vec::new();
    // no parts: nothing moves (the statement is shown, as it always was, but never runs)
    let check = if parts.is_empty() {
        None
    } else {
        set_check(st, archive_tables)
    };
    let mut what = if st.mode == Mode::Archive {
        "move the whole family into its archive tables in one statement".to_string()
    } else {
        "delete the whole family in one statement".to_string()
    };
    if check.is_some() {
        what.push_str(", PostgreSQL's per-row FK triggers off (set-based check)");
    }
    steps.push(step(
        what,
        Statement::clone(&family_statement(st, parts, targets, check.as_ref(), false)),
    ));
    if !parts.is_empty() {
        let (first, rest) = leaves_first(st, parts, true);
        let when = format!(
            "(only when a table of the family has {}+ rows)",
            plan::LARGE_SET
        );
        let archive = st.mode == Mode::Archive;
        for p in &first {
            steps.push(step(
                format!(
                    "{when} first the rows of {} {}, in a statement of their own{}",
                    st.name(p.table()),
                    match p {
                        DeletePart::AfterParent(_) => "by the keys its parent's delete returned",
                        _ if archive => "through a semi-join, into its archive table",
                        _ => "through a semi-join",
                    },
                    if check.is_some() {
                        ", FK triggers off"
                    } else {
                        ""
                    }
                ),
                Statement::clone(&leaf_statement(st, p, targets)),
            ));
        }
        // an archive's family statement counts by aggregates in either form
        let what = match (first.is_empty(), archive) {
            (true, true) => None,
            (true, false) => Some("the same, counted by aggregates"),
            (false, true) => Some("then the rest in one statement"),
            (false, false) => Some("then the rest in one statement, counted by aggregates"),
        };
        if let Some(what) = what {
            steps.push(step(
                format!("{when} {what}"),
                Statement::clone(&family_statement(st, &rest, targets, check.as_ref(), true)),
            ));
        }
    }
    if let Some(check) = check {
        // the check covers the tables deleted when found as parts of the family statement
        let parts: Vec<DeletePart> = parts.iter().chain(found_first).cloned().collect();
        let parts = parts.as_slice();
        if let Some(statement) = check.check_statement(st, parts) {
            steps.push(step(
                "check that no row references a deleted key, every FK in one statement (set-based check)",
                Statement::clone(&statement),
            ));
        }
        if let Some(statement) = check.unsettled_check_statement(st, parts) {
            steps.push(step(
                "(only when the family statement deleted fewer rows than were found) the check, every key probed (set-based check)",
                Statement::clone(&statement),
            ));
        }
        steps.push(step(
            "(only when the catalog changed while the call ran) read again what the set-based check relied on (40001)",
            check.recheck_statement(st, parts),
        ));
    }
    steps
}

/// The join leaves counted before changing anything: an archive each (it moves only those with
/// rows); a purge those the caller may not delete from (they must have no rows).
fn leaf_count_steps(st: &mut State, leaves: &[FamilyEdge]) -> Vec<Step> {
    let counted = leaves_to_count(st, leaves);
    if counted.is_empty() {
        return Vec::new();
    }
    let what = if st.mode == Mode::Archive {
        "whether each has any: an archive moves only the tables that do"
    } else {
        "the caller may not delete them: there must be none"
    };
    vec![step(
        format!("count the rows of {} ({what})", leaf_names(st, &counted)),
        Statement::clone(&count_leaves_statement(
            st,
            &one_edge_groups(&counted),
            false,
        )),
    )]
}

/// Setting detached references to NULL or their default; an archive records each change.
fn detach_steps(st: &State) -> Vec<Step> {
    let (cat, g) = (st.cat, st.g);
    let mut steps = Vec::new();
    for e in &g.edges {
        let Disposition::Detach(kind) = e.disposition else {
            continue;
        };
        let to = match kind {
            DetachKind::SetNull => "NULL",
            DetachKind::SetDefault => "their default",
        };
        let purpose = format!(
            "set the references of {} to {to} ({})",
            st.name(e.child),
            cat.foreign_keys[e.fk].name,
        );
        let exclude = g.contains(e.child);
        if st.mode == Mode::Archive {
            steps.push(step(
                format!("{purpose}, returning what changed"),
                plan::archive::detach_returning(cat, e, exclude),
            ));
            steps.push(step(
                "record the detached references in the ledger (for restore)",
                plan::archive::record_detached(),
            ));
        } else {
            steps.push(step(purpose, plan::detach_update(cat, e, exclude)));
        }
    }
    steps
}

/// How `expand_component` reads the roots.
fn root_read(st: &mut State, lock: bool) -> plan::RootRead {
    plan::RootRead {
        lock: lock && st.may_lock(st.g.root),
        skip_locked: st.req.skip_locked,
        limit: st.req.max_roots.is_some(),
    }
}

/// The statements `expand_component` runs for one component.
fn component_steps(st: &mut State, scc: &[RelId], lock: bool) -> Vec<(String, Statement)> {
    let (cat, g) = (st.cat, st.g);
    let mut out = Vec::new();
    let how = |l: bool| if l { "collect and lock" } else { "collect" };
    if scc.contains(&g.root) {
        let read = root_read(st, lock);
        out.push((
            format!("{} the roots of {}", how(read.lock), st.name(g.root)),
            plan::collect_root(cat, g, &st.req.filter, read),
        ));
    }
    for &t in scc {
        if plan::is_join_leaf(cat, g, t) {
            continue;
        }
        let edges: Vec<(usize, &FamilyEdge)> = g.followed_into_indexed(t).collect();
        if edges.is_empty() {
            continue;
        }
        if !lock && plan::tree_table(cat, g, scc) == Some(t) {
            out.push((
                format!(
                    "(when it starts from at most {} rows) collect the rows of {} that reference the family, and every row below them, in one recursive statement",
                    plan::TREE_START_LIMIT,
                    st.name(t)
                ),
                plan::collect_tree(cat, g, t, &edges),
            ));
        }
        let lock_t = lock && st.may_lock(t);
        let again = if g.in_cycle(cat, t) {
            " (repeated until no new rows)"
        } else {
            ""
        };
        out.push((
            format!(
                "{} the rows of {} that reference the family{again}",
                how(lock_t),
                st.name(t)
            ),
            plan::collect_children(cat, g, t, &edges, lock_t),
        ));
    }
    out
}

/// PostgreSQL's own cascade does the whole purge: the plan allows it, its triggers fire (not
/// the replica role), the set-based check does not apply, and the caller's privileges,
/// row-level security and the statistics counters we count with allow it. Where the check
/// applies, our statements with the RI triggers off are faster than a cascade that runs a
/// trigger and a query per deleted row.
fn native_cascade_ok(st: &mut State) -> bool {
    // owned parents are settled from the family's rows, which the native path never reads
    if owned::any(st.cat, st.g) {
        return false;
    }
    if !plan::native_cascade_applies(st.cat, st.g) {
        return false;
    }
    // in the replica role the RI triggers, and so the cascade, do not fire
    if unsafe { pg_sys::SessionReplicationRole } == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32
    {
        return false;
    }
    if ri_check::SetCheck::for_operation(st).is_some() {
        return false;
    }
    let mut tables: Vec<RelId> = st.g.tables().collect();
    let detach: Vec<RelId> =
        st.g.edges
            .iter()
            .filter(|e| matches!(e.disposition, Disposition::Detach(_)))
            .map(|e| e.child)
            .collect();
    for t in &tables {
        if !st.privileges.has(*t, pg_sys::ACL_DELETE) || !st.privileges.has(*t, pg_sys::ACL_UPDATE)
        {
            return false;
        }
    }
    for t in &detach {
        if !st.privileges.has(*t, pg_sys::ACL_UPDATE) {
            return false;
        }
    }
    tables.extend(detach);
    if tables.iter().any(|t| spi::rls_active(*t)) {
        return false;
    }
    // the statistics counters we count with exist only with track_counts on
    unsafe { pg_sys::pgstat_track_counts }
}

/// Lock the roots in key order, delete them in a second statement (which sees a root updated
/// while we waited for its lock), and let `ON DELETE CASCADE` delete the rest. The statistics
/// counters, read before and after, say how many rows each table lost.
fn native_cascade(
    st: &mut State,
    client: &mut SpiClient<'_>,
    req: &Request,
) -> Result<Vec<Touched>, UprootError> {
    let tables: Vec<RelId> = st.g.tables().collect();
    let detached = st.g.detach_targets();
    let root = st.g.root;
    let mut watched = tables.clone();
    watched.extend(detached.iter().map(|(r, _)| *r));
    let before;
    if matches!(req.filter, RootFilter::Scalar { .. }) {
        // one key, one row: no lock order to keep, so no separate locking statement
        before = stats(st, &watched);
        let delete = planned(st, MemoKey::DeleteRoot(req.filter.clone()), || {
            plan::delete_root_by_key(st.cat, root, &req.filter)
        });
        run_stmt(st, client, &delete);
    } else {
        expand_component(st, client, req, &[root], true)?;
        before = stats(st, &watched);
        if !st.set(root).is_empty() {
            let stmt = plan::delete_statement(st.cat, &[DeletePart::Collected(root)]);
            run_stmt(st, client, &stmt);
        }
    }
    let after = stats(st, &watched);
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        out.push(Touched {
            relation: *t,
            action: Action::Deleted,
            rows: after[i].0 - before[i].0,
        });
    }
    for (k, (rel, kind)) in detached.iter().enumerate() {
        let i = tables.len() + k;
        out.push(Touched {
            relation: *rel,
            action: Action::Detached(*kind),
            rows: after[i].1 - before[i].1,
        });
    }
    Ok(out)
}
