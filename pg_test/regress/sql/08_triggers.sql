-- 08_triggers: user triggers fire as they would for an ordinary DELETE
-- uproot deletes with plain DELETE (and detaches with plain UPDATE) statements, so row
-- triggers fire once for every row it deletes or changes, and a trigger can veto the purge.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA trig;
SET search_path = trig;

-- authors <- posts <- comments; bookmarks point at posts with ON DELETE SET NULL.
CREATE TABLE authors (id int PRIMARY KEY);
CREATE TABLE posts (id int PRIMARY KEY, author_id int NOT NULL REFERENCES authors);
CREATE TABLE comments (id int PRIMARY KEY, post_id int NOT NULL REFERENCES posts ON DELETE CASCADE);
CREATE TABLE bookmarks (id int PRIMARY KEY, post_id int REFERENCES posts ON DELETE SET NULL);
INSERT INTO authors VALUES (1), (2);
INSERT INTO posts VALUES (10, 1), (11, 1), (20, 2);
INSERT INTO comments VALUES (100, 10), (101, 10), (110, 11), (200, 20);
INSERT INTO bookmarks VALUES (1, 10), (2, 20);

-- Every row trigger writes to one log.
CREATE TABLE log (seq serial PRIMARY KEY, tbl text, op text, id int, detail text);
CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    INSERT INTO log (tbl, op, id) VALUES (TG_TABLE_NAME, TG_WHEN || ' ' || TG_OP, OLD.id);
    RETURN OLD;
  END IF;
  INSERT INTO log (tbl, op, id, detail)
  VALUES (TG_TABLE_NAME, TG_WHEN || ' ' || TG_OP, NEW.id, format('post_id %s -> %s', OLD.post_id, NEW.post_id));
  RETURN NEW;
END $$;
CREATE TRIGGER log_delete AFTER DELETE ON authors FOR EACH ROW EXECUTE FUNCTION log_row();
CREATE TRIGGER log_delete AFTER DELETE ON posts FOR EACH ROW EXECUTE FUNCTION log_row();
CREATE TRIGGER log_delete BEFORE DELETE ON comments FOR EACH ROW EXECUTE FUNCTION log_row();
CREATE TRIGGER log_update AFTER UPDATE ON bookmarks FOR EACH ROW EXECUTE FUNCTION log_row();

-- graph() warns about the triggers.
SELECT depth, child, warnings FROM uproot.graph('authors') ORDER BY depth, child::text;

-- Purging author 1: one log line per deleted author, post and comment, and one per
-- bookmark set to NULL; each table's count in the result matches its log lines.
SELECT relation, action, rows FROM uproot.purge('authors', 1) ORDER BY relation::text, action;
SELECT tbl, op, id, detail FROM log ORDER BY tbl, op, id;
SELECT tbl, count(*) AS fired FROM log GROUP BY tbl ORDER BY tbl;

-- preview fires nothing.
TRUNCATE log;
SELECT relation, action, rows FROM uproot.preview('authors', 2) ORDER BY relation::text, action;
SELECT count(*) AS fired FROM log;

-- A trigger that raises an error stops the purge, and everything is rolled back (the log
-- lines written before the error included).
CREATE FUNCTION no_deleting_comment_200() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.id = 200 THEN
    RAISE EXCEPTION 'comment 200 is under legal hold';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER legal_hold BEFORE DELETE ON comments FOR EACH ROW EXECUTE FUNCTION no_deleting_comment_200();
\x on
SELECT sql_state, message FROM regress.error_of($$SELECT * FROM uproot.purge('authors', 2)$$);
\x off
SELECT (SELECT count(*) FROM authors) AS authors, (SELECT count(*) FROM posts) AS posts,
       (SELECT count(*) FROM comments) AS comments, (SELECT count(*) FROM log) AS log_lines;
DROP TRIGGER legal_hold ON comments;

-- A BEFORE trigger that silently skips a delete (returns NULL) cannot leave an orphan: the
-- rows that still reference the family make the purge fail, as the same DELETE would.
CREATE FUNCTION skip_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER keep_posts BEFORE DELETE ON posts FOR EACH ROW EXECUTE FUNCTION skip_delete();
\x on
SELECT sql_state, message FROM regress.error_of($$DELETE FROM authors WHERE id = 2$$);
SELECT sql_state, message <> 'no error' AS failed FROM regress.error_of($$SELECT * FROM uproot.purge('authors', 2)$$);
\x off
SELECT (SELECT count(*) FROM authors) AS authors, (SELECT count(*) FROM posts) AS posts,
       (SELECT count(*) FROM comments) AS comments;
DROP TRIGGER keep_posts ON posts;

-- A trigger may itself call uproot: deleting a post purges its (unrelated) drafts family.
CREATE TABLE drafts (id int PRIMARY KEY, post_ref int NOT NULL);
CREATE TABLE draft_versions (id int PRIMARY KEY, draft_id int NOT NULL REFERENCES drafts);
INSERT INTO drafts VALUES (1, 20), (2, 99);
INSERT INTO draft_versions VALUES (1, 1), (2, 1), (3, 2);
CREATE FUNCTION purge_drafts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM uproot.purge_where('trig.drafts', format('post_ref = %s', OLD.id));
  RETURN OLD;
END $$;
CREATE TRIGGER purge_drafts AFTER DELETE ON posts FOR EACH ROW EXECUTE FUNCTION purge_drafts();
SELECT relation, action, rows FROM uproot.purge('authors', 2) ORDER BY relation::text, action;
SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM drafts) AS drafts_left,
       (SELECT string_agg(id::text, ',' ORDER BY id) FROM draft_versions) AS versions_left;

DROP SCHEMA trig CASCADE;
RESET search_path;
