//! "What would this role need?": `uproot.check_access()`, and the full list of missing
//! privileges that a permission error carries, as GRANT statements.

// pgrx raises an `Err` with its own SQLSTATE only when it is an `ErrorReport` (not boxed), and
// the row types of RETURNS TABLE are spelled out in the signatures.
#![allow(clippy::result_large_err, clippy::type_complexity)]

use super::{family, options, root_oid};
use crate::error::UprootError;
use crate::graph::model::Catalog;
use crate::graph::FamilyGraph;
use crate::plan::access::{grant_statements, needs, Operation};
use crate::report::report;
use crate::spi::required;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

/// One line of check_access: a privilege on a relation (or USAGE on its schema, or CREATE on
/// uproot_archive), whether the role has it, why it is needed, and the GRANT that gives it.
struct AccessLine {
    relation: Option<pg_sys::Oid>,
    privilege: String,
    granted: bool,
    why: String,
    grant: String,
}

fn operation(op: Option<&str>) -> Result<Operation, UprootError> {
    let op = op.unwrap_or("purge");
    Operation::parse(op).ok_or_else(|| UprootError::InvalidArgument {
        argument: "operation".into(),
        message: format!(
            "operation must be 'preview', 'purge', 'archive' or 'restore', not '{op}'"
        ),
        hint: "e.g. uproot.check_access('orders', 'cleanup', 'purge')".into(),
    })
}

/// Every privilege `op` needs for this family, checked for `role`.
fn access_lines(
    cat: &Catalog,
    g: &FamilyGraph,
    op: Operation,
    role: pg_sys::Oid,
) -> Result<Vec<AccessLine>, UprootError> {
    let role_name = required(
        Spi::get_one_with_args::<String>(
            "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid($1))",
            &[DatumWithOid::from(role)],
        ),
        "the role's name",
    )?;
    let wanted = needs(cat, g, op);
    let mut lines = Vec::new();
    let shown = shown_names(&wanted)?;
    let name_of = |r: u32| {
        shown
            .get(&r)
            .cloned()
            .unwrap_or_else(|| cat.relation(r).map(|x| x.qualified()).unwrap_or_default())
    };
    // schemas first: without USAGE nothing else helps
    let rels: Vec<pg_sys::Oid> = wanted
        .iter()
        .map(|n| pg_sys::Oid::from(n.relation))
        .collect();
    Spi::connect(|client| {
        let schemas = client
            .select(
                "SELECT pg_catalog.quote_ident(n.nspname), pg_catalog.has_schema_privilege($1, n.oid, 'USAGE') \
                   FROM pg_catalog.pg_namespace n \
                  WHERE n.oid OPERATOR(pg_catalog.=) ANY (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) ANY ($2)) \
                  ORDER BY 1",
                None,
                &[DatumWithOid::from(role), DatumWithOid::from(rels.clone())],
            )
            .map_err(crate::spi::failed("checking the caller's privileges"))?;
        for row in schemas {
            let quoted: String = required(row.get(1), "a schema's name")?;
            let granted: bool = required(row.get(2), "a schema privilege")?;
            lines.push(AccessLine {
                relation: None,
                privilege: format!("USAGE ON SCHEMA {quoted}"),
                granted,
                why: "the family has tables in this schema".into(),
                grant: format!("GRANT USAGE ON SCHEMA {quoted} TO {role_name};"),
            });
        }
        let privileges: Vec<String> = wanted
            .iter()
            .map(|n| n.privilege.sql_name().to_string())
            .collect();
        let granted = client
            .select(
                "SELECT pg_catalog.has_table_privilege($1, u.rel, u.privilege) \
                   FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.oid[]), pg_catalog.unnest($3::pg_catalog.text[])) WITH ORDINALITY AS u(rel, privilege, i) \
                  ORDER BY u.i",
                None,
                &[DatumWithOid::from(role), DatumWithOid::from(rels), DatumWithOid::from(privileges)],
            )
            .map_err(crate::spi::failed("checking the caller's privileges"))?;
        for (n, row) in wanted.iter().zip(granted) {
            let has: bool = required(row.get(1), "a table privilege")?;
            lines.push(AccessLine {
                relation: Some(pg_sys::Oid::from(n.relation)),
                privilege: n.privilege.sql_name().into(),
                granted: has,
                why: n.why.into(),
                grant: grant_statements(std::slice::from_ref(n), &role_name, name_of).concat(),
            });
        }
        if op == Operation::Archive {
            lines.extend(archive_create_line(client, g, role, &role_name)?);
        }
        Ok::<_, UprootError>(())
    })?;
    Ok(lines)
}

/// The family's relations as PostgreSQL quotes them (app.orders, not "app"."orders"): these are
/// shown to people.
fn shown_names(
    wanted: &[crate::plan::access::Need],
) -> Result<std::collections::HashMap<u32, String>, UprootError> {
    let rel_ids: Vec<pg_sys::Oid> = wanted
        .iter()
        .map(|n| pg_sys::Oid::from(n.relation))
        .collect();
    Spi::connect(|client| {
        client
            .select(
                "SELECT u.r, uproot_internal.quoted_name(u.r) FROM pg_catalog.unnest($1::pg_catalog.oid[]) u(r)",
                None,
                &[DatumWithOid::from(rel_ids)],
            )
            .map(|rows| {
                rows.filter_map(|row| {
                    Some((row.get::<pg_sys::Oid>(1).ok()??.to_u32(), row.get::<String>(2).ok()??))
                })
                .collect()
            })
            .map_err(crate::spi::failed("checking the caller's privileges"))
    })
}

/// CREATE on uproot_archive, when some family table has no archive table yet.
fn archive_create_line(
    client: &pgrx::spi::SpiClient<'_>,
    g: &FamilyGraph,
    role: pg_sys::Oid,
    role_name: &str,
) -> Result<Option<AccessLine>, UprootError> {
    let unprepared = client
        .select(
            "SELECT pg_catalog.count(*) FROM pg_catalog.unnest($1::pg_catalog.oid[]) s(rel) \
              WHERE NOT EXISTS (SELECT 1 FROM uproot.archive_tables m \
                                 WHERE m.source OPERATOR(pg_catalog.=) s.rel::pg_catalog.regclass AND m.archive IS NOT NULL)",
            None,
            &[DatumWithOid::from(g.tables().map(pg_sys::Oid::from).collect::<Vec<_>>())],
        )
        .map_err(crate::spi::failed("checking the caller's privileges"))?
        .first()
        .get::<i64>(1);
    let unprepared = required(unprepared, "a count of tables without an archive table")?;
    if unprepared == 0 {
        return Ok(None);
    }
    let has = client
        .select(
            "SELECT pg_catalog.has_schema_privilege($1, 'uproot_archive', 'CREATE')",
            None,
            &[DatumWithOid::from(role)],
        )
        .map_err(crate::spi::failed("checking the caller's privileges"))?
        .first()
        .get::<bool>(1);
    let has = required(has, "the CREATE privilege on uproot_archive")?;
    Ok(Some(AccessLine {
        relation: None,
        privilege: "CREATE ON SCHEMA uproot_archive".into(),
        granted: has,
        why: format!("{unprepared} table(s) of the family have no archive table yet; archive() creates them, or the owner runs uproot.prepare_archive() once"),
        grant: format!("GRANT CREATE ON SCHEMA uproot_archive TO {role_name};"),
    }))
}

/// Fill a permission error with every GRANT the calling role lacks for the whole operation, so
/// that one round of GRANTs is enough.
pub(super) fn with_missing_grants(
    e: UprootError,
    cat: &Catalog,
    g: &FamilyGraph,
    op: Operation,
) -> UprootError {
    match e {
        UprootError::PermissionDenied {
            relation,
            privilege,
            why,
            ..
        } => {
            let grants = access_lines(cat, g, op, unsafe { pg_sys::GetUserId() })
                .map(|lines| {
                    lines
                        .into_iter()
                        .filter(|l| !l.granted)
                        .map(|l| l.grant)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            UprootError::PermissionDenied {
                relation,
                privilege,
                why,
                grants: merge_grants(grants),
            }
        }
        other => other,
    }
}

/// One GRANT per object: `GRANT SELECT ON t TO r;` and `GRANT DELETE ON t TO r;` become one.
fn merge_grants(grants: Vec<String>) -> Vec<String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for g in grants {
        let Some((privs, rest)) = g
            .strip_prefix("GRANT ")
            .and_then(|s| s.split_once(" ON TABLE "))
        else {
            out.push((g, Vec::new()));
            continue;
        };
        match out.iter_mut().find(|(k, _)| k == rest) {
            Some((_, p)) => p.push(privs.to_string()),
            None => out.push((rest.to_string(), vec![privs.to_string()])),
        }
    }
    const ORDER: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];
    out.into_iter()
        .map(|(k, mut p)| {
            if p.is_empty() {
                return k;
            }
            p.sort_by_key(|x| ORDER.iter().position(|o| o == x).unwrap_or(ORDER.len()));
            format!("GRANT {} ON TABLE {k}", p.join(", "))
        })
        .collect()
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot.check_access(root regclass, role text DEFAULT CURRENT_USER, operation text DEFAULT 'purge', respect_restrict boolean DEFAULT false, follow_set_null boolean DEFAULT false, stop_at regclass[] DEFAULT '{}')
RETURNS TABLE(relation regclass, privilege text, granted boolean, why text, grant_statement text)
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'check_access_wrapper';
COMMENT ON FUNCTION uproot.check_access(regclass, text, text, boolean, boolean, regclass[]) IS
'What a role needs for an operation (preview, purge, archive or restore) on the family of root, without trying it: one row per privilege, whether the role has it, and the GRANT statement that gives it.';
"#)]
fn check_access(
    root: Option<pg_sys::Oid>,
    role: Option<String>,
    operation: Option<String>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
) -> Result<TableIterator<'static, (Option<pg_sys::Oid>, String, bool, String, String)>, ErrorReport>
{
    let root = root_oid(root).map_err(report)?;
    let op = self::operation(operation.as_deref()).map_err(report)?;
    let opts = options(respect_restrict, follow_set_null, stop_at).map_err(report)?;
    let role_name = role.unwrap_or_default();
    let role_oid = Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(role_name.clone())],
    )
    .ok()
    .flatten()
    .ok_or(UprootError::InvalidArgument {
        argument: "role".into(),
        message: format!("role \"{role_name}\" does not exist"),
        hint: "Name an existing role, e.g. uproot.check_access('orders', 'cleanup').".into(),
    })
    .map_err(report)?;
    let (cat, g) = family(root, &opts).map_err(report)?;
    let lines = access_lines(&cat, &g, op, role_oid).map_err(report)?;
    Ok(TableIterator::new(lines.into_iter().map(|l| {
        (l.relation, l.privilege, l.granted, l.why, l.grant)
    })))
}
