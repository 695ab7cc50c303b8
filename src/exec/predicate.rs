//! A predicate must parse, with PostgreSQL's own parser, as exactly one expression: no second
//! statement, no parenthesis that closes ours early, no trailing comment or semicolon.

use crate::error::UprootError;
use pgrx::prelude::*;

fn invalid(relation: &str, message: &str, detail: Option<String>) -> UprootError {
    UprootError::InvalidPredicate {
        relation: relation.to_string(),
        message: message.to_string(),
        detail,
    }
}

/// Returns the predicate unchanged when it is exactly one expression.
pub fn check(predicate: Option<&str>, relation: &str) -> Result<String, UprootError> {
    let predicate = predicate.ok_or_else(|| invalid(relation, "the predicate is NULL", None))?;
    if predicate.trim().is_empty() {
        return Err(invalid(relation, "the predicate is empty", None));
    }
    if predicate.contains('\0') {
        return Err(invalid(relation, "the predicate contains a NUL byte", None));
    }
    let list = match parse(&format!("SELECT {predicate}")) {
        Ok(l) => l,
        Err(msg) => {
            return Err(invalid(
                relation,
                "it does not parse as one expression",
                Some(format!("PostgreSQL says: {msg}")),
            ))
        }
    };
    unsafe {
        let n = if list.is_null() { 0 } else { (*list).length };
        if n != 1 {
            return Err(invalid(
                relation,
                "it must be exactly one expression, not several statements",
                None,
            ));
        }
        let raw = pg_sys::list_nth(list, 0) as *mut pg_sys::RawStmt;
        if (*raw).stmt_len != 0 {
            return Err(invalid(relation, "it must not end with a semicolon", None));
        }
        let node = (*raw).stmt;
        if (*node).type_ != pg_sys::NodeTag::T_SelectStmt {
            return Err(invalid(relation, "it must be one expression", None));
        }
        let sel = node as *mut pg_sys::SelectStmt;
        let s = &*sel;
        let targets = if s.targetList.is_null() {
            0
        } else {
            (*s.targetList).length
        };
        let plain = s.op == pg_sys::SetOperation::SETOP_NONE
            && targets == 1
            && s.fromClause.is_null()
            && s.whereClause.is_null()
            && s.groupClause.is_null()
            && s.havingClause.is_null()
            && s.windowClause.is_null()
            && s.distinctClause.is_null()
            && s.sortClause.is_null()
            && s.limitCount.is_null()
            && s.limitOffset.is_null()
            && s.lockingClause.is_null()
            && s.withClause.is_null()
            && s.intoClause.is_null()
            && s.valuesLists.is_null();
        if !plain {
            return Err(invalid(
                relation,
                "it must be one expression, without FROM, WHERE, ORDER BY, LIMIT, UNION, INTO or a column list",
                None,
            ));
        }
        let target = pg_sys::list_nth(s.targetList, 0) as *mut pg_sys::ResTarget;
        if !(*target).name.is_null() {
            return Err(invalid(
                relation,
                "it must be one expression, without AS",
                None,
            ));
        }
    }
    // Wrapped in parentheses on one line it must still parse: this rejects a trailing `--`
    // comment that would swallow what follows it.
    if let Err(msg) = parse(&format!("SELECT ({predicate})")) {
        return Err(invalid(
            relation,
            "it ends inside a comment or does not close what it opens",
            Some(format!("PostgreSQL says: {msg}")),
        ));
    }

    Ok(predicate.to_string())
}

/// PostgreSQL's raw parser; a syntax error comes back as its message.
fn parse(sql: &str) -> Result<*mut pg_sys::List, String> {
    let csql = std::ffi::CString::new(sql).map_err(|e| e.to_string())?;
    PgTryBuilder::new(|| {
        let list =
            unsafe { pg_sys::raw_parser(csql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT) };
        Ok(list as usize)
    })
    .catch_others(|e| match e {
        pg_sys::panic::CaughtError::PostgresError(r) => Err(r.message().to_string()),
        other => other.rethrow(),
    })
    .execute()
    .map(|l| l as *mut pg_sys::List)
}
