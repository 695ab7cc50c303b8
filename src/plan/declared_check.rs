//! The check that a declared relation leaves no row behind that the caller cannot see.
//!
//! A declared relation has no constraint, so no RI trigger of PostgreSQL stands behind it.
//! Where row-level security hides some rows of its child from the caller, collecting the family
//! as the caller misses them, and deleting their parent would leave them referencing a key that
//! is gone. So, after the family statement, pg_uproot does what PostgreSQL's RI check does for a
//! foreign key: one statement per such relation, run as the child's owner with row-level
//! security off (`privileged::as_table_owner`), looks for rows that still reference a deleted
//! key (`hidden_references`). It reads only the child; its keys are parameters, read as the
//! caller just before the family statement from the parent's family rows (`deleted_keys`),
//! which are locked, so they are the keys the family statement deletes.

use super::{in_set, quote_ident, rel, Ident, Params, Rows, Statement};
use crate::graph::model::Catalog;
use crate::graph::FamilyEdge;

/// The referenced columns of the family rows of `edge.from` that the declared relation's parent
/// holds: one array per parent column, in the declaration's order, aggregated in one pass so
/// that they line up row by row (empty arrays, never NULL, when there are none). The check binds
/// them as `Slot::DeletedKeys` of the parent's columns.
pub fn deleted_keys(cat: &Catalog, edge: &FamilyEdge) -> Statement {
    let fk = &cat.foreign_keys[edge.fk];
    let mut params = Params::default();
    let set = in_set(
        Ident::of(rel(cat, edge.from)),
        "p",
        Rows::Family(edge.from),
        &mut params,
    );
    let arrays: Vec<String> = rel(cat, fk.parent)
        .column_names(&fk.parent_cols)
        .iter()
        .map(|c| {
            format!(
                "COALESCE(pg_catalog.array_agg(p.{}), '{{}}')",
                quote_ident(c)
            )
        })
        .collect();
    params.statement(format!(
        "SELECT {} FROM {} p WHERE {set}",
        arrays.join(", "),
        rel(cat, edge.parent_sql_rel).qualified()
    ))
}

/// How many rows of the declared relation `fk`'s child still reference one of the keys the
/// family statement deleted from its parent (`Slot::DeletedKeys` of the parent's columns), and
/// the first of those keys in key order, as PostgreSQL's messages show one (`1` or `1, 2`):
/// one row, `(0, NULL)` when none does. Reads only the child, comparing with the parent key's
/// equality operators (as the set-based foreign-key check does): it runs as the child's owner
/// with row-level security off.
pub fn hidden_references(cat: &Catalog, fk: usize) -> Statement {
    let fk = &cat.foreign_keys[fk];
    let mut params = Params::default();
    let k = super::ri_check::deleted_key_join(cat, fk, &mut params);
    params.statement(format!(
        "SELECT pg_catalog.count(*), (pg_catalog.array_agg({} ORDER BY {}))[1] FROM {} JOIN {} c ON {}",
        k.key_text,
        k.columns,
        k.rows,
        rel(cat, fk.child).qualified(),
        k.matches
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Slot;
    use super::*;
    use crate::graph::build;
    use crate::graph::tests::build::*;
    use crate::graph::Options;

    /// customers <- orders through a declared relation with awkward names and two columns.
    fn declared_pair() -> Catalog {
        let mut parent = table(1, "Cust \"A\"", &["Id", "region"], &[1, 2]);
        parent.schema = "Sales Dept".into();
        let child = table(2, "orders", &["id", "cust id", "cust region"], &[1]);
        let mut rel = fk(7, "orders_cust (declared)", 2, &[2, 3], 1, &[1, 2], "c");
        rel.declared = true;
        rel.enforced = false;
        rel.eq_ops = vec![
            ("pg_catalog".into(), "=".into()),
            ("my ops".into(), "===".into()),
        ];
        catalog(vec![parent, child], vec![rel])
    }

    #[test]
    fn deleted_keys_reads_the_parent_columns_of_the_family_rows() {
        let cat = declared_pair();
        let g = build(&cat, 1, &Options::default()).unwrap();
        let stmt = deleted_keys(&cat, &g.edges[0]);
        assert!(stmt.check_slots().is_ok(), "{:?}", stmt.check_slots());
        assert_eq!(stmt.slots, vec![Slot::Tids(Rows::Family(1))]);
        assert_eq!(
            stmt.sql,
            "SELECT COALESCE(pg_catalog.array_agg(p.\"Id\"), '{}'), COALESCE(pg_catalog.array_agg(p.\"region\"), '{}') \
             FROM \"Sales Dept\".\"Cust \"\"A\"\"\" p \
             WHERE p.ctid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.tid[])"
        );
    }

    #[test]
    fn hidden_references_reads_only_the_child_with_the_keys_as_parameters() {
        let cat = declared_pair();
        let stmt = hidden_references(&cat, 0);
        assert!(stmt.check_slots().is_ok(), "{:?}", stmt.check_slots());
        assert_eq!(
            stmt.slots,
            vec![
                Slot::DeletedKeys {
                    table: 1,
                    column: 1
                },
                Slot::DeletedKeys {
                    table: 1,
                    column: 2
                },
            ]
        );
        // the parent is never read: the child's owner may have no privilege on it
        assert!(!stmt.sql.contains("Cust"), "{}", stmt.sql);
        assert_eq!(
            stmt.sql,
            "SELECT pg_catalog.count(*), (pg_catalog.array_agg(pg_catalog.concat_ws(', ', k.v0::pg_catalog.text, k.v1::pg_catalog.text) ORDER BY k.v0, k.v1))[1] \
               FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS k(v0, v1) \
               JOIN \"public\".\"orders\" c ON k.v0 OPERATOR(\"pg_catalog\".=) c.\"cust id\" \
               AND k.v1 OPERATOR(\"my ops\".===) c.\"cust region\""
        );
    }

    #[test]
    fn a_single_column_key_is_shown_as_is() {
        let mut cat = chain("c");
        cat.foreign_keys[0].declared = true;
        let stmt = hidden_references(&cat, 0);
        assert!(stmt.check_slots().is_ok());
        assert!(
            stmt.sql
                .starts_with("SELECT pg_catalog.count(*), (pg_catalog.array_agg(k.v0::pg_catalog.text ORDER BY k.v0))[1]"),
            "{}",
            stmt.sql
        );
    }
}
