//! SQL for archive storage: naming and creating archive tables, moving a family into them, and
//! putting a batch back. Pure, like the rest of the planner.

use super::{in_set, pk_equal, references, rel, DeletePart, Ident, Params};
use crate::graph::model::{quote_ident, Catalog, Column, RelId, Relation};

pub const ARCHIVE_SCHEMA: &str = "uproot_archive";
pub const BATCH_COLUMN: &str = "_uproot_batch";
const NAME_LIMIT: usize = 63;

/// The archive table's name for a source: `schema.table`, readable and unique per source. Names
/// over PostgreSQL's 63 bytes are cut at a character boundary and end in a hash of the full name.
pub fn archive_table_name(schema: &str, table: &str) -> String {
    let full = format!("{schema}.{table}");
    if full.len() <= NAME_LIMIT {
        return full;
    }
    hashed_name(&full)
}

/// The same name, always with the hash: used when the plain name is taken by another table.
pub fn hashed_name(full: &str) -> String {
    let suffix = format!("_{:08x}", fnv1a(full.as_bytes()));
    let mut cut = NAME_LIMIT - suffix.len();
    while !full.is_char_boundary(cut.min(full.len())) {
        cut -= 1;
    }
    format!("{}{suffix}", &full[..cut.min(full.len())])
}

fn fnv1a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in bytes {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Columns an archive table carries: every column of the source, under the same name and type.
pub fn archived_columns(r: &Relation) -> Vec<&Column> {
    r.columns.iter().collect()
}

/// `CREATE TABLE` for a new archive table: no constraints, defaults, identity or generated
/// expressions; plus the batch column and an index for restore by batch.
pub fn create_archive_table(r: &Relation, name: &str) -> Vec<String> {
    let q = format!("{}.{}", quote_ident(ARCHIVE_SCHEMA), quote_ident(name));
    let mut cols: Vec<String> = archived_columns(r)
        .iter()
        .map(|c| format!("{} {}", quote_ident(&c.name), c.type_name))
        .collect();
    cols.push(format!("{} bigint NOT NULL", quote_ident(BATCH_COLUMN)));
    let mut index_cols = vec![quote_ident(BATCH_COLUMN)];
    if let Some(pk) = r.primary_key_columns() {
        index_cols.extend(pk.iter().map(|c| quote_ident(&c.name)));
    }
    vec![
        format!("CREATE TABLE {q} ({})", cols.join(", ")),
        format!("CREATE INDEX ON {q} ({})", index_cols.join(", ")),
        format!(
            "COMMENT ON TABLE {q} IS {}",
            super::super::graph::model::quote_literal(&format!(
                "pg_uproot archive of {}",
                r.qualified()
            ))
        ),
    ]
}

/// Where one family table's rows go.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub source: RelId,
    /// `"schema"."name"` of the archive table, quoted.
    pub archive: String,
    /// Columns copied, by name (the source's columns that the archive table has).
    pub columns: Vec<String>,
}

/// Move a family: every delete of `delete_statement` also inserts the deleted rows into the
/// archive, all in one statement. Parameters: those of the parts, then the batch id.
/// Returns one `int8[]` with the archived count per part.
pub fn archive_statement(cat: &Catalog, parts: &[DeletePart], targets: &[Target]) -> String {
    let mut params = Params::default();
    let mut ctes = Vec::new();
    let mut conds = Vec::new();
    for part in parts {
        conds.push(match part {
            DeletePart::Collected(t) => (*t, in_set(Ident::of(rel(cat, *t)), "d", &mut params)),
            DeletePart::Joined(e) => (e.child, references(cat, e, "d", &mut params)),
        });
    }
    let batch = params.count() + 1;
    let mut counts = Vec::new();
    for (i, (table, cond)) in conds.iter().enumerate() {
        let target = targets
            .iter()
            .find(|t| t.source == *table)
            .unwrap_or_else(|| panic!("no archive target for relation {table}"));
        let cols: Vec<String> = target.columns.iter().map(|c| quote_ident(c)).collect();
        let returned: Vec<String> = cols.iter().map(|c| format!("d.{c}")).collect();
        ctes.push(format!(
            "d{i} AS (DELETE FROM {} d WHERE {cond} RETURNING {})",
            rel(cat, *table).qualified(),
            returned.join(", ")
        ));
        ctes.push(format!(
            "a{i} AS (INSERT INTO {} ({}, {}) SELECT {}, ${batch}::pg_catalog.int8 FROM d{i} RETURNING 1)",
            target.archive,
            cols.join(", "),
            quote_ident(BATCH_COLUMN),
            cols.join(", ")
        ));
        counts.push(format!("(SELECT pg_catalog.count(*) FROM a{i})"));
    }
    if ctes.is_empty() {
        return "SELECT ARRAY[]::pg_catalog.int8[]".into();
    }
    format!(
        "WITH {} SELECT ARRAY[{}]::pg_catalog.int8[]",
        ctes.join(",\n"),
        counts.join(", ")
    )
}

/// Archive's detach: set the detached columns as PostgreSQL would, and return each changed row's
/// key with its values before and after, where it was and where it is now, as six arrays
/// (jsonb[] key, jsonb[] old, jsonb[] new, oid[] tableoid, tid[] now, tid[] before) for
/// `RECORD_DETACHED`. It runs as the caller; the ledger is written as the owner. Parameters:
/// the edge parent's row set, then (if excluding) the child's family set.
pub fn detach_returning(
    cat: &Catalog,
    edge: &crate::graph::FamilyEdge,
    exclude_family: bool,
) -> String {
    let fk = &cat.foreign_keys[edge.fk];
    let child = rel(cat, edge.child);
    let cond = super::outside_family(cat, edge, "c", exclude_family, &mut Params::default());
    let detached = child.column_names(fk.detached_cols());
    let key = json_object(&detached_row_key(child, &detached), "c");
    format!(
        "WITH old AS MATERIALIZED (SELECT c.ctid AS t, c.tableoid AS o, {key} AS row_key, {old} AS old_values FROM {q} c WHERE {cond}), \
         u AS (UPDATE {q} c SET {sets} FROM old WHERE c.ctid OPERATOR(pg_catalog.=) old.t AND c.tableoid OPERATOR(pg_catalog.=) old.o \
               RETURNING old.row_key, old.old_values, {new} AS new_values, c.tableoid AS o, c.ctid AS t, old.t AS old_t) \
         SELECT pg_catalog.array_agg(u.row_key), pg_catalog.array_agg(u.old_values), pg_catalog.array_agg(u.new_values), \
                pg_catalog.array_agg(u.o), pg_catalog.array_agg(u.t), pg_catalog.array_agg(u.old_t) FROM u",
        old = json_object(&detached, "c"),
        new = json_object(&detached, "c"),
        sets = super::detach_sets(cat, edge),
        q = child.qualified()
    )
}

/// How a detached row is found again: its primary key; without one, every column the detach
/// leaves alone.
fn detached_row_key(child: &Relation, detached: &[String]) -> Vec<String> {
    match child.primary_key_columns() {
        Some(pk) if !pk.is_empty() => pk.iter().map(|c| c.name.clone()).collect(),
        _ => child
            .columns
            .iter()
            .map(|c| c.name.clone())
            .filter(|n| !detached.contains(n))
            .collect(),
    }
}

/// The columns an earlier record of the same row must forget when this edge changes them: only
/// rows without a primary key are keyed by (other) columns.
pub fn detached_key_forgets(cat: &Catalog, edge: &crate::graph::FamilyEdge) -> Vec<String> {
    let child = rel(cat, edge.child);
    if child.primary_key_columns().is_some_and(|pk| !pk.is_empty()) {
        return Vec::new();
    }
    child.column_names(cat.foreign_keys[edge.fk].detached_cols())
}

/// Record what `detach_returning` changed, as the extension's owner. Rows an earlier edge
/// detached move with this update: their recorded position follows them, and their recorded key
/// forgets the columns changed now. Parameters: `$1` batch, `$2` the child's oid, `$3` the
/// constraint name, `$4` the columns to forget (text[]), then `detach_returning`'s six arrays.
pub const RECORD_DETACHED: &str = "WITH u AS (SELECT * FROM ROWS FROM (pg_catalog.unnest($5::pg_catalog.jsonb[]), pg_catalog.unnest($6::pg_catalog.jsonb[]), \
     pg_catalog.unnest($7::pg_catalog.jsonb[]), pg_catalog.unnest($8::pg_catalog.oid[]), pg_catalog.unnest($9::pg_catalog.tid[]), pg_catalog.unnest($10::pg_catalog.tid[])) \
     AS u(row_key, old_values, new_values, o, t, old_t)), \
 moved AS (UPDATE uproot.batch_detached bd SET row_ctid = u.t, row_key = bd.row_key OPERATOR(pg_catalog.-) $4::pg_catalog.text[] FROM u \
     WHERE bd.batch_id OPERATOR(pg_catalog.=) $1 AND bd.relation OPERATOR(pg_catalog.=) $2::pg_catalog.oid::pg_catalog.regclass \
       AND bd.row_tableoid OPERATOR(pg_catalog.=) u.o::pg_catalog.regclass AND bd.row_ctid OPERATOR(pg_catalog.=) u.old_t) \
 INSERT INTO uproot.batch_detached (batch_id, relation, constraint_name, row_key, old_values, new_values, row_tableoid, row_ctid) \
 SELECT $1, $2::pg_catalog.oid::pg_catalog.regclass, $3, u.row_key, u.old_values, u.new_values, u.o::pg_catalog.regclass, u.t FROM u";

fn json_object(names: &[String], alias: &str) -> String {
    let pairs: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                "{}, {alias}.{}",
                super::super::graph::model::quote_literal(n),
                quote_ident(n)
            )
        })
        .collect();
    format!("pg_catalog.jsonb_build_object({})", pairs.join(", "))
}

/// Columns restore writes: the source's current columns that the archive has, except generated
/// ones (PostgreSQL computes them again).
pub fn restorable_columns(r: &Relation, archive_columns: &[String]) -> Vec<String> {
    r.columns
        .iter()
        .filter(|c| c.generated.is_none())
        .filter(|c| archive_columns.contains(&c.name))
        .map(|c| c.name.clone())
        .collect()
}

/// The first key of an archived row that exists again in the source. Parameters: `$1` batch.
pub fn restore_conflict(r: &Relation, archive: &str) -> Option<String> {
    let pk = r.primary_key_columns().filter(|pk| !pk.is_empty())?;
    let eq = pk_equal(r, "s", "a");
    let key_text: Vec<String> = pk
        .iter()
        .map(|c| format!("a.{}::pg_catalog.text", quote_ident(&c.name)))
        .collect();
    Some(format!(
        "SELECT pg_catalog.count(*), pg_catalog.min(pg_catalog.concat_ws(', ', {})) FROM {archive} a \
         WHERE a.{} OPERATOR(pg_catalog.=) $1 AND EXISTS (SELECT 1 FROM {} s WHERE {eq})",
        key_text.join(", "),
        quote_ident(BATCH_COLUMN),
        r.qualified()
    ))
}

/// One relation of a restore.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePart {
    pub source: RelId,
    pub archive: String,
    pub columns: Vec<String>,
    /// Leave out archived rows whose key exists again (restore's `on_conflict => 'skip'`).
    pub skip_existing: bool,
}

/// Move a batch back in one statement: each part deletes its rows from the archive and inserts
/// them into the source, so foreign keys are checked once at the end (cycles need that) and a row
/// is never in both places. With `skip_existing`, rows whose key exists again stay archived.
/// Parameters: `$1` batch id. Returns one `int8[]` of rows restored per part.
pub fn restore_statement(cat: &Catalog, parts: &[RestorePart]) -> String {
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let r = rel(cat, p.source);
        let cols: Vec<String> = p.columns.iter().map(|c| quote_ident(c)).collect();
        let returned: Vec<String> = cols.iter().map(|c| format!("a.{c}")).collect();
        let mut cond = format!("a.{} OPERATOR(pg_catalog.=) $1", quote_ident(BATCH_COLUMN));
        if p.skip_existing && r.primary_key_columns().is_some_and(|pk| !pk.is_empty()) {
            cond = format!(
                "{cond} AND NOT EXISTS (SELECT 1 FROM {} s WHERE {})",
                r.qualified(),
                pk_equal(r, "s", "a")
            );
        }
        ctes.push(format!(
            "m{i} AS (DELETE FROM {} a WHERE {cond} RETURNING {})",
            p.archive,
            returned.join(", ")
        ));
        ctes.push(format!(
            "r{i} AS (INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM m{i} RETURNING 1)",
            r.qualified(),
            cols.join(", "),
            cols.join(", ")
        ));
        counts.push(format!("(SELECT pg_catalog.count(*) FROM r{i})"));
    }
    if ctes.is_empty() {
        return "SELECT ARRAY[]::pg_catalog.int8[]".into();
    }
    format!(
        "WITH {} SELECT ARRAY[{}]::pg_catalog.int8[]",
        ctes.join(",\n"),
        counts.join(", ")
    )
}

/// Put back detached references: rows that still exist and still hold the values archive
/// wrote (NULL or the default; nobody re-pointed them meanwhile) get their old FK values again.
/// Run per constraint in the reverse of archive's order, so each finds the rows as the detach
/// through it left them. Parameters: `$1` batch, `$2` the child's oid, `$3` the constraint
/// name. Returns where each reattached row was and where it is now (tid[], oid[], tid[], oid[]):
/// a row two constraints reattach is one row.
pub fn reattach(cat: &Catalog, child: RelId, fk_columns: &[String]) -> String {
    let r = rel(cat, child);
    let sets: Vec<String> = fk_columns
        .iter()
        .map(|c| format!("{q} = v.{q}", q = quote_ident(c)))
        .collect();
    // by primary key; without one, by the position archive left it at, if it still has every
    // other column it had then (a row changed meanwhile is left alone)
    let mut cond = if r.primary_key_columns().is_some_and(|pk| !pk.is_empty()) {
        pk_equal(r, "c", "v")
    } else {
        "c.ctid OPERATOR(pg_catalog.=) bd.row_ctid AND c.tableoid OPERATOR(pg_catalog.=) bd.row_tableoid \
         AND pg_catalog.to_jsonb(c) OPERATOR(pg_catalog.@>) bd.row_key"
            .to_string()
    };
    for c in fk_columns {
        let q = quote_ident(c);
        cond.push_str(&format!(" AND c.{q} IS NOT DISTINCT FROM n.{q}"));
    }
    // The update moves the rows; later groups of the same table find them by their new place.
    format!(
        "WITH r AS (UPDATE {q} c SET {} FROM uproot.batch_detached bd \
         CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{q}, bd.row_key OPERATOR(pg_catalog.||) bd.old_values) v \
         CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{q}, bd.new_values) n \
         WHERE bd.batch_id OPERATOR(pg_catalog.=) $1 AND bd.relation OPERATOR(pg_catalog.=) $2::pg_catalog.oid::pg_catalog.regclass \
         AND bd.constraint_name OPERATOR(pg_catalog.=) $3 AND {cond} \
         RETURNING bd.row_ctid AS old_t, bd.row_tableoid AS old_o, c.ctid AS t, c.tableoid AS o), \
         moved AS (UPDATE uproot.batch_detached b2 SET row_ctid = r.t FROM r \
         WHERE b2.batch_id OPERATOR(pg_catalog.=) $1 AND b2.relation OPERATOR(pg_catalog.=) $2::pg_catalog.oid::pg_catalog.regclass \
         AND b2.row_tableoid OPERATOR(pg_catalog.=) r.o AND b2.row_ctid OPERATOR(pg_catalog.=) r.old_t) \
         SELECT pg_catalog.array_agg(r.old_t), pg_catalog.array_agg(r.old_o), pg_catalog.array_agg(r.t), pg_catalog.array_agg(r.o) FROM r",
        sets.join(", "),
        q = r.qualified()
    )
}
