//! Plain-data model of the catalog: what `src/catalog/load.rs` reads from the system caches, and
//! what `sql/catalog.sql` (its test oracle) returns, deserialised with serde.
//! Nothing here touches Postgres, so the graph and planner can be tested with `cargo test`.

use serde::Deserialize;
use std::collections::BTreeMap;

pub type RelId = u32;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
    pub type_name: String,
    pub generated: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Relation {
    pub oid: RelId,
    pub schema: String,
    pub name: String,
    /// pg_class.relkind: 'r' table, 'p' partitioned table, 'v' view, ...
    pub kind: String,
    pub is_partition: bool,
    pub parent: Option<RelId>,
    #[serde(default)]
    pub leaf_partitions: Vec<RelId>,
    pub rls_enabled: bool,
    #[serde(default)]
    pub user_triggers: Vec<String>,
    /// Of those, pg_uproot's own: the queue triggers of async declared relations (on their
    /// parent), then the check triggers of declared relations (on their child), each by name.
    #[serde(default)]
    pub own_triggers: Vec<String>,
    /// The relation has rules (pg_rewrite).
    #[serde(default = "unknown_means_yes")]
    pub has_rules: bool,
    /// Every internal trigger (the foreign keys' RI triggers) fires in the origin role only
    /// (tgenabled 'O'): none is disabled, or enabled ALWAYS / REPLICA.
    #[serde(default)]
    pub internal_triggers_on_origin: bool,
    pub primary_key: Option<Vec<i16>>,
    /// Equality operator `[schema, name]` per primary-key column.
    #[serde(default)]
    pub pk_eq_ops: Option<Vec<(String, String)>>,
    #[serde(default)]
    pub columns: Vec<Column>,
}

impl Relation {
    /// The equality operator of primary-key column `i`, schema-qualified (`=` of pg_catalog
    /// where the catalog names none).
    pub fn pk_eq_operator(&self, i: usize) -> String {
        qualified_or_plain(self.pk_eq_ops.as_ref().and_then(|ops| ops.get(i)))
    }

    pub fn is_table(&self) -> bool {
        self.kind == "r" || self.kind == "p"
    }

    pub fn is_partitioned(&self) -> bool {
        self.kind == "p"
    }

    pub fn column(&self, attnum: i16) -> Option<&Column> {
        self.columns.iter().find(|c| c.attnum == attnum)
    }

    /// Column names for attnums; unknown attnums are a catalog bug, reported by name.
    pub fn column_names(&self, attnums: &[i16]) -> Vec<String> {
        attnums
            .iter()
            .map(|a| {
                self.column(*a)
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| format!("<attnum {a}>"))
            })
            .collect()
    }

    pub fn primary_key_columns(&self) -> Option<Vec<&Column>> {
        self.primary_key
            .as_ref()
            .map(|pk| pk.iter().filter_map(|a| self.column(*a)).collect())
    }

    /// `"schema"."name"`, quoted for SQL.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// How a person reads the name: like regclass output, schema shown unless it is `public`.
    pub fn display_name(&self) -> String {
        let name = quote_ident_if_needed(&self.name);
        if self.schema == "public" {
            name
        } else {
            format!("{}.{}", quote_ident_if_needed(&self.schema), name)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FkAction {
    NoAction,
    Restrict,
    Cascade,
    SetNull,
    SetDefault,
}

impl FkAction {
    pub fn from_code(code: &str) -> Option<FkAction> {
        Some(match code {
            "a" => FkAction::NoAction,
            "r" => FkAction::Restrict,
            "c" => FkAction::Cascade,
            "n" => FkAction::SetNull,
            "d" => FkAction::SetDefault,
            _ => return None,
        })
    }

    pub fn sql_name(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ForeignKey {
    pub oid: u32,
    pub name: String,
    pub child: RelId,
    pub parent: RelId,
    pub child_cols: Vec<i16>,
    pub parent_cols: Vec<i16>,
    /// pg_constraint.confdeltype
    pub on_delete: String,
    /// `ON DELETE SET NULL (cols)` / `SET DEFAULT (cols)`; None means all FK columns.
    pub set_cols: Option<Vec<i16>>,
    /// The `PK = FK` operator `[schema, name]` per column pair (pg_constraint.conpfeqop).
    #[serde(default)]
    pub eq_ops: Vec<(String, String)>,
    pub deferrable: bool,
    pub deferred: bool,
    pub validated: bool,
    /// false for PostgreSQL 18's NOT ENFORCED foreign keys: PostgreSQL runs no action for them,
    /// so only uproot's own statements may delete or detach through them.
    #[serde(default = "enforced_by_default")]
    pub enforced: bool,
    /// A declared relation (uproot.declared_relations), not a constraint: `oid` is its number
    /// among the declarations, `name` its name with ` (declared)`, and it is never enforced.
    /// A column that no longer exists is attnum 0 (see `ForeignKey::missing_column`).
    #[serde(default)]
    pub declared: bool,
    /// The parent is owned by its referencing rows (uproot.owned_parents): when the last of them
    /// is purged or archived, the parent goes too.
    #[serde(default)]
    pub owned: bool,
    /// Whether an index of the child serves the FK lookup (`WHERE cols = ...`): one whose leading
    /// columns are the FK columns, without a predicate or with one the lookup implies.
    pub child_indexed: bool,
    /// Predicates (as `pg_get_expr` prints them) of the partial indexes whose leading columns
    /// are the FK columns; `Catalog::from_json` decides whether one serves the lookup.
    #[serde(default)]
    pub partial_index_predicates: Vec<String>,
}

impl ForeignKey {
    /// The constraint's `pk = fk` operator for column `i` (conpfeqop), schema-qualified (`=` of
    /// pg_catalog where the catalog names none): what PostgreSQL's own checks compare with.
    pub fn eq_operator(&self, i: usize) -> String {
        qualified_or_plain(self.eq_ops.get(i))
    }

    pub fn action(&self) -> FkAction {
        // An unknown code would be a new PostgreSQL action; treating it as NO ACTION is the safe
        // reading (follow, and let PostgreSQL's own check have the last word).
        FkAction::from_code(&self.on_delete).unwrap_or(FkAction::NoAction)
    }

    /// The child columns an `ON DELETE SET NULL/DEFAULT` changes.
    pub fn detached_cols(&self) -> &[i16] {
        match &self.set_cols {
            Some(cols) if !cols.is_empty() => cols,
            _ => &self.child_cols,
        }
    }

    /// A declared relation one of whose columns was dropped or renamed since it was declared.
    pub fn missing_column(&self) -> bool {
        self.declared && (self.child_cols.contains(&0) || self.parent_cols.contains(&0))
    }

    pub fn is_self_reference(&self) -> bool {
        self.child == self.parent
    }
}

/// Everything the catalog query returns.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Catalog {
    #[serde(deserialize_with = "relations_by_oid")]
    pub relations: BTreeMap<RelId, Relation>,
    pub foreign_keys: Vec<ForeignKey>,
}

fn relations_by_oid<'de, D>(d: D) -> Result<BTreeMap<RelId, Relation>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let list: Vec<Relation> = Vec::deserialize(d)?;
    Ok(list.into_iter().map(|r| (r.oid, r)).collect())
}

impl Catalog {
    pub fn from_json(json: &str) -> Result<Catalog, serde_json::Error> {
        let mut cat: Catalog = serde_json::from_str(json)?;
        cat.resolve_partial_indexes();
        Ok(cat)
    }

    /// A foreign key without an index that leads with its columns is still served by a partial
    /// one whose predicate the lookup implies (`lookup_implies`): mark it indexed.
    pub fn resolve_partial_indexes(&mut self) {
        for i in 0..self.foreign_keys.len() {
            let fk = &self.foreign_keys[i];
            if fk.child_indexed || fk.partial_index_predicates.is_empty() {
                continue;
            }
            let cols = self
                .relation(fk.child)
                .map(|r| r.column_names(&fk.child_cols))
                .unwrap_or_default();
            let served = fk
                .partial_index_predicates
                .iter()
                .any(|p| lookup_implies(p, &cols));
            self.foreign_keys[i].child_indexed = served;
        }
    }

    /// The first fact in which `self` and `other` differ, described with `self` as `loaded` and
    /// `other` as `expected`; None when they are equal.
    pub fn first_difference(&self, other: &Catalog) -> Option<String> {
        let name = |oid: RelId| {
            self.relation(oid)
                .or_else(|| other.relation(oid))
                .map_or_else(|| format!("oid {oid}"), |r| r.display_name())
        };
        let oids: std::collections::BTreeSet<RelId> = self
            .relations
            .keys()
            .chain(other.relations.keys())
            .copied()
            .collect();
        for oid in oids {
            let (a, b) = match (self.relation(oid), other.relation(oid)) {
                (Some(a), Some(b)) => (a, b),
                (a, _) => {
                    let (has, lacks) = if a.is_some() {
                        ("loaded", "expected")
                    } else {
                        ("expected", "loaded")
                    };
                    return Some(format!(
                        "relation {} is in the {has} catalog, not in the {lacks} one",
                        name(oid)
                    ));
                }
            };
            if a == b {
                continue;
            }
            let fields: [(&str, String, String); 15] = [
                ("oid", format!("{:?}", a.oid), format!("{:?}", b.oid)),
                (
                    "schema",
                    format!("{:?}", a.schema),
                    format!("{:?}", b.schema),
                ),
                ("name", format!("{:?}", a.name), format!("{:?}", b.name)),
                ("kind", format!("{:?}", a.kind), format!("{:?}", b.kind)),
                (
                    "is_partition",
                    format!("{:?}", a.is_partition),
                    format!("{:?}", b.is_partition),
                ),
                (
                    "parent",
                    format!("{:?}", a.parent),
                    format!("{:?}", b.parent),
                ),
                (
                    "leaf_partitions",
                    format!("{:?}", a.leaf_partitions),
                    format!("{:?}", b.leaf_partitions),
                ),
                (
                    "rls_enabled",
                    format!("{:?}", a.rls_enabled),
                    format!("{:?}", b.rls_enabled),
                ),
                (
                    "user_triggers",
                    format!("{:?}", a.user_triggers),
                    format!("{:?}", b.user_triggers),
                ),
                (
                    "own_triggers",
                    format!("{:?}", a.own_triggers),
                    format!("{:?}", b.own_triggers),
                ),
                (
                    "has_rules",
                    format!("{:?}", a.has_rules),
                    format!("{:?}", b.has_rules),
                ),
                (
                    "internal_triggers_on_origin",
                    format!("{:?}", a.internal_triggers_on_origin),
                    format!("{:?}", b.internal_triggers_on_origin),
                ),
                (
                    "primary_key",
                    format!("{:?}", a.primary_key),
                    format!("{:?}", b.primary_key),
                ),
                (
                    "pk_eq_ops",
                    format!("{:?}", a.pk_eq_ops),
                    format!("{:?}", b.pk_eq_ops),
                ),
                (
                    "columns",
                    format!("{:?}", a.columns),
                    format!("{:?}", b.columns),
                ),
            ];
            if let Some((field, x, y)) = fields.into_iter().find(|(_, x, y)| x != y) {
                return Some(format!(
                    "relation {}: {field} loaded {x}, expected {y}",
                    name(oid)
                ));
            }
        }
        if self.foreign_keys.len() != other.foreign_keys.len() {
            return Some(format!(
                "{} foreign keys loaded, {} expected",
                self.foreign_keys.len(),
                other.foreign_keys.len()
            ));
        }
        for (a, b) in self.foreign_keys.iter().zip(&other.foreign_keys) {
            if a == b {
                continue;
            }
            let fields: [(&str, String, String); 18] = [
                ("oid", format!("{:?}", a.oid), format!("{:?}", b.oid)),
                ("name", format!("{:?}", a.name), format!("{:?}", b.name)),
                ("child", name(a.child), name(b.child)),
                ("parent", name(a.parent), name(b.parent)),
                (
                    "child_cols",
                    format!("{:?}", a.child_cols),
                    format!("{:?}", b.child_cols),
                ),
                (
                    "parent_cols",
                    format!("{:?}", a.parent_cols),
                    format!("{:?}", b.parent_cols),
                ),
                (
                    "on_delete",
                    format!("{:?}", a.on_delete),
                    format!("{:?}", b.on_delete),
                ),
                (
                    "set_cols",
                    format!("{:?}", a.set_cols),
                    format!("{:?}", b.set_cols),
                ),
                (
                    "eq_ops",
                    format!("{:?}", a.eq_ops),
                    format!("{:?}", b.eq_ops),
                ),
                (
                    "deferrable",
                    format!("{:?}", a.deferrable),
                    format!("{:?}", b.deferrable),
                ),
                (
                    "deferred",
                    format!("{:?}", a.deferred),
                    format!("{:?}", b.deferred),
                ),
                (
                    "validated",
                    format!("{:?}", a.validated),
                    format!("{:?}", b.validated),
                ),
                (
                    "enforced",
                    format!("{:?}", a.enforced),
                    format!("{:?}", b.enforced),
                ),
                (
                    "declared",
                    format!("{:?}", a.declared),
                    format!("{:?}", b.declared),
                ),
                ("owned", format!("{:?}", a.owned), format!("{:?}", b.owned)),
                (
                    "child_indexed",
                    format!("{:?}", a.child_indexed),
                    format!("{:?}", b.child_indexed),
                ),
                (
                    "partial_index_predicates",
                    format!("{:?}", a.partial_index_predicates),
                    format!("{:?}", b.partial_index_predicates),
                ),
                (
                    "child/parent oids",
                    format!("{}/{}", a.child, a.parent),
                    format!("{}/{}", b.child, b.parent),
                ),
            ];
            let (field, x, y) = fields.into_iter().find(|(_, x, y)| x != y).unwrap_or((
                "?",
                format!("{a:?}"),
                format!("{b:?}"),
            ));
            return Some(format!(
                "foreign key {}: {field} loaded {x}, expected {y}",
                a.name
            ));
        }
        None
    }

    pub fn relation(&self, oid: RelId) -> Option<&Relation> {
        self.relations.get(&oid)
    }

    /// The relation and its partition ancestors, nearest first.
    pub fn self_and_ancestors(&self, oid: RelId) -> Vec<RelId> {
        let mut out = vec![oid];
        let mut cur = oid;
        while let Some(p) = self.relation(cur).and_then(|r| r.parent) {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out
    }
}

/// `OPERATOR("schema".=)`: an operator named exactly, whatever the search_path.
pub fn qualified_operator(op: &(String, String)) -> String {
    format!("OPERATOR({}.{})", quote_ident(&op.0), op.1)
}

fn qualified_or_plain(op: Option<&(String, String)>) -> String {
    op.map(qualified_operator)
        .unwrap_or_else(|| "OPERATOR(pg_catalog.=)".to_string())
}

/// Quote an identifier the way `quote_ident` does: always, doubling embedded quotes.
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Quote only when needed, for messages and labels (same rule as regclass output, minus keywords).
/// Does the FK lookup `WHERE c1 = $1 AND c2 = $2 ...` imply a partial index's predicate, as
/// `pg_get_expr` prints it? Yes when the predicate is `c IS NOT NULL` for FK columns, or an AND
/// of such (an equality implies its column is not NULL); anything else is left unproven.
pub fn lookup_implies(predicate: &str, fk_columns: &[String]) -> bool {
    let conjuncts = split_top_level_and(strip_outer_parens(predicate.trim()));
    !conjuncts.is_empty()
        && conjuncts.iter().all(|c| {
            let c = strip_outer_parens(c.trim());
            c.strip_suffix(" IS NOT NULL")
                .and_then(parse_ident)
                .is_some_and(|col| fk_columns.contains(&col))
        })
}

/// `(x)` -> `x`, as often as one pair of parentheses wraps the whole text.
fn strip_outer_parens(mut s: &str) -> &str {
    while s.starts_with('(') && closing_paren(s) == Some(s.len() - 1) {
        s = s[1..s.len() - 1].trim();
    }
    s
}

/// The byte index of the parenthesis that closes the one `s` starts with.
fn closing_paren(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Split at ` AND ` outside parentheses and quoted identifiers.
fn split_top_level_and(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b' ' if !quoted && depth == 0 && s[i..].starts_with(" AND ") => {
                parts.push(&s[start..i]);
                i += " AND ".len();
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&s[start..]);
    parts
}

/// One identifier as PostgreSQL prints it: plain, or double-quoted with `""` for `"`.
fn parse_ident(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        let unescaped = inner.replace("\"\"", "\"");
        // a lone quote inside would mean this was not one identifier
        (!unescaped.is_empty() && inner.replace("\"\"", "").find('"').is_none())
            .then_some(unescaped)
    } else {
        let plain = !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$');
        plain.then(|| s.to_string())
    }
}

pub fn quote_ident_if_needed(ident: &str) -> String {
    let plain = !ident.is_empty()
        && ident
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        ident.to_string()
    } else {
        quote_ident(ident)
    }
}

/// A SQL string literal, for constant text written into generated SQL where a parameter cannot
/// go: COMMENT ON, jsonb object keys, the column list of an error message.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn enforced_by_default() -> bool {
    true
}

/// A catalog without the field says nothing about it: assume what keeps the safe path.
fn unknown_means_yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident_if_needed("orders"), "orders");
        assert_eq!(quote_ident_if_needed("Orders"), "\"Orders\"");
        assert_eq!(quote_ident_if_needed("my table"), "\"my table\"");
        assert_eq!(quote_ident_if_needed("ünï"), "\"ünï\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    #[test]
    fn first_difference_names_the_field() {
        let json = r#"{"relations":[{"oid":10,"schema":"s","name":"A","kind":"r","is_partition":false,
            "parent":null,"rls_enabled":false,"primary_key":[1],"columns":[]}],
            "foreign_keys":[{"oid":99,"name":"fk","child":10,"parent":10,"child_cols":[1],"parent_cols":[1],
            "on_delete":"c","set_cols":null,"deferrable":false,"deferred":false,"validated":true,"child_indexed":true}]}"#;
        let a = Catalog::from_json(json).unwrap();
        assert_eq!(a.first_difference(&a.clone()), None);
        let mut b = a.clone();
        b.relations.get_mut(&10).unwrap().has_rules = false;
        assert_eq!(
            a.first_difference(&b).as_deref(),
            Some("relation s.\"A\": has_rules loaded true, expected false")
        );
        let mut c = a.clone();
        c.foreign_keys[0].eq_ops = vec![("pg_catalog".into(), "=".into())];
        assert_eq!(
            a.first_difference(&c).as_deref(),
            Some("foreign key fk: eq_ops loaded [], expected [(\"pg_catalog\", \"=\")]")
        );
        let mut d = a.clone();
        d.relations.clear();
        assert_eq!(
            a.first_difference(&d).as_deref(),
            Some("relation s.\"A\" is in the loaded catalog, not in the expected one")
        );
    }

    #[test]
    fn catalog_json_round_trip() {
        let json = r#"{"relations":[{"oid":10,"schema":"public","name":"a","kind":"r","is_partition":false,
            "parent":null,"leaf_partitions":[],"rls_enabled":false,"user_triggers":[],
            "primary_key":[1],"columns":[{"attnum":1,"name":"id","type_oid":23,"type_name":"integer",
            "generated":null}]}],
            "foreign_keys":[{"oid":99,"name":"fk","child":10,"parent":10,"child_cols":[1],"parent_cols":[1],
            "on_delete":"n","set_cols":null,"deferrable":false,"deferred":false,"validated":true,"child_indexed":true}]}"#;
        let cat = Catalog::from_json(json).unwrap();
        assert_eq!(cat.relation(10).unwrap().name, "a");
        assert_eq!(cat.foreign_keys[0].action(), FkAction::SetNull);
        assert!(cat.foreign_keys[0].is_self_reference());
        assert_eq!(cat.foreign_keys[0].detached_cols(), &[1]);
    }
}
