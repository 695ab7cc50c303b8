//! `uproot.explain`: the statements an operation runs, built by the same calls that run them
//! (exec for preview, purge and archive; the archive module for restore).

#![allow(clippy::result_large_err)]

use super::{family, max_roots_arg, options, resolve_roots, ArchiveTables, Named};
use crate::error::UprootError;
use crate::exec::{self, Mode, Step};
use crate::plan::RootFilter;
use crate::report::report;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::AnyElement;

/// What an explain is of.
enum Operation {
    Family(Mode),
    Restore,
}

fn operation_arg(operation: Option<&str>) -> Result<Operation, UprootError> {
    match operation {
        Some("preview") => Ok(Operation::Family(Mode::Preview)),
        Some("purge") => Ok(Operation::Family(Mode::Purge)),
        Some("archive") => Ok(Operation::Family(Mode::Archive)),
        Some("restore") => Ok(Operation::Restore),
        other => Err(UprootError::InvalidArgument {
            argument: "operation".into(),
            message: format!(
                "operation must be 'preview', 'purge', 'archive' or 'restore', not {}",
                other.map(|o| format!("'{o}'")).unwrap_or("NULL".into())
            ),
            hint: "Name the function whose statements to show, e.g. operation => 'archive'.".into(),
        }),
    }
}

fn invalid(argument: &str, message: &str, hint: &str) -> UprootError {
    UprootError::InvalidArgument {
        argument: argument.into(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// The arguments of `uproot.explain` that name the roots (or the batch).
struct Which {
    predicate: Option<String>,
    keys: Option<AnyElement>,
    max_roots: Option<i32>,
    skip_locked: bool,
    batch_id: Option<i64>,
}

/// The steps of preview, purge or archive: keys as given (or an array of keys when neither keys
/// nor a predicate are), or a predicate, for the caller.
fn family_steps(
    root: Option<pg_sys::Oid>,
    opts: crate::graph::Options,
    mode: Mode,
    which: Which,
) -> Result<Vec<Step>, UprootError> {
    if which.batch_id.is_some() {
        return Err(invalid(
            "batch_id",
            "only a restore takes batch_id",
            "Pass operation => 'restore' to explain restoring a batch.",
        ));
    }
    let root = super::root_oid(root)?;
    let max_roots = max_roots_arg(which.max_roots)?;
    let (cat, g) = family(root, &opts)?;
    let (filter, root_args) =
        match (which.predicate, which.keys) {
            (Some(_), Some(_)) => return Err(invalid(
                "keys",
                "pass keys or a predicate, not both",
                "Keys explain uproot.purge(root, keys); a predicate explains uproot.purge_where.",
            )),
            (None, None) => (RootFilter::Array { cast: None }, Vec::new()),
            (predicate, keys) => {
                let named = match predicate {
                    Some(p) => Named::Predicate(Some(p)),
                    None => Named::Keys(keys),
                };
                let r = resolve_roots(&cat, &g, named, "uproot.explain")?;
                (r.filter, r.args)
            }
        };
    let req = exec::Request {
        filter,
        root_args,
        mode,
        max_roots,
        skip_locked: which.skip_locked,
        keys_json: None,
        predicate: None,
        taken: None,
        later_round: false,
    };
    exec::explain(&cat, &g, &req, &ArchiveTables)
}

fn relation_name(oid: u32) -> String {
    crate::catalog::get(pg_sys::Oid::from(oid))
        .ok()
        .and_then(|c| c.relation(oid).map(|r| r.display_name()))
        .unwrap_or_else(|| oid.to_string())
}

/// The steps of restoring a batch; `root`, when given, must be the batch's.
fn restore_steps(root: Option<pg_sys::Oid>, which: Which) -> Result<Vec<Step>, UprootError> {
    if which.predicate.is_some() || which.keys.is_some() || which.max_roots.is_some() {
        return Err(invalid(
            "operation",
            "a restore takes a batch_id, not keys, a predicate or max_roots",
            "Pass batch_id => N with operation => 'restore'.",
        ));
    }
    let batch = which.batch_id.ok_or_else(|| {
        invalid(
            "batch_id",
            "explaining a restore needs a batch_id",
            "List batches with SELECT * FROM uproot.batches ORDER BY id DESC.",
        )
    })?;
    super::ensure_schema_current()?;
    let (batch_root, steps) =
        Spi::connect_mut(|client| crate::archive::restore::explain(client, batch))?;
    if let Some(r) = root.filter(|r| r.to_u32() != batch_root) {
        return Err(invalid(
            "root",
            &format!(
                "batch {batch} was archived from {}, not {}",
                relation_name(batch_root),
                relation_name(r.to_u32())
            ),
            "Pass root => NULL (or the batch's root) with operation => 'restore'.",
        ));
    }
    Ok(steps)
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.explain(root regclass, predicate text DEFAULT NULL, respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}', operation text DEFAULT 'purge', keys anyelement DEFAULT NULL::text, max_roots int DEFAULT NULL, skip_locked boolean DEFAULT false, batch_id bigint DEFAULT NULL)
RETURNS TABLE(step int, purpose text, statement text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'explain_v2_wrapper';
COMMENT ON FUNCTION uproot.explain(regclass, text, boolean, boolean, regclass[], text, anyelement, int, boolean, bigint) IS
'The SQL an operation runs, statement by statement: operation => ''preview'', ''purge'' (the default) or ''archive'' of the rows with these keys or matching the predicate (neither: keys given as an array, $1), or ''restore'' of batch_id (root may then be NULL).';
"#)]
#[allow(clippy::too_many_arguments)]
fn explain_v2(
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
    operation: Option<String>,
    keys: Option<AnyElement>,
    max_roots: Option<i32>,
    skip_locked: Option<bool>,
    batch_id: Option<i64>,
) -> Result<TableIterator<'static, (i32, String, String)>, ErrorReport> {
    let which = Which {
        predicate,
        keys,
        max_roots,
        skip_locked: skip_locked.unwrap_or(false),
        batch_id,
    };
    let steps = match operation_arg(operation.as_deref()).map_err(report)? {
        Operation::Family(mode) => {
            let opts = options(respect_restrict, follow_set_null, stop_at).map_err(report)?;
            family_steps(root, opts, mode, which)
        }
        Operation::Restore => restore_steps(root, which),
    }
    .map_err(report)?;
    Ok(TableIterator::new(
        steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| (i as i32 + 1, s.purpose, s.statement.sql)),
    ))
}
