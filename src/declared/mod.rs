//! Declared relations: relations the schema does not declare as a constraint ("loose foreign
//! keys"), recorded in uproot.declared_relations.
//!
//! Declaring one checks what PostgreSQL checks for `ALTER TABLE ... ADD FOREIGN KEY`: the caller
//! owns the child table and holds REFERENCES on the parent's columns, the columns exist, the
//! parent columns carry a unique constraint, and each pair of columns can be compared with that
//! constraint's equality operator. The row is then written as the extension's owner (nobody else
//! may write the table), and the relcache of both tables is invalidated so that every backend's
//! cached catalog reloads with the new edge. The catalog query (sql/catalog.sql) turns each sync
//! declaration into an edge marked `declared`.

use crate::error::UprootError;
use crate::graph::model::{quote_ident, quote_literal};
use crate::privileged::as_extension_owner;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

pub mod check;
pub mod drain;
pub mod leftovers;

/// What deleting a parent does to the referencing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDelete {
    Cascade,
    SetNull,
    Restrict,
    AsyncCascade,
    AsyncSetNull,
}

impl OnDelete {
    pub fn parse(text: &str) -> Option<OnDelete> {
        let words: Vec<String> = text
            .split_whitespace()
            .map(|w| w.to_ascii_lowercase())
            .collect();
        Some(match words.join(" ").as_str() {
            "cascade" => OnDelete::Cascade,
            "set null" => OnDelete::SetNull,
            "restrict" => OnDelete::Restrict,
            "async cascade" => OnDelete::AsyncCascade,
            "async set null" => OnDelete::AsyncSetNull,
            _ => return None,
        })
    }

    pub fn is_async(self) -> bool {
        matches!(self, OnDelete::AsyncCascade | OnDelete::AsyncSetNull)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnDelete::Cascade => "cascade",
            OnDelete::SetNull => "set null",
            OnDelete::Restrict => "restrict",
            OnDelete::AsyncCascade => "async cascade",
            OnDelete::AsyncSetNull => "async set null",
        }
    }
}

/// Longest name: the check trigger `uproot_check_<name>` must fit PostgreSQL's 63 bytes.
const MAX_NAME: usize = 50;

/// What the caller asks to declare.
pub struct Declaration {
    pub name: String,
    pub child: pg_sys::Oid,
    pub child_columns: Vec<String>,
    pub parent: pg_sys::Oid,
    pub parent_columns: Vec<String>,
    pub on_delete: OnDelete,
    pub check_trigger: bool,
    pub required: bool,
}

fn declaration_error(
    sqlstate: &'static str,
    message: String,
    detail: Option<String>,
    hint: impl Into<String>,
) -> UprootError {
    UprootError::Declaration {
        sqlstate,
        message,
        detail,
        hint: hint.into(),
    }
}

fn spi_failed(e: pgrx::spi::SpiError) -> UprootError {
    declaration_error(
        "XX000",
        format!("SPI failed: {e}"),
        None,
        "This is a bug in pg_uproot; please report it.",
    )
}

fn invalid(argument: &str, message: String, hint: &str) -> UprootError {
    UprootError::InvalidArgument {
        argument: argument.into(),
        message,
        hint: hint.into(),
    }
}

/// A table as the caller reads its name, and its kind.
struct Table {
    oid: pg_sys::Oid,
    name: String,
    foreign: bool,
}

fn table(oid: pg_sys::Oid, argument: &str) -> Result<Table, UprootError> {
    table_of_kind(oid, argument, false)
}

/// `foreign`: a foreign table is accepted too (the child of an async relation, through
/// postgres_fdw in another database).
fn table_of_kind(oid: pg_sys::Oid, argument: &str, foreign: bool) -> Result<Table, UprootError> {
    let row = Spi::get_two_with_args::<String, String>(
        "SELECT c.oid::pg_catalog.regclass::pg_catalog.text, c.relkind::pg_catalog.text \
           FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(oid)],
    )
    .ok();
    let (name, kind) = match row {
        Some((Some(n), Some(k))) => (n, k),
        _ => return Err(UprootError::UnknownRelation { oid: oid.to_u32() }),
    };
    if kind != "r" && kind != "p" && !(foreign && kind == "f") {
        return Err(declaration_error(
            "42809",
            format!(
                "{argument} {name} is a {}, not a table",
                crate::graph::relkind_word(&kind)
            ),
            None,
            "A declared relation links two ordinary or partitioned tables; the child of an async relation may also be a foreign table.",
        ));
    }
    Ok(Table {
        oid,
        name,
        foreign: kind == "f",
    })
}

/// One column: attnum, type (its base type for a domain), NOT NULL, type name.
struct Col {
    attnum: i16,
    base_type: pg_sys::Oid,
    not_null: bool,
    type_name: String,
}

fn column(t: &Table, name: &str) -> Result<Col, UprootError> {
    let row = Spi::connect(|client| {
        let rows = client.select(
            "SELECT a.attnum, a.atttypid, a.attnotnull, pg_catalog.format_type(a.atttypid, a.atttypmod) \
               FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2 \
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
            None,
            &[DatumWithOid::from(t.oid), DatumWithOid::from(name)],
        )?;
        let mut out = None;
        for r in rows {
            out = Some((
                r.get::<i16>(1)?.unwrap_or(0),
                r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::InvalidOid),
                r.get::<bool>(3)?.unwrap_or(false),
                r.get::<String>(4)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .ok()
    .flatten();
    let Some((attnum, typ, not_null, type_name)) = row else {
        return Err(declaration_error(
            "42703",
            format!("column {} of table {} does not exist", quote_ident(name), t.name),
            None,
            "Name the columns exactly as the table spells them (names are case-sensitive here: no folding to lower case).",
        ));
    };
    Ok(Col {
        attnum,
        base_type: unsafe { pg_sys::getBaseType(typ) },
        not_null,
        type_name,
    })
}

fn columns(t: &Table, names: &[String], argument: &str) -> Result<Vec<Col>, UprootError> {
    let mut seen = std::collections::BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(invalid(
                argument,
                format!("{argument} names column {} twice", quote_ident(n)),
                "Name each column once.",
            ));
        }
    }
    names.iter().map(|n| column(t, n)).collect()
}

/// The operator classes of the parent's unique index over exactly these columns, in the
/// columns' order; None when there is none (PostgreSQL's FK rule: a unique, immediate,
/// non-partial constraint or index on the referenced columns).
fn unique_index_classes(parent: &Table, attnums: &[i16]) -> Option<Vec<pg_sys::Oid>> {
    Spi::get_one_with_args::<Vec<pg_sys::Oid>>(
        "SELECT ARRAY(SELECT x.opc FROM pg_catalog.unnest($2::pg_catalog.int2[]) WITH ORDINALITY AS u(att, ord) \
                        JOIN pg_catalog.unnest(ux.keys) WITH ORDINALITY AS k(att, pos) ON k.att OPERATOR(pg_catalog.=) u.att \
                        JOIN pg_catalog.unnest(ux.classes) WITH ORDINALITY AS x(opc, pos) ON x.pos OPERATOR(pg_catalog.=) k.pos \
                       ORDER BY u.ord) \
           FROM (SELECT (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:i.indnkeyatts] AS keys, \
                        i.indclass::pg_catalog.oid[] AS classes, i.indisprimary, i.indexrelid \
                   FROM pg_catalog.pg_index i \
                  WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique AND i.indisvalid AND i.indimmediate \
                    AND i.indpred IS NULL AND i.indexprs IS NULL) ux \
          WHERE ux.keys OPERATOR(pg_catalog.@>) $2::pg_catalog.int2[] AND ux.keys OPERATOR(pg_catalog.<@) $2::pg_catalog.int2[] \
          ORDER BY ux.indisprimary DESC, ux.indexrelid LIMIT 1",
        &[DatumWithOid::from(parent.oid), DatumWithOid::from(attnums.to_vec())],
    )
    .ok()
    .flatten()
}

/// Can a child column of type `child_type` reference a parent column compared by `opclass`?
/// As PostgreSQL decides for a foreign key: the operator family has `=` for the pair of types,
/// or the child's type is (or casts implicitly to) the operator class's input type.
fn comparable(opclass: pg_sys::Oid, child_type: pg_sys::Oid) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_amop ao \
                         WHERE ao.amopfamily OPERATOR(pg_catalog.=) oc.opcfamily AND ao.amopstrategy OPERATOR(pg_catalog.=) 3 \
                           AND ao.amoplefttype OPERATOR(pg_catalog.=) oc.opcintype AND ao.amoprighttype OPERATOR(pg_catalog.=) $2) \
             OR oc.opcintype OPERATOR(pg_catalog.=) $2 \
             OR EXISTS (SELECT FROM pg_catalog.pg_cast k \
                         WHERE k.castsource OPERATOR(pg_catalog.=) $2 AND k.casttarget OPERATOR(pg_catalog.=) oc.opcintype \
                           AND k.castcontext OPERATOR(pg_catalog.=) 'i') \
           FROM pg_catalog.pg_opclass oc WHERE oc.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(opclass), DatumWithOid::from(child_type)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Whether a valid, non-partial index of the child leads with exactly these columns.
fn child_indexed(child: &Table, attnums: &[i16]) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i \
                         WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisvalid AND i.indpred IS NULL \
                           AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:pg_catalog.cardinality($2::pg_catalog.int2[])] OPERATOR(pg_catalog.@>) $2::pg_catalog.int2[] \
                           AND (pg_catalog.string_to_array(i.indkey::pg_catalog.text, ' ')::pg_catalog.int2[])[1:pg_catalog.cardinality($2::pg_catalog.int2[])] OPERATOR(pg_catalog.<@) $2::pg_catalog.int2[])",
        &[DatumWithOid::from(child.oid), DatumWithOid::from(attnums.to_vec())],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn owns(t: &Table) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(t.oid)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn may_reference(t: &Table, column: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_column_privilege($1, $2, 'REFERENCES')",
        &[DatumWithOid::from(t.oid), DatumWithOid::from(column)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn not_owner(t: &Table, doing: &str) -> UprootError {
    declaration_error(
        "42501",
        format!("must be the owner of table {} to {doing}", t.name),
        None,
        format!(
            "As for ALTER TABLE ... ADD FOREIGN KEY: run it as the table's owner (or a member of that role), e.g. SET ROLE to the owner of {}.",
            t.name
        ),
    )
}

/// A declared relation's row, as the caller reads it (the table is readable by PUBLIC).
struct Stored {
    child: Option<pg_sys::Oid>,
    parent: Option<pg_sys::Oid>,
    child_columns: Vec<String>,
    on_delete: String,
    check_trigger: bool,
}

impl Stored {
    /// An `async cascade` or `async set null` relation: it has a queue trigger and a drain.
    fn asynchronous(&self) -> bool {
        self.on_delete.starts_with("async ")
    }
}

fn stored(name: &str) -> Option<Stored> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT d.child::pg_catalog.oid, d.parent::pg_catalog.oid, d.child_columns, d.on_delete, \
                    d.check_trigger \
               FROM uproot.declared_relations d WHERE d.name OPERATOR(pg_catalog.=) $1",
            None,
            &[DatumWithOid::from(name)],
        )?;
        let mut out = None;
        for r in rows {
            out = Some(Stored {
                child: r.get::<pg_sys::Oid>(1)?,
                parent: r.get::<pg_sys::Oid>(2)?,
                child_columns: r.get::<Vec<String>>(3)?.unwrap_or_default(),
                on_delete: r.get::<String>(4)?.unwrap_or_default(),
                check_trigger: r.get::<bool>(5)?.unwrap_or(false),
            });
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .ok()
    .flatten()
}

/// `stored`, or the error that says there is no such relation.
fn stored_or_error(name: &str) -> Result<Stored, UprootError> {
    stored(name).ok_or_else(|| no_such_relation(name))
}

fn no_such_relation(name: &str) -> UprootError {
    declaration_error(
        "42704",
        format!("there is no declared relation named {name}"),
        None,
        "List them with SELECT * FROM uproot.declared_relations.",
    )
}

/// An async declared relation: pg_uproot does not follow it (the drain does), `uproot.graph`
/// lists it.
pub struct AsyncRelation {
    pub name: String,
    pub child: pg_sys::Oid,
    pub parent: pg_sys::Oid,
    pub on_delete: String,
}

/// The async declared relations whose parent is one of `parents`, by name.
pub fn async_relations(parents: Vec<pg_sys::Oid>) -> Vec<AsyncRelation> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT d.name, d.child::pg_catalog.oid, d.parent::pg_catalog.oid, d.on_delete \
               FROM uproot.declared_relations d \
              WHERE d.on_delete OPERATOR(pg_catalog.~~) 'async %' \
                AND d.parent::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ($1) ORDER BY d.name",
            None,
            &[DatumWithOid::from(parents)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(name), Some(child), Some(parent), Some(on_delete)) = (
                r.get::<String>(1)?,
                r.get::<pg_sys::Oid>(2)?,
                r.get::<pg_sys::Oid>(3)?,
                r.get::<String>(4)?,
            ) {
                out.push(AsyncRelation {
                    name,
                    child,
                    parent,
                    on_delete,
                });
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_default()
}

/// Every backend's cached catalog knows the parent when a family can reach it: invalidating
/// both tables' relcache entries (at commit, and in this backend at once) makes them reload.
fn invalidate(tables: &[pg_sys::Oid]) {
    for oid in tables {
        let exists = Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1)",
            &[DatumWithOid::from(*oid)],
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        if exists {
            unsafe { pg_sys::CacheInvalidateRelcacheByRelid(*oid) };
        }
    }
    unsafe { pg_sys::CommandCounterIncrement() };
}

fn trigger_name(name: &str) -> String {
    format!("uproot_check_{name}")
}

fn queue_trigger_name(name: &str) -> String {
    format!("uproot_queue_{name}")
}

/// Check `d` and record it; install the check trigger when asked.
pub fn declare(d: &Declaration) -> Result<(), UprootError> {
    check_shape(d)?;
    let asynchronous = d.on_delete.is_async();
    let child = table_of_kind(d.child, "child", asynchronous)?;
    let parent = table(d.parent, "parent")?;
    check_owner(d, &child, &parent, asynchronous)?;
    // As ADD FOREIGN KEY does: no rows change in either table while the relation is declared.
    unsafe {
        pg_sys::LockRelationOid(child.oid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE);
        pg_sys::LockRelationOid(
            parent.oid,
            pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE,
        );
    }
    let child_cols = columns(&child, &d.child_columns, "child_columns")?;
    let parent_cols = columns(&parent, &d.parent_columns, "parent_columns")?;
    check_key(d, &child, &parent, &child_cols, &parent_cols)?;
    check_action(d, &child, &child_cols)?;
    warn_unindexed(d, &child, &child_cols);
    install_triggers(d, &child, &parent, asynchronous)?;
    record(d, &child, &parent)?;
    invalidate(&[child.oid, parent.oid]);
    Ok(())
}

/// The name, and as many child columns as parent columns.
fn check_shape(d: &Declaration) -> Result<(), UprootError> {
    if d.name.is_empty() || d.name.len() > MAX_NAME {
        return Err(invalid(
            "name",
            format!("name must have 1 to {MAX_NAME} bytes"),
            "Name the relation like a constraint, e.g. 'ci_builds_project'.",
        ));
    }
    if d.child_columns.is_empty() || d.child_columns.len() != d.parent_columns.len() {
        return Err(declaration_error(
            "42830",
            format!(
                "declared relation {} has {} child column(s) and {} parent column(s)",
                d.name,
                d.child_columns.len(),
                d.parent_columns.len()
            ),
            None,
            "Name as many child columns as parent columns, pair by pair, and at least one.",
        ));
    }
    Ok(())
}

/// The caller owns the child (and the parent of an async relation); the name is free.
fn check_owner(
    d: &Declaration,
    child: &Table,
    parent: &Table,
    asynchronous: bool,
) -> Result<(), UprootError> {
    if !owns(child) {
        return Err(not_owner(child, "declare a relation on it"));
    }
    // the queue trigger goes on the parent
    if asynchronous && !owns(parent) {
        return Err(not_owner(
            parent,
            "declare an async relation to it (its queue trigger goes on it)",
        ));
    }
    if stored(&d.name).is_some() {
        return Err(declaration_error(
            "42710",
            format!("a declared relation named {} exists already", d.name),
            None,
            "Drop it first with uproot.drop_relation(name), or choose another name.",
        ));
    }
    Ok(())
}

/// As for a foreign key: REFERENCES on the parent columns, a unique key of exactly those
/// columns, and comparable types pair by pair.
fn check_key(
    d: &Declaration,
    child: &Table,
    parent: &Table,
    child_cols: &[Col],
    parent_cols: &[Col],
) -> Result<(), UprootError> {
    if let Some(c) = d.parent_columns.iter().find(|c| !may_reference(parent, c)) {
        return Err(declaration_error(
            "42501",
            format!(
                "permission denied: declaring a relation to {} needs REFERENCES on its column {}",
                parent.name,
                quote_ident(c)
            ),
            None,
            format!(
                "GRANT REFERENCES ON {} TO the declaring role, as for a foreign key.",
                parent.name
            ),
        ));
    }
    let parent_attnums: Vec<i16> = parent_cols.iter().map(|c| c.attnum).collect();
    let Some(classes) = unique_index_classes(parent, &parent_attnums) else {
        return Err(declaration_error(
            "42830",
            format!(
                "there is no unique constraint matching columns ({}) of table {}",
                d.parent_columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "),
                parent.name
            ),
            None,
            "A declared relation references a key, as a foreign key does: the parent columns need a primary key or a unique constraint (not deferrable, not partial) of exactly those columns.",
        ));
    };
    for (i, (cc, pc)) in child_cols.iter().zip(parent_cols).enumerate() {
        if !comparable(classes[i], cc.base_type) {
            return Err(declaration_error(
                "42804",
                format!(
                    "column {} of {} ({}) cannot reference column {} of {} ({})",
                    quote_ident(&d.child_columns[i]),
                    child.name,
                    cc.type_name,
                    quote_ident(&d.parent_columns[i]),
                    parent.name,
                    pc.type_name
                ),
                Some("Key columns are of incompatible types.".into()),
                "Use columns of the same type (or of types PostgreSQL compares with the parent key's equality operator), as for a foreign key.",
            ));
        }
    }
    Ok(())
}

/// `required` and `set null` exclude each other; `set null` needs nullable child columns.
fn check_action(d: &Declaration, child: &Table, child_cols: &[Col]) -> Result<(), UprootError> {
    if d.required && matches!(d.on_delete, OnDelete::SetNull | OnDelete::AsyncSetNull) {
        return Err(declaration_error(
            "22023",
            format!(
                "declared relation {} cannot be required and '{}' at once: that action leaves NULL references",
                d.name,
                d.on_delete.as_str()
            ),
            None,
            "Declare it with on_delete 'cascade', 'restrict' or 'async cascade', or without required.",
        ));
    }
    if matches!(d.on_delete, OnDelete::SetNull | OnDelete::AsyncSetNull) {
        if let Some(i) = child_cols.iter().position(|c| c.not_null) {
            return Err(declaration_error(
                "22023",
                format!(
                    "on_delete 'set null' cannot null column {} of {}: it is NOT NULL",
                    quote_ident(&d.child_columns[i]),
                    child.name
                ),
                None,
                "Declare it with on_delete 'cascade' or 'restrict', or drop the NOT NULL constraint.",
            ));
        }
    }
    Ok(())
}

/// A WARNING with the CREATE INDEX to run when no index leads with the child columns.
fn warn_unindexed(d: &Declaration, child: &Table, child_cols: &[Col]) {
    let child_attnums: Vec<i16> = child_cols.iter().map(|c| c.attnum).collect();
    if !child.foreign && !child_indexed(child, &child_attnums) {
        let cols: Vec<String> = d.child_columns.iter().map(|c| quote_ident(c)).collect();
        pgrx::pg_sys::panic::ErrorReport::new(
            PgSqlErrorCode::ERRCODE_WARNING,
            format!(
                "uproot: no index of {} leads with the columns ({}) of declared relation {}",
                child.name,
                cols.join(", "),
                d.name
            ),
            "",
        )
        .set_detail("Every purge or archive of the parent then scans the child table.")
        .set_hint(format!(
            "CREATE INDEX ON {} ({});",
            child.name,
            cols.join(", ")
        ))
        .report(PgLogLevel::WARNING);
    }
}

/// The check trigger on the child (when asked for) and the queue trigger on the parent (async).
fn install_triggers(
    d: &Declaration,
    child: &Table,
    parent: &Table,
    asynchronous: bool,
) -> Result<(), UprootError> {
    if d.check_trigger {
        let cols: Vec<String> = d.child_columns.iter().map(|c| quote_ident(c)).collect();
        // DDL takes no parameters: the identifiers are quoted, the argument a literal
        Spi::run(&format!(
            "CREATE TRIGGER {} AFTER INSERT OR UPDATE OF {} ON {} FOR EACH ROW \
             EXECUTE FUNCTION uproot_internal.check_declared_reference({})",
            quote_ident(&trigger_name(&d.name)),
            cols.join(", "),
            qualified(child.oid),
            quote_literal(&d.name)
        ))
        .map_err(spi_failed)?;
    }
    if asynchronous {
        // statement-level, with the deleted rows as a transition table: one INSERT per DELETE
        Spi::run(&format!(
            "CREATE TRIGGER {} AFTER DELETE ON {} REFERENCING OLD TABLE AS uproot_deleted \
             FOR EACH STATEMENT EXECUTE FUNCTION uproot_internal.queue_deleted_keys({})",
            quote_ident(&queue_trigger_name(&d.name)),
            qualified(parent.oid),
            quote_literal(&d.name)
        ))
        .map_err(spi_failed)?;
    }
    Ok(())
}

/// The declaration in uproot.declared_relations, written as the extension's owner.
fn record(d: &Declaration, child: &Table, parent: &Table) -> Result<(), UprootError> {
    let declared_by = caller_name();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO uproot.declared_relations \
               (name, child, child_columns, parent, parent_columns, on_delete, check_trigger, required, declared_by) \
             VALUES ($1, $2::pg_catalog.regclass, $3, $4::pg_catalog.regclass, $5, $6, $7, $8, $9)",
            &[
                DatumWithOid::from(d.name.as_str()),
                DatumWithOid::from(child.oid),
                DatumWithOid::from(d.child_columns.clone()),
                DatumWithOid::from(parent.oid),
                DatumWithOid::from(d.parent_columns.clone()),
                DatumWithOid::from(d.on_delete.as_str()),
                DatumWithOid::from(d.check_trigger),
                DatumWithOid::from(d.required),
                DatumWithOid::from(declared_by.as_str()),
            ],
        )
    })
    .map_err(spi_failed)?;
    Ok(())
}

/// A drain job (uproot.jobs) that drains the relation `name`, if any (the first by name).
fn drain_job_of(name: &str) -> Option<String> {
    as_extension_owner(|| {
        Spi::get_one_with_args::<String>(
            "SELECT min(name) FROM uproot.jobs WHERE action OPERATOR(pg_catalog.=) 'drain' AND relation OPERATOR(pg_catalog.=) $1",
            &[DatumWithOid::from(name)],
        )
    })
    .ok()
    .flatten()
}

/// Forget a declared relation and drop its check trigger (and queue trigger).
pub fn drop(name: &str) -> Result<(), UprootError> {
    let s = stored_or_error(name)?;
    if let Some(job) = drain_job_of(name) {
        return Err(declaration_error(
            "2BP01",
            format!("declared relation {name} is drained by job {job}"),
            Some("A drain job drains the queue of its relation.".into()),
            format!(
                "Drop the job first: SELECT uproot.drop_job({});",
                quote_literal(&job)
            ),
        ));
    }
    let child = s.child.and_then(|c| table_of_kind(c, "child", true).ok());
    let parent = s.parent.and_then(|p| table(p, "parent").ok());
    if let (true, Some(parent)) = (s.asynchronous(), &parent) {
        if !owns(parent) {
            return Err(not_owner(
                parent,
                "drop the async relation whose queue trigger is on it",
            ));
        }
        Spi::run(&format!(
            "DROP TRIGGER IF EXISTS {} ON {}",
            quote_ident(&queue_trigger_name(name)),
            qualified(parent.oid)
        ))
        .map_err(spi_failed)?;
    }
    if let Some(child) = &child {
        if !owns(child) {
            return Err(not_owner(child, "drop a relation declared on it"));
        }
        if s.check_trigger {
            Spi::run(&format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(&trigger_name(name)),
                qualified(child.oid)
            ))
            .map_err(spi_failed)?;
        }
    }
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM uproot.declared_relations WHERE name OPERATOR(pg_catalog.=) $1",
            &[DatumWithOid::from(name)],
        )?;
        // keys still queued for it are dropped with it
        Spi::run_with_args(
            "DELETE FROM uproot.async_queue WHERE relation OPERATOR(pg_catalog.=) $1",
            &[DatumWithOid::from(name)],
        )?;
        // parents owned through it are owned no more
        Spi::run_with_args(
            "DELETE FROM uproot.owned_parents WHERE child::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND via OPERATOR(pg_catalog.=) $2",
            &[DatumWithOid::from(s.child.unwrap_or(pg_sys::InvalidOid)), DatumWithOid::from(name)],
        )
    })
    .map_err(spi_failed)?;
    let tables: Vec<pg_sys::Oid> = [s.child, s.parent].into_iter().flatten().collect();
    invalidate(&tables);
    Ok(())
}

/// `"schema"."table"`, whatever the search_path.
fn qualified(oid: pg_sys::Oid) -> String {
    Spi::get_one_with_args::<String>(
        "SELECT uproot_internal.quoted_name($1)",
        &[DatumWithOid::from(oid)],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

fn caller_name() -> String {
    let role = crate::privileged::current_user();
    // SAFETY: GetUserNameFromId returns a palloc'd C string, or raises an ERROR
    unsafe { std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(role, false)) }
        .to_string_lossy()
        .into_owned()
}

/// The parent table that `via` (a foreign key of `child`, or a sync declared relation of it)
/// references, if there is one.
fn via_parent(child: &Table, via: &str) -> Option<pg_sys::Oid> {
    Spi::get_one_with_args::<pg_sys::Oid>(
        "SELECT con.confrelid FROM pg_catalog.pg_constraint con \
          WHERE con.conrelid OPERATOR(pg_catalog.=) $1 AND con.contype OPERATOR(pg_catalog.=) 'f' \
            AND con.conparentid OPERATOR(pg_catalog.=) 0 AND con.conname OPERATOR(pg_catalog.=) $2 \
         UNION ALL \
         SELECT d.parent::pg_catalog.oid FROM uproot.declared_relations d \
          WHERE d.child::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND d.name OPERATOR(pg_catalog.=) $2 \
            AND d.on_delete OPERATOR(pg_catalog.=) ANY ('{cascade,set null,restrict}'::pg_catalog.text[]) \
         LIMIT 1",
        &[DatumWithOid::from(child.oid), DatumWithOid::from(via)],
    )
    .ok()
    .flatten()
}

fn has_primary_key(t: &Table) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_constraint con WHERE con.conrelid OPERATOR(pg_catalog.=) $1 \
            AND con.contype OPERATOR(pg_catalog.=) 'p')",
        &[DatumWithOid::from(t.oid)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn owned_exists(child: pg_sys::Oid, via: &str) -> bool {
    Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM uproot.owned_parents o \
          WHERE o.child::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND o.via OPERATOR(pg_catalog.=) $2)",
        &[DatumWithOid::from(child), DatumWithOid::from(via)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Declare that the parent `child` reaches through `via` is owned by the rows that reference it.
pub fn declare_owned(child: pg_sys::Oid, via: &str) -> Result<(), UprootError> {
    let child = table(child, "child")?;
    let Some(parent) = via_parent(&child, via) else {
        return Err(declaration_error(
            "42704",
            format!(
                "{} has no foreign key or declared relation named {}",
                child.name,
                quote_ident(via)
            ),
            None,
            "Name a foreign-key constraint of the child table (see \\d of the table) or a declared relation whose child it is (uproot.declared_relations).",
        ));
    };
    let parent = table(parent, "parent")?;
    if parent.oid == child.oid {
        return Err(declaration_error(
            "0A000",
            format!("{} references its own table {}: owned parents of a self-reference are not supported", quote_ident(via), child.name),
            None,
            "Declare owned parents on relations between two tables.",
        ));
    }
    for t in [&child, &parent] {
        if !owns(t) {
            return Err(not_owner(t, "declare the parents it owns"));
        }
    }
    if !has_primary_key(&parent) {
        return Err(declaration_error(
            "0A000",
            format!(
                "{} has no primary key, so its owned rows cannot be named",
                parent.name
            ),
            None,
            format!("Add a primary key to {}.", parent.name),
        ));
    }
    if owned_exists(child.oid, via) {
        return Err(declaration_error(
            "42710",
            format!(
                "the parents {} reaches through {} are owned already",
                child.name,
                quote_ident(via)
            ),
            None,
            "Nothing to do; uproot.drop_owned(child, via) undoes it.",
        ));
    }
    unsafe {
        pg_sys::LockRelationOid(child.oid, pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE);
        pg_sys::LockRelationOid(
            parent.oid,
            pg_sys::ShareRowExclusiveLock as pg_sys::LOCKMODE,
        );
    }
    let declared_by = caller_name();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO uproot.owned_parents (child, via, declared_by) VALUES ($1::pg_catalog.regclass, $2, $3)",
            &[
                DatumWithOid::from(child.oid),
                DatumWithOid::from(via),
                DatumWithOid::from(declared_by.as_str()),
            ],
        )
    })
    .map_err(spi_failed)?;
    invalidate(&[child.oid, parent.oid]);
    Ok(())
}

/// Undo `declare_owned`.
pub fn drop_owned(child: pg_sys::Oid, via: &str) -> Result<(), UprootError> {
    let child = table(child, "child")?;
    if !owned_exists(child.oid, via) {
        return Err(declaration_error(
            "42704",
            format!(
                "the parents {} reaches through {} are not owned",
                child.name,
                quote_ident(via)
            ),
            None,
            "List owned parents with SELECT * FROM uproot.owned_parents.",
        ));
    }
    if !owns(&child) {
        return Err(not_owner(&child, "drop the parents it owns"));
    }
    let parent = via_parent(&child, via);
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM uproot.owned_parents WHERE child OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND via OPERATOR(pg_catalog.=) $2",
            &[DatumWithOid::from(child.oid), DatumWithOid::from(via)],
        )
    })
    .map_err(spi_failed)?;
    let tables: Vec<pg_sys::Oid> = [Some(child.oid), parent].into_iter().flatten().collect();
    invalidate(&tables);
    Ok(())
}
