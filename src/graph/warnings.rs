//! What `uproot.graph` warns about, and the NOTICE `preview` gives about RESTRICT constraints.
//!
//! A warning about a table (no primary key, triggers, row-level security) is given once, on the
//! first row that reaches the table; one about an edge (unindexed, deferrable, NOT VALID, a
//! RESTRICT constraint that is followed) on the edge's row. When more than
//! `SUMMARISE_OVER` rows would carry the same kind of warning, the root row says it once,
//! naming what it concerns, instead: a schema whose 76 foreign keys are all deferrable gets one
//! line, not 76.

use super::model::{Catalog, FkAction, RelId};
use super::{Disposition, FamilyGraph};
use std::collections::{BTreeMap, BTreeSet};

/// Up to this many warnings of one kind stay on their rows; more become one line on the root row.
pub const SUMMARISE_OVER: usize = 3;

/// Names listed in a summary line at most; the rest are counted.
const SUMMARY_NAMES: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    NoPrimaryKey,
    Triggers,
    OwnTriggers,
    RowLevelSecurity,
    Unindexed,
    RestrictFollowed,
    Deferrable,
    NotValid,
}

/// One warning: its row, its kind, its text on that row, and its item in a summary line.
struct Warning {
    row: usize,
    kind: Kind,
    text: String,
    item: String,
}

fn name(cat: &Catalog, rel: RelId) -> String {
    cat.relation(rel)
        .map(|r| r.display_name())
        .unwrap_or_else(|| rel.to_string())
}

/// `fk_checked`: some foreign key references a table the family deletes from, so where no table
/// of the family has triggers a purge checks them with one set-based statement.
fn table_warnings(cat: &Catalog, rel: RelId, row: usize, fk_checked: bool, out: &mut Vec<Warning>) {
    let Some(r) = cat.relation(rel) else {
        return;
    };
    let table = r.display_name();
    if r.primary_key.is_none() {
        out.push(Warning {
            row,
            kind: Kind::NoPrimaryKey,
            text: format!(
                "{table} has no primary key: rows are matched by ctid and locked in physical order"
            ),
            item: table.clone(),
        });
    }
    let own = |t: &String| r.own_triggers.contains(t);
    let user: Vec<&str> = r
        .user_triggers
        .iter()
        .filter(|t| !own(t))
        .map(String::as_str)
        .collect();
    if !user.is_empty() {
        let triggers = user.join(", ");
        out.push(Warning {
            row,
            kind: Kind::Triggers,
            text: format!("{table} has triggers ({triggers}): they fire for every row"),
            item: format!("{table} ({triggers})"),
        });
    }
    // pg_uproot's own triggers do not fire per deleted row (the queue trigger runs once per
    // statement, the check trigger on inserts and changed references), but any trigger on a
    // table of the family makes the purge leave the foreign-key checks to PostgreSQL's per-row
    // triggers (README "How purge checks foreign keys")
    if user.is_empty() && fk_checked && !r.own_triggers.is_empty() {
        let triggers = r.own_triggers.join(", ");
        out.push(Warning {
            row,
            kind: Kind::OwnTriggers,
            text: format!(
                "{table} has pg_uproot's triggers ({triggers}): foreign keys that reference the family are checked by PostgreSQL's per-row triggers, not in one statement"
            ),
            item: format!("{table} ({triggers})"),
        });
    }
    if r.rls_enabled {
        out.push(Warning {
            row,
            kind: Kind::RowLevelSecurity,
            text: format!(
                "{table} has row-level security: rows hidden from the caller make the operation fail"
            ),
            item: table,
        });
    }
}

fn edge_warnings(cat: &Catalog, g: &FamilyGraph, edge: usize, out: &mut Vec<Warning>) {
    let e = &g.edges[edge];
    let fk = &cat.foreign_keys[e.fk];
    let row = edge + 1;
    let child = name(cat, fk.child);
    if !fk.child_indexed {
        let cols = cat
            .relation(fk.child)
            .map(|r| r.column_names(&fk.child_cols).join(", "))
            .unwrap_or_default();
        out.push(Warning {
            row,
            kind: Kind::Unindexed,
            text: format!(
                "unindexed foreign key: {child}({cols}) has no index; every delete scans {child}"
            ),
            item: format!("{child}({cols})"),
        });
    }
    if fk.action() == FkAction::Restrict && e.disposition == Disposition::Follow {
        out.push(Warning {
            row,
            kind: Kind::RestrictFollowed,
            text: format!(
                "{} is ON DELETE RESTRICT and is followed: rows of {child} that reference the family go with it; respect_restrict => true refuses them instead",
                fk.name
            ),
            item: fk.name.clone(),
        });
    }
    if fk.deferrable {
        let deferred = if fk.deferred {
            " (initially deferred)"
        } else {
            ""
        };
        out.push(Warning {
            row,
            kind: Kind::Deferrable,
            text: format!("deferrable constraint {}{deferred}", fk.name),
            item: format!("{}{deferred}", fk.name),
        });
    }
    if !fk.validated {
        out.push(Warning {
            row,
            kind: Kind::NotValid,
            text: format!(
                "constraint {} is NOT VALID: existing rows may not match",
                fk.name
            ),
            item: fk.name.clone(),
        });
    }
}

fn listed(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(SUMMARY_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SUMMARY_NAMES {
        s.push_str(&format!(" and {} more", items.len() - SUMMARY_NAMES));
    }
    s
}

fn summary(kind: Kind, items: &[String]) -> String {
    let n = items.len();
    let list = listed(items);
    match kind {
        Kind::NoPrimaryKey => format!(
            "{n} tables have no primary key: rows are matched by ctid and locked in physical order: {list}"
        ),
        Kind::Triggers => format!("{n} tables have triggers that fire for every row: {list}"),
        Kind::OwnTriggers => format!(
            "{n} tables have pg_uproot's triggers: foreign keys that reference the family are checked by PostgreSQL's per-row triggers, not in one statement: {list}"
        ),
        Kind::RowLevelSecurity => format!(
            "{n} tables have row-level security: rows hidden from the caller make the operation fail: {list}"
        ),
        Kind::Unindexed => format!(
            "{n} unindexed foreign keys (indexed = false): every delete scans their tables: {list}"
        ),
        Kind::RestrictFollowed => format!(
            "{n} ON DELETE RESTRICT constraints are followed: rows that reference the family through them go with it; respect_restrict => true refuses them instead: {list}"
        ),
        Kind::Deferrable => format!("{n} deferrable constraints: {list}"),
        Kind::NotValid => {
            format!("{n} constraints are NOT VALID: existing rows may not match: {list}")
        }
    }
}

/// The warnings of every row `uproot.graph` returns: the root's row first, then one per edge
/// of `g.edges`, in that order.
pub fn graph_warnings(cat: &Catalog, g: &FamilyGraph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let deleted: Vec<RelId> = g.tables().collect();
    let fk_checked = !crate::plan::ri_check::referencing_fks(cat, &deleted).is_empty();
    table_warnings(cat, g.root, 0, fk_checked, &mut found);
    let mut warned_tables = BTreeSet::from([g.root]);
    for (i, e) in g.edges.iter().enumerate() {
        edge_warnings(cat, g, i, &mut found);
        let enters = matches!(e.disposition, Disposition::Follow | Disposition::Detach(_));
        if enters && warned_tables.insert(e.child) {
            table_warnings(cat, e.child, i + 1, fk_checked, &mut found);
        }
    }
    let mut by_kind: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for w in &found {
        by_kind.entry(w.kind).or_default().push(w.item.clone());
    }
    let mut rows = vec![Vec::new(); g.edges.len() + 1];
    for w in found {
        if by_kind[&w.kind].len() <= SUMMARISE_OVER {
            rows[w.row].push(w.text);
        }
    }
    for (kind, items) in by_kind {
        if items.len() > SUMMARISE_OVER {
            rows[0].push(summary(kind, &items));
        }
    }
    rows
}

/// The NOTICE `preview` gives when the family goes through ON DELETE RESTRICT constraints,
/// which would stop a plain DELETE: (message, hint), naming each such constraint whose child
/// table has rows in the family (`family_rows`), with that table's count. NO ACTION edges are
/// not named: following them is what uproot is for, while RESTRICT is the schema's explicit
/// "not while children exist".
pub fn restrict_notice(
    cat: &Catalog,
    g: &FamilyGraph,
    family_rows: impl Fn(RelId) -> i64,
) -> Option<(String, String)> {
    let mut items = Vec::new();
    let mut seen = BTreeSet::new();
    for e in g.followed() {
        let fk = &cat.foreign_keys[e.fk];
        let rows = family_rows(e.child);
        if fk.action() == FkAction::Restrict && rows > 0 && seen.insert(e.fk) {
            items.push(format!(
                "{} ({rows} row(s) of {})",
                fk.name,
                name(cat, e.child)
            ));
        }
    }
    if items.is_empty() {
        return None;
    }
    Some((
        format!(
            "uproot: {} ON DELETE RESTRICT constraint(s) would stop a plain DELETE of this family; uproot follows them and takes the referencing rows too: {}",
            items.len(),
            items.join(", ")
        ),
        "Those rows go with the family. To refuse instead, pass respect_restrict => true: rows behind RESTRICT (and NO ACTION) constraints then make the operation fail."
            .into(),
    ))
}
