//! Rows left behind by a declared relation: child rows whose parent no longer exists (MATCH
//! SIMPLE: only rows whose reference has no NULL column), and, for a `required` relation, rows
//! whose reference is NULL. They come from plain DELETEs of parents (a sync relation is followed
//! by pg_uproot only), from an application that nullified references, from inserts that raced a
//! purge without the check trigger, or from an async relation not drained yet.
//!
//! Everything here runs as the caller, with the caller's privileges and row-level security.

use super::declaration_error;
use crate::error::UprootError;
use crate::graph::model::quote_ident;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

/// A declared relation, as the leftover queries need it.
struct Relation {
    name: String,
    child: pg_sys::Oid,
    parent: pg_sys::Oid,
    child_columns: Vec<String>,
    parent_columns: Vec<String>,
    required: bool,
}

fn relations(name: Option<&str>) -> Result<Vec<Relation>, UprootError> {
    let rows = Spi::connect(|client| {
        let rows = client.select(
            "SELECT d.name, d.child::pg_catalog.oid, d.parent::pg_catalog.oid, d.child_columns, d.parent_columns, d.required \
               FROM uproot.declared_relations d \
              WHERE $1 IS NULL OR d.name OPERATOR(pg_catalog.=) $1 ORDER BY d.name",
            None,
            &[match name {
                Some(n) => DatumWithOid::from(n),
                None => DatumWithOid::null::<String>(),
            }],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push(Relation {
                name: r.get::<String>(1)?.unwrap_or_default(),
                child: r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                parent: r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
                child_columns: r.get::<Vec<String>>(4)?.unwrap_or_default(),
                parent_columns: r.get::<Vec<String>>(5)?.unwrap_or_default(),
                required: r.get::<bool>(6)?.unwrap_or(false),
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(super::spi_failed)?;
    if let (Some(n), true) = (name, rows.is_empty()) {
        return Err(declaration_error(
            "42704",
            format!("there is no declared relation named {n}"),
            None,
            "List them with SELECT * FROM uproot.declared_relations.",
        ));
    }
    Ok(rows)
}

/// The child table's own name, which qualifies its columns in a predicate over it.
fn table_name(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT c.relname::pg_catalog.text FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(oid)],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// (missing parent, NULL reference) conditions over the child's row `c` (an alias or the table
/// name); the NULL condition is `false` unless the relation is required.
fn conditions(r: &Relation, c: &str) -> (String, String) {
    let cols: Vec<String> = r
        .child_columns
        .iter()
        .map(|x| format!("{c}.{}", quote_ident(x)))
        .collect();
    let present: Vec<String> = cols.iter().map(|x| format!("{x} IS NOT NULL")).collect();
    let join: Vec<String> = r
        .parent_columns
        .iter()
        .zip(&cols)
        .map(|(p, x)| format!("p.{} OPERATOR(pg_catalog.=) {x}", quote_ident(p)))
        .collect();
    let missing = format!(
        "({} AND NOT EXISTS (SELECT FROM {} p WHERE {}))",
        present.join(" AND "),
        super::qualified(r.parent),
        join.join(" AND ")
    );
    let nulls = if r.required {
        format!(
            "({})",
            cols.iter()
                .map(|x| format!("{x} IS NULL"))
                .collect::<Vec<_>>()
                .join(" OR ")
        )
    } else {
        "false".to_string()
    };
    (missing, nulls)
}

/// A predicate over the child table that matches its leftovers: for a job (`uproot.create_job`
/// with the child as root) that purges or archives them, whole families each.
pub fn predicate(name: &str) -> Result<String, UprootError> {
    let r = relations(Some(name))?.remove(0);
    let (missing, nulls) = conditions(&r, &quote_ident(&table_name(r.child)));
    Ok(if r.required {
        format!("{missing} OR {nulls}")
    } else {
        missing
    })
}

/// Per declared relation (or the one named): its child, and how many rows are left behind.
pub fn count(name: Option<&str>) -> Result<Vec<(String, pg_sys::Oid, i64, i64)>, UprootError> {
    let mut out = Vec::new();
    for r in relations(name)? {
        let (missing, nulls) = conditions(&r, "c");
        let sql = format!(
            "SELECT pg_catalog.count(*) FILTER (WHERE {missing}), pg_catalog.count(*) FILTER (WHERE {nulls}) FROM {} c",
            super::qualified(r.child)
        );
        let (m, n) = Spi::get_two::<i64, i64>(&sql).map_err(super::spi_failed)?;
        out.push((r.name, r.child, m.unwrap_or(0), n.unwrap_or(0)));
    }
    Ok(out)
}

/// The leftover rows of one declared relation, as jsonb, at most `limit`, in key order.
pub fn list(name: &str, limit: i64) -> Result<Vec<(String, pgrx::JsonB)>, UprootError> {
    let r = relations(Some(name))?.remove(0);
    let (missing, nulls) = conditions(&r, "c");
    let order = Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.format('c.%I', a.attname), ', ' ORDER BY k.ord) \
           FROM pg_catalog.pg_constraint con \
           CROSS JOIN LATERAL pg_catalog.unnest(con.conkey) WITH ORDINALITY AS k(att, ord) \
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) con.conrelid AND a.attnum OPERATOR(pg_catalog.=) k.att \
          WHERE con.conrelid OPERATOR(pg_catalog.=) $1 AND con.contype OPERATOR(pg_catalog.=) 'p'",
        &[DatumWithOid::from(r.child)],
    )
    .ok()
    .flatten()
    .unwrap_or_else(|| "pg_catalog.to_jsonb(c)::pg_catalog.text".to_string());
    let sql = format!(
        "SELECT CASE WHEN {nulls} THEN 'null reference' ELSE 'missing parent' END, pg_catalog.to_jsonb(c) \
           FROM {} c WHERE {missing} OR {nulls} ORDER BY {order} LIMIT $1",
        super::qualified(r.child)
    );
    Spi::connect(|client| {
        let rows = client.select(&sql, None, &[DatumWithOid::from(limit)])?;
        let mut out = Vec::new();
        for row in rows {
            out.push((
                row.get::<String>(1)?.unwrap_or_default(),
                row.get::<pgrx::JsonB>(2)?
                    .unwrap_or(pgrx::JsonB(serde_json::Value::Null)),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(super::spi_failed)
}
