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
    // SAFETY: `list` is the raw parse tree `parse` just returned, in the current memory context
    unsafe { check_parse_tree(list, relation, predicate)? };
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

/// The parse tree of `SELECT <predicate>` is one plain SELECT of one unlabelled expression.
///
/// # Safety
/// `list` is a raw parse tree (a `List` of `RawStmt`) returned by `raw_parser`, or NULL.
unsafe fn check_parse_tree(
    list: *mut pg_sys::List,
    relation: &str,
    predicate: &str,
) -> Result<(), UprootError> {
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
    if !is_plain_select(s, targets) {
        return Err(invalid(
            relation,
            "it must be one expression, without FROM, WHERE, ORDER BY, LIMIT, UNION, INTO or a column list",
            None,
        ));
    }
    let target = pg_sys::list_nth(s.targetList, 0) as *mut pg_sys::ResTarget;
    if !(*target).name.is_null() {
        let label = std::ffi::CStr::from_ptr((*target).name).to_string_lossy();
        return Err(labelled(relation, predicate, &label));
    }
    Ok(())
}

/// One target and nothing else: no FROM, WHERE, GROUP BY, ORDER BY, LIMIT, set operation, INTO.
fn is_plain_select(s: &pg_sys::SelectStmt, targets: i32) -> bool {
    s.op == pg_sys::SetOperation::SETOP_NONE
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
        && s.valuesLists.is_null()
}

/// The error for a predicate that parsed as an expression with a column label: `x AS y`, or a
/// trailing word PostgreSQL read as a label, which is how an incomplete `customer_id = 3 AND`
/// parses (`AND` as the label).
fn labelled(relation: &str, predicate: &str, label: &str) -> UprootError {
    let explicit = || invalid(relation, "it must be one expression, without AS", None);
    if ends_with_as_label(predicate) {
        return explicit();
    }
    let Ok(c_label) = std::ffi::CString::new(label) else {
        return explicit();
    };
    let keyword =
        unsafe { pg_sys::ScanKeywordLookup(c_label.as_ptr(), &pg_sys::ScanKeywords) } >= 0;
    if keyword {
        let word = label.to_uppercase();
        invalid(
            relation,
            &format!("it is an incomplete expression: it ends with {word}"),
            Some(format!(
                "PostgreSQL took the trailing {word} for a column alias: the condition after it is missing."
            )),
        )
    } else {
        invalid(
            relation,
            &format!("it has a word after the end of the expression: {label}"),
            Some(format!(
                "PostgreSQL took {label} for a column alias; a predicate is one boolean expression, e.g. 'customer_id = 3 AND status = ''done'''."
            )),
        )
    }
}

/// Does the text end with `AS label` (the label plain or double-quoted)?
fn ends_with_as_label(predicate: &str) -> bool {
    let s = predicate.trim_end();
    let before_label = if s.ends_with('"') {
        // walk back over the quoted identifier; "" inside it is an escaped quote
        let b = s.as_bytes();
        let mut end = b.len() - 1;
        loop {
            match s[..end].rfind('"') {
                Some(j) if j > 0 && b[j - 1] == b'"' => end = j - 1,
                Some(j) => break &s[..j],
                None => return false,
            }
        }
    } else {
        s.trim_end_matches(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
    };
    let before = before_label.trim_end();
    before.len() >= 2
        && before.is_char_boundary(before.len() - 2)
        && before[before.len() - 2..].eq_ignore_ascii_case("as")
        && !before[..before.len() - 2]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == '"')
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
