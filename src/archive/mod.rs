//! Archive tables (find, create, follow the source's columns), the batch ledger, and restore.

pub mod erase;
pub mod restore;

pub use restore::restore;

use crate::error::UprootError;
use crate::graph::model::{quote_ident, Catalog, RelId};
use crate::plan::archive::{self as aplan, Target, ARCHIVE_SCHEMA, BATCH_COLUMN};
use crate::plan::Slot;
use crate::privileged::as_extension_owner;
use crate::spi::{bind_values, run, Rows};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

pub use crate::plan::archive::Prepared;

struct Mapped {
    archive_oid: u32,
    exists: bool,
    qualified: String,
}

/// The archive table mapped to `source`, if any (`exists` false when it was dropped by hand).
fn mapping(client: &mut SpiClient<'_>, source: RelId) -> Result<Option<Mapped>, UprootError> {
    let sql = "SELECT m.archive::pg_catalog.oid, c.oid IS NOT NULL, \
                      pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
                 FROM uproot.archive_tables m \
                 LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m.archive \
                 LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
                WHERE m.source OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass";
    let t = run(
        client,
        sql,
        &[DatumWithOid::from(pg_sys::Oid::from(source))],
    );
    if t.is_empty() {
        return Ok(None);
    }
    let row = t.first();
    // the archive column, its oid and its name are NULL once the archive table was dropped
    Ok(Some(Mapped {
        archive_oid: row.get::<pg_sys::Oid>(1).map(|o| o.to_u32()).unwrap_or(0),
        exists: row.value::<bool>(2, "whether an archive table exists")?,
        qualified: row.get::<String>(3).unwrap_or_default(),
    }))
}

/// Creating an archive table needs CREATE on schema uproot_archive; the mapping row is written
/// by pg_uproot itself.
fn may_create(client: &mut SpiClient<'_>) -> Result<bool, UprootError> {
    let sql = "SELECT pg_catalog.has_schema_privilege('uproot_archive', 'CREATE')";
    run(client, sql, &[])
        .first()
        .value::<bool>(1, "the CREATE privilege on uproot_archive")
}

/// Columns of an existing archive table: (name, type oid, formatted type).
fn archive_columns(
    client: &mut SpiClient<'_>,
    oid: u32,
) -> Result<Vec<(String, u32, String)>, UprootError> {
    let sql = "SELECT a.attname::pg_catalog.text, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) \
                 FROM pg_catalog.pg_attribute a \
                WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
                ORDER BY a.attnum";
    let t = run(client, sql, &[DatumWithOid::from(pg_sys::Oid::from(oid))]);
    t.map(|row| {
        Ok((
            row.value::<String>(1, "a column's name")?,
            row.value::<pg_sys::Oid>(2, "a column's type")?.to_u32(),
            row.value::<String>(3, "a column's formatted type")?,
        ))
    })
    .collect()
}

/// The default expression of a source column, as SQL text, if it has one.
fn source_default(client: &mut SpiClient<'_>, source: RelId, attnum: i16) -> Option<String> {
    let sql = "SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d \
                WHERE d.adrelid OPERATOR(pg_catalog.=) $1 AND d.adnum OPERATOR(pg_catalog.=) $2";
    let t = run(
        client,
        sql,
        &[
            DatumWithOid::from(pg_sys::Oid::from(source)),
            DatumWithOid::from(attnum),
        ],
    );
    t.first().get::<String>(1)
}

fn oid_of(client: &mut SpiClient<'_>, qualified: &str) -> u32 {
    let t = run(
        client,
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[DatumWithOid::from(qualified.to_string())],
    );
    t.first()
        .get::<pg_sys::Oid>(1)
        .map(|o| o.to_u32())
        .unwrap_or(0)
}

/// An archive table left behind by a dropped source (unmapped, but holding batches): taking its
/// name with a hashed one would silently start a second archive of the same table name.
fn orphaned_archive(client: &mut SpiClient<'_>, qualified: &str) -> Option<(String, Vec<i64>)> {
    let t = as_extension_owner(|| {
        run(
            client,
            "SELECT pg_catalog.array_agg(DISTINCT br.batch_id ORDER BY br.batch_id), pg_catalog.min(br.relation_name) \
               FROM uproot.batch_relations br \
              WHERE br.archive OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) AND br.relation IS NULL \
                AND NOT EXISTS (SELECT 1 FROM uproot.archive_tables m WHERE m.archive OPERATOR(pg_catalog.=) br.archive)",
            &[DatumWithOid::from(qualified.to_string())],
        )
        .first()
        .get::<Vec<i64>>(1)
    });
    let batches = t.filter(|b| !b.is_empty())?;
    Some((qualified.to_string(), batches))
}

/// Create the archive table of `source`. Its owner and grants are set by `sync_access`.
fn create(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    source: RelId,
) -> Result<(String, u32), UprootError> {
    let r = cat.relation(source).expect("source in catalog");
    let mut name = aplan::archive_table_name(&r.schema, &r.name);
    let quoted = |name: &str| format!("{}.{}", quote_ident(ARCHIVE_SCHEMA), quote_ident(name));
    if oid_of(client, &quoted(&name)) != 0 {
        if let Some((archive, batches)) = orphaned_archive(client, &quoted(&name)) {
            return Err(UprootError::ArchiveOrphaned {
                relation: r.display_name(),
                archive,
                batches,
            });
        }
        name = aplan::hashed_name(&format!("{}.{}", r.schema, r.name));
    }
    for sql in aplan::create_archive_table(r, &name) {
        run(client, &sql, &[]);
    }
    let qualified = pg_qualified(client, ARCHIVE_SCHEMA, &name)?;
    let oid = oid_of(client, &qualified);
    Ok((qualified, oid))
}

/// `schema.name` quoted as PostgreSQL quotes it (only where needed), as the mapping of an
/// archive table reads it: an archive's statements then read the same whether it created its
/// archive tables or found them.
fn pg_qualified(
    client: &mut SpiClient<'_>,
    schema: &str,
    name: &str,
) -> Result<String, UprootError> {
    run(
        client,
        "SELECT pg_catalog.quote_ident($1) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident($2)",
        &[
            DatumWithOid::from(schema.to_string()),
            DatumWithOid::from(name.to_string()),
        ],
    )
    .first()
    .value::<String>(1, "a quoted name")
}

/// Bring an archive table's owner and grants in line with its source: owned by the source's
/// owner; whoever may SELECT the source may read the archive, and whoever may DELETE from the
/// source may also archive into it and restore from it (SELECT, INSERT, DELETE). Grants the
/// source no longer has are revoked. Returns whether anything changed. A table of the user's
/// own outside schema uproot_archive (mapped by hand) is left as its owner keeps it.
pub(crate) fn sync_access(
    client: &mut SpiClient<'_>,
    source: RelId,
    archive: u32,
    qualified: &str,
) -> bool {
    let diff = "WITH src AS (SELECT c.relowner, c.relacl FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1), \
                arc AS (SELECT c.relowner, c.relacl FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $2 \
                          AND c.relnamespace OPERATOR(pg_catalog.=) 'uproot_archive'::pg_catalog.regnamespace), \
                want AS (SELECT DISTINCT a.grantee, p.privilege \
                           FROM src, arc, pg_catalog.aclexplode(src.relacl) a, \
                                (VALUES ('SELECT', 'SELECT'), ('SELECT', 'DELETE'), ('INSERT', 'DELETE'), ('DELETE', 'DELETE')) p(privilege, needs) \
                          WHERE a.privilege_type OPERATOR(pg_catalog.=) p.needs AND a.grantee OPERATOR(pg_catalog.<>) src.relowner), \
                have AS (SELECT a.grantee, a.privilege_type AS privilege \
                           FROM arc, pg_catalog.aclexplode(arc.relacl) a WHERE a.grantee OPERATOR(pg_catalog.<>) arc.relowner), \
                grantee AS (SELECT g.grantee, g.privilege, g.act FROM \
                              (SELECT w.grantee, w.privilege, 'GRANT' AS act FROM (SELECT * FROM want EXCEPT SELECT * FROM have) w \
                               UNION ALL SELECT h.grantee, h.privilege, 'REVOKE' FROM (SELECT * FROM have EXCEPT SELECT * FROM want) h) g) \
                SELECT pg_catalog.format('%s %s ON %s %s %s', g.act, g.privilege, $3, \
                           CASE g.act WHEN 'GRANT' THEN 'TO' ELSE 'FROM' END, \
                           CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END) \
                  FROM grantee g \
                UNION ALL \
                SELECT pg_catalog.format('ALTER TABLE %s OWNER TO %s', $3, pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(src.relowner))) \
                  FROM src, arc WHERE src.relowner OPERATOR(pg_catalog.<>) arc.relowner \
                ORDER BY 1";
    as_extension_owner(|| {
        let statements: Vec<String> = run(
            client,
            diff,
            &[
                DatumWithOid::from(pg_sys::Oid::from(source)),
                DatumWithOid::from(pg_sys::Oid::from(archive)),
                DatumWithOid::from(qualified.to_string()),
            ],
        )
        .filter_map(|row| row.get::<String>(1))
        .collect();
        for sql in &statements {
            run(client, sql, &[]);
        }
        !statements.is_empty()
    })
}

/// The advisory lock (two int4 keys: "upro", 1) that serialises creating archive tables.
const CREATE_LOCK: (i32, i32) = (0x7570_726f, 1);

/// Creating archive tables is serialised: two sessions archiving a family for the first time
/// would otherwise both create the same table, and one would fail on PostgreSQL's catalog
/// (23505 on pg_type_typname_nsp_index). Taken only when an archive table is missing, held to
/// the end of the transaction; then the mapping of `source` is read again, so an archive table
/// another session created meanwhile is used. Under REPEATABLE READ or SERIALIZABLE that
/// re-read cannot see the other session's work, so finding it with the latest snapshot is a
/// 40001 error that says to retry.
fn serialize_creation(
    client: &mut SpiClient<'_>,
    source: RelId,
    relation: &str,
) -> Result<Option<Mapped>, UprootError> {
    run(
        client,
        "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
        &[
            DatumWithOid::from(CREATE_LOCK.0),
            DatumWithOid::from(CREATE_LOCK.1),
        ],
    );
    let mapped = mapping(client, source)?;
    let snapshot_sees_it = mapped.as_ref().is_some_and(|m| m.exists);
    if !snapshot_sees_it && unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        let latest = crate::spi::query_latest(
            client,
            "SELECT 1 FROM uproot.archive_tables m \
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) m.archive \
              WHERE m.source OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regclass",
            &[DatumWithOid::from(pg_sys::Oid::from(source))],
        );
        if !latest.is_empty() {
            return Err(UprootError::ArchiveCreatedConcurrently {
                relation: relation.to_string(),
            });
        }
    }
    Ok(mapped)
}

/// Find or create (when allowed) the archive table of every source, and bring its columns up to
/// date: a new source column is added; a changed type is an error before anything moves.
/// `preparing` is prepare_archive: it also recreates archive tables dropped by hand.
pub fn ensure_targets(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    root: RelId,
    sources: &[RelId],
    preparing: bool,
) -> Result<Vec<Prepared>, UprootError> {
    let root_name = cat
        .relation(root)
        .map(|r| r.display_name())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut allowed: Option<bool> = None;
    for &source in sources {
        let r = cat.relation(source).expect("source in catalog");
        let (qualified, oid, created) =
            archive_table_of(client, cat, source, &root_name, preparing, &mut allowed)?;
        let (added, retyped) = follow_columns(client, r, &qualified, oid)?;
        let access_changed = sync_access(client, source, oid, &qualified);
        let action = if created {
            "created".to_string()
        } else {
            changes_made(access_changed, &added, &retyped)
        };
        let columns = r.columns.iter().map(|c| c.name.clone()).collect();
        out.push(Prepared {
            target: Target {
                source,
                archive: qualified,
                columns,
            },
            archive_oid: oid,
            action,
        });
    }
    Ok(out)
}

/// The archive table of `source` (quoted name, oid, and whether it was created now): the mapped
/// one, or a new one when the caller may create it (`allowed` caches that answer).
fn archive_table_of(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    source: RelId,
    root_name: &str,
    preparing: bool,
    allowed: &mut Option<bool>,
) -> Result<(String, u32, bool), UprootError> {
    let r = cat.relation(source).expect("source in catalog");
    match mapping(client, source)? {
        Some(m) if m.exists => return Ok((m.qualified, m.archive_oid, false)),
        Some(_) if !preparing => {
            return Err(UprootError::ArchiveMissing {
                relation: r.display_name(),
                root: root_name.to_string(),
            })
        }
        Some(_) | None => {}
    }
    let may = match *allowed {
        Some(may) => may,
        None => *allowed.insert(may_create(client)?),
    };
    if !may {
        return Err(UprootError::ArchiveNotPrepared {
            relation: r.display_name(),
            root: root_name.to_string(),
            role: quote_ident(&caller_name()),
            preparing,
        });
    }
    if let Some(m) = serialize_creation(client, source, &r.display_name())? {
        // another session created it while we waited
        if m.exists {
            return Ok((m.qualified, m.archive_oid, false));
        }
    }
    let (q, oid) = create(client, cat, source)?;
    as_extension_owner(|| {
        run(
            client,
            "INSERT INTO uproot.archive_tables (source, archive) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.oid::pg_catalog.regclass) \
             ON CONFLICT (source) DO UPDATE SET archive = EXCLUDED.archive, created_at = pg_catalog.now()",
            &[DatumWithOid::from(pg_sys::Oid::from(source)), DatumWithOid::from(pg_sys::Oid::from(oid))],
        )
    });
    Ok((q, oid, true))
}

/// Bring the archive table's columns in line with the source: add new ones, follow a changed
/// modifier, refuse a changed type. Returns the columns added and retyped.
fn follow_columns(
    client: &mut SpiClient<'_>,
    r: &crate::graph::model::Relation,
    qualified: &str,
    oid: u32,
) -> Result<(Vec<String>, Vec<String>), UprootError> {
    let have = archive_columns(client, oid)?;
    let drift = |column: &str, source_type: &str, archive_type: &str| UprootError::ArchiveDrift {
        relation: r.display_name(),
        archive: qualified.to_string(),
        column: column.into(),
        source_type: source_type.into(),
        archive_type: archive_type.into(),
    };
    if !have.iter().any(|(n, _, _)| n == BATCH_COLUMN) {
        return Err(drift(BATCH_COLUMN, "bigint", "missing"));
    }
    let mut added = Vec::new();
    let mut retyped = Vec::new();
    for c in aplan::archived_columns(r) {
        match have.iter().find(|(n, _, _)| *n == c.name) {
            None => {
                add_column(client, r.oid, qualified, c);
                added.push(c.name.clone());
            }
            Some((_, typ, formatted)) if *typ != c.type_oid => {
                return Err(drift(&c.name, &c.type_name, formatted));
            }
            Some((_, _, formatted)) if *formatted != c.type_name => {
                // same type, other modifier (varchar(10) -> varchar(20)): follow the source
                run(
                    client,
                    &format!(
                        "ALTER TABLE {qualified} ALTER COLUMN {} TYPE {}",
                        quote_ident(&c.name),
                        c.type_name
                    ),
                    &[],
                );
                retyped.push(c.name.clone());
            }
            Some(_) => {}
        }
    }
    Ok((added, retyped))
}

/// Add a source column to its archive table. Rows archived before the column existed read as
/// the live rows did when it was added: with its default (then the archive table drops the
/// default).
fn add_column(
    client: &mut SpiClient<'_>,
    source: RelId,
    qualified: &str,
    c: &crate::graph::model::Column,
) {
    let default = if c.generated.is_some() {
        None
    } else {
        source_default(client, source, c.attnum)
    };
    let col = quote_ident(&c.name);
    match default {
        Some(expr) => {
            run(
                client,
                &format!(
                    "ALTER TABLE {qualified} ADD COLUMN {col} {} DEFAULT ({expr})",
                    c.type_name
                ),
                &[],
            );
            run(
                client,
                &format!("ALTER TABLE {qualified} ALTER COLUMN {col} DROP DEFAULT"),
                &[],
            );
        }
        None => {
            run(
                client,
                &format!("ALTER TABLE {qualified} ADD COLUMN {col} {}", c.type_name),
                &[],
            );
        }
    }
}

/// What prepare_archive reports for an existing archive table.
fn changes_made(access_changed: bool, added: &[String], retyped: &[String]) -> String {
    let mut changes = Vec::new();
    if access_changed {
        changes.push("owner and grants brought in line with the source".to_string());
    }
    if !added.is_empty() {
        changes.push(format!("columns added: {}", added.join(", ")));
    }
    if !retyped.is_empty() {
        changes.push(format!("columns retyped: {}", retyped.join(", ")));
    }
    if changes.is_empty() {
        "unchanged".into()
    } else {
        changes.join("; ")
    }
}

/// Open a batch in the ledger; returns its id.
pub fn open_batch(
    client: &mut SpiClient<'_>,
    root: RelId,
    root_name: &str,
    keys_json: Option<String>,
    predicate: Option<String>,
) -> Result<i64, UprootError> {
    let text = |v: Option<String>| match v {
        Some(v) => DatumWithOid::from(v),
        None => DatumWithOid::null::<String>(),
    };
    let stmt = aplan::open_batch();
    let args = bind_values(
        &stmt,
        vec![
            (
                Slot::Named("root"),
                DatumWithOid::from(pg_sys::Oid::from(root)),
            ),
            (
                Slot::Named("root name"),
                DatumWithOid::from(root_name.to_string()),
            ),
            (Slot::Named("keys"), text(keys_json)),
            (Slot::Named("predicate"), text(predicate)),
            (
                Slot::Named("archived by"),
                DatumWithOid::from(caller_name()),
            ),
        ],
    );
    as_extension_owner(|| run(client, &stmt.sql, &args))
        .first()
        .value::<i64>(1, "the new batch id")
}

/// The calling role's name, for `archived_by` (written as the owner, so not CURRENT_USER there).
fn caller_name() -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Record the references one detach edge changed (returned by `plan::archive::detach_returning`
/// as arrays), so that restore can put them back. Rows an earlier edge detached and recorded
/// moved with this update: their recorded position follows them, and without a primary key
/// their recorded key no longer includes the columns changed now.
pub fn record_detached(
    client: &mut SpiClient<'_>,
    batch: i64,
    child: RelId,
    constraint: &str,
    changed: Rows,
    forget: &[String],
) {
    let row = changed.first();
    // array_agg over no rows is NULL: nothing was detached
    let Some(arrays) = (1..=6)
        .map(|col| {
            row.datum(col)
                .map(|(d, typ)| unsafe { DatumWithOid::new(d, typ) })
        })
        .collect::<Option<Vec<DatumWithOid<'_>>>>()
    else {
        return;
    };
    let stmt = aplan::record_detached();
    let mut values = vec![
        (Slot::Batch, DatumWithOid::from(batch)),
        (
            Slot::Named("relation"),
            DatumWithOid::from(pg_sys::Oid::from(child)),
        ),
        (
            Slot::Named("constraint"),
            DatumWithOid::from(constraint.to_string()),
        ),
        (Slot::Named("forget"), DatumWithOid::from(forget.to_vec())),
    ];
    values.extend(
        aplan::DETACHED_ARRAYS
            .map(Slot::Named)
            .into_iter()
            .zip(arrays),
    );
    let args = bind_values(&stmt, values);
    as_extension_owner(|| run(client, &stmt.sql, &args));
}

/// Close a batch: its relations in restore order, and the counts.
pub fn close_batch(
    client: &mut SpiClient<'_>,
    batch: i64,
    rows: &[(RelId, u32, i64)],
    counts_json: String,
) {
    let rels: Vec<pg_sys::Oid> = rows.iter().map(|r| pg_sys::Oid::from(r.0)).collect();
    let archives: Vec<pg_sys::Oid> = rows.iter().map(|r| pg_sys::Oid::from(r.1)).collect();
    let n: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let relations = aplan::close_batch_relations();
    let relations_args = bind_values(
        &relations,
        vec![
            (Slot::Batch, DatumWithOid::from(batch)),
            (Slot::Named("relations"), DatumWithOid::from(rels)),
            (Slot::Named("archives"), DatumWithOid::from(archives)),
            (Slot::Named("rows"), DatumWithOid::from(n)),
        ],
    );
    let counts = aplan::close_batch_counts();
    let counts_args = bind_values(
        &counts,
        vec![
            (Slot::Batch, DatumWithOid::from(batch)),
            (Slot::Named("counts"), DatumWithOid::from(counts_json)),
        ],
    );
    as_extension_owner(|| {
        run(client, &relations.sql, &relations_args);
        run(client, &counts.sql, &counts_args);
    });
}

/// The archive tables an archive of `sources` would move rows into, found without creating or
/// changing anything (for explain): the mapped one, else the name a new one would get.
pub fn planned_targets(
    client: &mut SpiClient<'_>,
    cat: &Catalog,
    sources: &[RelId],
) -> Result<Vec<Target>, UprootError> {
    sources
        .iter()
        .filter_map(|&source| cat.relation(source).map(|r| (source, r)))
        .map(|(source, r)| {
            let archive = match mapping(client, source)? {
                Some(m) if m.exists => m.qualified,
                _ => pg_qualified(
                    client,
                    ARCHIVE_SCHEMA,
                    &aplan::archive_table_name(&r.schema, &r.name),
                )?,
            };
            let columns = r.columns.iter().map(|c| c.name.clone()).collect();
            Ok(Target {
                source,
                archive,
                columns,
            })
        })
        .collect()
}
