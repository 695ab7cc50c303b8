//! `uproot.debug_fail_at`: a developer option for pg_uproot's own tests. It names a point in the
//! code where the next call fails, so that tests can prove an error or a cancel there leaves
//! nothing half-done behind (the graph cache, the plan cache). Hidden from SHOW ALL and the
//! sample configuration; only a superuser may set it.
//!
//! The value is `point` or `point:how`, where `how` is
//! - `error` (the default): an uproot ERROR (XX000);
//! - `cancel`: a query cancel, raised by PostgreSQL's own interrupt handling as if the client
//!   had sent one;
//! - `sleep`: wait there, checking for interrupts, so that `statement_timeout` or
//!   `pg_cancel_backend` cancels at that very point (an ERROR after 30 s if nothing does);
//! - `panic`: a Rust panic (for the test that no panic text reaches a user).

use crate::error::UprootError;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use std::ffi::CString;

/// The points `uproot.debug_fail_at` can name.
pub const POINTS: &[&str] = &[
    // after the invalidation messages are accepted, before the cache is looked at
    "invalidation",
    // after the catalog was read, before it is used
    "catalog_load",
    // after the catalog was read and found new, before it replaces the cached one
    "catalog_parse",
    // after a family graph was built, before it is cached
    "graph_build",
    // after a statement was prepared, before SPI_keepplan keeps it
    "plan_keep",
    // after owned parents were locked, before their references are checked
    "owned_locked",
    // after a drain batch changed the child rows, before it unqueues their keys
    "drain_changed",
    // in the replica role, before the family statement of a set-based check runs
    "replica_role",
    // after a check trigger read its declaration, before it is cached
    "declared_check_build",
];

/// `uproot.debug_fail_at = 'explain_omits_delete'`: the check of `uproot.debug_check_explain`
/// compares with explain's steps less the statement that deletes (the family, or for restore the
/// batch from its archive tables), so that a test can see the check fail.
pub const EXPLAIN_OMITS_DELETE: &str = "explain_omits_delete";

/// `uproot.debug_fail_at = 'catalog_differs'`: the catalog read from the system caches has one
/// fact wrong (the root relation's `has_rules` flipped), so that a test can see
/// `uproot.debug_check_catalog` catch a difference from the catalog query.
pub const CATALOG_DIFFERS: &str = "catalog_differs";

/// `uproot.debug_fail_at = 'family_keeps_row'`: a set-based family statement is bound without one
/// row its collect found (the last of the first table collected after its parents through real
/// foreign keys only), so that its count falls short: a test sees the check probe that table's
/// keys again and catch the row.
pub const FAMILY_KEEPS_ROW: &str = "family_keeps_row";

/// Is `uproot.debug_fail_at` set to exactly `setting`?
pub fn fail_at_is(setting: &str) -> bool {
    FAIL_AT
        .get()
        .is_some_and(|s| s.to_string_lossy() == setting)
}

static FAIL_AT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static CHECK_EXPLAIN: GucSetting<bool> = GucSetting::<bool>::new(false);
static CHECK_CATALOG: GucSetting<bool> = GucSetting::<bool>::new(false);
static SKIP_EDGE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static ROW_TRIGGERS: GucSetting<bool> = GucSetting::<bool>::new(false);
static LARGE_FORM: GucSetting<bool> = GucSetting::<bool>::new(false);
static PLAN_FOR_VALUES: GucSetting<bool> = GucSetting::<bool>::new(false);
static KEY_RUNS: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `uproot.debug_skip_edge`: the name of a foreign key that purge and archive leave out of the
/// family closure, as if the graph had lost that edge: a deliberately corrupted closure, so that
/// tests can show the integrity check (set-based or PostgreSQL's own) catches what it leaves.
pub fn skip_edge() -> Option<String> {
    SKIP_EDGE
        .get()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
}

/// `uproot.debug_row_triggers`: never use the set-based foreign-key check; PostgreSQL's per-row
/// triggers check every statement, as before it existed (to compare the two).
pub fn row_triggers() -> bool {
    ROW_TRIGGERS.get()
}

/// `uproot.debug_large_form`: a purge or archive takes its large form (`plan::LARGE_SET`)
/// whatever the size of its family, so that the differential test, whose families are small,
/// covers it too.
pub fn large_form() -> bool {
    LARGE_FORM.get()
}

/// `uproot.debug_plan_for_values`: every statement that binds found keys is planned for its
/// values, as one that binds a thousand or more is, so that small families in tests take that
/// path too.
pub fn plan_for_values() -> bool {
    PLAN_FOR_VALUES.get()
}

/// `uproot.debug_key_runs`: a preview counts by runs of consecutive keys wherever it may,
/// however few keys there are and however short their runs, so that small families in tests
/// take that path too.
pub fn key_runs() -> bool {
    KEY_RUNS.get()
}

/// `uproot.debug_check_explain`: every preview, purge, archive and restore checks that each
/// statement it ran is one `uproot.explain` shows for it (the tests run with it on).
pub fn check_explain() -> bool {
    CHECK_EXPLAIN.get()
}

/// `uproot.debug_check_catalog`: every catalog load also runs the catalog query
/// (`sql/catalog.sql`) and fails if it does not return the same catalog (the tests run with it
/// on).
pub fn check_catalog() -> bool {
    CHECK_CATALOG.get()
}

thread_local! {
    /// The statements bound so far, one list per operation being recorded (an operation a
    /// trigger starts inside another records on its own list).
    static RECORDED: std::cell::RefCell<Vec<Vec<String>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records the statements an operation binds while it lives, when `uproot.debug_check_explain`
/// is on. Dropped (also by an error unwinding), it stops recording.
pub struct Recording {
    depth: usize,
}

impl Recording {
    /// Start recording, if the check is on.
    pub fn start() -> Option<Recording> {
        check_explain().then(|| {
            RECORDED.with(|r| {
                let mut r = r.borrow_mut();
                r.push(Vec::new());
                Recording { depth: r.len() }
            })
        })
    }

    /// Stop recording and check that explain shows every statement bound meanwhile.
    pub fn check<'s>(self, shown: impl IntoIterator<Item = &'s str>) -> Result<(), UprootError> {
        let ran = RECORDED.with(|r| r.borrow_mut().get_mut(self.depth - 1).map(std::mem::take));
        #[cfg(any(test, feature = "pg_test"))]
        LAST_CHECKED.with(|l| l.replace(ran.clone().unwrap_or_default()));
        let mut shown: std::collections::HashSet<&str> = shown.into_iter().collect();
        if fail_at_is(EXPLAIN_OMITS_DELETE) {
            shown.retain(|sql| !sql.contains(" AS (DELETE FROM "));
        }
        match ran
            .unwrap_or_default()
            .into_iter()
            .find(|sql| !shown.contains(sql.as_str()))
        {
            None => Ok(()),
            Some(statement) => Err(UprootError::NotExplained { statement }),
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        RECORDED.with(|r| r.borrow_mut().truncate(self.depth - 1));
    }
}

#[cfg(any(test, feature = "pg_test"))]
thread_local! {
    static LAST_CHECKED: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The statements the last checked operation bound, in order (for the `#[pg_test]`s).
#[cfg(any(test, feature = "pg_test"))]
pub fn last_checked() -> Vec<String> {
    LAST_CHECKED.with(|l| l.borrow().clone())
}

/// A planned statement is being bound: record it for the innermost recording operation.
pub fn record(sql: &str) {
    RECORDED.with(|r| {
        if let Some(list) = r.borrow_mut().last_mut() {
            list.push(sql.to_string());
        }
    });
}

pub fn register_guc() {
    GucRegistry::define_string_guc(
        c"uproot.debug_fail_at",
        c"Developer option for pg_uproot's own tests: fail at the named point.",
        c"A point (invalidation, catalog_load, catalog_parse, graph_build, plan_keep, owned_locked, drain_changed, replica_role, declared_check_build), optionally followed by :error, :cancel, :sleep or :panic; or explain_omits_delete, catalog_differs or family_keeps_row. Never set it in production.",
        &FAIL_AT,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_check_explain",
        c"Developer option for pg_uproot's own tests: check that every statement a preview, purge, archive or restore runs is one uproot.explain shows.",
        c"An operation that runs a statement explain does not show fails (XX000). Never set it in production.",
        &CHECK_EXPLAIN,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_check_catalog",
        c"Developer option for pg_uproot's own tests: check every catalog load against the catalog query.",
        c"A load that differs from what the query returns fails (XX000) and names the first difference. Never set it in production.",
        &CHECK_CATALOG,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_string_guc(
        c"uproot.debug_skip_edge",
        c"Developer option for pg_uproot's own tests: leave the named foreign key out of the family closure.",
        c"Corrupts the family on purpose, to show that the foreign-key check catches the rows left behind. Never set it in production.",
        &SKIP_EDGE,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_row_triggers",
        c"Developer option for pg_uproot's own tests: check foreign keys with PostgreSQL's per-row triggers only, never with the set-based check.",
        c"Never set it in production.",
        &ROW_TRIGGERS,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_large_form",
        c"Developer option for pg_uproot's own tests: a purge or archive takes the form it takes for families with 10,000+ rows in a table, whatever their size.",
        c"Never set it in production.",
        &LARGE_FORM,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_plan_for_values",
        c"Developer option for pg_uproot's own tests: every statement that binds found keys is planned for its values, as one that binds 1,000+ keys is.",
        c"Never set it in production.",
        &PLAN_FOR_VALUES,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
    GucRegistry::define_bool_guc(
        c"uproot.debug_key_runs",
        c"Developer option for pg_uproot's own tests: a preview counts by runs of consecutive keys wherever it may, as it does when 1,000+ keys form long runs.",
        c"Never set it in production.",
        &KEY_RUNS,
        GucContext::Suset,
        GucFlags::NO_SHOW_ALL,
    );
}

/// Fail here when `uproot.debug_fail_at` names `point`.
pub fn fail_point(point: &str) {
    debug_assert!(POINTS.contains(&point));
    let Some(setting) = FAIL_AT.get() else {
        return;
    };
    let setting = setting.to_string_lossy();
    let (at, how) = setting.split_once(':').unwrap_or((&setting, "error"));
    if at != point {
        return;
    }
    match how {
        "cancel" => unsafe {
            pg_sys::QueryCancelPending = 1;
            pg_sys::InterruptPending = 1;
            pg_sys::check_for_interrupts!();
        },
        "sleep" => {
            for _ in 0..3000 {
                unsafe { pg_sys::pg_usleep(10_000) };
                pg_sys::check_for_interrupts!();
            }
        }
        "panic" => panic!("uproot.debug_fail_at: a Rust panic at {point}"),
        _ => {}
    }
    crate::report::raise(UprootError::InjectedFailure {
        point: point.to_string(),
    })
}
