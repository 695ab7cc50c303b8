-- 11_followed_and_detached: a row that is both followed and detached is deleted, and only deleted
-- docs reference people twice: owner_id ON DELETE CASCADE (followed: the doc goes with its
-- owner) and editor_id ON DELETE SET NULL (detached). A doc owned and edited by the root is
-- deleted; it must not also be counted as nullified, nor UPDATEd before it is deleted (user
-- UPDATE triggers would fire for a row PostgreSQL never updates). This is checked both when
-- docs is a leaf and when docs has children of its own (uproot then collects its rows).
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA edges_both;
SET search_path = edges_both;

CREATE TABLE people (id int PRIMARY KEY);
CREATE TABLE docs (id int PRIMARY KEY,
                   owner_id int REFERENCES people ON DELETE CASCADE,
                   editor_id int REFERENCES people ON DELETE SET NULL);
INSERT INTO people VALUES (1), (2), (3);
-- doc 1: owned and edited by 1 (deleted); doc 2: edited by 1 (nullified);
-- doc 3: owned by 1 (deleted); doc 4: not in the family.
INSERT INTO docs VALUES (1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 3, 3);
-- log: one line per UPDATE of a doc, with the editor before and after
CREATE TABLE log (id int, editor_before int, editor_after int);
CREATE FUNCTION log_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO log VALUES (NEW.id, OLD.editor_id, NEW.editor_id); RETURN NEW; END $$;
CREATE TRIGGER log_update BEFORE UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION log_update();

-- What PostgreSQL itself does: docs 1 and 3 deleted, doc 2 updated (one log line).
BEGIN;
DELETE FROM people WHERE id = 1;
SELECT * FROM log ORDER BY id;
SELECT * FROM docs ORDER BY id;
ROLLBACK;

-- docs is a leaf. Preview and purge agree: people 1 deleted, docs 1 and 3 deleted, doc 2
-- nullified. The trigger logs doc 2 only; docs 2 (editor now NULL) and 4 are left.
SELECT relation, action, rows FROM uproot.preview('people', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('people', 1) ORDER BY relation::text, action;
SELECT * FROM log ORDER BY id;
SELECT * FROM docs ORDER BY id;

-- The same with docs having children of its own (comments, NO ACTION): uproot collects the
-- docs rows of the family. Doc 1's comment goes with it; doc 2's comment stays.
TRUNCATE log;
DELETE FROM docs;
DELETE FROM people;
INSERT INTO people VALUES (1), (2), (3);
INSERT INTO docs VALUES (1, 1, 1), (2, 2, 1), (3, 1, 2), (4, 3, 3);
CREATE TABLE comments (id int PRIMARY KEY, doc_id int NOT NULL REFERENCES docs);
INSERT INTO comments VALUES (10, 1), (20, 2), (40, 4);
SELECT relation, action, rows FROM uproot.preview('people', 1) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.purge('people', 1) ORDER BY relation::text, action;
SELECT * FROM log ORDER BY id;
SELECT * FROM docs ORDER BY id;
SELECT * FROM comments ORDER BY id;

DROP SCHEMA edges_both CASCADE;
RESET search_path;
