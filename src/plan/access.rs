//! Which table privileges an operation needs, relation by relation. Used by
//! `uproot.check_access()` and to list everything missing at once when one privilege check fails,
//! so that a least-privilege role reaches a working setup in one round of GRANTs.

use crate::graph::model::{Catalog, RelId};
use crate::graph::{Disposition, FamilyGraph};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Preview,
    Purge,
    Archive,
    Restore,
}

impl Operation {
    pub fn parse(s: &str) -> Option<Operation> {
        match s {
            "preview" => Some(Operation::Preview),
            "purge" => Some(Operation::Purge),
            "archive" => Some(Operation::Archive),
            "restore" => Some(Operation::Restore),
            _ => None,
        }
    }
}

/// A table privilege, in the order GRANT statements list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
}

impl Privilege {
    pub fn sql_name(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
        }
    }
}

/// One privilege the operation needs on one relation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub relation: RelId,
    pub privilege: Privilege,
    pub why: &'static str,
}

const READS: &str = "finding the family reads every table its foreign keys reach";
const DELETES: &str = "its rows in the family are deleted";
const LOCKS: &str = "its rows in the family are locked FOR UPDATE first, which needs UPDATE";
const DETACHES: &str = "its references to the family are set to NULL or to their default";
const INSERTS: &str = "restore puts its archived rows back";
const CHECKS: &str = "restore checks whether an archived key exists again";

/// Every (relation, privilege) the operation needs, relations in family order, each once.
pub fn needs(cat: &Catalog, g: &FamilyGraph, op: Operation) -> Vec<Need> {
    let mut out: Vec<Need> = Vec::new();
    let mut add = |relation: RelId, privilege: Privilege, why: &'static str| {
        if !out
            .iter()
            .any(|n| n.relation == relation && n.privilege == privilege)
        {
            out.push(Need {
                relation,
                privilege,
                why,
            });
        }
    };
    let detach_children: Vec<RelId> = g
        .edges
        .iter()
        .filter(|e| matches!(e.disposition, Disposition::Detach(_)))
        .map(|e| e.child)
        .collect();
    if op == Operation::Restore {
        for t in g.tables() {
            add(t, Privilege::Select, CHECKS);
            add(t, Privilege::Insert, INSERTS);
        }
        for t in detach_children {
            add(t, Privilege::Update, DETACHES);
        }
        return out;
    }
    for t in g.tables() {
        add(t, Privilege::Select, READS);
    }
    for e in &g.edges {
        add(e.child, Privilege::Select, READS);
        add(e.parent_sql_rel, Privilege::Select, READS);
    }
    if op == Operation::Preview {
        return out;
    }
    for t in g.tables() {
        add(t, Privilege::Delete, DELETES);
        if !super::is_join_leaf(cat, g, t) {
            add(t, Privilege::Update, LOCKS);
        }
    }
    for t in detach_children {
        add(t, Privilege::Update, DETACHES);
    }
    out
}

/// One GRANT statement per relation for the missing privileges, e.g.
/// `GRANT SELECT, DELETE ON TABLE public.orders TO cleanup;`.
/// `name` gives a relation's name as the statement should show it.
pub fn grant_statements(
    missing: &[Need],
    role: &str,
    name: impl Fn(RelId) -> String,
) -> Vec<String> {
    let mut per_table: BTreeMap<String, Vec<Privilege>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for n in missing {
        let name = name(n.relation);
        if !per_table.contains_key(&name) {
            order.push(name.clone());
        }
        let privs = per_table.entry(name).or_default();
        if !privs.contains(&n.privilege) {
            privs.push(n.privilege);
        }
    }
    order
        .into_iter()
        .map(|name| {
            let mut privs = per_table.remove(&name).unwrap_or_default();
            privs.sort();
            let list: Vec<&str> = privs.iter().map(|p| p.sql_name()).collect();
            format!("GRANT {} ON TABLE {name} TO {role};", list.join(", "))
        })
        .collect()
}
