//! Set-based foreign-key checks for the family statement of a purge.
//!
//! PostgreSQL checks a `NO ACTION`/`RESTRICT` key with a trigger per deleted parent row, each
//! running two queries. The family is already locked as a whole, so where it is sound the
//! family statement runs with the RI triggers off and one statement then checks every foreign key
//! that references a table it deleted from, for all deleted keys at once. Not probed again: a
//! join leaf's only key (the family statement itself deleted every row with those keys), and a
//! followed key into a table collected after all of its parents (or to a fixpoint inside its
//! cycle, outside the root's component), once the family statement deleted every row that
//! collect found (the collect ran the probe's predicate with the parents locked); when a count
//! falls short, every key is probed.
//!
//! How the triggers are off: around the family statement only (and the statements before it
//! that delete rows of the family: the large form's join-leaf statements, and a level's
//! statement that deletes tables when it finds them; `without_ri_triggers`), the C variable
//! `SessionReplicationRole` is set to `replica` and the caller's value is restored in a `finally`
//! (on success, error and cancel). PostgreSQL decides per row whether to queue an after-row
//! trigger event: `AfterTriggerSaveEvent` skips every trigger for which `TriggerEnabled` is false,
//! and `TriggerEnabled` is false in the replica role for a trigger whose `tgenabled` is 'O'
//! (origin), which is what every RI trigger has unless someone changed it (trigger.c, the same
//! in PostgreSQL 15 to 18). No event of our statement is queued, so none fires later either.
//! The GUC is not used (`set_config_option`): its assign hook resets every cached plan of the
//! session, on every call. Plans do not depend on the role except through rules, and a table
//! with rules never takes this path.
//!
//! Where it applies (`SetCheck::for_operation`, and for an archive `with_archive`; otherwise the
//! statement runs as before, with PostgreSQL's triggers): a purge or an archive whose archive
//! tables have no triggers, rules or row-level security, the caller's role is `origin`, the
//! transaction is READ COMMITTED (the check then reads with a fresh snapshot taken after its
//! locks, as the RI triggers do; under REPEATABLE READ it would need their crosscheck snapshot),
//! every affected table (deleted from, or detached) is a plain table (not partitioned, not a
//! partition) without user triggers, rules, row-level security or an RI trigger that is disabled
//! or fires ALWAYS/REPLICA, at least one foreign key references a deleted table, and every such
//! key is enforced and not DEFERRABLE, from a table without row-level security.
//!
//! Concurrency: the rows that reference the family were locked or deleted by this transaction,
//! and a writer that would attach a new one waits on the parent's lock and then fails with
//! PostgreSQL's own error, so the check needs no locks of its own. The one thing the family
//! statement cannot see is the catalog changing under it after the call decided (a foreign key,
//! a trigger or row-level security added by another session that committed before our locks
//! were granted). Such a change reaches this backend as an invalidation when the lock is granted,
//! and moves the catalog cache's generation on (`catalog::unchanged_since_read`). Only then, after
//! the check, does one more statement read again exactly what the decision relied on, with a
//! fresh snapshot: anything changed is a serialization failure (40001), and nothing is kept. (An
//! unrelated invalidation, say ANALYZE, costs that statement and no more.) DDL that commits later
//! had to wait for our locks, and then sees the family gone.

use super::{Mode, State};
use crate::error::UprootError;
use crate::graph::model::RelId;
use crate::graph::FamilyGraph;
use crate::plan::archive::Target;
use crate::plan::{ri_check, DeletePart, Statement};
use crate::spi::run;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;

/// What the set-based check of one purge covers.
pub(super) struct SetCheck {
    /// Foreign keys (indexes into the catalog's list) that reference a deleted table.
    fks: Vec<usize>,
    /// The referenced columns whose deleted values the family statement returns.
    keys: Vec<(RelId, i16)>,
    /// The tables the family statement deletes from.
    deleted: Vec<RelId>,
    /// Those and the tables whose rows are detached (and an archive's archive tables).
    affected: Vec<RelId>,
}

impl SetCheck {
    /// The check for this purge or archive, or None where PostgreSQL's triggers must check it.
    pub(super) fn for_operation(st: &State) -> Option<SetCheck> {
        if st.mode == Mode::Preview || crate::debug::row_triggers() {
            return None;
        }
        let (role, isolation) = unsafe { (pg_sys::SessionReplicationRole, pg_sys::XactIsoLevel) };
        if role != pg_sys::SESSION_REPLICATION_ROLE_ORIGIN as i32
            || isolation >= pg_sys::XACT_REPEATABLE_READ as i32
        {
            return None;
        }
        let cat = st.cat;
        let deleted: Vec<RelId> = st.g.tables().collect();
        let mut affected = deleted.clone();
        affected.extend(st.g.detach_targets().into_iter().map(|(r, _)| r));
        affected.sort();
        affected.dedup();
        let plain = |rel: RelId| {
            cat.relation(rel).is_some_and(|r| {
                r.kind == "r"
                    && !r.is_partition
                    && r.user_triggers.is_empty()
                    && !r.has_rules
                    && r.internal_triggers_on_origin
                    && !r.rls_enabled
            })
        };
        if !affected.iter().all(|r| plain(*r)) {
            return None;
        }
        let fks = ri_check::referencing_fks(cat, &deleted);
        if fks.is_empty() {
            // no RI trigger fires on these deletes: nothing to replace
            return None;
        }
        let sound = fks.iter().all(|&i| {
            let fk = &cat.foreign_keys[i];
            fk.enforced
                && !fk.deferrable
                && cat.relation(fk.child).is_some_and(|c| !c.rls_enabled)
                && cat
                    .relation(fk.parent)
                    .is_some_and(|p| fk.parent_cols.iter().all(|a| p.column(*a).is_some()))
        });
        if !sound {
            return None;
        }
        let keys = ri_check::returned_keys(cat, &fks);
        Some(SetCheck {
            fks,
            keys,
            deleted,
            affected,
        })
    }

    /// For an archive: its archive tables too must be plain tables without triggers (none ever:
    /// `relhastriggers`), rules or row-level security, and copy every key column the check needs.
    /// They join the tables whose catalog the check re-reads. A table not created yet (None, for
    /// explain before the archive ran) is created without any.
    pub(super) fn with_archive(
        mut self,
        st: &State,
        targets: &[(Target, Option<u32>)],
    ) -> Option<SetCheck> {
        for (t, attnum) in &self.keys {
            let name = st.cat.relation(*t)?.column(*attnum)?.name.clone();
            // a table without a target archives nothing; one with a target must copy the key
            if let Some((target, _)) = targets.iter().find(|(p, _)| p.source == *t) {
                if !target.columns.contains(&name) {
                    return None;
                }
            }
        }
        for (_, oid) in targets {
            if let Some(oid) = oid {
                if !plain_archive_table(*oid) {
                    return None;
                }
                self.affected.push(*oid);
            }
        }
        self.affected.sort();
        self.affected.dedup();
        Some(self)
    }

    /// The keys the family statement returns after its counts, in this order: those of the
    /// tables it moves rows from.
    pub(super) fn returned_keys(&self, parts: &[DeletePart]) -> Vec<(RelId, i16)> {
        self.keys
            .iter()
            .filter(|(t, _)| parts.iter().any(|p| part_table(p) == *t))
            .copied()
            .collect()
    }

    /// The tables the family statement deletes from (an archive leaves out tables without
    /// rows), the foreign keys that reference them, and those of them the check probes.
    /// `settled`: the family statement deleted every row its collects found (see `settled`).
    fn checked(&self, st: &State, parts: &[DeletePart], settled: bool) -> Checked {
        let deleted: Vec<RelId> = self
            .deleted
            .iter()
            .filter(|t| parts.iter().any(|p| part_table(p) == **t))
            .copied()
            .collect();
        let fks: Vec<usize> = self
            .fks
            .iter()
            .filter(|&&i| deleted.contains(&st.cat.foreign_keys[i].parent))
            .copied()
            .collect();
        // A join leaf's only foreign key, through which the same statement deletes every row
        // that references the keys of the parent rows found (by those keys, `JoinedByKeys`, or
        // reading them by ctid, `Joined`), a superset of the keys it deleted: its probe would
        // repeat that delete's own scan, and no writer can add a reference while the parents
        // are locked.
        let by_keys: Vec<usize> = parts
            .iter()
            .filter_map(|p| p.joined().map(|e| e.fk))
            .collect();
        // A followed edge into a table collected after all of its parents, or to a fixpoint in
        // its cycle: the collect ran the probe's own predicate (`fk = ANY (parent keys)`) over
        // every parent row, with a snapshot taken after those rows were locked, and locked what
        // it found. Once the statement deleted every row found, nothing the probe could find is
        // left, and no writer can add a reference while the parents are locked. A key of an
        // edge the graph lacks (`debug_skip_edge`), of a table outside the family, of the root's
        // own component or detached is probed.
        let walked: Vec<usize> = if settled {
            st.g.followed()
                .filter(|e| super::walked_with_parents_locked(st, e.child))
                .map(|e| e.fk)
                .collect()
        } else {
            Vec::new()
        };
        let probed = fks
            .iter()
            .filter(|i| !by_keys.contains(i) && !walked.contains(i))
            .copied()
            .collect();
        Checked {
            deleted,
            fks,
            probed,
        }
    }

    /// Whether the family statement deleted every row the collects found in each table
    /// collected after its parents or to a fixpoint (`moved`: its rows per part). An archive has no part for a
    /// table whose collect found nothing. Counts that do not match the parts settle nothing.
    fn settled(st: &State, parts: &[DeletePart], moved: &[i64]) -> bool {
        moved.len() == parts.len()
            && parts.iter().zip(moved).all(|(p, &n)| match p {
                DeletePart::Collected(t) if super::walked_with_parents_locked(st, *t) => {
                    n == st.set(*t).len() as i64
                }
                _ => true,
            })
    }

    /// The check statement; None when no foreign key references a table the statement deletes
    /// from (an archive of tables without rows).
    pub(super) fn check_statement(
        &self,
        st: &State,
        parts: &[DeletePart],
    ) -> Option<Rc<Statement>> {
        self.checked(st, parts, true).check_statement(st)
    }

    /// The check when the family statement deleted fewer rows than its collects found: every
    /// key but the join leaves' is probed. None when that is the check above.
    pub(super) fn unsettled_check_statement(
        &self,
        st: &State,
        parts: &[DeletePart],
    ) -> Option<Rc<Statement>> {
        let full = self.checked(st, parts, false);
        (full.probed != self.checked(st, parts, true).probed)
            .then(|| full.check_statement(st))
            .flatten()
    }

    /// The statement that reads again what the fast path relied on.
    pub(super) fn recheck_statement(&self, st: &State, parts: &[DeletePart]) -> Statement {
        self.checked(st, parts, true)
            .recheck_statement(st, &self.affected)
    }

    /// Whether the catalog may have changed since the call read it: any invalidation of a
    /// relation the check relies on (the affected ones and those whose keys reference them).
    fn catalog_may_have_changed(&self, st: &State, checked: &Checked) -> bool {
        let mut watched = self.affected.clone();
        watched.extend(checked.fks.iter().map(|&i| st.cat.foreign_keys[i].child));
        !crate::catalog::unchanged_since_read(st.cat, &watched)
    }

    /// Delete the family with the RI triggers off, then check every referencing key at once.
    /// Returns the rows deleted per part of `stmt`. `deleted_first`: join leaves' parts that
    /// statements of their own deleted before it (the large form); the check treats them as
    /// parts of the family statement.
    pub(super) fn delete_and_check(
        &self,
        st: &mut State,
        client: &mut SpiClient<'_>,
        stmt: &Statement,
        parts: &[DeletePart],
        deleted_first: &[DeletePart],
    ) -> Result<Vec<i64>, UprootError> {
        let args = bind_family(st, stmt, parts);
        let rows = without_ri_triggers(|| super::execute_bound(st, client, stmt, &args, true));
        let row = rows.first();
        let counts: Vec<i64> = row.get::<Vec<i64>>(1).unwrap_or_default();
        // the key arrays, after the counts, in the order the statement returns them
        let keys = self.returned_keys(parts);
        st.deleted_keys.clear();
        for (j, k) in keys.iter().enumerate() {
            // the statement coalesces each array to '{}': never NULL. The values live in SPI's
            // memory until SPI disconnects, after the check.
            let (d, oid) = row
                .datum(j + 2)
                .ok_or_else(|| UprootError::UnexpectedNull {
                    what: "the keys the family statement deleted".into(),
                })?;
            st.deleted_keys.insert(*k, (d, oid));
        }
        // a table deleted when found: the keys the statement that deleted its rows returned
        for p in deleted_first {
            if let DeletePart::Collected(t) = p {
                for &(table, column) in self.keys.iter().filter(|(table, _)| table == t) {
                    let keys = st.found_keys_datum(table, column).ok_or_else(|| {
                        UprootError::UnexpectedNull {
                            what: format!("the keys of {} its delete returned", st.name(table)),
                        }
                    })?;
                    st.deleted_keys.insert((table, column), keys);
                }
            }
        }
        let every_part: Vec<DeletePart> = parts.iter().chain(deleted_first).cloned().collect();
        let checked = self.checked(st, &every_part, SetCheck::settled(st, parts, &counts));
        let hit = match checked.check_statement(st) {
            Some(check) => run(client, &check.sql, &st.bind(&check)).next(),
            None => None,
        };
        // After the check took its locks: a catalog change committed before them has reached
        // this backend as an invalidation. Only then is the catalog read again.
        if self.catalog_may_have_changed(st, &checked) {
            let recheck = checked.recheck_statement(st, &self.affected);
            let changed: bool = run(client, &recheck.sql, &st.bind(&recheck))
                .first()
                .value(1, "whether the catalog changed")?;
            if changed {
                return Err(UprootError::CatalogChanged {
                    root: st.name(st.g.root),
                    said: Some("a foreign key, trigger, rule or row-level security of a table the family statement changed or checks was changed by another session while it ran".into()),
                });
            }
        }
        let Some(hit) = hit else {
            return Ok(counts);
        };
        let n: i32 = hit.value(1, "the violated foreign key")?;
        let fk = &st.cat.foreign_keys[checked.probed[n as usize - 1]];
        let name = |rel: RelId| {
            st.cat
                .relation(rel)
                .map(|r| r.name.clone())
                .unwrap_or_default()
        };
        let parent = st.cat.relation(fk.parent);
        // PostgreSQL 18 and later report an ON DELETE RESTRICT key as a restrict violation (23001)
        let restrict = pg_sys::PG_VERSION_NUM >= 180000 && fk.on_delete == "r";
        Err(UprootError::StillReferenced {
            parent: name(fk.parent),
            constraint: fk.name.clone(),
            child: name(fk.child),
            restrict,
            key: format!(
                "({})=({})",
                parent
                    .map(|p| p.column_names(&fk.parent_cols).join(", "))
                    .unwrap_or_default(),
                hit.get::<String>(2).unwrap_or_default()
            ),
        })
    }
}

/// What the check of one family statement covers: the tables it deletes from and the foreign
/// keys that reference them.
struct Checked {
    deleted: Vec<RelId>,
    fks: Vec<usize>,
    /// The foreign keys the check probes: `fks` but those of join leaves deleted by key and
    /// those of edges into tables collected after their parents or to a fixpoint, all of whose
    /// rows went.
    probed: Vec<usize>,
}

impl Checked {
    fn check_statement(&self, st: &State) -> Option<Rc<Statement>> {
        (!self.probed.is_empty()).then(|| {
            let key = crate::plan::MemoKey::Check(self.probed.clone());
            super::planned(st, key, || ri_check::reference_check(st.cat, &self.probed))
        })
    }

    fn recheck_statement(&self, st: &State, affected: &[RelId]) -> Statement {
        ri_check::catalog_recheck(st.cat, &self.fks, &self.deleted, affected)
    }
}

/// The family statement's arguments; under `uproot.debug_fail_at = 'family_keeps_row'`, without
/// the last row found in the first table collected after its parents (or to a fixpoint) through
/// real foreign keys only (the set keeps it, so the statement's count for that table falls short of it).
fn bind_family(
    st: &mut State,
    stmt: &Statement,
    parts: &[DeletePart],
) -> Vec<pgrx::datum::DatumWithOid<'static>> {
    use crate::debug::{fail_at_is, FAMILY_KEEPS_ROW};
    // a table whose every row references a deleted key through a real foreign key (a declared
    // relation is no constraint: nothing checks it)
    let real_keys_only = |t: RelId| {
        st.g.followed_into(t)
            .all(|e| !st.cat.foreign_keys[e.fk].declared)
    };
    let kept = fail_at_is(FAMILY_KEEPS_ROW)
        .then(|| {
            parts.iter().find_map(|p| match p {
                DeletePart::Collected(t)
                    if super::walked_with_parents_locked(st, *t)
                        && real_keys_only(*t)
                        && !st.set(*t).is_empty() =>
                {
                    Some(*t)
                }
                _ => None,
            })
        })
        .flatten();
    let Some(t) = kept else {
        return st.bind(stmt);
    };
    let set = st.sets.get_mut(&t).expect("a collected table with rows");
    let tid = set.tids.pop().expect("a set with rows");
    let args = st.bind(stmt);
    st.sets.get_mut(&t).expect("the same set").tids.push(tid);
    args
}

fn part_table(part: &DeletePart) -> RelId {
    part.table()
}

/// Run `f` with the caller's session in the replica role, so that no trigger whose `tgenabled` is
/// 'O' queues an event; the caller's role is back when it returns, fails or is cancelled.
pub(super) fn without_ri_triggers<T>(f: impl FnOnce() -> T) -> T {
    let caller = unsafe { pg_sys::SessionReplicationRole };
    PgTryBuilder::new(AssertUnwindSafe(move || {
        unsafe { pg_sys::SessionReplicationRole = pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 };
        crate::debug::fail_point("replica_role");
        f()
    }))
    .finally(move || unsafe { pg_sys::SessionReplicationRole = caller })
    .execute()
}

/// An archive table the set-based path may insert into with triggers off: a plain table that
/// never had triggers, and has no rules and no row-level security.
fn plain_archive_table(oid: u32) -> bool {
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(pg_sys::Oid::from(oid)),
        );
        if tuple.is_null() {
            return false;
        }
        let class = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple);
        let plain = (*class).relkind == pg_sys::RELKIND_RELATION as std::ffi::c_char
            && !(*class).relhastriggers
            && !(*class).relhasrules
            && !(*class).relrowsecurity;
        pg_sys::ReleaseSysCache(tuple);
        plain
    }
}

/// `uproot.debug_skip_edge`: the graph without the named foreign key's edge, when it has one.
pub(super) fn debug_corrupted(
    g: &FamilyGraph,
    cat: &crate::graph::model::Catalog,
) -> Option<FamilyGraph> {
    let skip = crate::debug::skip_edge()?;
    if !g.edges.iter().any(|e| cat.foreign_keys[e.fk].name == skip) {
        return None;
    }
    let mut g = g.clone();
    g.edges.retain(|e| cat.foreign_keys[e.fk].name != skip);
    Some(g)
}

/// The OID of the table named `qualified` (quoted, as an archive target names it), or None
/// while it does not exist: for explain before an archive ran, which creates what is missing.
pub(super) fn existing_table(
    client: &mut SpiClient<'_>,
    qualified: &str,
) -> Result<Option<u32>, UprootError> {
    let found = client
        .select(
            "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
            Some(1),
            &[pgrx::datum::DatumWithOid::from(qualified)],
        )
        .map_err(crate::spi::failed("looking up an archive table"))?
        .first()
        .get_one::<pg_sys::Oid>()
        .map_err(crate::spi::failed("looking up an archive table"))?;
    Ok(found.map(u32::from))
}
