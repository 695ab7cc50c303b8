//! Archive tables (find, create, follow the source's columns), the batch ledger, and restore.

use crate::error::UprootError;
use crate::exec::spi::{read_i64_array, read_positions, run};
use crate::graph::model::{quote_ident, Catalog, RelId};
use crate::plan::archive::{self as aplan, Target, ARCHIVE_SCHEMA, BATCH_COLUMN};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::{HashMap, HashSet};

/// What `ensure_targets` did to one archive table.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub target: Target,
    pub archive_oid: u32,
    pub action: String,
}

struct Mapped {
    archive_oid: u32,
    exists: bool,
    qualified: String,
}

fn mapping(client: &mut SpiClient<'_>, source: RelId) -> Option<Mapped> {
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
        return None;
    }
    let row = t.first();
    Some(Mapped {
        archive_oid: row
            .get::<pg_sys::Oid>(1)
            .ok()
            .flatten()
            .map(|o| o.to_u32())
            .unwrap_or(0),
        exists: row.get::<bool>(2).ok().flatten().unwrap_or(false),
        qualified: row.get::<String>(3).ok().flatten().unwrap_or_default(),
    })
}

fn may_create(client: &mut SpiClient<'_>) -> bool {
    let sql = "SELECT pg_catalog.has_schema_privilege('uproot_archive', 'CREATE') \
               AND pg_catalog.has_table_privilege('uproot.archive_tables', 'INSERT')";
    run(client, sql, &[])
        .first()
        .get::<bool>(1)
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Columns of an existing archive table: (name, type oid, formatted type).
fn archive_columns(client: &mut SpiClient<'_>, oid: u32) -> Vec<(String, u32, String)> {
    let sql = "SELECT a.attname::pg_catalog.text, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod) \
                 FROM pg_catalog.pg_attribute a \
                WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
                ORDER BY a.attnum";
    let t = run(client, sql, &[DatumWithOid::from(pg_sys::Oid::from(oid))]);
    t.map(|row| {
        (
            row.get::<String>(1).ok().flatten().unwrap_or_default(),
            row.get::<pg_sys::Oid>(2)
                .ok()
                .flatten()
                .map(|o| o.to_u32())
                .unwrap_or(0),
            row.get::<String>(3).ok().flatten().unwrap_or_default(),
        )
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
    t.first().get::<String>(1).ok().flatten()
}

fn oid_of(client: &mut SpiClient<'_>, qualified: &str) -> u32 {
    let t = run(
        client,
        "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
        &[DatumWithOid::from(qualified.to_string())],
    );
    t.first()
        .get::<pg_sys::Oid>(1)
        .ok()
        .flatten()
        .map(|o| o.to_u32())
        .unwrap_or(0)
}

/// Create the archive table of `source`, owned by the source's owner, readable by whoever may
/// read the source and writable by whoever may delete from it.
fn create(client: &mut SpiClient<'_>, cat: &Catalog, source: RelId) -> (String, u32) {
    let r = cat.relation(source).expect("source in catalog");
    let mut name = aplan::archive_table_name(&r.schema, &r.name);
    let taken = |client: &mut SpiClient<'_>, name: &str| {
        oid_of(
            client,
            &format!("{}.{}", quote_ident(ARCHIVE_SCHEMA), quote_ident(name)),
        ) != 0
    };
    if taken(client, &name) {
        name = aplan::hashed_name(&format!("{}.{}", r.schema, r.name));
    }
    for sql in aplan::create_archive_table(r, &name) {
        run(client, &sql, &[]);
    }
    let qualified = format!("{}.{}", quote_ident(ARCHIVE_SCHEMA), quote_ident(&name));
    // mirror the source's privileges: DELETE on the source may archive and restore
    let grants = "SELECT CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, \
                         pg_catalog.bool_or(a.privilege_type OPERATOR(pg_catalog.=) 'DELETE') \
                    FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a \
                   WHERE c.oid OPERATOR(pg_catalog.=) $1 AND a.privilege_type IN ('SELECT', 'DELETE') \
                   GROUP BY a.grantee ORDER BY 1";
    let rows: Vec<(String, bool)> = run(
        client,
        grants,
        &[DatumWithOid::from(pg_sys::Oid::from(source))],
    )
    .map(|row| {
        (
            row.get::<String>(1).ok().flatten().unwrap_or_default(),
            row.get::<bool>(2).ok().flatten().unwrap_or(false),
        )
    })
    .collect();
    for (grantee, can_delete) in rows {
        let privs = if can_delete {
            "SELECT, INSERT, DELETE"
        } else {
            "SELECT"
        };
        run(
            client,
            &format!("GRANT {privs} ON {qualified} TO {grantee}"),
            &[],
        );
    }
    let owner = "SELECT pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(c.relowner)), \
                        c.relowner OPERATOR(pg_catalog.<>) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER) \
                        AND pg_catalog.pg_has_role(c.relowner, 'MEMBER') \
                   FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1";
    let t = run(
        client,
        owner,
        &[DatumWithOid::from(pg_sys::Oid::from(source))],
    );
    let row = t.first();
    let owner_name = row.get::<String>(1).ok().flatten().unwrap_or_default();
    let change = row.get::<bool>(2).ok().flatten().unwrap_or(false);
    if change {
        run(
            client,
            &format!("ALTER TABLE {qualified} OWNER TO {owner_name}"),
            &[],
        );
    }
    let oid = oid_of(client, &qualified);
    (qualified, oid)
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
    let mapped = mapping(client, source);
    let snapshot_sees_it = mapped.as_ref().is_some_and(|m| m.exists);
    if !snapshot_sees_it && unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        let latest = crate::exec::spi::query_latest(
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
        let mut action = "unchanged".to_string();
        let existing = mapping(client, source);
        let (qualified, oid) = match existing {
            Some(m) if m.exists => (m.qualified, m.archive_oid),
            Some(_) if !preparing => {
                return Err(UprootError::ArchiveMissing {
                    relation: r.display_name(),
                    archive: format!("(OID {})", existing.map(|m| m.archive_oid).unwrap_or(0)),
                    root: root_name,
                })
            }
            Some(_) | None => {
                let may = *allowed.get_or_insert_with(|| may_create(client));
                if !may {
                    return Err(UprootError::ArchiveNotPrepared {
                        relation: r.display_name(),
                        root: root_name,
                    });
                }
                match serialize_creation(client, source, &r.display_name())? {
                    // another session created it while we waited
                    Some(m) if m.exists => (m.qualified, m.archive_oid),
                    _ => {
                        let (q, oid) = create(client, cat, source);
                        run(
                            client,
                            "INSERT INTO uproot.archive_tables (source, archive) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2::pg_catalog.oid::pg_catalog.regclass) \
                             ON CONFLICT (source) DO UPDATE SET archive = EXCLUDED.archive, created_at = pg_catalog.now()",
                            &[DatumWithOid::from(pg_sys::Oid::from(source)), DatumWithOid::from(pg_sys::Oid::from(oid))],
                        );
                        action = "created".into();
                        (q, oid)
                    }
                }
            }
        };
        let have = archive_columns(client, oid);
        if !have.iter().any(|(n, _, _)| n == BATCH_COLUMN) {
            return Err(UprootError::ArchiveDrift {
                relation: r.display_name(),
                archive: qualified.clone(),
                column: BATCH_COLUMN.into(),
                source_type: "bigint".into(),
                archive_type: "missing".into(),
            });
        }
        let mut added = Vec::new();
        let mut retyped = Vec::new();
        for c in aplan::archived_columns(r) {
            match have.iter().find(|(n, _, _)| *n == c.name) {
                None => {
                    // Rows archived before the column existed read as the live rows did when it
                    // was added: with its default (then the archive table drops the default).
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
                                &format!(
                                    "ALTER TABLE {qualified} ADD COLUMN {col} {}",
                                    c.type_name
                                ),
                                &[],
                            );
                        }
                    }
                    added.push(c.name.clone());
                }
                Some((_, typ, _)) if *typ != c.type_oid => {
                    return Err(UprootError::ArchiveDrift {
                        relation: r.display_name(),
                        archive: qualified.clone(),
                        column: c.name.clone(),
                        source_type: c.type_name.clone(),
                        archive_type: have
                            .iter()
                            .find(|(n, _, _)| *n == c.name)
                            .map(|h| h.2.clone())
                            .unwrap_or_default(),
                    })
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
        if action == "unchanged" {
            let mut changes = Vec::new();
            if !added.is_empty() {
                changes.push(format!("columns added: {}", added.join(", ")));
            }
            if !retyped.is_empty() {
                changes.push(format!("columns retyped: {}", retyped.join(", ")));
            }
            if !changes.is_empty() {
                action = changes.join("; ");
            }
        }
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

/// Open a batch in the ledger; returns its id.
pub fn open_batch(
    client: &mut SpiClient<'_>,
    root: RelId,
    root_name: &str,
    keys_json: Option<String>,
    predicate: Option<String>,
) -> i64 {
    let t = run(
        client,
        "INSERT INTO uproot.batches (root, root_name, keys, predicate) \
         VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3::pg_catalog.jsonb, $4) RETURNING id",
        &[
            DatumWithOid::from(pg_sys::Oid::from(root)),
            DatumWithOid::from(root_name.to_string()),
            match keys_json {
                Some(k) => DatumWithOid::from(k),
                None => DatumWithOid::null::<String>(),
            },
            match predicate {
                Some(p) => DatumWithOid::from(p),
                None => DatumWithOid::null::<String>(),
            },
        ],
    );
    t.first().get::<i64>(1).ok().flatten().expect("batch id")
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
    run(
        client,
        "INSERT INTO uproot.batch_relations (batch_id, position, relation, archive, rows) \
         SELECT $1, u.p, u.r::pg_catalog.regclass, u.a::pg_catalog.regclass, u.n \
           FROM ROWS FROM (pg_catalog.unnest($2::pg_catalog.oid[]), pg_catalog.unnest($3::pg_catalog.oid[]), pg_catalog.unnest($4::pg_catalog.int8[])) WITH ORDINALITY AS u(r, a, n, p)",
        &[DatumWithOid::from(batch), DatumWithOid::from(rels), DatumWithOid::from(archives), DatumWithOid::from(n)],
    );
    run(
        client,
        "UPDATE uproot.batches SET counts = $2::pg_catalog.jsonb WHERE id OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(batch), DatumWithOid::from(counts_json)],
    );
}

/// One relation of a batch being restored.
struct BatchRelation {
    relation: RelId,
    archive_oid: u32,
    archive: String,
    archived: i64,
}

/// Put a batch back. Returns (relation, action, rows) with action 'restored', 'skipped'
/// (on_conflict => 'skip') or 'reattached'.
pub fn restore(
    client: &mut SpiClient<'_>,
    batch: i64,
    skip_conflicts: bool,
) -> Result<Vec<(RelId, &'static str, i64)>, UprootError> {
    let t = run(
        client,
        "SELECT restored_at::pg_catalog.text, root::pg_catalog.oid FROM uproot.batches WHERE id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        &[DatumWithOid::from(batch)],
    );
    if t.is_empty() {
        return Err(UprootError::UnknownBatch { id: batch });
    }
    let row = t.first();
    if let Some(at) = row.get::<String>(1).ok().flatten() {
        return Err(UprootError::BatchRestored { id: batch, at });
    }
    let root = row
        .get::<pg_sys::Oid>(2)
        .ok()
        .flatten()
        .map(|o| o.to_u32())
        .unwrap_or(0);
    let rels: Vec<BatchRelation> = run(
        client,
        "SELECT br.relation::pg_catalog.oid, br.archive::pg_catalog.oid, \
                pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname), br.rows \
           FROM uproot.batch_relations br \
           LEFT JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) br.archive \
           LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
          WHERE br.batch_id OPERATOR(pg_catalog.=) $1 ORDER BY br.position",
        &[DatumWithOid::from(batch)],
    )
    .map(|row| BatchRelation {
        relation: row.get::<pg_sys::Oid>(1).ok().flatten().map(|o| o.to_u32()).unwrap_or(0),
        archive_oid: row.get::<pg_sys::Oid>(2).ok().flatten().map(|o| o.to_u32()).unwrap_or(0),
        archive: row.get::<String>(3).ok().flatten().unwrap_or_default(),
        archived: row.get::<i64>(4).ok().flatten().unwrap_or(0),
    })
    .collect();

    let cat = crate::catalog::get(pg_sys::Oid::from(root))?;
    let mut parts = Vec::new();
    for br in &rels {
        let r = cat
            .relation(br.relation)
            .ok_or(UprootError::UnknownRelation { oid: br.relation })?;
        if br.archive.is_empty() {
            return Err(UprootError::BatchArchiveMissing {
                id: batch,
                relation: r.display_name(),
            });
        }
        if !skip_conflicts {
            if let Some(sql) = aplan::restore_conflict(r, &br.archive) {
                let t = run(client, &sql, &[DatumWithOid::from(batch)]);
                let row = t.first();
                let count = row.get::<i64>(1).ok().flatten().unwrap_or(0);
                if count > 0 {
                    let key = row.get::<String>(2).ok().flatten().unwrap_or_default();
                    return Err(UprootError::RestoreConflict {
                        id: batch,
                        relation: r.display_name(),
                        key,
                        count,
                    });
                }
            }
        }
        let have: Vec<String> = archive_columns(client, br.archive_oid)
            .into_iter()
            .map(|c| c.0)
            .collect();
        parts.push(aplan::RestorePart {
            source: br.relation,
            archive: br.archive.clone(),
            columns: aplan::restorable_columns(r, &have),
            skip_existing: skip_conflicts,
        });
    }
    let restored = if parts.is_empty() {
        Vec::new()
    } else {
        read_i64_array(
            run(
                client,
                &aplan::restore_statement(&cat, &parts),
                &[DatumWithOid::from(batch)],
            ),
            1,
        )
    };

    let mut out: Vec<(RelId, &'static str, i64)> = Vec::new();
    for (i, br) in rels.iter().enumerate() {
        let n = restored.get(i).copied().unwrap_or(0);
        out.push((br.relation, "restored", n));
        if br.archived > n {
            out.push((br.relation, "skipped", br.archived - n));
        }
    }

    // reattach what archive detached
    let groups: Vec<(RelId, String)> = run(
        client,
        // archive detached table by table, constraints in name order: undo in reverse
        "SELECT DISTINCT relation::pg_catalog.oid, constraint_name COLLATE \"C\" FROM uproot.batch_detached \
          WHERE batch_id OPERATOR(pg_catalog.=) $1 ORDER BY 1 DESC, 2 DESC",
        &[DatumWithOid::from(batch)],
    )
    .map(|row| {
        (
            row.get::<pg_sys::Oid>(1)
                .ok()
                .flatten()
                .map(|o| o.to_u32())
                .unwrap_or(0),
            row.get::<String>(2).ok().flatten().unwrap_or_default(),
        )
    })
    .collect();
    let mut reattached_at: HashMap<RelId, HashMap<(u32, u64), HashSet<bool>>> = HashMap::new();
    for (child, con) in groups {
        let Some(fk) = cat
            .foreign_keys
            .iter()
            .find(|f| f.child == child && f.name == con)
        else {
            continue;
        };
        let Some(r) = cat.relation(child) else {
            continue;
        };
        let cols = r.column_names(fk.detached_cols());
        let sql = aplan::reattach(&cat, child, &cols);
        let moved = run(
            client,
            &sql,
            &[
                DatumWithOid::from(batch),
                DatumWithOid::from(pg_sys::Oid::from(child)),
                DatumWithOid::from(con.clone()),
            ],
        );
        let row = moved.first();
        let (before, after) = (read_positions(&row, 1, 2), read_positions(&row, 3, 4));
        // Counted like archive counts: a row once per kind (nullified / defaulted) it was
        // detached as; a row another constraint already reattached has moved since.
        let kind = fk.action() == crate::graph::model::FkAction::SetNull;
        let here = reattached_at.entry(child).or_default();
        let mut n = 0;
        for (was, now) in before.into_iter().zip(after) {
            let mut kinds = here.remove(&was).unwrap_or_default();
            if kinds.insert(kind) {
                n += 1;
            }
            here.insert(now, kinds);
        }
        if let Some(o) = out
            .iter_mut()
            .find(|(r, a, _)| *r == child && *a == "reattached")
        {
            o.2 += n;
        } else {
            out.push((child, "reattached", n));
        }
    }
    run(
        client,
        "UPDATE uproot.batches SET restored_at = pg_catalog.now(), restored_by = CURRENT_USER WHERE id OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(batch)],
    );
    run(
        client,
        "DELETE FROM uproot.batch_detached WHERE batch_id OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(batch)],
    );
    Ok(out)
}
