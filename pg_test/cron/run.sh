#!/usr/bin/env bash
# pg_cron end-to-end test: a throwaway PostgreSQL with pg_cron preloaded runs
# CALL uproot.run_job('test-job') on a schedule; the job must archive every old family. Then a
# drain job of an async relation whose child lives in a second database (postgres_fdw) runs
# under pg_cron, is killed mid-batch, and pg_cron's next run finishes the work.
# Run as root (the server runs as postgres):  bash pg_test/cron/run.sh
# scripts/test.sh runs it once per version with PG_BIN (that version's bin directory, with
# pg_cron and pg_uproot installed), UPROOT_WORK (a directory of its own) and UPROOT_PORT set;
# alone, it uses Debian's PostgreSQL 15 (pg_cron 1.4.2).
# The schedule is every minute: this takes up to about four minutes.
# The server settings and SQL are postgresql.conf, schedule.sql and schedule_drain.sql next to this script,
# exactly as pg_test/cron/README.md shows them (checked below).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATA=${UPROOT_WORK:-/tmp/pg_uproot_cron}/data
PORT=${UPROOT_PORT:-5685}
DB=uproot_cron
CI_DB=uproot_ci
WAIT_SECONDS=130

fail() { echo "FAIL: $*"; [ -f "$DATA/server.log" ] && tail -n 20 "$DATA/server.log"; exit 1; }
sql() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h /tmp -p "$PORT" -U postgres -d "$DB" "$@"; }
sql_ci() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h /tmp -p "$PORT" -U postgres -d "$CI_DB" "$@"; }

# Both READMEs (this one and the project's "Scheduling with pg_cron") must show the same
# settings and SQL as this test uses, line for line.
for readme in "$HERE/README.md" "$HERE/../../README.md"; do
    for f in postgresql.conf schedule.sql schedule_drain.sql; do
        while IFS= read -r line; do
            [ -z "$line" ] && continue
            grep -qxF -- "$line" "$readme" || fail "$readme lacks this line of $f: $line"
        done < "$HERE/$f"
    done
done

# A fresh cluster, always stopped at the end.
stop() { [ -f "$DATA/postmaster.pid" ] && sudo -u postgres "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1; true; }
stop
trap stop EXIT
rm -rf "$DATA"
install -d -m 755 "$(dirname "$DATA")"
install -d -o postgres "$DATA"
sudo -u postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
cat "$HERE/postgresql.conf" >> "$DATA/postgresql.conf"
sudo -u postgres "$BIN/pg_ctl" -D "$DATA" -o "-p $PORT -k /tmp -c listen_addresses=''" \
    -l "$DATA/server.log" -w start >/dev/null
"$BIN/createdb" -h /tmp -p "$PORT" -U postgres "$DB"

# Families to archive: 1,200 orders older than a year and 300 recent ones, 2 items each.
sql <<'SQL'
CREATE TABLE orders (id int PRIMARY KEY, placed timestamptz NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE INDEX ON items (order_id);
INSERT INTO orders SELECT o, CASE WHEN o <= 1200 THEN now() - interval '2 years' ELSE now() END
  FROM generate_series(1, 1500) o;
INSERT INTO items SELECT 2 * o + n, o FROM generate_series(1, 1500) o, generate_series(0, 1) n;
SQL
sql -f "$HERE/schedule.sql" >/dev/null
start=$(date +%s)

# The cross-database story, scheduled in the same minute: projects here, their ci_builds in a
# second database, reached through a postgres_fdw foreign table. 8 projects with 5 builds each;
# an async cascade relation; projects 1 and 2 purged by pg_uproot and project 3 deleted by a
# plain DELETE (all three queued); a drain job, 2 keys per batch, run by pg_cron every minute.
"$BIN/createdb" -h /tmp -p "$PORT" -U postgres "$CI_DB"
sql_ci <<'SQL'
CREATE TABLE ci_builds (id int PRIMARY KEY, project_id int NOT NULL, status text);
CREATE INDEX ON ci_builds (project_id);
INSERT INTO ci_builds SELECT b, 1 + b % 8, 'ok' FROM generate_series(1, 40) b;
SQL
sql >/dev/null <<SQL
CREATE EXTENSION postgres_fdw;
CREATE SERVER uproot_ci FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname '$CI_DB', host '/tmp', port '$PORT');
CREATE USER MAPPING FOR postgres SERVER uproot_ci;
CREATE FOREIGN TABLE ci_builds (id int, project_id int, status text) SERVER uproot_ci OPTIONS (schema_name 'public', table_name 'ci_builds');
CREATE TABLE projects (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO projects SELECT p, 'p' || p FROM generate_series(1, 8) p;
SQL
sql -f "$HERE/schedule_drain.sql" >/dev/null
sql >/dev/null <<'SQL'
SELECT * FROM uproot.purge_where('projects', 'id IN (1, 2)');
DELETE FROM projects WHERE id = 3;
SQL

# Wait for cron's first run of the job to finish.
status=
while [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ]; do
    status=$(sql -c "SELECT d.status || ' ' || coalesce(d.return_message, '')
                       FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                      WHERE j.jobname = 'uproot-test' ORDER BY d.runid LIMIT 1")
    case "$status" in
        succeeded*) break ;;
        failed*) fail "cron run failed: $status" ;;
    esac
    sleep 2
done
case "$status" in succeeded*) ;; *) fail "no successful cron run after ${WAIT_SECONDS}s (last status: '${status:-none}')" ;; esac
echo "cron ran the job after $(( $(date +%s) - start ))s: $status"

# The old families are archived, whole; the recent ones are live; the run log has the run.
got=$(sql -F ' ' <<'SQL'
SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM items),
       (SELECT count(*) FROM uproot_archive."public.orders"), (SELECT count(*) FROM uproot_archive."public.items"),
       (SELECT count(*) FROM orders WHERE placed < now() - interval '1 year'),
       (SELECT count(*) FROM items i WHERE NOT EXISTS (SELECT FROM orders o WHERE o.id = i.order_id));
SELECT batches, roots, rows, stop_reason FROM uproot.job_runs WHERE job = 'test-job' ORDER BY run_id LIMIT 1;
SQL
)
want='300 600 1200 2400 0 0
3 1200 {"public.items archived": 2400, "public.orders archived": 1200} done'
echo "$got"
[ "$got" = "$want" ] || fail "expected:"$'\n'"$want"
echo "PASS: pg_cron ran CALL uproot.run_job('test-job'), which archived 1200 families in 3 batches"

# The drain job's runs: wait for one that succeeded once the queue is empty. (Its first run may
# come before the deletes were queued; the checks sum over the runs.)
drained=
while [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ]; do
    drained=$(sql -c "SELECT d.status || ' ' || coalesce(d.return_message, '')
                        FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                       WHERE j.jobname = 'uproot-drain' AND d.status IN ('succeeded', 'failed')
                         AND (SELECT pending FROM uproot.async_lag() WHERE relation = 'ci_builds_project') = 0
                       ORDER BY d.runid DESC LIMIT 1")
    case "$drained" in succeeded*) break ;; failed*) fail "cron's drain run failed: $drained" ;; esac
    sleep 2
done
case "$drained" in succeeded*) ;; *) fail "no successful cron run of the drain after ${WAIT_SECONDS}s" ;; esac
echo "cron ran the drain job after $(( $(date +%s) - start ))s: $drained"
# No build of projects 1-3 is left over there, the others' are all there; nothing is queued;
# the run log has 3 keys and 15 builds, every run done.
got=$(sql -F ' ' <<'SQL'
SELECT relation, pending, oldest_pending IS NULL FROM uproot.async_lag();
SELECT sum(roots), sum((rows->>'public.ci_builds deleted')::int), bool_and(stop_reason = 'done') FROM uproot.job_runs WHERE job = 'ci-builds-drain';
SQL
)
got="$got"$'\n'$(sql_ci -F ' ' -c "SELECT array_agg(DISTINCT project_id ORDER BY project_id), count(*) FROM ci_builds")
want='ci_builds_project 0 t
3 15 t
{4,5,6,7,8} 25'
echo "$got"
[ "$got" = "$want" ] || fail "expected:"$'\n'"$want"
echo "PASS: pg_cron ran CALL uproot.run_job('ci-builds-drain'), which deleted the 15 builds of 3 deleted projects in the other database"

# ---------------------------------------------------------------------------------------------
# A run that fails is a failed run in pg_cron too. (The run above also shows that run_job's
# check "may this CALL commit?" holds under pg_cron: it ran, and committed batch by batch.)
# run_job ends in an ERROR once its run log is committed, so cron.job_run_details says failed,
# with uproot's message. A purge job over 10 closed tickets, 5 per batch; a trigger refuses to
# delete the note of ticket 7: the first batch (tickets 1-5) commits, the second fails.
#
# In the same minute, a drain killed mid-batch. Projects 4 and 5 are purged and 6 deleted (3 more
# keys); the fail point drain_changed:sleep makes the drain's first batch wait after it deleted
# the builds over there and before it unqueues the keys, where the test terminates pg_cron's
# worker (pg_terminate_backend), as a crash or an OOM kill would.
sql >/dev/null <<'SQL'
SELECT cron.unschedule('uproot-drain');
SELECT * FROM uproot.purge_where('projects', 'id IN (4, 5)');
DELETE FROM projects WHERE id = 6;
ALTER DATABASE uproot_cron SET uproot.debug_fail_at = 'drain_changed:sleep';
SELECT cron.schedule('uproot-drain', '* * * * *', $$CALL uproot.run_job('ci-builds-drain')$$);
SQL
sql >/dev/null <<'SQL'
SELECT cron.unschedule('uproot-test');
CREATE TABLE tickets (id int PRIMARY KEY, closed boolean NOT NULL);
CREATE TABLE ticket_notes (id int PRIMARY KEY, ticket_id int NOT NULL REFERENCES tickets);
CREATE INDEX ON ticket_notes (ticket_id);
INSERT INTO tickets SELECT t, true FROM generate_series(1, 10) t;
INSERT INTO ticket_notes SELECT t, t FROM generate_series(1, 10) t;
CREATE FUNCTION refuse_note_7() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.ticket_id = 7 THEN
    RAISE EXCEPTION 'injected fault: note of ticket 7';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER refuse_note_7 BEFORE DELETE ON ticket_notes FOR EACH ROW EXECUTE FUNCTION refuse_note_7();
SELECT name FROM uproot.create_job('failing-job', 'tickets', 'closed', action => 'purge', batch_roots => 5);
SELECT cron.schedule('uproot-failing', '* * * * *', $$CALL uproot.run_job('failing-job')$$);
SQL
start=$(date +%s)

# The drain's batch is in the fail point once its remote transaction has deleted rows (it holds
# a transaction ID, idle in transaction) while the batch runs here: kill it there.
victim=
while [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ]; do
    victim=$(sql -c "SELECT a.pid FROM pg_stat_activity a
                      WHERE a.application_name = 'uproot job ci-builds-drain: batch 1'
                        AND EXISTS (SELECT FROM pg_stat_activity r WHERE r.datname = '$CI_DB'
                                       AND r.state = 'idle in transaction' AND r.backend_xid IS NOT NULL)")
    [ -n "$victim" ] && break
    sleep 0.5
done
[ -n "$victim" ] || fail "the drain never reached its fail point after ${WAIT_SECONDS}s"
sql -c "SELECT pg_terminate_backend($victim)" >/dev/null
sql -c "ALTER DATABASE uproot_cron RESET uproot.debug_fail_at"
# wait for the killed worker and its remote session to be gone
for _ in $(seq 1 100); do
    left=$(sql -c "SELECT count(*) FROM pg_stat_activity WHERE pid = $victim
                      OR (datname = '$CI_DB' AND backend_xid IS NOT NULL)")
    [ "$left" = 0 ] && break
    sleep 0.2
done
[ "$left" = 0 ] || fail "the killed drain (pid $victim) or its remote transaction is still there"
echo "killed pg_cron's drain run (pid $victim) between its remote delete and its queue update"
# Nothing was lost: the 3 keys are still queued, the 15 builds of projects 4-6 are still there
# (the remote delete was rolled back with the killed transaction), and the run log shows the
# run that never finished.
killed_run=$(sql -c "SELECT max(run_id) FROM uproot.job_runs WHERE job = 'ci-builds-drain'")
got=$(sql -F ' ' <<SQL
SELECT relation, pending FROM uproot.async_lag();
SELECT batches, roots, stop_reason IS NULL, finished_at IS NULL FROM uproot.job_runs WHERE run_id = $killed_run;
SQL
)
got="$got"$'\n'$(sql_ci -F ' ' -c "SELECT array_agg(DISTINCT project_id ORDER BY project_id), count(*) FROM ci_builds")
want='ci_builds_project 3
0 0 t t
{4,5,6,7,8} 25'
echo "$got"
[ "$got" = "$want" ] || fail "expected:"$'\n'"$want"
# pg_cron records the killed run as failed.
for _ in $(seq 1 50); do
    kill_cron=$(sql -c "SELECT d.runid || ' ' || d.status || ' ' || coalesce(d.return_message, '')
                          FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                         WHERE j.jobname = 'uproot-drain' ORDER BY d.runid DESC LIMIT 1")
    case "$kill_cron" in *" failed"*) break ;; esac
    sleep 0.2
done
echo "pg_cron's record of the killed run: $kill_cron"
case "$kill_cron" in *" failed"*) ;; *) fail "pg_cron should record the killed run as failed" ;; esac
echo "PASS: the drain killed mid-batch lost nothing and changed nothing"

status=
while [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ]; do
    status=$(sql -c "SELECT d.status || ' ' || coalesce(d.return_message, '')
                       FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                      WHERE j.jobname = 'uproot-failing' ORDER BY d.runid LIMIT 1")
    case "$status" in succeeded*|failed*) break ;; esac
    sleep 2
done
echo "cron ran the failing job after $(( $(date +%s) - start ))s: $status"
case "$status" in
    "failed "*"uproot: job failing-job failed in batch 2: injected fault: note of ticket 7"*) ;;
    *) fail "pg_cron should record the run as failed, with uproot's message (last status: '${status:-none}')" ;;
esac

# The run log has the committed row with the error; the first batch stays done.
got=$(sql -F ' ' <<'SQL'
SELECT batches, roots, rows, stop_reason, finished_at IS NOT NULL FROM uproot.job_runs WHERE job = 'failing-job' ORDER BY run_id LIMIT 1;
SELECT array_agg(id ORDER BY id) FROM tickets;
SQL
)
want='1 5 {"public.tickets deleted": 5, "public.ticket_notes deleted": 5} error: injected fault: note of ticket 7 t
{6,7,8,9,10}'
echo "$got"
[ "$got" = "$want" ] || fail "expected:"$'\n'"$want"
echo "PASS: a run of CALL uproot.run_job('failing-job') whose batch failed is 'failed' in cron.job_run_details, and its run log row says why"

# ---------------------------------------------------------------------------------------------
# The rerun: pg_cron's next run of the drain (a minute after the killed one) closes the killed
# run in the log and does the work once.
start=$(date +%s)
rerun=
while [ $(( $(date +%s) - start )) -lt "$WAIT_SECONDS" ]; do
    rerun=$(sql -c "SELECT d.status || ' ' || coalesce(d.return_message, '')
                      FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                     WHERE j.jobname = 'uproot-drain' AND d.runid > ${kill_cron%% *}
                       AND d.status IN ('succeeded', 'failed')
                     ORDER BY d.runid LIMIT 1")
    case "$rerun" in succeeded*) break ;; failed*) fail "cron's rerun of the drain failed: $rerun" ;; esac
    sleep 2
done
case "$rerun" in succeeded*) ;; *) fail "no successful rerun of the drain after ${WAIT_SECONDS}s" ;; esac
echo "cron reran the drain job after $(( $(date +%s) - start ))s: $rerun"
# Only the builds of projects 7 and 8 are left; the queue is empty; the killed run is closed as
# such, and the rerun handled the 3 keys and deleted the 15 builds: every build exactly once.
got=$(sql -F ' ' <<SQL
SELECT relation, pending, oldest_pending IS NULL FROM uproot.async_lag();
SELECT batches, roots, rows, stop_reason FROM uproot.job_runs WHERE job = 'ci-builds-drain' AND run_id >= $killed_run ORDER BY run_id LIMIT 2;
SQL
)
got="$got"$'\n'$(sql_ci -F ' ' -c "SELECT array_agg(DISTINCT project_id ORDER BY project_id), count(*) FROM ci_builds")
want='ci_builds_project 0 t
0 0 {} error: the run ended without finishing (session ended or cancelled)
2 3 {"public.ci_builds deleted": 15} done
{7,8} 10'
echo "$got"
[ "$got" = "$want" ] || fail "expected:"$'\n'"$want"
echo "PASS: pg_cron's next run of the drain job finished the killed batch's work, once: no build of a deleted project is left in $CI_DB"
