//! DROP EXTENSION must not take archived batches with it by accident: the ledger is what makes
//! the archive restorable. An event trigger refuses the drop while unrestored batches exist,
//! unless the caller says `SET uproot.allow_drop_extension = on` (the README's uninstall
//! procedures say when). It also refuses a drop without CASCADE while declared relations have
//! their triggers on user tables, naming them and saying how to remove them (PostgreSQL would
//! refuse that drop too, naming only the functions the triggers call).

use crate::error::UprootError;
use crate::privileged::as_extension_owner;
use pgrx::prelude::*;
use pgrx::PgList;

const EXTENSION: &str = "pg_uproot";
const SCHEMA: &str = "uproot";

/// Does this DROP statement name pg_uproot, or the schema it lives in? Some(CASCADE or not).
///
/// # Safety
/// `fcinfo` must be the call of an event trigger function.
unsafe fn drops_pg_uproot(fcinfo: pg_sys::FunctionCallInfo) -> Option<bool> {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
        return None;
    }
    let data = context as *mut pg_sys::EventTriggerData;
    let tree = (*data).parsetree;
    if tree.is_null() || (*tree).type_ != pg_sys::NodeTag::T_DropStmt {
        return None;
    }
    let stmt = tree as *mut pg_sys::DropStmt;
    let target = match (*stmt).removeType {
        pg_sys::ObjectType::OBJECT_EXTENSION => EXTENSION,
        pg_sys::ObjectType::OBJECT_SCHEMA => SCHEMA,
        _ => return None,
    };
    let names = PgList::<pg_sys::Node>::from_pg((*stmt).objects);
    let named = names.iter_ptr().any(|node| {
        !node.is_null()
            && (*node).type_ == pg_sys::NodeTag::T_String
            && std::ffi::CStr::from_ptr((*(node as *mut pg_sys::String)).sval)
                .to_str()
                .is_ok_and(|s| s == target)
    });
    named.then_some((*stmt).behavior == pg_sys::DropBehavior::DROP_CASCADE)
}

/// The triggers pg_uproot installed for declared relations (`name on table (relation)`), the relations
/// they serve, and how many parent keys their queues still hold.
fn declared_triggers() -> (Vec<String>, Vec<String>, i64) {
    let triggers = Spi::connect(|client| {
        let rows = client.select(
            "SELECT pg_catalog.format('%I on %s (%s)', t.tgname, uproot_internal.quoted_name(t.tgrelid), \
                                      COALESCE(d.name, 'no longer declared')), \
                    COALESCE(d.name, t.tgname::pg_catalog.text) \
               FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc f ON f.oid OPERATOR(pg_catalog.=) t.tgfoid \
               LEFT JOIN uproot.declared_relations d \
                 ON t.tgname OPERATOR(pg_catalog.=) ANY (ARRAY['uproot_check_' OPERATOR(pg_catalog.||) d.name, \
                                                              'uproot_queue_' OPERATOR(pg_catalog.||) d.name]) \
              WHERE f.pronamespace OPERATOR(pg_catalog.=) 'uproot_internal'::pg_catalog.regnamespace \
                AND f.proname OPERATOR(pg_catalog.=) ANY ('{check_declared_reference,queue_deleted_keys}'::pg_catalog.name[]) \
                AND t.tgparentid OPERATOR(pg_catalog.=) 0 \
              ORDER BY 2, 1",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .unwrap_or_default();
    let queued = as_extension_owner(|| {
        Spi::get_one::<i64>("SELECT pg_catalog.count(*) FROM uproot.async_queue")
    })
    .ok()
    .flatten()
    .unwrap_or(0);
    let mut relations: Vec<String> = triggers.iter().map(|(_, r)| r.clone()).collect();
    relations.dedup();
    (
        triggers.into_iter().map(|(t, _)| t).collect(),
        relations,
        queued,
    )
}

#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.guard_drop_extension() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'guard_drop_extension_wrapper';
COMMENT ON FUNCTION uproot_internal.guard_drop_extension() IS
'Event trigger: refuses DROP EXTENSION pg_uproot (or DROP SCHEMA uproot) while archived batches are not restored.';
CREATE EVENT TRIGGER uproot_guard_drop_extension ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION uproot_internal.guard_drop_extension();
"#)]
fn guard_drop_extension(fcinfo: pg_sys::FunctionCallInfo) {
    let Some(cascade) = (unsafe { drops_pg_uproot(fcinfo) }) else {
        return;
    };
    let (batches, rows, cron_jobs) = as_extension_owner(|| {
        let batches = Spi::get_two::<i64, i64>(
            "SELECT pg_catalog.count(DISTINCT b.id), COALESCE(pg_catalog.sum(br.rows), 0)::pg_catalog.int8 \
               FROM uproot.batches b LEFT JOIN uproot.batch_relations br ON br.batch_id OPERATOR(pg_catalog.=) b.id \
              WHERE b.restored_at IS NULL",
        )
        .ok();
        let has_cron =
            Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('cron.job') IS NOT NULL")
                .ok()
                .flatten()
                .unwrap_or(false);
        let cron = if has_cron {
            Spi::get_one::<i64>(
                "SELECT pg_catalog.count(*) FROM cron.job WHERE command OPERATOR(pg_catalog.~*) 'uproot\\.'",
            )
            .ok()
            .flatten()
            .unwrap_or(0)
        } else {
            0
        };
        let (b, r) = batches.unwrap_or((Some(0), Some(0)));
        (b.unwrap_or(0), r.unwrap_or(0), cron)
    });
    let allowed = Spi::get_one::<String>(
        "SELECT pg_catalog.current_setting('uproot.allow_drop_extension', true)",
    )
    .ok()
    .flatten()
    .is_some_and(|v| matches!(v.to_lowercase().as_str(), "on" | "true" | "yes" | "1"));
    if cron_jobs > 0 {
        pgrx::warning!(
            "uproot: {cron_jobs} pg_cron job(s) call uproot; they will fail once pg_uproot is gone: remove them with cron.unschedule()"
        );
    }
    if batches > 0 && !allowed {
        crate::report::raise(UprootError::DropRefused { batches, rows });
    }
    // Triggers of declared relations call pg_uproot's functions: without CASCADE PostgreSQL
    // refuses the drop too, but names only functions; say which relations and what to do.
    let (triggers, relations, queued) = declared_triggers();
    if !triggers.is_empty() && !cascade {
        crate::report::raise(UprootError::DropRefusedTriggers {
            relations,
            triggers,
        });
    }
    if queued > 0 {
        pgrx::warning!(
            "uproot: {queued} queued key(s) of async relations go with the extension before a drain handled them: unless they are put back (README \"Uninstalling\"), the child rows that reference those deleted parents stay"
        );
    }
}
