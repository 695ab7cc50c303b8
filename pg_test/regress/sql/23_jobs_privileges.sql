-- 23_jobs_privileges: who may create, change, run, drop and read jobs
-- A job runs with the privileges of whoever runs it, so only the role that created it (or a
-- superuser) may change, run or drop it, or write its run log. uproot.jobs and uproot.job_runs
-- are not writable by PUBLIC at all: the job functions write them, after checking the caller.
-- Predicates and run-log errors can hold personal data, so each role reads only its own jobs
-- and their runs; members of pg_read_all_data (and superusers) read them all.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
-- no CONTEXT lines: they would print line numbers of the job functions' bodies
\set SHOW_CONTEXT never
CREATE SCHEMA jobpriv;

GRANT USAGE ON SCHEMA jobpriv TO PUBLIC;

-- sessions <- events; sessions 1-6 expired, 7-8 live; 2 events each.
CREATE TABLE jobpriv.sessions (id int PRIMARY KEY, expired boolean NOT NULL);
CREATE TABLE jobpriv.events (id int PRIMARY KEY, session_id int NOT NULL REFERENCES jobpriv.sessions);
CREATE INDEX ON jobpriv.events (session_id);
INSERT INTO jobpriv.sessions SELECT s, s <= 6 FROM generate_series(1, 8) s;
INSERT INTO jobpriv.events SELECT 10 * s + n, s FROM generate_series(1, 8) s, generate_series(1, 2) n;
-- logins 1-4 old, 5 not; archived by a second job.
CREATE TABLE jobpriv.logins (id int PRIMARY KEY, old boolean NOT NULL);
INSERT INTO jobpriv.logins SELECT l, l <= 4 FROM generate_series(1, 5) l;

-- The least-privilege recipe for a role that owns and runs a purge job: the schemas, and on
-- every table of the family SELECT (to find the rows), UPDATE (row locks need it) and DELETE.
-- Nothing on uproot's tables.
CREATE ROLE regress_uproot_job_owner;
GRANT USAGE ON SCHEMA uproot, uproot_internal TO regress_uproot_job_owner;
GRANT USAGE ON SCHEMA jobpriv TO regress_uproot_job_owner;
GRANT SELECT, UPDATE, DELETE ON jobpriv.sessions, jobpriv.events TO regress_uproot_job_owner;
GRANT SELECT, UPDATE, DELETE ON jobpriv.logins TO regress_uproot_job_owner;
-- The archive table of logins is made by the tables' owner (here the superuser), as in a
-- migration; it takes the source's grants.
SELECT source, action FROM uproot.prepare_archive('jobpriv.logins');
-- A second role with the same privileges on the data, and a reader.
CREATE ROLE regress_uproot_job_other;
GRANT USAGE ON SCHEMA uproot, uproot_internal TO regress_uproot_job_other;
GRANT SELECT, UPDATE, DELETE ON jobpriv.sessions, jobpriv.events TO regress_uproot_job_other;
CREATE ROLE regress_uproot_job_reader;
GRANT pg_read_all_data TO regress_uproot_job_reader;

-- PUBLIC may only read the job tables (row-level security decides which rows).
SELECT c.relname, coalesce(string_agg(a.privilege_type, ',' ORDER BY a.privilege_type), '-') AS public_may
  FROM pg_class c
  LEFT JOIN LATERAL aclexplode(c.relacl) a ON a.grantee = 0
 WHERE c.oid IN ('uproot.jobs'::regclass, 'uproot.job_runs'::regclass, 'uproot.job_runs_run_id_seq'::regclass)
 GROUP BY c.relname ORDER BY c.relname;
SELECT relname, relrowsecurity FROM pg_class
 WHERE oid IN ('uproot.jobs'::regclass, 'uproot.job_runs'::regclass) ORDER BY relname;

-- The owner creates a purge job (3 sessions per batch) and runs it.
SET ROLE regress_uproot_job_owner;
SELECT name, created_by FROM uproot.create_job('jobpriv-expired', 'jobpriv.sessions', 'expired',
                                               action => 'purge', batch_roots => 3);
CALL uproot.run_job('jobpriv-expired');
SELECT job, batches, roots, rows, stop_reason, run_by FROM uproot.job_runs ORDER BY run_id;
SELECT array_agg(id ORDER BY id) AS live_sessions FROM jobpriv.sessions;
SELECT name, batch_roots FROM uproot.alter_job('jobpriv-expired', batch_roots => 2);
-- An archive job works the same way.
SELECT name, action FROM uproot.create_job('jobpriv-logins', 'jobpriv.logins', 'old', batch_roots => 3);
CALL uproot.run_job('jobpriv-logins');
SELECT job, batches, roots, rows, stop_reason FROM uproot.job_runs WHERE job = 'jobpriv-logins';
SELECT array_agg(id ORDER BY id) AS archived_logins FROM uproot_archive."jobpriv.logins";
SELECT uproot.drop_job('jobpriv-logins');
-- It may not write the job tables directly, not even its own rows.
\x on
SELECT * FROM regress.error_of($$INSERT INTO uproot.jobs (name, root, predicate, created_by) VALUES ('x', 'jobpriv.sessions', 'true', current_user)$$);
SELECT * FROM regress.error_of($$UPDATE uproot.jobs SET predicate = 'true'$$);
SELECT * FROM regress.error_of($$DELETE FROM uproot.jobs$$);
SELECT * FROM regress.error_of($$INSERT INTO uproot.job_runs (job, run_by) VALUES ('jobpriv-expired', current_user)$$);
SELECT * FROM regress.error_of($$UPDATE uproot.job_runs SET roots = 1000$$);
SELECT * FROM regress.error_of($$DELETE FROM uproot.job_runs$$);
-- Nor rewrite a finished run through the internal helper that run_job uses.
SELECT sql_state, regexp_replace(message, 'run \d+', 'run N') AS message, detail, hint
  FROM regress.error_of(format('SELECT uproot_internal.job_run_record(%s, 99, 99, %L, 0, %L, %L)',
                               (SELECT max(run_id) FROM uproot.job_runs), '{}', '0', 'forged'));
\x off
RESET ROLE;

-- The second role sees neither the job nor its runs ...
SET ROLE regress_uproot_job_other;
SELECT count(*) AS jobs_seen FROM uproot.jobs;
SELECT count(*) AS runs_seen FROM uproot.job_runs;
-- ... and may not change, run or drop it, nor write its run log, whichever way it tries.
\x on
SELECT * FROM regress.error_of($$SELECT uproot.alter_job('jobpriv-expired', predicate => 'true')$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot.drop_job('jobpriv-expired')$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot_internal.job_update('jobpriv-expired', 'true', 'purge', 1, '1 minute', '0', '0', true, 10, 'error', '0', 0)$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot_internal.job_delete('jobpriv-expired')$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot_internal.job_run_start('jobpriv-expired')$$);
SELECT sql_state, message FROM regress.error_of($$INSERT INTO uproot.job_runs (job, run_by) VALUES ('jobpriv-expired', 'regress_uproot_job_owner')$$);
\x off
CALL uproot.run_job('jobpriv-expired');
-- A job of its own by the same name is refused: names are unique across roles.
SELECT * FROM regress.error_of($$SELECT uproot.create_job('jobpriv-expired', 'jobpriv.sessions', 'true')$$);
RESET ROLE;

-- A run in progress can be written only by the role running it: the second role cannot record
-- into the owner's runs. (A run is in progress while finished_at is NULL; this one is made by
-- hand, as the superuser, to have one to aim at.)
INSERT INTO uproot.job_runs (job, run_by) VALUES ('jobpriv-expired', 'regress_uproot_job_owner')
RETURNING run_id AS open_run \gset
SET ROLE regress_uproot_job_other;
SELECT sql_state, message FROM regress.error_of(format('SELECT uproot_internal.job_run_record(%s, 99, 99, %L, 0, %L)', :open_run, '{}', '0'));
SELECT sql_state, message FROM regress.error_of(format('SELECT uproot_internal.job_run_claim(%s)', :open_run));
RESET ROLE;
SELECT batches, roots, stop_reason FROM uproot.job_runs WHERE run_id = :open_run;
DELETE FROM uproot.job_runs WHERE run_id = :open_run;
-- Nothing the second role tried changed the job, its run log or the data.
SELECT name, predicate, batch_roots, created_by FROM uproot.jobs WHERE name LIKE 'jobpriv-%';
SELECT job, batches, roots, stop_reason, run_by FROM uproot.job_runs WHERE job LIKE 'jobpriv-%' ORDER BY run_id;
SELECT array_agg(id ORDER BY id) AS live_sessions FROM jobpriv.sessions;

-- A superuser may run any job (run_by says who did); the owner sees that run too.
UPDATE jobpriv.sessions SET expired = true WHERE id = 7;
CALL uproot.run_job('jobpriv-expired');
SET ROLE regress_uproot_job_owner;
SELECT job, batches, roots, stop_reason, run_by FROM uproot.job_runs ORDER BY run_id;
RESET ROLE;

-- A member of pg_read_all_data reads every job and run, and writes none.
SET ROLE regress_uproot_job_reader;
SELECT name, predicate, created_by FROM uproot.jobs WHERE name LIKE 'jobpriv-%';
SELECT count(*) AS runs_seen FROM uproot.job_runs WHERE job LIKE 'jobpriv-%';
SELECT sql_state, message FROM regress.error_of($$UPDATE uproot.jobs SET enabled = false$$);
SELECT sql_state, message FROM regress.error_of($$SELECT uproot.alter_job('jobpriv-expired', enabled => false)$$);
RESET ROLE;

-- The owner drops its job, and the run log goes with it.
SET ROLE regress_uproot_job_owner;
SELECT uproot.drop_job('jobpriv-expired');
RESET ROLE;
SELECT count(*) AS jobs, (SELECT count(*) FROM uproot.job_runs WHERE job LIKE 'jobpriv-%') AS runs
  FROM uproot.jobs WHERE name LIKE 'jobpriv-%';

-- Clean up.
DELETE FROM uproot.batches WHERE root = 'jobpriv.logins'::regclass;
DROP TABLE uproot_archive."jobpriv.logins";
DELETE FROM uproot.archive_tables WHERE source = 'jobpriv.logins'::regclass;
DROP SCHEMA jobpriv CASCADE;
REVOKE ALL ON SCHEMA uproot, uproot_internal FROM regress_uproot_job_owner, regress_uproot_job_other;
DROP ROLE regress_uproot_job_owner, regress_uproot_job_other, regress_uproot_job_reader;
