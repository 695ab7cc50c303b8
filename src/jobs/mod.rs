//! Jobs: the writes behind uproot.create_job, alter_job, drop_job and run_job, and the checks
//! those PL/pgSQL functions cannot make themselves.
//!
//! uproot.jobs and uproot.job_runs are not writable by PUBLIC: a role could otherwise point
//! another role's scheduled job at rows only that role may delete, or rewrite the run log. The
//! job functions stay SECURITY INVOKER (the batches run as the caller) and call the helpers
//! below, which check that the calling role owns the job, or is a superuser, and then run fixed,
//! parameterised statements on those two tables as the extension's owner. The check is made
//! here because only code that switches the user itself still knows who the caller is: a
//! SECURITY DEFINER function sees its owner as current_user.

// pgrx raises an `Err` with its own SQLSTATE only when it is an `ErrorReport` (not boxed), and
// the row types of RETURNS TABLE are spelled out in the signatures.
#![allow(clippy::result_large_err, clippy::type_complexity)]

use crate::error::UprootError;
use crate::privileged::{as_extension_owner, current_user};
use crate::report::{raise, report};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::JsonB;

/// The calling role (outside `as_extension_owner`).
struct Caller {
    name: String,
    superuser: bool,
}

fn caller() -> Caller {
    let role = current_user();
    // SAFETY: GetUserNameFromId returns a palloc'd C string, or raises an ERROR
    let name = unsafe { std::ffi::CStr::from_ptr(pg_sys::GetUserNameFromId(role, false)) }
        .to_string_lossy()
        .into_owned();
    Caller {
        name,
        superuser: unsafe { pg_sys::superuser_arg(role) },
    }
}

fn unknown_job(name: &str) -> UprootError {
    UprootError::UnknownJob {
        name: name.to_string(),
    }
}

/// The job's owner, read (and the job's row locked with `lock`) as the extension owner; an
/// error unless the caller owns the job or is a superuser.
fn check_job_owner(name: &str, caller: &Caller, lock: &str) -> Result<(), UprootError> {
    let sql = format!(
        "SELECT j.created_by::pg_catalog.text FROM uproot.jobs j \
          WHERE j.name OPERATOR(pg_catalog.=) $1 {lock}"
    );
    let owner =
        as_extension_owner(|| Spi::get_one_with_args::<String>(&sql, &[DatumWithOid::from(name)]))
            .ok()
            .flatten()
            .ok_or_else(|| unknown_job(name))?;
    if owner == caller.name || caller.superuser {
        Ok(())
    } else {
        Err(UprootError::NotJobOwner {
            job: name.to_string(),
            owner,
            role: caller.name.clone(),
        })
    }
}

/// A run in progress of a job the caller owns (or the caller is a superuser): its job's name
/// and keep_runs.
fn check_run_owner(run: Option<i64>, caller: &Caller) -> Result<(i64, String, i32), UprootError> {
    let run = run.ok_or_else(|| UprootError::InvalidArgument {
        argument: "run".into(),
        message: "run must not be NULL".into(),
        hint: "Runs are started by CALL uproot.run_job(name).".into(),
    })?;
    let found = as_extension_owner(|| {
        Spi::connect(|c| {
            let t = c.select(
                "SELECT r.job, r.run_by::pg_catalog.text, r.finished_at IS NOT NULL, \
                        j.created_by::pg_catalog.text, j.keep_runs \
                   FROM uproot.job_runs r \
                   LEFT JOIN uproot.jobs j ON j.name OPERATOR(pg_catalog.=) r.job \
                  WHERE r.run_id OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[DatumWithOid::from(run)],
            )?;
            if t.is_empty() {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let row = t.first();
            Ok(Some((
                row.get::<String>(1)?,
                row.get::<String>(2)?,
                row.get::<bool>(3)?,
                row.get::<String>(4)?,
                row.get::<i32>(5)?,
            )))
        })
    })
    .map_err(crate::spi::failed("reading a job run"))?;
    let Some((job, run_by, finished, owner, keep_runs)) = found else {
        return Err(UprootError::InvalidArgument {
            argument: "run".into(),
            message: format!("there is no run {run}"),
            hint: "Runs are started by CALL uproot.run_job(name).".into(),
        });
    };
    let null = |what: &str| UprootError::UnexpectedNull { what: what.into() };
    let job = job.ok_or_else(|| null("a run's job"))?;
    let run_by = run_by.ok_or_else(|| null("a run's role"))?;
    let finished = finished.ok_or_else(|| null("whether a run finished"))?;
    // the job was dropped while it ran: its log keeps the default number of runs
    let keep_runs = keep_runs.unwrap_or(1000);
    if !caller.superuser && (run_by != caller.name || owner.as_deref() != Some(&caller.name)) {
        return Err(UprootError::NotJobOwner {
            job,
            owner: owner.unwrap_or(run_by),
            role: caller.name.clone(),
        });
    }
    if finished {
        return Err(UprootError::InvalidArgument {
            argument: "run".into(),
            message: format!("run {run} of job {job} has finished, and its record is final"),
            hint: "Start a new run with CALL uproot.run_job(name).".into(),
        });
    }
    Ok((run, job, keep_runs))
}

/// An SPI failure of these fixed statements, as uproot's internal error.
fn spi_report(e: pgrx::spi::Error) -> ErrorReport {
    report(crate::spi::failed("reading or writing the jobs tables")(e))
}

fn spi_ok<T>(r: Result<T, pgrx::spi::Error>) -> T {
    r.unwrap_or_else(|e| raise(crate::spi::failed("reading or writing the jobs tables")(e)))
}

/// The predicate of a job must name columns of the root table that exist, and be boolean:
/// prepared (parsed and analysed, never run, so no row is read or locked) as the caller, like
/// the statement that will run it. PostgreSQL's own SQLSTATE (42703 for an unknown column) is
/// kept.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.check_predicate(root regclass, predicate text) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'check_predicate_wrapper';
COMMENT ON FUNCTION uproot_internal.check_predicate(regclass, text) IS
'Internal: raise an error unless the predicate is one boolean expression over the columns of root (prepared as the caller, not run).';
"#)]
fn check_predicate(
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
) -> Result<(), ErrorReport> {
    let root = root
        .ok_or_else(|| UprootError::InvalidArgument {
            argument: "root".into(),
            message: "root must not be NULL".into(),
            hint: "Name the table whose rows go, e.g. 'public.orders'.".into(),
        })
        .map_err(report)?;
    let (cat, g) =
        crate::catalog::family(root, &crate::graph::Options::default()).map_err(report)?;
    let rel = cat.relation(g.root).expect("root in catalog");
    let (display, qualified) = (rel.display_name(), rel.qualified());
    let checked = crate::predicate::check(predicate.as_deref(), &display).map_err(report)?;
    let sql = format!("SELECT FROM {qualified} WHERE ({checked})");
    PgTryBuilder::new(|| spi_ok(Spi::connect(|c| c.prepare(sql.as_str(), &[]).map(|_| ()))))
        .catch_others(|e| {
            let pg_sys::panic::CaughtError::PostgresError(r) = &e else {
                e.rethrow()
            };
            raise(UprootError::PredicateRejected {
                relation: display.clone(),
                sqlstate: crate::error::sqlstate_text(r.sql_error_code() as i32),
                said: r.message().to_string(),
            })
        })
        .execute();
    Ok(())
}

/// Save a new job, owned by the caller.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_insert(name text, root regclass, predicate text, action text, batch_roots int, max_runtime interval, pause interval, lock_timeout interval, respect_restrict boolean, follow_set_null boolean, stop_at regclass[], keep_runs int, on_error text, max_replica_lag interval, max_replica_lag_bytes bigint) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_insert_wrapper';
COMMENT ON FUNCTION uproot_internal.job_insert(text, regclass, text, text, int, interval, interval, interval, boolean, boolean, regclass[], int, text, interval, bigint) IS
'Internal: the INSERT behind uproot.create_job, owned by the calling role; create_job checks the settings first.';
"#)]
#[allow(clippy::too_many_arguments)]
fn job_insert(
    name: Option<String>,
    root: Option<pg_sys::Oid>,
    predicate: Option<String>,
    action: Option<String>,
    batch_roots: Option<i32>,
    max_runtime: Option<Interval>,
    pause: Option<Interval>,
    lock_timeout: Option<Interval>,
    respect_restrict: Option<bool>,
    follow_set_null: Option<bool>,
    stop_at: Option<Vec<Option<pg_sys::Oid>>>,
    keep_runs: Option<i32>,
    on_error: Option<String>,
    max_replica_lag: Option<Interval>,
    max_replica_lag_bytes: Option<i64>,
) -> Result<(), ErrorReport> {
    let caller = caller();
    let job = name.clone().unwrap_or_default();
    let args = [
        DatumWithOid::from(name),
        DatumWithOid::from(root),
        DatumWithOid::from(predicate),
        DatumWithOid::from(action),
        DatumWithOid::from(batch_roots),
        DatumWithOid::from(max_runtime),
        DatumWithOid::from(pause),
        DatumWithOid::from(lock_timeout),
        DatumWithOid::from(respect_restrict),
        DatumWithOid::from(follow_set_null),
        DatumWithOid::from(stop_at),
        DatumWithOid::from(keep_runs),
        DatumWithOid::from(on_error),
        DatumWithOid::from(max_replica_lag),
        DatumWithOid::from(max_replica_lag_bytes),
        DatumWithOid::from(caller.name),
    ];
    insert_job(
        "INSERT INTO uproot.jobs (name, root, predicate, action, batch_roots, max_runtime, pause, \
                lock_timeout, respect_restrict, follow_set_null, stop_at, keep_runs, on_error, \
                max_replica_lag, max_replica_lag_bytes, created_by) \
         VALUES ($1, $2::pg_catalog.oid::pg_catalog.regclass, $3, $4, $5, $6, $7, $8, $9, $10, \
                 $11::pg_catalog.oid[]::pg_catalog.regclass[], $12, $13, $14, $15, $16) \
         ON CONFLICT (name) DO NOTHING",
        &args,
        job,
    )
}

/// Save a new drain job of an async declared relation, owned by the caller; its root is the
/// relation's parent and its predicate empty.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.drain_job_insert(name text, relation text, batch_roots int, max_runtime interval, pause interval, lock_timeout interval, keep_runs int, on_error text, max_replica_lag interval, max_replica_lag_bytes bigint) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'drain_job_insert_wrapper';
COMMENT ON FUNCTION uproot_internal.drain_job_insert(text, text, int, interval, interval, interval, int, text, interval, bigint) IS
'Internal: the INSERT behind uproot.create_drain_job, owned by the calling role, after checking the relation is an async declared relation; create_drain_job checks the settings first.';
"#)]
#[allow(clippy::too_many_arguments)]
fn drain_job_insert(
    name: Option<String>,
    relation: Option<String>,
    batch_roots: Option<i32>,
    max_runtime: Option<Interval>,
    pause: Option<Interval>,
    lock_timeout: Option<Interval>,
    keep_runs: Option<i32>,
    on_error: Option<String>,
    max_replica_lag: Option<Interval>,
    max_replica_lag_bytes: Option<i64>,
) -> Result<(), ErrorReport> {
    crate::declared::drain::check_async(relation.as_deref().unwrap_or_default()).map_err(report)?;
    let caller = caller();
    let job = name.clone().unwrap_or_default();
    let args = [
        DatumWithOid::from(name),
        DatumWithOid::from(relation),
        DatumWithOid::from(batch_roots),
        DatumWithOid::from(max_runtime),
        DatumWithOid::from(pause),
        DatumWithOid::from(lock_timeout),
        DatumWithOid::from(keep_runs),
        DatumWithOid::from(on_error),
        DatumWithOid::from(max_replica_lag),
        DatumWithOid::from(max_replica_lag_bytes),
        DatumWithOid::from(caller.name),
    ];
    insert_job(
        "INSERT INTO uproot.jobs (name, root, predicate, action, relation, batch_roots, max_runtime, \
                pause, lock_timeout, keep_runs, on_error, max_replica_lag, max_replica_lag_bytes, \
                created_by) \
         SELECT $1, d.parent, '', 'drain', d.name, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
           FROM uproot.declared_relations d WHERE d.name OPERATOR(pg_catalog.=) $2 \
         ON CONFLICT (name) DO NOTHING",
        &args,
        job,
    )
}

/// Insert a job row as the extension's owner (`ON CONFLICT (name) DO NOTHING`): an existing name
/// is an error that names it.
fn insert_job(sql: &str, args: &[DatumWithOid<'_>], job: String) -> Result<(), ErrorReport> {
    let inserted =
        as_extension_owner(|| Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len())));
    if inserted.map_err(spi_report)? == 0 {
        return Err(report(UprootError::JobExists { name: job }));
    }
    Ok(())
}

/// Change a job's settings (the ones alter_job changes), if the caller owns it.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_update(name text, predicate text, action text, batch_roots int, max_runtime interval, pause interval, lock_timeout interval, enabled boolean, keep_runs int, on_error text, max_replica_lag interval, max_replica_lag_bytes bigint) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_update_wrapper';
COMMENT ON FUNCTION uproot_internal.job_update(text, text, text, int, interval, interval, interval, boolean, int, text, interval, bigint) IS
'Internal: the UPDATE behind uproot.alter_job, for the job''s owner or a superuser; alter_job checks the settings first.';
"#)]
#[allow(clippy::too_many_arguments)]
fn job_update(
    name: Option<String>,
    predicate: Option<String>,
    action: Option<String>,
    batch_roots: Option<i32>,
    max_runtime: Option<Interval>,
    pause: Option<Interval>,
    lock_timeout: Option<Interval>,
    enabled: Option<bool>,
    keep_runs: Option<i32>,
    on_error: Option<String>,
    max_replica_lag: Option<Interval>,
    max_replica_lag_bytes: Option<i64>,
) -> Result<(), ErrorReport> {
    let job = name.clone().unwrap_or_default();
    check_job_owner(&job, &caller(), "FOR UPDATE").map_err(report)?;
    let args = [
        DatumWithOid::from(name),
        DatumWithOid::from(predicate),
        DatumWithOid::from(action),
        DatumWithOid::from(batch_roots),
        DatumWithOid::from(max_runtime),
        DatumWithOid::from(pause),
        DatumWithOid::from(lock_timeout),
        DatumWithOid::from(enabled),
        DatumWithOid::from(keep_runs),
        DatumWithOid::from(on_error),
        DatumWithOid::from(max_replica_lag),
        DatumWithOid::from(max_replica_lag_bytes),
    ];
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE uproot.jobs SET predicate = $2, action = $3, batch_roots = $4, max_runtime = $5, \
                    pause = $6, lock_timeout = $7, enabled = $8, keep_runs = $9, on_error = $10, \
                    max_replica_lag = $11, max_replica_lag_bytes = $12 \
              WHERE name OPERATOR(pg_catalog.=) $1",
            &args,
        )
    }).map_err(spi_report)?;
    Ok(())
}

/// Check that the job exists and that the caller may change, run or drop it; lock its row
/// until the end of the transaction.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_lock(name text) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_lock_wrapper';
COMMENT ON FUNCTION uproot_internal.job_lock(text) IS
'Internal: raise an error unless the job exists and the calling role owns it (or is a superuser); lock the job''s row until the end of the transaction.';
"#)]
fn job_lock(name: Option<String>) -> Result<(), ErrorReport> {
    check_job_owner(&name.unwrap_or_default(), &caller(), "FOR UPDATE").map_err(report)?;
    Ok(())
}

/// Drop a job and its run log, if the caller owns it.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_delete(name text) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_delete_wrapper';
COMMENT ON FUNCTION uproot_internal.job_delete(text) IS
'Internal: the DELETE behind uproot.drop_job (the job and its run log), for the job''s owner or a superuser.';
"#)]
fn job_delete(name: Option<String>) -> Result<(), ErrorReport> {
    let job = name.unwrap_or_default();
    check_job_owner(&job, &caller(), "FOR UPDATE").map_err(report)?;
    as_extension_owner(|| {
        Spi::run_with_args(
            "WITH runs AS (DELETE FROM uproot.job_runs WHERE job OPERATOR(pg_catalog.=) $1) \
             DELETE FROM uproot.jobs WHERE name OPERATOR(pg_catalog.=) $1",
            &[DatumWithOid::from(job.as_str())],
        )
    })
    .map_err(spi_report)?;
    Ok(())
}

/// Start a run: the job must exist and belong to the caller (or the caller is a superuser),
/// and this CALL must be able to commit. Records the run and returns its run_id.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_run_start(name text) RETURNS bigint
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_run_start_wrapper';
COMMENT ON FUNCTION uproot_internal.job_run_start(text) IS
'Internal: check that the calling role may run the job, and that run_job may commit where it was called; record the start of a run and return its run_id.';
"#)]
fn job_run_start(name: Option<String>) -> Result<i64, ErrorReport> {
    // Asked first, before this function connects to SPI itself: whether the procedure that
    // called us (run_job) may COMMIT. That is the case only in a CALL at the top level, or in
    // a CALL from a procedure or DO block called that way, and never in a subtransaction.
    let (may_commit, in_block) = unsafe {
        (
            pg_sys::SPI_inside_nonatomic_context() && !pg_sys::IsSubTransaction(),
            pg_sys::IsTransactionBlock() && !pg_sys::IsSubTransaction(),
        )
    };
    let job = name.unwrap_or_default();
    let caller = caller();
    check_job_owner(&job, &caller, "FOR KEY SHARE").map_err(report)?;
    if !may_commit {
        return Err(report(UprootError::RunJobCannotCommit {
            in_transaction_block: in_block,
        }));
    }
    let run = as_extension_owner(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO uproot.job_runs (job, run_by) VALUES ($1, $2) RETURNING run_id",
            &[
                DatumWithOid::from(job.as_str()),
                DatumWithOid::from(caller.name.as_str()),
            ],
        )
    });
    Ok(run
        .map_err(spi_report)?
        .expect("INSERT ... RETURNING returns the run_id"))
}

/// The session-level advisory lock that lets one run of a job at a time, across sessions.
const RUN_LOCK: &str =
    "(pg_catalog.hashtext('uproot.run_job'), pg_catalog.hashtext($1::pg_catalog.text))";

/// Take the job's run lock for this session, without waiting. With it, earlier runs of the job
/// that never finished (their session ended, or they were cancelled) are closed in the run log.
/// Returns false when another session's run holds the lock.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_run_claim(run bigint) RETURNS boolean
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_run_claim_wrapper';
COMMENT ON FUNCTION uproot_internal.job_run_claim(bigint) IS
'Internal: take the job''s run lock for this session (false if another run holds it) and close the job''s runs that never finished.';
"#)]
fn job_run_claim(run: Option<i64>) -> Result<bool, ErrorReport> {
    let (run, job, _) = check_run_owner(run, &caller()).map_err(report)?;
    let got = Spi::get_one_with_args::<bool>(
        &format!("SELECT pg_catalog.pg_try_advisory_lock{RUN_LOCK}"),
        &[DatumWithOid::from(job.as_str())],
    );
    if !crate::spi::required(got, "taking a job's run lock").map_err(report)? {
        return Ok(false);
    }
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE uproot.job_runs \
                SET finished_at = pg_catalog.clock_timestamp(), \
                    stop_reason = 'error: the run ended without finishing (session ended or cancelled)' \
              WHERE job OPERATOR(pg_catalog.=) $1 AND stop_reason IS NULL \
                AND run_id OPERATOR(pg_catalog.<>) $2",
            &[DatumWithOid::from(job.as_str()), DatumWithOid::from(run)],
        )
    }).map_err(spi_report)?;
    Ok(true)
}

/// Release the job's run lock that job_run_claim took.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_run_release(run bigint) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_run_release_wrapper';
COMMENT ON FUNCTION uproot_internal.job_run_release(bigint) IS
'Internal: release the job''s run lock taken by job_run_claim.';
"#)]
fn job_run_release(run: Option<i64>) -> Result<(), ErrorReport> {
    let caller = caller();
    let run = run.unwrap_or_default();
    // the run is finished by now: only its job's name is needed, and only its owner may ask
    let job = as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT job, run_by::pg_catalog.text FROM uproot.job_runs WHERE run_id OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[DatumWithOid::from(run)],
            )?
            .first()
            .get_two::<String, String>()
        })
    });
    let (job, run_by) = job.map_err(spi_report)?;
    let (Some(job), Some(run_by)) = (job, run_by) else {
        return Ok(());
    };
    if run_by != caller.name && !caller.superuser {
        return Ok(());
    }
    Spi::connect(|c| {
        c.select(
            &format!("SELECT pg_catalog.pg_advisory_unlock{RUN_LOCK}"),
            None,
            &[DatumWithOid::from(job.as_str())],
        )
        .map(|_| ())
    })
    .map_err(spi_report)?;
    Ok(())
}

/// Record what a run in progress has done so far; with a stop reason, the run is finished
/// (that record is final) and the job's run log is trimmed to its keep_runs newest runs.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.job_run_record(run bigint, batches int, roots bigint, "rows" jsonb, pauses int, paused interval, stop_reason text DEFAULT NULL) RETURNS void
LANGUAGE c VOLATILE CALLED ON NULL INPUT AS 'MODULE_PATHNAME', 'job_run_record_wrapper';
COMMENT ON FUNCTION uproot_internal.job_run_record(bigint, int, bigint, jsonb, int, interval, text) IS
'Internal: write the progress of a run in progress of the calling role''s job to uproot.job_runs; with a stop reason, finish it and trim the job''s run log to keep_runs.';
"#)]
fn job_run_record(
    run: Option<i64>,
    batches: Option<i32>,
    roots: Option<i64>,
    rows: Option<JsonB>,
    pauses: Option<i32>,
    paused: Option<Interval>,
    stop_reason: Option<String>,
) -> Result<(), ErrorReport> {
    let (run, job, keep_runs) = check_run_owner(run, &caller()).map_err(report)?;
    let finish = stop_reason.is_some();
    let args = [
        DatumWithOid::from(run),
        DatumWithOid::from(batches.unwrap_or(0)),
        DatumWithOid::from(roots.unwrap_or(0)),
        DatumWithOid::from(rows.unwrap_or(JsonB(serde_json::json!({})))),
        DatumWithOid::from(pauses.unwrap_or(0)),
        DatumWithOid::from(paused),
        DatumWithOid::from(stop_reason),
    ];
    as_extension_owner(|| {
        Spi::connect_mut(|c| {
            c.update(
                "UPDATE uproot.job_runs \
                    SET batches = $2, roots = $3, \"rows\" = $4, pauses = $5, \
                        paused = COALESCE($6, '0'::pg_catalog.interval), stop_reason = $7, \
                        finished_at = CASE WHEN $7 IS NULL THEN NULL ELSE pg_catalog.clock_timestamp() END \
                  WHERE run_id OPERATOR(pg_catalog.=) $1",
                None,
                &args,
            )?;
            if finish {
                c.update(
                    "DELETE FROM uproot.job_runs r \
                      WHERE r.job OPERATOR(pg_catalog.=) $1 \
                        AND r.run_id OPERATOR(pg_catalog.<) (SELECT pg_catalog.min(k.run_id) FROM ( \
                                SELECT run_id FROM uproot.job_runs \
                                 WHERE job OPERATOR(pg_catalog.=) $1 ORDER BY run_id DESC LIMIT $2) k)",
                    None,
                    &[
                        DatumWithOid::from(job.as_str()),
                        DatumWithOid::from(keep_runs),
                    ],
                )?;
            }
            Ok::<_, pgrx::spi::Error>(())
        })
    }).map_err(spi_report)?;
    Ok(())
}

/// How far the connected standbys are behind, the worst of them: replay_lag (time) and the
/// bytes of WAL written here that they have not replayed yet. Both are NULL without standbys.
/// Read as the extension owner: pg_stat_replication shows these columns only to roles with
/// pg_read_all_stats, and a job role without it must not see "no lag" where there is some.
#[pg_extern(sql = r#"
CREATE FUNCTION uproot_internal.replica_lag() RETURNS TABLE(lag interval, lag_bytes bigint)
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'replica_lag_wrapper';
COMMENT ON FUNCTION uproot_internal.replica_lag() IS
'Internal: the largest replay lag of the standbys in pg_stat_replication, as time (replay_lag) and as bytes of WAL not yet replayed.';
"#)]
fn replica_lag() -> Result<
    TableIterator<'static, (name!(lag, Option<Interval>), name!(lag_bytes, Option<i64>))>,
    ErrorReport,
> {
    // read-only: a run that waits for its standbys must not hold a transaction ID meanwhile
    let got = as_extension_owner(|| {
        Spi::connect(|c| {
            c.select(
                "SELECT pg_catalog.max(s.replay_lag), \
                        pg_catalog.max(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), s.replay_lsn))::bigint \
                   FROM pg_catalog.pg_stat_replication s",
                Some(1),
                &[],
            )?
            .first()
            .get_two::<Interval, i64>()
        })
    });
    Ok(TableIterator::once(got.map_err(spi_report)?))
}
