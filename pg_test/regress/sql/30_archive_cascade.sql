-- 30_archive_cascade: ON DELETE CASCADE never deletes a row that was not archived
-- On a schema of CASCADE foreign keys, deleting the roots alone would make PostgreSQL delete
-- the whole family. archive() must have every one of those rows in the archive: what
-- disappears from the live tables is exactly what appears in the archive tables, row for
-- row. Rows reached by two paths are archived once.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA acascade;
SET search_path = acascade;

-- folders (a tree, CASCADE) <- files (CASCADE) <- chunks (CASCADE)
--                                               <- tags (CASCADE, composite key)
--                                               <- links (CASCADE from two files: a diamond)
--                                               <- shares (SET NULL: detached, not archived)
CREATE TABLE folders (id int PRIMARY KEY, parent_id int REFERENCES folders ON DELETE CASCADE);
CREATE TABLE files (id int PRIMARY KEY, folder_id int NOT NULL REFERENCES folders ON DELETE CASCADE);
CREATE TABLE chunks (id int PRIMARY KEY, file_id int NOT NULL REFERENCES files ON DELETE CASCADE);
CREATE TABLE tags (file_id int REFERENCES files ON DELETE CASCADE, tag text, PRIMARY KEY (file_id, tag));
CREATE TABLE links (id int PRIMARY KEY,
                    from_file int NOT NULL REFERENCES files ON DELETE CASCADE,
                    to_file int NOT NULL REFERENCES files ON DELETE CASCADE);
CREATE TABLE shares (id int PRIMARY KEY, file_id int REFERENCES files ON DELETE SET NULL);
-- Folder trees 1 <- 2 <- 3 and 4 <- 5; two files per folder, three chunks per file, two
-- tags per file; links within tree 1, and one (link 4) from tree 1 into tree 4.
INSERT INTO folders VALUES (1, NULL), (2, 1), (3, 2), (4, NULL), (5, 4);
INSERT INTO files SELECT 10 * f + n, f FROM generate_series(1, 5) f, generate_series(1, 2) n;
INSERT INTO chunks SELECT 10 * id + n, id FROM files, generate_series(1, 3) n;
INSERT INTO tags SELECT id, t FROM files, unnest('{red,blue}'::text[]) t;
INSERT INTO links VALUES (1, 11, 21), (2, 21, 11), (3, 31, 32), (4, 12, 41);
INSERT INTO shares SELECT id, id FROM files;

-- live(), archived(): every row as (table, key), so that the two can be compared.
CREATE FUNCTION live() RETURNS TABLE (relation text, key text) LANGUAGE sql AS $$
  SELECT 'folders', id::text FROM folders
  UNION ALL SELECT 'files', id::text FROM files
  UNION ALL SELECT 'chunks', id::text FROM chunks
  UNION ALL SELECT 'tags', file_id || '/' || tag FROM tags
  UNION ALL SELECT 'links', id::text FROM links
  UNION ALL SELECT 'shares', id::text FROM shares
$$;
-- shares only detach: they get no archive table.
SELECT source, archive, action FROM uproot.prepare_archive('folders') ORDER BY source::text;
CREATE FUNCTION archived() RETURNS TABLE (relation text, key text) LANGUAGE sql AS $$
  SELECT 'folders', id::text FROM uproot_archive."acascade.folders"
  UNION ALL SELECT 'files', id::text FROM uproot_archive."acascade.files"
  UNION ALL SELECT 'chunks', id::text FROM uproot_archive."acascade.chunks"
  UNION ALL SELECT 'tags', file_id || '/' || tag FROM uproot_archive."acascade.tags"
  UNION ALL SELECT 'links', id::text FROM uproot_archive."acascade.links"
$$;
CREATE TABLE before AS SELECT * FROM live();

-- Archive folder 1: its subtree (folders 1, 2, 3), their 6 files, 18 chunks, 12 tags and
-- the 4 links that touch those files (link 4 reaches into tree 4). Shares are detached.
SELECT relation, action, rows FROM uproot.archive('folders', 1) ORDER BY relation::text, action;
-- What disappeared, per table ...
SELECT relation, count(*) AS disappeared
  FROM (SELECT * FROM before EXCEPT ALL SELECT * FROM live()) d GROUP BY relation ORDER BY relation;
-- ... is exactly what the archive holds: nothing missing from it, nothing extra in it,
-- nothing twice (EXCEPT ALL counts duplicates).
SELECT 'disappeared, not archived' AS problem, *
  FROM ((SELECT * FROM before EXCEPT ALL SELECT * FROM live()) EXCEPT ALL SELECT * FROM archived()) d
UNION ALL
SELECT 'archived, not disappeared', *
  FROM (SELECT * FROM archived() EXCEPT ALL (SELECT * FROM before EXCEPT ALL SELECT * FROM live())) d
ORDER BY 1, 2, 3;
SELECT id, file_id FROM shares ORDER BY id;

-- Restore brings back every row, and reattaches the shares.
SELECT max(id) AS b FROM uproot.batches \gset
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT count(*) AS differences
  FROM ((SELECT * FROM before EXCEPT ALL SELECT * FROM live())
        UNION ALL (SELECT * FROM live() EXCEPT ALL SELECT * FROM before)) d;
SELECT count(*) AS shares_detached FROM shares WHERE file_id IS NULL;

-- archive_where() over several trees at once, the same.
SELECT relation, action, rows FROM uproot.archive_where('folders', 'parent_id IS NULL')
 ORDER BY relation::text, action;
SELECT count(*) AS disappeared, (SELECT count(*) FROM archived()) AS archived,
       (SELECT count(*) FROM (SELECT DISTINCT * FROM archived()) d) AS archived_distinct
  FROM (SELECT * FROM before EXCEPT ALL SELECT * FROM live()) d;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;

-- A CASCADE edge into a table named in stop_at: PostgreSQL's cascade would delete those
-- rows without uproot archiving them, so the archive fails and nothing moves.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.archive('folders', 4, stop_at => '{acascade.chunks}')$$);
\x off
SELECT count(*) AS differences
  FROM ((SELECT * FROM before EXCEPT ALL SELECT * FROM live())
        UNION ALL (SELECT * FROM live() EXCEPT ALL SELECT * FROM before)) d;
SELECT count(*) AS archived FROM archived();

SELECT regress.drop_archives('acascade');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'acascade.%';
DROP SCHEMA acascade CASCADE;
RESET search_path;
