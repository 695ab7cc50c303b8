//! Restore: putting an archived batch back.

use super::archive_columns;
use crate::error::UprootError;
use crate::exec::spi::{read_i64_array, read_positions, run};
use crate::graph::model::RelId;
use crate::plan::archive as aplan;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::collections::{HashMap, HashSet};

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
