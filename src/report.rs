//! Error reporting: how an `UprootError` becomes a PostgreSQL ERROR, with its SQLSTATE, message,
//! detail and hint.

use crate::error::UprootError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// `e` as PostgreSQL's error report.
pub fn report(e: UprootError) -> ErrorReport {
    let sqlstate = crate::error::sqlstate_code(e.sqlstate());
    let mut report = ErrorReport::new(PgSqlErrorCode::from(sqlstate), e.message(), "");
    if let Some(d) = e.detail() {
        report = report.set_detail(d);
    }
    if let Some(h) = e.hint() {
        report = report.set_hint(h);
    }
    report
}

/// Raise `e` as a PostgreSQL ERROR. Never returns. Only where Rust cannot return the error: inside
/// a PgTry handler, or a callback PostgreSQL calls.
pub fn raise(e: UprootError) -> ! {
    report(e).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}
