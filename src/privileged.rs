//! Writes to pg_uproot's own records (the batch ledger, the archive mapping, the job run log) as
//! the extension's owner.
//!
//! Those tables are not writable by PUBLIC, so that nobody can rewrite the audit trail by hand.
//! The SQL functions stay SECURITY INVOKER: every statement that touches user data runs as the
//! caller, with the caller's privileges and row-level security. Only the fixed, parameterised
//! statements that record what the caller did run inside `as_extension_owner`, the way a
//! SECURITY DEFINER function would, and only for the duration of the closure.

use pgrx::prelude::*;

/// The role that owns the extension (and so its tables).
pub fn extension_owner() -> pg_sys::Oid {
    Spi::get_one::<pg_sys::Oid>(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'pg_uproot'",
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| {
        pgrx::error!("uproot: the pg_uproot extension is not installed in this database")
    })
}

/// The role running the current statement (the caller, outside `as_extension_owner`).
pub fn current_user() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

/// Run `f` as the extension's owner, then switch back, also when `f` raises an error (a
/// transaction or subtransaction abort would reset the user too; this does not rely on it).
/// `f` must only run pg_uproot's own fixed statements: never user SQL, never user identifiers
/// that are not quoted, never a value that is not a parameter.
pub fn as_extension_owner<T>(f: impl FnOnce() -> T) -> T {
    as_role(extension_owner(), 0, f)
}

/// Run `f` as `role`, with `context` (SECURITY_* flags) added to the security context, then
/// switch back, also when `f` raises an error.
pub fn as_role<T>(role: pg_sys::Oid, context: u32, f: impl FnOnce() -> T) -> T {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context: i32 = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | context) as i32,
        );
    }
    PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .finally(|| unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) })
        .execute()
}

/// Run `f` as the owner of `rel`, with row-level security off for that owner even where the
/// table forces it: the way PostgreSQL's RI triggers look for referencing rows, so that a row
/// the caller cannot see (row-level security, no SELECT) still counts. Switches back also when
/// `f` raises an error. `f` must only run pg_uproot's own fixed statements on `rel`.
pub fn as_table_owner<T>(rel: pg_sys::Oid, f: impl FnOnce() -> T) -> T {
    let owner = relation_owner(rel).unwrap_or_else(|| {
        pgrx::error!("uproot: relation {} does not exist any more", rel.to_u32())
    });
    as_role(owner, pg_sys::SECURITY_NOFORCE_RLS, f)
}

/// The owner of `rel`, from the syscache (no query: this runs per edge, per call).
fn relation_owner(rel: pg_sys::Oid) -> Option<pg_sys::Oid> {
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(rel),
        );
        if tuple.is_null() {
            return None;
        }
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        Some(owner)
    }
}
