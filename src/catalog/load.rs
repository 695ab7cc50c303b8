//! The catalog read from PostgreSQL's system caches and catalog scans: the same `Catalog` the
//! query in `sql/catalog.sql` returns (that query is kept as the oracle of
//! `uproot.debug_check_catalog`), without parsing and planning a large query in every session.
//!
//! Every read goes through the syscache or a systable scan with the catalog snapshot, so it sees
//! the latest committed catalog, takes no transaction ID (hot standby) and needs no privilege.
//! Catalog tables are read under AccessShareLock, as a query would; user tables are not locked,
//! except by `pg_get_expr`, which deparses a partial index's predicate as the query did (it
//! opens the child table with AccessShareLock).

use crate::error::UprootError;
use crate::graph::model::{Catalog, Column, ForeignKey, RelId, Relation};
use pgrx::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::CStr;

// Catalog relations and indexes pgrx's bindings do not name (stable OIDs, see pg_*.h).
const CONSTRAINT_RELATION: u32 = 2606;
const CONSTRAINT_RELID_INDEX: u32 = 2665;
const REWRITE_RELATION: u32 = 2618;
const REWRITE_REL_RULENAME_INDEX: u32 = 2693;

// catalog/pg_inherits.h and catalog/partition.h: not in pgrx's bindings
unsafe extern "C-unwind" {
    #[link_name = "find_all_inheritors"]
    fn find_all_inheritors_unguarded(
        parent: pg_sys::Oid,
        lockmode: pg_sys::LOCKMODE,
        numparents: *mut *mut pg_sys::List,
    ) -> *mut pg_sys::List;
    #[link_name = "get_partition_ancestors"]
    fn get_partition_ancestors_unguarded(relid: pg_sys::Oid) -> *mut pg_sys::List;
}

/// Every relation that inherits from `rel`, `rel` first, none of them locked.
unsafe fn find_all_inheritors(rel: u32) -> Vec<u32> {
    oid_list(pg_sys::ffi::pg_guard_ffi_boundary(|| {
        find_all_inheritors_unguarded(
            pg_sys::Oid::from(rel),
            pg_sys::NoLock as pg_sys::LOCKMODE,
            std::ptr::null_mut(),
        )
    }))
}

/// The partition ancestors of `rel`, its parent first.
unsafe fn get_partition_ancestors(rel: u32) -> Vec<u32> {
    oid_list(pg_sys::ffi::pg_guard_ffi_boundary(|| {
        get_partition_ancestors_unguarded(pg_sys::Oid::from(rel))
    }))
}

fn unreadable(said: impl Into<String>) -> UprootError {
    UprootError::CatalogUnreadable { said: said.into() }
}

/// A catalog table opened for systable scans; closed by `close` (an ERROR closes it with the
/// transaction).
struct Table {
    rel: pg_sys::Relation,
}

impl Table {
    fn open(oid: u32) -> Table {
        let rel =
            unsafe { pg_sys::table_open(pg_sys::Oid::from(oid), pg_sys::AccessShareLock as i32) };
        Table { rel }
    }

    fn close(self) {
        unsafe { pg_sys::table_close(self.rel, pg_sys::AccessShareLock as i32) };
    }

    /// The number of column `name`: looked up by name, so that columns added by later
    /// PostgreSQL versions do not move what is read.
    fn attnum(&self, name: &str) -> Result<i16, UprootError> {
        // the relation's own descriptor (not copied, not freed)
        let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked((*self.rel).rd_att) };
        desc.iter()
            .find(|att| pg_sys::name_data_to_str(&att.attname) == name)
            .map(|att| att.attnum)
            .ok_or_else(|| unreadable(format!("no column {name} in catalog table")))
    }

    /// Column `attnum` of `tuple`, None when NULL.
    fn get(&self, tuple: pg_sys::HeapTuple, attnum: i16) -> Option<pg_sys::Datum> {
        let mut isnull = false;
        let d =
            unsafe { pg_sys::heap_getattr(tuple, attnum as i32, (*self.rel).rd_att, &mut isnull) };
        (!isnull).then_some(d)
    }

    /// Every row matching `keys` (column, equality function, value) through `index` (0: a scan
    /// of the table), passed to `each` until it returns false or an error.
    fn scan(
        &self,
        index: u32,
        keys: &[(i16, u32, pg_sys::Datum)],
        mut each: impl FnMut(pg_sys::HeapTuple) -> Result<bool, UprootError>,
    ) -> Result<(), UprootError> {
        let mut scankeys: Vec<pg_sys::ScanKeyData> = keys
            .iter()
            .map(|_| pg_sys::ScanKeyData::default())
            .collect();
        for (k, (attnum, proc_, value)) in scankeys.iter_mut().zip(keys) {
            unsafe {
                pg_sys::ScanKeyInit(
                    k,
                    *attnum,
                    pg_sys::BTEqualStrategyNumber as u16,
                    pg_sys::Oid::from(*proc_),
                    *value,
                )
            };
        }
        let scan = unsafe {
            pg_sys::systable_beginscan(
                self.rel,
                pg_sys::Oid::from(index),
                index != 0,
                std::ptr::null_mut(),
                scankeys.len() as i32,
                scankeys.as_mut_ptr(),
            )
        };
        let mut result = Ok(());
        loop {
            let tuple = unsafe { pg_sys::systable_getnext(scan) };
            if tuple.is_null() {
                break;
            }
            match each(tuple) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        unsafe { pg_sys::systable_endscan(scan) };
        result
    }

    /// `scan` of the rows whose OID column `column` is `rel`, through `index`.
    fn scan_of(
        &self,
        index: u32,
        column: &str,
        rel: u32,
        each: impl FnMut(pg_sys::HeapTuple) -> Result<bool, UprootError>,
    ) -> Result<(), UprootError> {
        let key = [(self.attnum(column)?, pg_sys::F_OIDEQ, oid_datum(rel))];
        self.scan(index, &key, each)
    }
}

/// The OIDs of an `oidvector` datum (indclass).
///
/// SAFETY: `d` must be a detoasted oidvector (as catalog tuples hold them).
unsafe fn oidvector_oids(d: pg_sys::Datum) -> Vec<u32> {
    let v = d.cast_mut_ptr::<pg_sys::oidvector>();
    (*v).values
        .as_slice((*v).dim1 as usize)
        .iter()
        .map(|o| o.to_u32())
        .collect()
}

fn oid_datum(oid: u32) -> pg_sys::Datum {
    pg_sys::Datum::from(pg_sys::Oid::from(oid))
}

fn datum_oid(d: pg_sys::Datum) -> u32 {
    d.value() as u32
}

fn datum_bool(d: pg_sys::Datum) -> bool {
    d.value() != 0
}

fn datum_char(d: pg_sys::Datum) -> char {
    (d.value() as u8) as char
}

unsafe fn datum_name(d: pg_sys::Datum) -> String {
    pg_sys::name_data_to_str(&*(d.cast_mut_ptr::<pg_sys::NameData>())).to_string()
}

unsafe fn cstring(p: *const std::ffi::c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
}

fn int2_array(d: Option<pg_sys::Datum>, what: &str) -> Result<Vec<i16>, UprootError> {
    let d = d.ok_or_else(|| unreadable(format!("{what} is NULL")))?;
    unsafe { <Vec<i16> as FromDatum>::from_datum(d, false) }
        .ok_or_else(|| unreadable(format!("{what} is not readable")))
}

fn oid_array(d: Option<pg_sys::Datum>, what: &str) -> Result<Vec<u32>, UprootError> {
    let d = d.ok_or_else(|| unreadable(format!("{what} is NULL")))?;
    let oids = unsafe { <Vec<pg_sys::Oid> as FromDatum>::from_datum(d, false) }
        .ok_or_else(|| unreadable(format!("{what} is not readable")))?;
    Ok(oids.into_iter().map(|o| o.to_u32()).collect())
}

/// A Postgres `List` of OIDs.
unsafe fn oid_list(list: *mut pg_sys::List) -> Vec<u32> {
    if list.is_null() {
        return Vec::new();
    }
    let n = (*list).length as usize;
    (0..n)
        .map(|i| (*(*list).elements.add(i)).oid_value.to_u32())
        .collect()
}

/// What `read` takes from the row of `oid` in a syscache keyed by OID, while the row is held;
/// None when there is no such row.
///
/// SAFETY: `F` must be the catalog form of `cache`, and `read` only copies out of it.
unsafe fn syscache_row<F, T>(
    cache: pg_sys::SysCacheIdentifier::Type,
    oid: u32,
    read: impl FnOnce(pg_sys::HeapTuple, &F) -> T,
) -> Option<T> {
    let tuple = pg_sys::SearchSysCache1(cache as i32, oid_datum(oid));
    if tuple.is_null() {
        return None;
    }
    let found = read(tuple, &*pg_sys::heap_tuple_get_struct::<F>(tuple));
    pg_sys::ReleaseSysCache(tuple);
    Some(found)
}

/// `[schema, name]` of operator `opno`; None when it (or its schema) is gone, as the query's
/// inner joins leave it out.
fn operator_name(opno: u32) -> Option<(String, String)> {
    unsafe {
        let (name, namespace) = syscache_row(
            pg_sys::SysCacheIdentifier::OPEROID,
            opno,
            |_, form: &pg_sys::FormData_pg_operator| {
                (
                    pg_sys::name_data_to_str(&form.oprname).to_string(),
                    form.oprnamespace,
                )
            },
        )?;
        let schema = cstring(pg_sys::get_namespace_name(namespace))?;
        Some((schema, name))
    }
}

/// The btree equality operator (strategy 3) of operator class `opclass` for its input type.
fn opclass_equality(opclass: u32) -> Option<(String, String)> {
    let (family, input) = unsafe {
        syscache_row(
            pg_sys::SysCacheIdentifier::CLAOID,
            opclass,
            |_, form: &pg_sys::FormData_pg_opclass| (form.opcfamily, form.opcintype),
        )?
    };
    // pg_amop is unique on (family, left, right, strategy); its method is the family's
    let opno = unsafe {
        pg_sys::get_opfamily_member(family, input, input, pg_sys::BTEqualStrategyNumber as i16)
    };
    (opno != pg_sys::InvalidOid)
        .then(|| operator_name(opno.to_u32()))
        .flatten()
}

/// One row of pg_index, what the catalog needs of it.
struct Index {
    indexrelid: u32,
    unique: bool,
    valid: bool,
    primary: bool,
    /// indkey, all columns (key and INCLUDE; 0 for an expression)
    keys: Vec<i16>,
    nkeyatts: usize,
    classes: Vec<u32>,
    has_exprs: bool,
    /// indpred as stored (pg_node_tree text)
    predicate: Option<String>,
}

impl Index {
    /// Whether the first `cols.len()` index columns are `cols` as a set (`@>` and `<@`).
    fn leads_with(&self, cols: &[i16]) -> bool {
        let lead = &self.keys[..cols.len().min(self.keys.len())];
        cols.iter().all(|c| lead.contains(c)) && lead.iter().all(|k| cols.contains(k))
    }

    fn key_columns(&self) -> &[i16] {
        &self.keys[..self.nkeyatts.min(self.keys.len())]
    }
}

/// A pg_constraint row of a foreign key.
struct FkRow {
    oid: u32,
    name: String,
    child: u32,
    parent: u32,
    child_cols: Vec<i16>,
    parent_cols: Vec<i16>,
    on_delete: char,
    deferrable: bool,
    deferred: bool,
    validated: bool,
    set_cols: Option<Vec<i16>>,
    eq_ops: Vec<u32>,
    enforced: bool,
}

struct Loader {
    constraints: Table,
    triggers: Table,
    indexes: Table,
    rewrites: Table,
    attributes: Table,
    /// pg_index rows by table, read once each
    index_cache: HashMap<u32, Vec<Index>>,
    uproot_internal: pg_sys::Oid,
}

/// A row of uproot.declared_relations.
struct Declared {
    name: String,
    child: u32,
    child_columns: Vec<String>,
    parent: u32,
    parent_columns: Vec<String>,
    on_delete: String,
}

/// The declared relations and owned parents, read from pg_uproot's own tables as the caller.
struct Declarations {
    /// ordered by name
    relations: Vec<Declared>,
    owned: HashSet<(u32, String)>,
}

fn read_declarations() -> Result<Declarations, UprootError> {
    Spi::connect_mut(|client| {
        let mut relations = Vec::new();
        let rows = crate::spi::query_latest(
            client,
            "SELECT d.name, d.child::pg_catalog.oid, d.child_columns, d.parent::pg_catalog.oid, \
             d.parent_columns, d.on_delete FROM uproot.declared_relations d \
             WHERE d.on_delete OPERATOR(pg_catalog.=) ANY ('{cascade,set null,restrict}'::pg_catalog.text[]) \
             ORDER BY d.name",
            &[],
        );
        for row in rows {
            relations.push(Declared {
                name: row.value::<String>(1, "declared_relations.name")?,
                child: row
                    .value::<pg_sys::Oid>(2, "declared_relations.child")?
                    .to_u32(),
                child_columns: row.value::<Vec<String>>(3, "declared_relations.child_columns")?,
                parent: row
                    .value::<pg_sys::Oid>(4, "declared_relations.parent")?
                    .to_u32(),
                parent_columns: row.value::<Vec<String>>(5, "declared_relations.parent_columns")?,
                on_delete: row.value::<String>(6, "declared_relations.on_delete")?,
            });
        }
        let mut owned = HashSet::new();
        let rows = crate::spi::query_latest(
            client,
            "SELECT o.child::pg_catalog.oid, o.via FROM uproot.owned_parents o",
            &[],
        );
        for row in rows {
            owned.insert((
                row.value::<pg_sys::Oid>(1, "owned_parents.child")?.to_u32(),
                row.value::<String>(2, "owned_parents.via")?,
            ));
        }
        Ok(Declarations { relations, owned })
    })
}

/// The pg_class facts of a relation; None when it does not exist.
struct ClassRow {
    name: String,
    namespace: pg_sys::Oid,
    kind: char,
    is_partition: bool,
    rls: bool,
    /// relhastriggers, relhasrules: false when the relation never had any (true may be stale),
    /// so that pg_trigger and pg_rewrite need no scan then
    may_have_triggers: bool,
    may_have_rules: bool,
}

fn class_row(oid: u32) -> Option<ClassRow> {
    unsafe {
        syscache_row(
            pg_sys::SysCacheIdentifier::RELOID,
            oid,
            |_, form: &pg_sys::FormData_pg_class| ClassRow {
                name: pg_sys::name_data_to_str(&form.relname).to_string(),
                namespace: form.relnamespace,
                kind: (form.relkind as u8) as char,
                is_partition: form.relispartition,
                rls: form.relrowsecurity,
                may_have_triggers: form.relhastriggers,
                may_have_rules: form.relhasrules,
            },
        )
    }
}

/// The catalog of the closure of `roots` (`closure`), read from the system caches, and the
/// closure. Each root is included even when no FK touches it.
pub fn load(roots: &[u32]) -> Result<(Catalog, BTreeSet<u32>), UprootError> {
    let declarations = read_declarations()?;
    let mut loader = Loader {
        constraints: Table::open(CONSTRAINT_RELATION),
        triggers: Table::open(pg_sys::TriggerRelationId.to_u32()),
        indexes: Table::open(pg_sys::IndexRelationId.to_u32()),
        rewrites: Table::open(REWRITE_RELATION),
        attributes: Table::open(pg_sys::AttributeRelationId.to_u32()),
        index_cache: HashMap::new(),
        uproot_internal: unsafe { pg_sys::get_namespace_oid(c"uproot_internal".as_ptr(), true) },
    };
    let result = loader.catalog(roots, &declarations);
    let Loader {
        constraints,
        triggers,
        indexes,
        rewrites,
        attributes,
        ..
    } = loader;
    for t in [constraints, triggers, indexes, rewrites, attributes] {
        t.close();
    }
    result
}

/// `roots` and every relation whose rows a family of theirs may reach: the children of each
/// (through foreign keys and declared relations), the parents an owned edge leads to, and a
/// partitioned table's partitions and a partition's ancestors (a key of a partition is a key of
/// its ancestors, which other tables may reference). A catalog of this closure serves every
/// root in it: the closure of each is part of it.
fn closure(roots: &[u32], fk_edges: &[(u32, u32, bool)], declared: &[ForeignKey]) -> BTreeSet<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut owned_parents: HashMap<u32, Vec<u32>> = HashMap::new();
    let edges = fk_edges
        .iter()
        .copied()
        .chain(declared.iter().map(|d| (d.child, d.parent, d.owned)));
    for (child, parent, is_owned) in edges {
        children.entry(parent).or_default().push(child);
        if is_owned {
            owned_parents.entry(child).or_default().push(parent);
        }
    }
    let mut closure: BTreeSet<u32> = roots.iter().copied().collect();
    let mut todo: Vec<u32> = closure.iter().copied().collect();
    while let Some(rel) = todo.pop() {
        let mut next: Vec<u32> = Vec::new();
        next.extend(children.get(&rel).into_iter().flatten());
        next.extend(owned_parents.get(&rel).into_iter().flatten());
        if let Some(class) = class_row(rel) {
            if class.kind == 'p' {
                next.extend(unsafe { find_all_inheritors(rel) });
            }
            if class.is_partition {
                next.extend(unsafe { get_partition_ancestors(rel) });
            }
        }
        for r in next {
            if closure.insert(r) {
                todo.push(r);
            }
        }
    }
    closure
}

impl Loader {
    /// The catalog of the closure of `roots` (`closure`): its relations, every foreign key (and
    /// declared relation) whose child is one of them, and the parents those reference. Also the
    /// closure itself: the roots this catalog can serve.
    fn catalog(
        &mut self,
        roots: &[u32],
        declarations: &Declarations,
    ) -> Result<(Catalog, BTreeSet<u32>), UprootError> {
        let declared = self.declared_edges(declarations)?;
        let edges = self.fk_edges(&declarations.owned)?;
        let closure = closure(roots, &edges, &declared);
        let mut foreign_keys = Vec::new();
        for fk in self.fk_rows(&closure)? {
            let eq_ops = fk.eq_ops.iter().filter_map(|o| operator_name(*o)).collect();
            let (child_indexed, partial_index_predicates) =
                self.child_indexes(fk.child, &fk.child_cols)?;
            foreign_keys.push(ForeignKey {
                oid: fk.oid,
                owned: declarations.owned.contains(&(fk.child, fk.name.clone())),
                name: fk.name,
                child: fk.child,
                parent: fk.parent,
                child_cols: fk.child_cols,
                parent_cols: fk.parent_cols,
                on_delete: fk.on_delete.to_string(),
                set_cols: fk.set_cols,
                eq_ops,
                deferrable: fk.deferrable,
                deferred: fk.deferred,
                validated: fk.validated,
                enforced: fk.enforced,
                declared: false,
                child_indexed,
                partial_index_predicates,
            });
        }
        // by constraint OID, then the declared relations by name (their rank)
        foreign_keys.sort_by_key(|fk| fk.oid);
        foreign_keys.extend(declared.into_iter().filter(|d| closure.contains(&d.child)));

        let mut ids = closure.clone();
        for fk in &foreign_keys {
            ids.insert(fk.parent);
        }
        // partitions and ancestors of the referenced parents (the closure holds its own)
        let mut all = ids.clone();
        let mut classes: HashMap<u32, Option<ClassRow>> = HashMap::new();
        for &id in ids.difference(&closure) {
            let class = classes.entry(id).or_insert_with(|| class_row(id));
            let Some(class) = class else { continue };
            if class.kind == 'p' {
                all.extend(unsafe { find_all_inheritors(id) });
            }
            if class.is_partition {
                all.insert(id);
                all.extend(unsafe { get_partition_ancestors(id) });
            }
        }
        let mut relations = BTreeMap::new();
        for oid in all {
            let class = classes.remove(&oid).unwrap_or_else(|| class_row(oid));
            if let Some(class) = class {
                if let Some(rel) = self.relation(oid, class)? {
                    relations.insert(oid, rel);
                }
            }
        }
        let mut cat = Catalog {
            relations,
            foreign_keys,
        };
        cat.resolve_partial_indexes();
        Ok((cat, closure))
    }

    /// Every foreign key (contype 'f') that is not a clone on a partition, as (child, parent,
    /// owned): one scan of pg_constraint that reads only what the closure needs (a name only
    /// where the child owns a parent through some edge).
    fn fk_edges(
        &self,
        owned: &HashSet<(u32, String)>,
    ) -> Result<Vec<(u32, u32, bool)>, UprootError> {
        let t = &self.constraints;
        let (conname, contype, conrelid, confrelid, conparentid) = (
            t.attnum("conname")?,
            t.attnum("contype")?,
            t.attnum("conrelid")?,
            t.attnum("confrelid")?,
            t.attnum("conparentid")?,
        );
        let owners: HashSet<u32> = owned.iter().map(|(child, _)| *child).collect();
        let mut edges = Vec::new();
        let key = [(contype, pg_sys::F_CHAREQ, pg_sys::Datum::from(b'f' as i8))];
        t.scan(0, &key, |tuple| {
            let req = |attnum: i16, what: &str| {
                t.get(tuple, attnum)
                    .ok_or_else(|| unreadable(format!("pg_constraint.{what} is NULL")))
            };
            if datum_oid(req(conparentid, "conparentid")?) != 0 {
                return Ok(true);
            }
            let child = datum_oid(req(conrelid, "conrelid")?);
            let parent = datum_oid(req(confrelid, "confrelid")?);
            let is_owned = owners.contains(&child) && {
                let name = unsafe { datum_name(req(conname, "conname")?) };
                owned.contains(&(child, name))
            };
            edges.push((child, parent, is_owned));
            Ok(true)
        })?;
        Ok(edges)
    }

    /// The foreign keys (contype 'f') of `children` that are not clones on partitions, read
    /// through pg_constraint's index on conrelid.
    fn fk_rows(&self, children: &BTreeSet<u32>) -> Result<Vec<FkRow>, UprootError> {
        let t = &self.constraints;
        let a = |name: &str| t.attnum(name);
        let (oid, conname, contype, conrelid, confrelid, conparentid) = (
            a("oid")?,
            a("conname")?,
            a("contype")?,
            a("conrelid")?,
            a("confrelid")?,
            a("conparentid")?,
        );
        let (conkey, confkey, confdeltype, condeferrable, condeferred, convalidated) = (
            a("conkey")?,
            a("confkey")?,
            a("confdeltype")?,
            a("condeferrable")?,
            a("condeferred")?,
            a("convalidated")?,
        );
        let (confdelsetcols, conpfeqop) = (a("confdelsetcols")?, a("conpfeqop")?);
        #[cfg(feature = "pg18")]
        let conenforced = a("conenforced")?;
        let mut rows = Vec::new();
        for &child in children {
            let key = [(conrelid, pg_sys::F_OIDEQ, oid_datum(child))];
            t.scan(CONSTRAINT_RELID_INDEX, &key, |tuple| {
                let req = |attnum: i16, what: &str| {
                    t.get(tuple, attnum)
                        .ok_or_else(|| unreadable(format!("pg_constraint.{what} is NULL")))
                };
                if t.get(tuple, contype).map(datum_char) != Some('f')
                    || datum_oid(req(conparentid, "conparentid")?) != 0
                {
                    return Ok(true);
                }
                #[cfg(feature = "pg18")]
                let enforced = datum_bool(req(conenforced, "conenforced")?);
                #[cfg(not(feature = "pg18"))]
                let enforced = true;
                let set_cols = match t.get(tuple, confdelsetcols) {
                    None => None,
                    Some(d) => Some(int2_array(Some(d), "pg_constraint.confdelsetcols")?),
                };
                rows.push(FkRow {
                    oid: datum_oid(req(oid, "oid")?),
                    name: unsafe { datum_name(req(conname, "conname")?) },
                    child: datum_oid(req(conrelid, "conrelid")?),
                    parent: datum_oid(req(confrelid, "confrelid")?),
                    child_cols: int2_array(t.get(tuple, conkey), "pg_constraint.conkey")?,
                    parent_cols: int2_array(t.get(tuple, confkey), "pg_constraint.confkey")?,
                    on_delete: datum_char(req(confdeltype, "confdeltype")?),
                    deferrable: datum_bool(req(condeferrable, "condeferrable")?),
                    deferred: datum_bool(req(condeferred, "condeferred")?),
                    validated: datum_bool(req(convalidated, "convalidated")?),
                    set_cols,
                    eq_ops: oid_array(t.get(tuple, conpfeqop), "pg_constraint.conpfeqop")?,
                    enforced,
                });
                Ok(true)
            })?;
        }
        Ok(rows)
    }

    /// The declared relations whose tables both exist, numbered by name from 1.
    fn declared_edges(&mut self, d: &Declarations) -> Result<Vec<ForeignKey>, UprootError> {
        let mut edges = Vec::new();
        for r in &d.relations {
            let (child, parent) = (r.child, r.parent);
            if class_row(child).is_none() || class_row(parent).is_none() {
                continue;
            }
            let child_cols = attnums(child, &r.child_columns)?;
            let parent_cols = attnums(parent, &r.parent_columns)?;
            let eq_ops = self.unique_index_equality(parent, &parent_cols)?;
            let (child_indexed, partial_index_predicates) =
                self.child_indexes(child, &child_cols)?;
            edges.push(ForeignKey {
                oid: edges.len() as u32 + 1,
                name: format!("{} (declared)", r.name),
                child,
                parent,
                child_cols,
                parent_cols,
                on_delete: match r.on_delete.as_str() {
                    "cascade" => "c",
                    "set null" => "n",
                    _ => "r",
                }
                .to_string(),
                set_cols: None,
                eq_ops,
                deferrable: false,
                deferred: false,
                validated: true,
                enforced: false,
                declared: true,
                owned: d.owned.contains(&(child, r.name.clone())),
                child_indexed,
                partial_index_predicates,
            });
        }
        Ok(edges)
    }

    /// The equality operators of `parent`'s unique index on exactly `cols` (the primary key
    /// first, then by index OID), column by column in the order of `cols`; none without one.
    fn unique_index_equality(
        &mut self,
        parent: u32,
        cols: &[i16],
    ) -> Result<Vec<(String, String)>, UprootError> {
        let indexes = self.indexes_of(parent)?;
        let mut candidates: Vec<&Index> = indexes
            .iter()
            .filter(|i| i.unique && i.valid && i.predicate.is_none() && !i.has_exprs)
            .filter(|i| {
                let keys = i.key_columns();
                keys.iter().all(|k| cols.contains(k)) && cols.iter().all(|c| keys.contains(c))
            })
            .collect();
        candidates.sort_by_key(|i| (!i.primary, i.indexrelid));
        let Some(index) = candidates.first() else {
            return Ok(Vec::new());
        };
        let mut ops = Vec::new();
        for col in cols {
            for (pos, key) in index.key_columns().iter().enumerate() {
                if key == col {
                    if let Some(op) = index.classes.get(pos).and_then(|c| opclass_equality(*c)) {
                        ops.push(op);
                    }
                }
            }
        }
        Ok(ops)
    }

    /// Whether a valid index without a predicate leads with `cols`, and the predicates (as
    /// `pg_get_expr` prints them, by index OID) of the valid partial indexes that do.
    fn child_indexes(
        &mut self,
        child: u32,
        cols: &[i16],
    ) -> Result<(bool, Vec<String>), UprootError> {
        let indexes = self.indexes_of(child)?;
        let leading = || indexes.iter().filter(|i| i.valid && i.leads_with(cols));
        let indexed = leading().any(|i| i.predicate.is_none());
        let mut predicates = Vec::new();
        for index in leading() {
            if let Some(pred) = &index.predicate {
                let text = unsafe {
                    pgrx::direct_function_call::<String>(
                        pg_sys::pg_get_expr,
                        &[pred.as_str().into_datum(), Some(oid_datum(child))],
                    )
                };
                predicates.push(text.ok_or_else(|| {
                    unreadable(format!(
                        "the predicate of index {} is not readable",
                        index.indexrelid
                    ))
                })?);
            }
        }
        Ok((indexed, predicates))
    }

    /// The pg_index rows of `rel`, by index OID.
    fn indexes_of(&mut self, rel: u32) -> Result<&Vec<Index>, UprootError> {
        if !self.index_cache.contains_key(&rel) {
            let t = &self.indexes;
            let indclass = t.attnum("indclass")?;
            let indpred = t.attnum("indpred")?;
            let indexprs = t.attnum("indexprs")?;
            let mut found = Vec::new();
            t.scan_of(pg_sys::IndexIndrelidIndexId, "indrelid", rel, |tuple| {
                let form =
                    unsafe { pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_index>(tuple) };
                let (keys, index) = unsafe {
                    let n = (*form).indkey.dim1 as usize;
                    let keys = (*form).indkey.values.as_slice(n).to_vec();
                    (keys, &*form)
                };
                let predicate = match t.get(tuple, indpred) {
                    None => None,
                    Some(d) => Some(
                        unsafe { String::from_datum(d, false) }
                            .ok_or_else(|| unreadable("pg_index.indpred is not readable"))?,
                    ),
                };
                let classes = t
                    .get(tuple, indclass)
                    .map(|d| unsafe { oidvector_oids(d) })
                    .unwrap_or_default();
                found.push(Index {
                    indexrelid: index.indexrelid.to_u32(),
                    unique: index.indisunique,
                    valid: index.indisvalid,
                    primary: index.indisprimary,
                    keys,
                    nkeyatts: index.indnkeyatts.max(0) as usize,
                    classes,
                    has_exprs: t.get(tuple, indexprs).is_some(),
                    predicate,
                });
                Ok(true)
            })?;
            found.sort_by_key(|i| i.indexrelid);
            self.index_cache.insert(rel, found);
        }
        Ok(&self.index_cache[&rel])
    }

    /// Relation `oid` with everything the catalog holds about it; None when its schema is gone.
    fn relation(&mut self, oid: u32, class: ClassRow) -> Result<Option<Relation>, UprootError> {
        let Some(schema) = (unsafe { cstring(pg_sys::get_namespace_name(class.namespace)) }) else {
            return Ok(None);
        };
        let parent = if class.is_partition {
            unsafe { get_partition_ancestors(oid) }.first().copied()
        } else {
            None
        };
        let leaf_partitions = if class.kind == 'p' {
            let mut leaves: Vec<RelId> = unsafe { find_all_inheritors(oid) }
                .into_iter()
                .filter(|r| {
                    let kind = unsafe { pg_sys::get_rel_relkind(pg_sys::Oid::from(*r)) } as u8;
                    kind != b'p' && kind != b'I'
                })
                .collect();
            leaves.sort_unstable();
            leaves
        } else {
            Vec::new()
        };
        let (user_triggers, own_triggers, internal_triggers_on_origin) = if class.may_have_triggers
        {
            self.triggers_of(oid)?
        } else {
            (Vec::new(), Vec::new(), true)
        };
        let (primary_key, pk_eq_ops) = self.primary_key(oid)?;
        Ok(Some(Relation {
            oid,
            schema,
            name: class.name,
            kind: class.kind.to_string(),
            is_partition: class.is_partition,
            parent,
            leaf_partitions,
            rls_enabled: class.rls,
            user_triggers,
            own_triggers,
            has_rules: class.may_have_rules && self.has_rules(oid)?,
            internal_triggers_on_origin,
            primary_key,
            pk_eq_ops,
            columns: self.columns(oid)?,
        }))
    }

    /// User triggers by name; pg_uproot's own among them, by function name descending then
    /// name; and whether every internal trigger fires in the origin role only.
    fn triggers_of(&self, rel: u32) -> Result<(Vec<String>, Vec<String>, bool), UprootError> {
        let t = &self.triggers;
        let mut user = Vec::new();
        let mut own: Vec<(String, String)> = Vec::new();
        let mut on_origin = true;
        t.scan_of(pg_sys::TriggerRelidNameIndexId, "tgrelid", rel, |tuple| {
            let form =
                unsafe { &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_trigger>(tuple) };
            if form.tgisinternal {
                on_origin &= form.tgenabled as u8 == b'O';
                return Ok(true);
            }
            if form.tgparentid != pg_sys::InvalidOid {
                return Ok(true);
            }
            let name = pg_sys::name_data_to_str(&form.tgname).to_string();
            if self.uproot_internal != pg_sys::InvalidOid
                && unsafe { pg_sys::get_func_namespace(form.tgfoid) } == self.uproot_internal
            {
                let function = unsafe { cstring(pg_sys::get_func_name(form.tgfoid)) };
                if let Some(f) = function
                    .filter(|f| f == "check_declared_reference" || f == "queue_deleted_keys")
                {
                    own.push((f, name.clone()));
                }
            }
            user.push(name);
            Ok(true)
        })?;
        user.sort();
        own.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok((user, own.into_iter().map(|(_, n)| n).collect(), on_origin))
    }

    fn has_rules(&self, rel: u32) -> Result<bool, UprootError> {
        let t = &self.rewrites;
        let mut any = false;
        t.scan_of(REWRITE_REL_RULENAME_INDEX, "ev_class", rel, |_| {
            any = true;
            Ok(false)
        })?;
        Ok(any)
    }

    /// The primary key's columns and the btree equality operator of each.
    #[allow(clippy::type_complexity)]
    fn primary_key(
        &self,
        rel: u32,
    ) -> Result<(Option<Vec<i16>>, Option<Vec<(String, String)>>), UprootError> {
        let t = &self.constraints;
        let (contype, conkey, conindid) = (
            t.attnum("contype")?,
            t.attnum("conkey")?,
            t.attnum("conindid")?,
        );
        let mut pk = None;
        t.scan_of(CONSTRAINT_RELID_INDEX, "conrelid", rel, |tuple| {
            if t.get(tuple, contype).map(datum_char) != Some('p') {
                return Ok(true);
            }
            let cols = match t.get(tuple, conkey) {
                None => None,
                Some(d) => Some(int2_array(Some(d), "pg_constraint.conkey")?),
            };
            pk = Some((cols, t.get(tuple, conindid).map(datum_oid).unwrap_or(0)));
            Ok(false)
        })?;
        let Some((cols, index)) = pk else {
            return Ok((None, None));
        };
        let ops: Vec<(String, String)> = index_classes(index)
            .into_iter()
            .filter_map(opclass_equality)
            .collect();
        Ok((cols, (!ops.is_empty()).then_some(ops)))
    }

    /// The columns that are not dropped, by number.
    fn columns(&self, rel: u32) -> Result<Vec<Column>, UprootError> {
        let t = &self.attributes;
        let mut columns = Vec::new();
        t.scan_of(pg_sys::AttributeRelidNumIndexId, "attrelid", rel, |tuple| {
            let a =
                unsafe { &*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_attribute>(tuple) };
            if a.attnum <= 0 || a.attisdropped {
                return Ok(true);
            }
            let type_name = unsafe {
                cstring(pg_sys::format_type_extended(
                    a.atttypid,
                    a.atttypmod,
                    (pg_sys::FORMAT_TYPE_TYPEMOD_GIVEN | pg_sys::FORMAT_TYPE_ALLOW_INVALID) as u16,
                ))
            }
            .unwrap_or_default();
            let generated = a.attgenerated as u8;
            columns.push(Column {
                attnum: a.attnum,
                name: pg_sys::name_data_to_str(&a.attname).to_string(),
                type_oid: a.atttypid.to_u32(),
                type_name,
                generated: (generated != 0).then(|| (generated as char).to_string()),
            });
            Ok(true)
        })?;
        columns.sort_by_key(|c| c.attnum);
        Ok(columns)
    }
}

/// The operator classes of index `index` (its key columns), from the syscache.
fn index_classes(index: u32) -> Vec<u32> {
    let cache = pg_sys::SysCacheIdentifier::INDEXRELID;
    unsafe {
        syscache_row(cache, index, |tuple, _: &pg_sys::FormData_pg_index| {
            let mut isnull = false;
            let d = pg_sys::SysCacheGetAttr(
                cache as i32,
                tuple,
                pg_sys::Anum_pg_index_indclass as i16,
                &mut isnull,
            );
            if isnull {
                return Vec::new();
            }
            oidvector_oids(d)
        })
        .unwrap_or_default()
    }
}

/// The numbers of columns `names` of `rel`; 0 for a column that no longer exists.
fn attnums(rel: u32, names: &[String]) -> Result<Vec<i16>, UprootError> {
    names
        .iter()
        .map(|name| {
            // longer than a name can be: no column has it (the syscache would match it cut short)
            if name.len() >= pg_sys::NAMEDATALEN as usize {
                return Ok(0);
            }
            let cname = std::ffi::CString::new(name.as_str())
                .map_err(|_| unreadable("a declared column name holds a NUL"))?;
            let attnum = unsafe { pg_sys::get_attnum(pg_sys::Oid::from(rel), cname.as_ptr()) };
            Ok(if attnum > 0 { attnum } else { 0 })
        })
        .collect()
}
