#!/usr/bin/env bash
# Jobs do not hurt replicas: a job with max_replica_lag_bytes or max_replica_lag pauses while a
# real streaming standby is too far behind, carries on when the standby catches up, and stops
# with stop reason 'replica lag' when the lag outlasts the run's max_runtime.
#
# A primary and a standby made with pg_basebackup -R, both on Unix sockets in /tmp. The standby
# is made to lag by pausing its replay (pg_wal_replay_pause()). What the primary then sees in
# pg_stat_replication (checked by hand on PostgreSQL 15 before choosing the measures):
#   - replay_lsn stays where replay stopped, so pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)
#     grows with every byte of WAL the primary writes, at once;
#   - replay_lag grows with wall-clock time, updated at each reply of the standby (whenever WAL
#     arrives, and every wal_receiver_status_interval, here 1s), even while the primary is idle;
#   - after pg_wal_replay_resume() both drop (to 0 bytes, and NULL) at the standby's next reply.
# So both measures really grow while replay is paused; the job takes either limit, or both.
#
# Contract (scripts/test.sh, suite ops): PG_BIN, UPROOT_ROOT, UPROOT_WORK (an empty directory of
# our own) and UPROOT_PORT (we use it and the next port) come from the environment. Every wait is
# bounded; the clusters are always stopped at the end.
set -euo pipefail

GIVEN_PG_BIN=${PG_BIN:?PG_BIN must name the PostgreSQL bin directory}
# shellcheck source=scripts/lib.sh disable=SC1091
. "${UPROOT_ROOT:?}/scripts/lib.sh"
PG_BIN=$GIVEN_PG_BIN
WORK=${UPROOT_WORK:?}
P_PORT=${UPROOT_PORT:?}
S_PORT=$((P_PORT + 1))
PRIMARY=$WORK/primary
STANDBY=$WORK/standby
JOB_OUT=$WORK/job.out

cleanup() {
    [ -z "${job_pid:-}" ] || kill "$job_pid" 2>/dev/null || true
    pg_stop_under "$WORK" >/dev/null
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*"
    for log in "$PRIMARY/server.log" "$STANDBY/server.log"; do
        echo "---- tail of $log"
        as_postgres tail -n 15 "$log" 2>/dev/null || true
    done
    exit 1
}
pass() { echo "ok - $*"; }

primary() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$P_PORT" -U postgres -d postgres "$@"; }
standby() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$S_PORT" -U postgres -d postgres "$@"; }

# wait_until SECONDS WHAT PSQL-FUNCTION SQL: poll SQL until it returns t, at most SECONDS.
wait_until() {
    local seconds=$1 what=$2 conn=$3 sql=$4 i
    for ((i = 0; i < seconds * 5; i++)); do
        [ "$($conn -c "$sql" 2>/dev/null || true)" = t ] && return 0
        sleep 0.2
    done
    fail "waited ${seconds}s for $what"
}

# expect WHAT GOT WANT
expect() {
    [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"
    pass "$1: $2"
}

# run_in_background JOB: CALL uproot.run_job(JOB) in its own session; job_pid is its psql.
run_in_background() {
    primary -c "CALL uproot.run_job('$1')" >"$JOB_OUT" 2>&1 &
    job_pid=$!
}

# wait_for_job SECONDS: the background run ends within SECONDS; sets job_rc to psql's status.
wait_for_job() {
    local i
    for ((i = 0; i < $1 * 5; i++)); do
        if ! kill -0 "$job_pid" 2>/dev/null; then
            job_rc=0
            wait "$job_pid" || job_rc=$?
            job_pid=
            return 0
        fi
        sleep 0.2
    done
    fail "the run did not end within $1s"
}

# last_run JOB: batches, roots, pauses, whole seconds paused, stop reason, finished
last_run() {
    primary -F ' ' -c "SELECT batches, roots, pauses, extract(epoch FROM paused)::int, coalesce(stop_reason, '-'),
                              finished_at IS NOT NULL
                         FROM uproot.job_runs WHERE job = '$1' ORDER BY run_id DESC LIMIT 1"
}

LAG_BYTES="SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication"

# ---------------------------------------------------------------------------------------------
# A primary and its streaming standby.
pg_cluster_start "$PRIMARY" "$P_PORT"
as_postgres "$PG_BIN/pg_basebackup" -h "$PG_SOCKDIR" -p "$P_PORT" -U postgres -D "$STANDBY/data" \
    -R -X stream -c fast >/dev/null || fail "pg_basebackup failed"
as_postgres "$PG_BIN/pg_ctl" -D "$STANDBY/data" -l "$STANDBY/server.log" -w -t 60 start -o \
    "-p $S_PORT -k $PG_SOCKDIR -c listen_addresses='' -c hot_standby=on -c wal_receiver_status_interval=1s" \
    >/dev/null || fail "the standby did not start"
wait_until 30 "the standby to stream" primary \
    "SELECT count(*) = 1 FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
pass "a standby streams from the primary"

# 30 old orders with 2 items each, and 10 recent ones; jobs take 10 old orders per batch.
primary >/dev/null <<'SQL'
CREATE EXTENSION pg_uproot;
CREATE TABLE orders (id int PRIMARY KEY, old boolean NOT NULL);
CREATE TABLE items (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders);
CREATE INDEX ON items (order_id);
INSERT INTO orders SELECT o, o <= 30 FROM generate_series(1, 40) o;
INSERT INTO items SELECT 2 * o + n, o FROM generate_series(1, 40) o, generate_series(0, 1) n;
SELECT count(*) FROM uproot.prepare_archive('orders');
SELECT name FROM uproot.create_job('lag-bytes', 'orders', 'old', batch_roots => 10,
                                   max_replica_lag_bytes => 200000, max_runtime => '2 minutes');
SQL
wait_until 30 "the standby to catch up" primary "SELECT ($LAG_BYTES) = 0"

# 1. Byte lag. Replay is paused and the primary writes about 1 MB of WAL: the standby is behind
#    by more than the job's 200 kB before the run starts. The run pauses before its first batch,
#    says so in the run log and in pg_stat_activity, and commits nothing while paused.
standby -c "SELECT pg_wal_replay_pause()" >/dev/null
wait_until 10 "replay to pause" standby "SELECT pg_get_wal_replay_pause_state() = 'paused'"
primary -c "CREATE TABLE filler AS SELECT g, repeat('x', 20) AS pad FROM generate_series(1, 20000) g"
wait_until 10 "the byte lag to pass 200 kB" primary "SELECT ($LAG_BYTES) > 200000"
pass "replay paused: the standby is $(primary -c "$LAG_BYTES") bytes behind"

run_in_background lag-bytes
wait_until 20 "the run to record a pause" primary \
    "SELECT pauses = 1 AND finished_at IS NULL FROM uproot.job_runs WHERE job = 'lag-bytes' ORDER BY run_id DESC LIMIT 1"
expect "while paused, pg_stat_activity shows" \
    "$(primary -c "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'uproot job %'")" \
    "uproot job lag-bytes: paused for replica lag"
expect "while paused, the run holds no transaction ID (vacuum need not wait for it)" \
    "$(primary -c "SELECT backend_xid IS NULL FROM pg_stat_activity WHERE application_name LIKE 'uproot job %'")" "t"
sleep 3
kill -0 "$job_pid" 2>/dev/null || fail "the run ended while replay was paused: $(cat "$JOB_OUT")"
expect "after 3s more: batches, roots, pauses, seconds paused so far (recorded at the pause), stop reason, finished" \
    "$(last_run lag-bytes)" "0 0 1 0 - f"
expect "archived orders while paused" "$(primary -c 'SELECT count(*) FROM uproot_archive."public.orders"')" "0"

# Replay resumes: the standby catches up, the run carries on and archives the 30 old families.
standby -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_for_job 60
expect "the run's exit status after replay resumed" "$job_rc" "0"
read -r batches roots pauses paused reason finished <<<"$(last_run lag-bytes)"
expect "batches, roots, pauses, stop reason, finished" "$batches $roots $pauses $reason $finished" "3 30 1 done t"
[ "$paused" -ge 3 ] || fail "the run log says it paused ${paused}s; it was paused at least 3s"
pass "the run log has the pause's length: ${paused}s"
expect "live orders, archived orders and items" \
    "$(primary -F ' ' -c 'SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM uproot_archive."public.orders"),
                                (SELECT count(*) FROM uproot_archive."public.items")')" "10 30 60"

# 2. Time lag that outlasts the budget. 20 more old orders; replay is paused again, and the
#    standby's replay_lag passes the job's limit of 1 second. The run (budget 4 seconds) pauses
#    before its first batch and stops at the end of its budget with 'replica lag': an ERROR
#    (on_error 'error', the default), after the run log is committed. Nothing is archived.
primary >/dev/null <<'SQL'
INSERT INTO orders SELECT o, true FROM generate_series(101, 120) o;
INSERT INTO items SELECT 2 * o + n, o FROM generate_series(101, 120) o, generate_series(0, 1) n;
SELECT name FROM uproot.create_job('lag-time', 'orders', 'old', batch_roots => 10,
                                   max_replica_lag => '1 second', max_runtime => '4 seconds');
SQL
wait_until 30 "the standby to catch up" primary "SELECT ($LAG_BYTES) = 0"
standby -c "SELECT pg_wal_replay_pause()" >/dev/null
wait_until 10 "replay to pause" standby "SELECT pg_get_wal_replay_pause_state() = 'paused'"
primary -c "INSERT INTO filler SELECT g, 'y' FROM generate_series(1, 1000) g"
wait_until 20 "replay_lag to pass 1 second" primary \
    "SELECT replay_lag > interval '1 second' FROM pg_stat_replication"
pass "replay paused: replay_lag is $(primary -c "SELECT replay_lag FROM pg_stat_replication")"

start=$SECONDS
rc=0
timeout 60 "$PG_BIN/psql" -X -q -At -h "$PG_SOCKDIR" -p "$P_PORT" -U postgres -d postgres \
    -c "CALL uproot.run_job('lag-time')" >"$JOB_OUT" 2>&1 || rc=$?
took=$((SECONDS - start))
expect "the run's exit status (psql: 1 for an ERROR)" "$rc" "1"
grep -q "ERROR:  uproot: job lag-time stopped: a standby stayed too far behind until the time budget (max_runtime 00:00:04) was spent" "$JOB_OUT" \
    || fail "the run did not end with the replica lag error: $(cat "$JOB_OUT")"
pass "the run ended in: $(grep ERROR "$JOB_OUT")"
{ [ "$took" -ge 3 ] && [ "$took" -le 12 ]; } || fail "the run took ${took}s; its budget is 4s"
pass "it stopped after ${took}s (budget 4s)"
read -r batches roots pauses paused reason finished <<<"$(last_run lag-time)"
expect "batches, roots, pauses, stop reason, finished" "$batches $roots $pauses $reason $finished" "0 0 1 replica lag t"
{ [ "$paused" -ge 3 ] && [ "$paused" -le 5 ]; } || fail "the run log says it paused ${paused}s; expected about 4s"
pass "the run log has the pause's length: ${paused}s"

# With on_error => 'warn' the same stop ends in a WARNING, and the CALL succeeds.
primary -c "SELECT on_error FROM uproot.alter_job('lag-time', on_error => 'warn')" >/dev/null
rc=0
timeout 60 "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$P_PORT" -U postgres -d postgres \
    -c "CALL uproot.run_job('lag-time')" >"$JOB_OUT" 2>&1 || rc=$?
expect "with on_error 'warn', the run's exit status" "$rc" "0"
grep -q "WARNING:  uproot: job lag-time stopped: a standby stayed too far behind" "$JOB_OUT" \
    || fail "no replica lag warning: $(cat "$JOB_OUT")"
expect "its stop reason" "$(last_run lag-time | cut -d' ' -f5-6)" "replica lag"
expect "old orders still live" "$(primary -c 'SELECT count(*) FROM orders WHERE old')" "20"

# Once the standby catches up, the job takes them.
standby -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_until 30 "the standby to catch up" primary "SELECT ($LAG_BYTES) = 0 AND replay_lag IS NULL FROM pg_stat_replication"
primary -c "CALL uproot.run_job('lag-time')"
expect "after replay resumed: batches, roots, pauses, seconds paused, stop reason, finished" \
    "$(last_run lag-time)" "2 20 0 0 done t"
echo "PASS: replica_lag"
