//! The shape of a kept generic plan: does it read key arrays of any length at a cost that grows
//! with the keys alone? A generic plan takes every array parameter for 10 elements. Where it reads
//! an array only through an index (one descent per key), as ctids (one fetch per key), or through
//! a bitmap that cannot go lossy, 20,000 keys cost 2,000 times what 10 do. Elsewhere an array may
//! be searched once per row: in a filter, in the recheck of a lossy bitmap page, or in an inner
//! side a nested loop reruns per outer row. Conservative by construction: a node type not listed
//! here makes the answer "no".

use pgrx::pg_sys;
use pgrx::pg_sys::NodeTag;

/// `stmts`, a cached plan's list of `PlannedStmt`s: does every plan in it, and every subplan,
/// read key arrays only in ways that grow linearly with the keys?
///
/// # Safety
/// `stmts` is the `stmt_list` of a `CachedPlan` the caller holds a reference to.
pub unsafe fn scales_with_keys(stmts: *mut pg_sys::List) -> bool {
    unsafe {
        cells(stmts).all(|n| {
            let node = n as *mut pg_sys::Node;
            if node.is_null() || (*node).type_ != NodeTag::T_PlannedStmt {
                return false;
            }
            let stmt = node as *mut pg_sys::PlannedStmt;
            let rtable = (*stmt).rtable;
            // an unused subplan is left as NULL in the list: plan_scales passes NULL
            plan_scales((*stmt).planTree, rtable) && all_scale((*stmt).subplans, rtable)
        })
    }
}

/// The pointers of a `List` of pointers (none for NIL).
unsafe fn cells(list: *mut pg_sys::List) -> impl Iterator<Item = *mut std::ffi::c_void> {
    let (len, elements) = if list.is_null() {
        (0, std::ptr::null_mut())
    } else {
        unsafe { ((*list).length as usize, (*list).elements) }
    };
    (0..len).map(move |i| unsafe { (*elements.add(i)).ptr_value })
}

/// Every plan of a `List` of plans (`plan_scales`).
unsafe fn all_scale(plans: *mut pg_sys::List, rtable: *mut pg_sys::List) -> bool {
    unsafe { cells(plans).all(|c| plan_scales(c.cast(), rtable)) }
}

/// `plan` and every plan below it; `rtable` is its statement's range table.
unsafe fn plan_scales(plan: *mut pg_sys::Plan, rtable: *mut pg_sys::List) -> bool {
    if plan.is_null() {
        return true;
    }
    unsafe {
        let p = &*plan;
        let node_ok = match p.type_ {
            // arrays in index conditions: one descent per key; in TID conditions: one fetch per key
            NodeTag::T_IndexScan
            | NodeTag::T_IndexOnlyScan
            | NodeTag::T_TidScan
            | NodeTag::T_BitmapIndexScan => true,
            NodeTag::T_BitmapAnd => {
                all_scale((*(plan as *mut pg_sys::BitmapAnd)).bitmapplans, rtable)
            }
            NodeTag::T_BitmapOr => {
                all_scale((*(plan as *mut pg_sys::BitmapOr)).bitmapplans, rtable)
            }
            // its recheck (`bitmapqualorig`) searches the arrays once per row, but only on lossy pages
            NodeTag::T_BitmapHeapScan => bitmap_stays_exact(
                (*(plan as *mut pg_sys::BitmapHeapScan)).scan.scanrelid,
                rtable,
            ),
            // the inner side runs once per outer row: it must be a probe that reads only what the
            // outer row's key finds
            NodeTag::T_NestLoop => {
                probes_per_row(p.righttree)
                    && no_array_search((*(plan as *mut pg_sys::NestLoop)).join.joinqual.cast())
            }
            NodeTag::T_HashJoin => {
                let j = &*(plan as *mut pg_sys::HashJoin);
                no_array_search(j.join.joinqual.cast()) && no_array_search(j.hashclauses.cast())
            }
            NodeTag::T_MergeJoin => {
                let j = &*(plan as *mut pg_sys::MergeJoin);
                no_array_search(j.join.joinqual.cast()) && no_array_search(j.mergeclauses.cast())
            }
            NodeTag::T_Result => {
                no_array_search((*(plan as *mut pg_sys::Result)).resconstantqual.cast())
            }
            NodeTag::T_Limit => {
                let l = &*(plan as *mut pg_sys::Limit);
                no_array_search(l.limitOffset.cast()) && no_array_search(l.limitCount.cast())
            }
            NodeTag::T_ModifyTable => {
                no_array_search((*(plan as *mut pg_sys::ModifyTable)).returningLists.cast())
            }
            NodeTag::T_Append => all_scale((*(plan as *mut pg_sys::Append)).appendplans, rtable),
            NodeTag::T_MergeAppend => {
                all_scale((*(plan as *mut pg_sys::MergeAppend)).mergeplans, rtable)
            }
            NodeTag::T_SubqueryScan => {
                plan_scales((*(plan as *mut pg_sys::SubqueryScan)).subplan, rtable)
            }
            NodeTag::T_FunctionScan => {
                no_array_search((*(plan as *mut pg_sys::FunctionScan)).functions.cast())
            }
            NodeTag::T_LockRows
            | NodeTag::T_Sort
            | NodeTag::T_IncrementalSort
            | NodeTag::T_Agg
            | NodeTag::T_Unique
            | NodeTag::T_CteScan
            | NodeTag::T_Memoize
            | NodeTag::T_Material
            | NodeTag::T_Hash => true,
            // sequential scans, and every other node
            _ => false,
        };
        node_ok
            && no_array_search(p.targetlist.cast())
            && no_array_search(p.qual.cast())
            && plan_scales(p.lefttree, rtable)
            && plan_scales(p.righttree, rtable)
    }
}

/// Can a bitmap of the scanned table's pages never go lossy? A bitmap holds one entry per heap
/// page and is made lossy only once it needs more entries than `work_mem` gives it, so a table
/// with no more blocks than that is always read exactly, whatever the number of keys. Checked
/// at each call: the table grows.
unsafe fn bitmap_stays_exact(scanrelid: pg_sys::Index, rtable: *mut pg_sys::List) -> bool {
    unsafe {
        let Some(rte) = cells(rtable).nth((scanrelid as usize).wrapping_sub(1)) else {
            return false;
        };
        let rte = rte as *mut pg_sys::RangeTblEntry;
        if (*rte).type_ != NodeTag::T_RangeTblEntry
            || (*rte).rtekind != pg_sys::RTEKind::RTE_RELATION
        {
            return false;
        }
        // the cached plan's relations are locked while it is held
        let rel = pg_sys::RelationIdGetRelation((*rte).relid);
        if rel.is_null() {
            return false;
        }
        let blocks = pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        pg_sys::RelationClose(rel);
        let entries = pg_sys::tbm_calculate_entries((pg_sys::work_mem as usize * 1024) as _);
        i64::from(blocks) <= entries as i64
    }
}

/// The inner side of a nested loop: a scan the outer row's key parameterizes (possibly under a
/// cache or an aggregate of it), with no array in its own conditions.
unsafe fn probes_per_row(plan: *mut pg_sys::Plan) -> bool {
    if plan.is_null() {
        return false;
    }
    unsafe {
        match (*plan).type_ {
            NodeTag::T_IndexScan => {
                no_array_search((*(plan as *mut pg_sys::IndexScan)).indexqual.cast())
            }
            NodeTag::T_IndexOnlyScan => {
                no_array_search((*(plan as *mut pg_sys::IndexOnlyScan)).indexqual.cast())
            }
            NodeTag::T_Memoize | NodeTag::T_Agg | NodeTag::T_Result | NodeTag::T_Limit => {
                probes_per_row((*plan).lefttree)
            }
            _ => false,
        }
    }
}

/// Nothing in these expressions (NULL: none) that may search a key array once per row: no
/// `= ANY (array)` or `<> ALL (array)`, and no subplan run once per row (its plan, walked on its
/// own, may read an array, and would then read it for every row; a hashed subplan runs once).
unsafe fn no_array_search(expr: *mut pg_sys::Node) -> bool {
    unsafe { !finds_array_search(expr, std::ptr::null_mut()) }
}

unsafe extern "C-unwind" fn finds_array_search(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    unsafe {
        match (*node).type_ {
            NodeTag::T_ScalarArrayOpExpr => return true,
            NodeTag::T_SubPlan if !(*(node as *mut pg_sys::SubPlan)).useHashTable => return true,
            _ => {}
        }
        pg_sys::expression_tree_walker(node, Some(finds_array_search), context)
    }
}
