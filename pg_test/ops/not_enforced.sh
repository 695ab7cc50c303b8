#!/usr/bin/env bash
# PostgreSQL 18's NOT ENFORCED foreign keys: PostgreSQL runs no ON DELETE action for them, so
# uproot must not leave the work to the native cascade. preview and purge agree, and no row
# is left referencing a purged parent. (On PostgreSQL before 18 there is no such key: skipped.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=pg_test/ops/lib/cluster.sh
. "$here/lib/cluster.sh"

port=$UPROOT_PORT
db=not_enforced
trap 'cluster_stop data' EXIT
cluster_start data "$port"
"$PG_BIN/createdb" -h /tmp -p "$port" -U postgres "$db"
if [ "$(q "$port" "$db" -c "SELECT current_setting('server_version_num')::int >= 180000")" != t ]; then
    echo "skipped: NOT ENFORCED foreign keys need PostgreSQL 18"
    exit 0
fi
q "$port" "$db" <<'SQL' >/dev/null
CREATE EXTENSION pg_uproot;
CREATE TABLE projects (id int PRIMARY KEY);
-- an all-CASCADE tree: without the check, uproot would hand it to the native cascade
CREATE TABLE builds (id int PRIMARY KEY, project_id int REFERENCES projects ON DELETE CASCADE NOT ENFORCED);
CREATE TABLE logs (id int PRIMARY KEY, build_id int REFERENCES builds ON DELETE CASCADE);
INSERT INTO projects VALUES (1), (2);
INSERT INTO builds VALUES (10, 1), (11, 1), (20, 2);
INSERT INTO logs VALUES (100, 10), (101, 11), (200, 20);
SQL
expect "graph follows the NOT ENFORCED key" "follow" \
    "$(q "$port" "$db" -c "SELECT disposition FROM uproot.graph('projects') WHERE child = 'builds'::regclass")"
expect "preview counts its rows" "projects:1 builds:2 logs:2" \
    "$(q "$port" "$db" -c "SELECT string_agg(relation || ':' || rows, ' ' ORDER BY depth, relation::text) FROM uproot.preview('projects', 1) WHERE action = 'deleted'")"
expect "purge deletes them" "projects:1 builds:2 logs:2" \
    "$(q "$port" "$db" -c "SELECT string_agg(relation || ':' || rows, ' ' ORDER BY relation::text = 'projects' DESC, relation::text) FROM uproot.purge('projects', 1) WHERE action = 'deleted'")"
expect "no row is left referencing the purged project" "0|1|1" \
    "$(q "$port" "$db" -c "SELECT (SELECT count(*) FROM builds WHERE project_id = 1), (SELECT count(*) FROM builds), (SELECT count(*) FROM logs)")"
echo "not_enforced: all checks passed"
