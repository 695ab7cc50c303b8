#!/usr/bin/env bash
# pg_cron end-to-end test: a throwaway PostgreSQL with pg_cron preloaded runs
# CALL uproot.run_job('test-job') on a schedule; the job must archive every old family.
# Run as root (the server runs as postgres):  bash pg_test/cron/run.sh
# scripts/test.sh runs it once per version with PG_BIN (that version's bin directory, with
# pg_cron and pg_uproot installed), UPROOT_WORK (a directory of its own) and UPROOT_PORT set;
# alone, it uses Debian's PostgreSQL 15 (pg_cron 1.4.2).
# The schedule is every minute: this takes up to about 70 seconds.
# The server settings and SQL are postgresql.conf and schedule.sql next to this script,
# exactly as pg_test/cron/README.md shows them (checked below).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DATA=${UPROOT_WORK:-/tmp/pg_uproot_cron}/data
PORT=${UPROOT_PORT:-5685}
DB=uproot_cron
WAIT_SECONDS=130

fail() { echo "FAIL: $*"; [ -f "$DATA/server.log" ] && tail -n 20 "$DATA/server.log"; exit 1; }
sql() { "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h /tmp -p "$PORT" -U postgres -d "$DB" "$@"; }

# Both READMEs (this one and the project's "Scheduling with pg_cron") must show the same
# settings and SQL as this test uses, line for line.
for readme in "$HERE/README.md" "$HERE/../../README.md"; do
    for f in postgresql.conf schedule.sql; do
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

# ---------------------------------------------------------------------------------------------
# A run that fails is a failed run in pg_cron too. (The run above also shows that run_job's
# check "may this CALL commit?" holds under pg_cron: it ran, and committed batch by batch.)
# run_job ends in an ERROR once its run log is committed, so cron.job_run_details says failed,
# with uproot's message. A purge job over 10 closed tickets, 5 per batch; a trigger refuses to
# delete the note of ticket 7: the first batch (tickets 1-5) commits, the second fails.
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
