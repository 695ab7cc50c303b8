//! SQL for archive storage: naming and creating archive tables, moving a family into them, and
//! putting a batch back. Pure, like the rest of the planner.

use super::{
    in_set, pk_equal, rel, DeletePart, Ident, Params, ReturnedKeys, Rows, Slot, Statement,
};
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

/// An archive table made ready for its source (by `uproot.prepare_archive` or an archive), and
/// what was done to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub target: Target,
    pub archive_oid: u32,
    pub action: String,
}

/// Open a batch in the ledger, as the extension's owner. Named slots: "root" (oid), "root name",
/// "keys" (jsonb text, or NULL), "predicate" (or NULL), "archived by". Returns the batch id.
pub fn open_batch() -> Statement {
    let mut params = Params::default();
    let root = params.slot(Slot::Named("root"));
    let name = params.slot(Slot::Named("root name"));
    let keys = params.slot(Slot::Named("keys"));
    let predicate = params.slot(Slot::Named("predicate"));
    let by = params.slot(Slot::Named("archived by"));
    params.statement(format!(
        "INSERT INTO uproot.batches (root, root_name, keys, predicate, archived_by) \
         VALUES (${root}::pg_catalog.oid::pg_catalog.regclass, ${name}, ${keys}::pg_catalog.jsonb, ${predicate}, ${by}) RETURNING id"
    ))
}

/// Close a batch, as the extension's owner: its relations in restore order. Named slots:
/// "relations" (oid[]), "archives" (oid[], their archive tables), "rows" (int8[], per relation).
pub fn close_batch_relations() -> Statement {
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let relations = params.slot(Slot::Named("relations"));
    let archives = params.slot(Slot::Named("archives"));
    let rows = params.slot(Slot::Named("rows"));
    params.statement(format!(
        "INSERT INTO uproot.batch_relations (batch_id, position, relation, relation_name, archive, archive_name, rows) \
         SELECT ${batch}, u.p, u.r::pg_catalog.regclass, uproot_internal.quoted_name(u.r), u.a::pg_catalog.regclass, uproot_internal.quoted_name(u.a), u.n \
           FROM ROWS FROM (pg_catalog.unnest(${relations}::pg_catalog.oid[]), pg_catalog.unnest(${archives}::pg_catalog.oid[]), pg_catalog.unnest(${rows}::pg_catalog.int8[])) WITH ORDINALITY AS u(r, a, n, p)"
    ))
}

/// Close a batch: the counts by relation name. Named slot: "counts" (jsonb text).
pub fn close_batch_counts() -> Statement {
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let counts = params.slot(Slot::Named("counts"));
    params.statement(format!(
        "UPDATE uproot.batches SET counts = ${counts}::pg_catalog.jsonb WHERE id OPERATOR(pg_catalog.=) ${batch}"
    ))
}

/// Move a family: every delete of `delete_statement` also inserts the deleted rows into the
/// archive, all in one statement, tagged with the batch. Returns one `int8[]` with the archived
/// count per part.
pub fn archive_statement(cat: &Catalog, parts: &[DeletePart], targets: &[Target]) -> Statement {
    archive_statement_keyed(cat, parts, targets, &[])
}

/// `archive_statement` that also returns, after the counts, one array per `(table, column)` of
/// `keys` with that column's values in the rows it archived (each column must be one the target
/// copies), as `delete_statement_keyed` does: the keys the set-based foreign-key check needs.
pub fn archive_statement_keyed(
    cat: &Catalog,
    parts: &[DeletePart],
    targets: &[Target],
    keys: &[(RelId, i16)],
) -> Statement {
    let mut params = Params::default();
    let mut ctes = Vec::new();
    let conds: Vec<(RelId, String)> = parts
        .iter()
        .map(|part| part.condition(cat, &mut params))
        .collect();
    let batch = params.slot(Slot::Batch);
    let mut counts = Vec::new();
    let mut returned = ReturnedKeys::new(keys, false);
    for (i, (table, cond)) in conds.iter().enumerate() {
        // the target copies every key column, so the part returns them already
        returned.add(cat, i, *table);
        let (delete, insert) = moved_part(cat, targets, *table, cond, &format!("d{i}"), batch);
        ctes.push(format!("d{i} AS ({delete})"));
        ctes.push(format!("a{i} AS ({insert} RETURNING 1)"));
        counts.push(format!("(SELECT pg_catalog.count(*) FROM a{i})"));
    }
    returned.statement(params, &ctes, &counts)
}

/// A large archive's join leaf, moved by a statement of its own before the family statement
/// (as a purge's `delete_leaf_statement`): its rows that reference the family, through a
/// semi-join on the parent rows' ctids, into its archive table, tagged with the batch. No
/// RETURNING: SPI's count of inserted rows is the count, and the deleted rows are kept once
/// (for the insert), not again for a count.
pub fn archive_leaf_statement(cat: &Catalog, part: &DeletePart, targets: &[Target]) -> Statement {
    let mut params = Params {
        joined_references: true,
        ..Params::default()
    };
    let (table, cond) = part.condition(cat, &mut params);
    let batch = params.slot(Slot::Batch);
    let (delete, insert) = moved_part(cat, targets, table, &cond, "d", batch);
    params.statement(format!("WITH d AS ({delete}) {insert}"))
}

/// How one part moves into its archive table (its target among `targets`): the delete of its
/// rows where `cond`, returning every column the target copies, and the insert of those rows
/// (read from `from`) tagged with the batch (parameter `batch`).
fn moved_part(
    cat: &Catalog,
    targets: &[Target],
    table: RelId,
    cond: &str,
    from: &str,
    batch: usize,
) -> (String, String) {
    let target = targets
        .iter()
        .find(|t| t.source == table)
        .unwrap_or_else(|| panic!("no archive target for relation {table}"));
    let cols: Vec<String> = target.columns.iter().map(|c| quote_ident(c)).collect();
    let returning: Vec<String> = cols.iter().map(|c| format!("d.{c}")).collect();
    let delete = format!(
        "DELETE FROM {} d WHERE {cond} RETURNING {}",
        rel(cat, table).qualified(),
        returning.join(", ")
    );
    let insert = format!(
        "INSERT INTO {} ({}, {}) SELECT {}, ${batch}::pg_catalog.int8 FROM {from}",
        target.archive,
        cols.join(", "),
        quote_ident(BATCH_COLUMN),
        cols.join(", ")
    );
    (delete, insert)
}

/// Archive's detach: set the detached columns as PostgreSQL would, and return each changed row's
/// key with its values before and after, where it was and where it is now, as six arrays
/// (jsonb[] key, jsonb[] old, jsonb[] new, oid[] tableoid, tid[] now, tid[] before) for
/// `RECORD_DETACHED`. It runs as the caller; the ledger is written as the owner.
pub fn detach_returning(
    cat: &Catalog,
    edge: &crate::graph::FamilyEdge,
    exclude_family: bool,
) -> Statement {
    let fk = &cat.foreign_keys[edge.fk];
    let child = rel(cat, edge.child);
    let mut params = Params::default();
    let cond = super::outside_family(cat, edge, "c", exclude_family, &mut params);
    let detached = child.column_names(fk.detached_cols());
    let key = json_object(&detached_row_key(child, &detached), "c");
    params.statement(format!(
        "WITH old AS MATERIALIZED (SELECT c.ctid AS t, c.tableoid AS o, {key} AS row_key, {old} AS old_values FROM {q} c WHERE {cond}), \
         u AS (UPDATE {q} c SET {sets} FROM old WHERE c.ctid OPERATOR(pg_catalog.=) old.t AND c.tableoid OPERATOR(pg_catalog.=) old.o \
               RETURNING old.row_key, old.old_values, {new} AS new_values, c.tableoid AS o, c.ctid AS t, old.t AS old_t) \
         SELECT pg_catalog.array_agg(u.row_key), pg_catalog.array_agg(u.old_values), pg_catalog.array_agg(u.new_values), \
                pg_catalog.array_agg(u.o), pg_catalog.array_agg(u.t), pg_catalog.array_agg(u.old_t) FROM u",
        old = json_object(&detached, "c"),
        new = json_object(&detached, "c"),
        sets = super::detach_sets(cat, edge),
        q = child.qualified()
    ))
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
/// forgets the columns changed now. Named slots: "relation" (the child's oid), "constraint",
/// "forget" (text[], the columns to forget), and `detach_returning`'s six arrays: "row keys",
/// "old values", "new values", "row tableoids", "row ctids", "row ctids before".
pub fn record_detached() -> Statement {
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let relation = params.slot(Slot::Named("relation"));
    let constraint = params.slot(Slot::Named("constraint"));
    let forget = params.slot(Slot::Named("forget"));
    let [keys, old, new, oids, tids, before] = DETACHED_ARRAYS.map(|n| params.slot(Slot::Named(n)));
    params.statement(format!(
        "WITH u AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(${keys}::pg_catalog.jsonb[]), pg_catalog.unnest(${old}::pg_catalog.jsonb[]), \
     pg_catalog.unnest(${new}::pg_catalog.jsonb[]), pg_catalog.unnest(${oids}::pg_catalog.oid[]), pg_catalog.unnest(${tids}::pg_catalog.tid[]), pg_catalog.unnest(${before}::pg_catalog.tid[])) \
     AS u(row_key, old_values, new_values, o, t, old_t)), \
 moved AS (UPDATE uproot.batch_detached bd SET row_ctid = u.t, row_key = bd.row_key OPERATOR(pg_catalog.-) ${forget}::pg_catalog.text[] FROM u \
     WHERE bd.batch_id OPERATOR(pg_catalog.=) ${batch} AND bd.relation OPERATOR(pg_catalog.=) ${relation}::pg_catalog.oid::pg_catalog.regclass \
       AND bd.row_tableoid OPERATOR(pg_catalog.=) u.o::pg_catalog.regclass AND bd.row_ctid OPERATOR(pg_catalog.=) u.old_t) \
 INSERT INTO uproot.batch_detached (batch_id, relation, constraint_name, row_key, old_values, new_values, row_tableoid, row_ctid) \
 SELECT ${batch}, ${relation}::pg_catalog.oid::pg_catalog.regclass, ${constraint}, u.row_key, u.old_values, u.new_values, u.o::pg_catalog.regclass, u.t FROM u"
    ))
}

/// The six arrays `detach_returning` returns, in its column order, as `record_detached` names them.
pub const DETACHED_ARRAYS: [&str; 6] = [
    "row keys",
    "old values",
    "new values",
    "row tableoids",
    "row ctids",
    "row ctids before",
];

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

/// Archived rows of a batch whose primary key exists again in the source: how many, the first
/// key, and where those rows are in the archive (`tid[]`, `oid[]`).
pub fn restore_conflict(r: &Relation, archive: &str) -> Option<Statement> {
    let pk = r.primary_key_columns().filter(|pk| !pk.is_empty())?;
    let eq = pk_equal(r, "s", "a");
    let key_text: Vec<String> = pk
        .iter()
        .map(|c| format!("a.{}::pg_catalog.text", quote_ident(&c.name)))
        .collect();
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    Some(params.statement(format!(
        "SELECT pg_catalog.count(*), pg_catalog.min(pg_catalog.concat_ws(', ', {})), \
                pg_catalog.array_agg(a.ctid), pg_catalog.array_agg(a.tableoid) FROM {archive} a \
         WHERE a.{} OPERATOR(pg_catalog.=) ${batch} AND EXISTS (SELECT 1 FROM {} s WHERE {eq})",
        key_text.join(", "),
        quote_ident(BATCH_COLUMN),
        r.qualified()
    )))
}

/// `p.<referenced column> = <value>` for each column pair of foreign key `fk`, with the FK's own
/// equality operators; `child_value` names the child side of each pair by column name.
fn fk_match(cat: &Catalog, fk: usize, p: &str, child_value: impl Fn(&str) -> String) -> String {
    let fk = &cat.foreign_keys[fk];
    let parent_names = rel(cat, fk.parent).column_names(&fk.parent_cols);
    let child_names = rel(cat, fk.child).column_names(&fk.child_cols);
    parent_names
        .iter()
        .zip(child_names.iter())
        .enumerate()
        .map(|(i, (pc, cc))| {
            let op = fk.eq_operator(i);
            format!("{p}.{} {op} {}", quote_ident(pc), child_value(cc))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn of_batch(alias: &str, param: usize) -> String {
    format!(
        "{alias}.{} OPERATOR(pg_catalog.=) ${param}::pg_catalog.int8",
        quote_ident(BATCH_COLUMN)
    )
}

/// Rows that stay archived with a row that stays: rows of the child's archive, of this batch and
/// not staying yet, that reference through `fk` a staying row of the parent's archive. `child`
/// and `parent` are the relations of the two archive tables (the staying sets are theirs).
/// Returns the rows found (`tid[]`, `oid[]`).
pub fn restore_dependents(
    cat: &Catalog,
    fk: usize,
    (child, child_archive): (RelId, &str),
    (parent, parent_archive): (RelId, &str),
) -> Statement {
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let child_staying = in_set(Ident::Pair, "c", Rows::Staying(child), &mut params);
    let parent_staying = in_set(Ident::Pair, "p", Rows::Staying(parent), &mut params);
    let matched = fk_match(cat, fk, "p", |cc| format!("c.{}", quote_ident(cc)));
    params.statement(format!(
        "SELECT pg_catalog.array_agg(c.ctid), pg_catalog.array_agg(c.tableoid) FROM {child_archive} c \
         WHERE {} AND NOT {child_staying} \
           AND EXISTS (SELECT 1 FROM {parent_archive} p WHERE {} AND {parent_staying} AND {matched})",
        of_batch("c", batch),
        of_batch("p", batch),
    ))
}

/// One relation of a restore.
#[derive(Debug, Clone, PartialEq)]
pub struct RestorePart {
    pub source: RelId,
    pub archive: String,
    pub columns: Vec<String>,
    /// Some archived rows stay in the archive (`on_conflict => 'skip'`): they are given as a row
    /// set of the archive table.
    pub keeps_rows: bool,
}

/// Move a batch back in one statement: each part deletes its rows from the archive and inserts
/// them into the source, so foreign keys are checked once at the end (cycles need that) and a row
/// is never in both places. Returns one `int8[]` of rows restored per part.
pub fn restore_statement(cat: &Catalog, parts: &[RestorePart]) -> Statement {
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let r = rel(cat, p.source);
        let cols: Vec<String> = p.columns.iter().map(|c| quote_ident(c)).collect();
        let returned: Vec<String> = cols.iter().map(|c| format!("a.{c}")).collect();
        let mut cond = of_batch("a", batch);
        if p.keeps_rows {
            let staying = in_set(Ident::Pair, "a", Rows::Staying(p.source), &mut params);
            cond = format!("{cond} AND NOT {staying}");
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
        return Statement::fixed("SELECT ARRAY[]::pg_catalog.int8[]");
    }
    params.statement(format!(
        "WITH {} SELECT ARRAY[{}]::pg_catalog.int8[]",
        ctes.join(",\n"),
        counts.join(", ")
    ))
}

/// Why a restore failed on a foreign key: archived rows of the child (of this batch, not staying)
/// whose parent is neither a live row nor a row of this batch; rows of `child` that stay are left
/// out when `keeps_rows`. Returns how many rows, and the first missing key as
/// `(col, ...)=(value, ...)` (PostgreSQL's own wording).
pub fn missing_parent(
    cat: &Catalog,
    fk: usize,
    (child, child_archive): (RelId, &str),
    parent_archives: &[String],
    keeps_rows: bool,
) -> Statement {
    let f = &cat.foreign_keys[fk];
    let child_names = rel(cat, f.child).column_names(&f.child_cols);
    let parent_names = rel(cat, f.parent).column_names(&f.parent_cols);
    let mut params = Params::default();
    let batch = params.slot(Slot::Batch);
    let mut conds = vec![of_batch("c", batch)];
    if keeps_rows {
        let staying = in_set(Ident::Pair, "c", Rows::Staying(child), &mut params);
        conds.push(format!("NOT {staying}"));
    }
    // MATCH SIMPLE: a reference with a NULL column references nothing
    for cc in &child_names {
        conds.push(format!("c.{} IS NOT NULL", quote_ident(cc)));
    }
    let matched = fk_match(cat, fk, "p", |cc| format!("c.{}", quote_ident(cc)));
    conds.push(format!(
        "NOT EXISTS (SELECT 1 FROM {} p WHERE {matched})",
        rel(cat, f.parent).qualified()
    ));
    for a in parent_archives {
        conds.push(format!(
            "NOT EXISTS (SELECT 1 FROM {a} p WHERE {} AND {matched})",
            of_batch("p", batch)
        ));
    }
    let names: Vec<String> = parent_names
        .iter()
        .map(|n| super::super::graph::model::quote_ident_if_needed(n))
        .collect();
    let values: Vec<String> = child_names
        .iter()
        .map(|n| format!("c.{}::pg_catalog.text", quote_ident(n)))
        .collect();
    params.statement(format!(
        "SELECT pg_catalog.count(*), pg_catalog.min({} OPERATOR(pg_catalog.||) '=(' OPERATOR(pg_catalog.||) pg_catalog.concat_ws(', ', {}) OPERATOR(pg_catalog.||) ')') \
           FROM {child_archive} c WHERE {}",
        super::super::graph::model::quote_literal(&format!("({})", names.join(", "))),
        values.join(", "),
        conds.join(" AND ")
    ))
}

/// Put back detached references: rows that still exist and still hold the values archive
/// wrote (NULL or the default; nobody re-pointed them meanwhile) get their old FK values again,
/// unless the row they referenced stays archived (it is in one of `parent_archives`, which after
/// the restore hold only the rows that stayed): those wait for a later restore.
///
/// Run per constraint in the reverse of archive's order, so each finds the rows as the detach
/// through it left them. The recorded references come as arrays, read from the ledger by the
/// caller of this statement, in named slots: "reference numbers" (int4[]), "row keys", "old
/// values" and "new values" (jsonb as text[]), "row tableoids" and "row ctids" (where each row was).
/// Returns the numbers of the references that wait (int4[]), of those reattached (int4[]), and
/// where each reattached row is now (tid[], oid[]).
pub fn reattach(cat: &Catalog, fk: usize, parent_archives: &[String]) -> Statement {
    let mut params = Params::default();
    let mut named = |n| params.slot(Slot::Named(n));
    let (numbers, keys, old, new) = (
        named("reference numbers"),
        named("row keys"),
        named("old values"),
        named("new values"),
    );
    let (oids, tids) = (named("row tableoids"), named("row ctids"));
    let f = &cat.foreign_keys[fk];
    let r = rel(cat, f.child);
    let detached = r.column_names(f.detached_cols());
    let sets: Vec<String> = detached
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
    for c in &detached {
        let q = quote_ident(c);
        cond.push_str(&format!(" AND c.{q} IS NOT DISTINCT FROM n.{q}"));
    }
    // the referenced row: the old values of the detached columns, the row's own for the others
    let old_value = |cc: &str| {
        if detached.iter().any(|d| d == cc) {
            format!("v.{}", quote_ident(cc))
        } else {
            format!("c.{}", quote_ident(cc))
        }
    };
    let waits = if parent_archives.is_empty() {
        "false".to_string()
    } else {
        let batch = params.slot(Slot::Batch);
        let matched = fk_match(cat, fk, "p", old_value);
        let any: Vec<String> = parent_archives
            .iter()
            .map(|a| {
                format!(
                    "EXISTS (SELECT 1 FROM {a} p WHERE {} AND {matched})",
                    of_batch("p", batch)
                )
            })
            .collect();
        format!("({})", any.join(" OR "))
    };
    let q = r.qualified();
    let records = format!("bd AS (SELECT u.i, u.row_key::pg_catalog.jsonb AS row_key, u.old_values::pg_catalog.jsonb AS old_values, \
                       u.new_values::pg_catalog.jsonb AS new_values, u.row_tableoid, u.row_ctid \
                  FROM ROWS FROM (pg_catalog.unnest(${numbers}::pg_catalog.int4[]), pg_catalog.unnest(${keys}::pg_catalog.text[]), \
                                  pg_catalog.unnest(${old}::pg_catalog.text[]), pg_catalog.unnest(${new}::pg_catalog.text[]), \
                                  pg_catalog.unnest(${oids}::pg_catalog.oid[]), pg_catalog.unnest(${tids}::pg_catalog.tid[])) \
                       AS u(i, row_key, old_values, new_values, row_tableoid, row_ctid))");
    let values = format!(
        "CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{q}, bd.row_key OPERATOR(pg_catalog.||) bd.old_values) v \
         CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::{q}, bd.new_values) n"
    );
    // The update moves the rows; the caller follows them to their new place for later groups.
    params.statement(format!(
        "WITH {records}, \
         w AS (SELECT bd.i FROM bd {values} JOIN {q} c ON {cond} WHERE {waits}), \
         r AS (UPDATE {q} c SET {} FROM bd {values} WHERE {cond} AND NOT {waits} \
               RETURNING bd.i, c.ctid AS t, c.tableoid AS o) \
         SELECT (SELECT pg_catalog.array_agg(w.i) FROM w), pg_catalog.array_agg(r.i), pg_catalog.array_agg(r.t), pg_catalog.array_agg(r.o) FROM r",
        sets.join(", "),
    ))
}
