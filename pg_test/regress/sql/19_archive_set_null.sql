-- 19_archive_set_null: detached references are put back on restore
-- archive() detaches rows behind a SET NULL or SET DEFAULT foreign key, as a DELETE would,
-- and records the values they had (uproot.batch_detached). restore() reattaches them, but
-- only rows that still exist and are still detached: a row that was pointed elsewhere
-- meanwhile keeps its new value.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA reattach;
SET search_path = reattach;

-- teams <- users (NO ACTION: followed)
-- tickets.assignee_id -> users ON DELETE SET NULL, tickets.team_id -> teams ON DELETE SET
-- DEFAULT (team 0, "unassigned"): both detach.
CREATE TABLE teams (id int PRIMARY KEY, name text);
CREATE TABLE users (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);
CREATE TABLE tickets (id int PRIMARY KEY,
                      assignee_id int REFERENCES users ON DELETE SET NULL,
                      team_id int NOT NULL DEFAULT 0 REFERENCES teams ON DELETE SET DEFAULT,
                      title text);
INSERT INTO teams VALUES (0, 'unassigned'), (1, 'red'), (2, 'blue');
INSERT INTO users VALUES (10, 1), (11, 1), (20, 2);
INSERT INTO tickets VALUES
  (100, 10, 1, 'red user, red team'),
  (101, 11, 2, 'red user, blue team'),
  (102, 20, 1, 'blue user, red team'),
  (103, 10, 2, 'red user, blue team'),
  (104, NULL, 1, 'nobody, red team'),
  (105, 20, 2, 'blue user, blue team');
CREATE TABLE saved_tickets AS SELECT * FROM tickets;
SELECT source, archive, action FROM uproot.prepare_archive('teams') ORDER BY source::text;

-- Archive team 1: the team and its users 10 and 11 are archived; tickets stay. Tickets
-- 100, 101, 103 lose their assignee, tickets 100, 102, 104 go to team 0.
SELECT relation, action, rows FROM uproot.archive('teams', 1) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT * FROM tickets ORDER BY id;
-- What was detached, by constraint: each row's key and the values it had.
SELECT relation, constraint_name, row_key, old_values FROM uproot.batch_detached
 WHERE batch_id = :b ORDER BY constraint_name, row_key->>'id';
-- Restore reattaches all six references: the tickets are as they were.
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT * FROM tickets ORDER BY id;
SELECT count(*) AS tickets_changed FROM (SELECT * FROM saved_tickets EXCEPT SELECT * FROM tickets) d;
-- The record of detached references goes once the batch is restored.
SELECT count(*) AS detached_left FROM uproot.batch_detached WHERE batch_id = :b;

-- Changes made while the batch is archived win: ticket 100 is given to user 20, ticket 103
-- is closed (deleted). Restore reattaches only ticket 101's assignee (and the three team
-- references); ticket 100 keeps user 20.
SELECT relation, action, rows FROM uproot.archive('teams', 1) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
UPDATE tickets SET assignee_id = 20 WHERE id = 100;
DELETE FROM tickets WHERE id = 103;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT * FROM tickets ORDER BY id;
INSERT INTO tickets SELECT * FROM saved_tickets WHERE id = 103;
UPDATE tickets SET assignee_id = 10 WHERE id = 100;

-- A row that is both in the family and behind a SET NULL edge is archived, not detached:
-- ticket 101 is assigned to user 11 (SET NULL) and owned by user 11 (owner_id, NO ACTION:
-- followed). It goes with the family, with its watchers, and restore brings it back whole.
CREATE TABLE watchers (ticket_id int REFERENCES tickets, user_id int NOT NULL REFERENCES users,
                       PRIMARY KEY (ticket_id, user_id));
ALTER TABLE tickets ADD COLUMN owner_id int REFERENCES users;
UPDATE tickets SET owner_id = 11 WHERE id = 101;
INSERT INTO watchers VALUES (101, 20), (105, 10);
CREATE TABLE saved_tickets2 AS SELECT * FROM tickets;
SELECT relation, action, rows FROM uproot.archive('teams', 1) ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT id, assignee_id, team_id, owner_id FROM uproot_archive."reattach.tickets" WHERE _uproot_batch = :b;
SELECT row_key->>'id' AS ticket, constraint_name FROM uproot.batch_detached
 WHERE batch_id = :b ORDER BY 1, 2;
SELECT * FROM watchers ORDER BY ticket_id, user_id;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT count(*) AS tickets_changed FROM (SELECT * FROM saved_tickets2 EXCEPT SELECT * FROM tickets) d;
SELECT * FROM watchers ORDER BY ticket_id, user_id;

-- follow_set_null => true follows the SET NULL and SET DEFAULT edges instead: the tickets
-- that reference team 1 or its users are archived with the family, and come back.
SELECT relation, action, rows FROM uproot.archive('teams', 1, follow_set_null => true)
 ORDER BY relation::text, action;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT id FROM tickets ORDER BY id;
SELECT count(*) AS detached FROM uproot.batch_detached WHERE batch_id = :b;
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT count(*) AS tickets_changed FROM (SELECT * FROM saved_tickets2 EXCEPT SELECT * FROM tickets) d;

SELECT regress.drop_archives('reattach');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'reattach.%';
DROP SCHEMA reattach CASCADE;
RESET search_path;
