-- 02_keys: naming the root rows by primary key
-- keys is a scalar or an array of the root's primary-key type (or of a type that casts to
-- it implicitly, or text), or jsonb for a composite key. Keys are always bound as parameters.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA keys;
SET search_path = keys;

-- An int key: account n has n notes.
CREATE TABLE accounts (id int PRIMARY KEY);
CREATE TABLE notes (id serial PRIMARY KEY, account_id int NOT NULL REFERENCES accounts);
INSERT INTO accounts SELECT generate_series(1, 5);
INSERT INTO notes (account_id) SELECT a FROM generate_series(1, 5) a, generate_series(1, a) ORDER BY 1;

-- A scalar key.
SELECT relation, action, rows FROM uproot.preview('accounts', 3) ORDER BY relation::text, action;

-- An array of keys: accounts 1 and 2 with their 1 + 2 notes.
SELECT relation, action, rows FROM uproot.purge('accounts', array[1, 2]) ORDER BY relation::text, action;
SELECT account_id, count(*) AS notes FROM notes GROUP BY account_id ORDER BY account_id;

-- A key given twice, or a key that names no row, is not counted twice (or at all).
SELECT relation, action, rows FROM uproot.preview('accounts', array[4, 4, 99]) ORDER BY relation::text, action;

-- An empty array names no rows: a no-op that still reports every table, with 0.
SELECT relation, action, rows FROM uproot.purge('accounts', array[]::int[]) ORDER BY relation::text, action;
SELECT relation, action, rows FROM uproot.preview('accounts', '{}'::int[]) ORDER BY relation::text, action;
SELECT count(*) AS accounts_left FROM accounts;

-- keys is anyelement: an untyped literal has no type, so PostgreSQL asks for a cast.
SELECT relation, rows FROM uproot.preview('accounts', '3');
SELECT relation, rows FROM uproot.preview('accounts', '3'::int) ORDER BY relation::text;

-- A bigint primary key takes an int literal (and bigint values beyond int, of course).
CREATE TABLE big (id bigint PRIMARY KEY);
INSERT INTO big VALUES (1), (2), (5000000000);
SELECT relation, action, rows FROM uproot.purge('big', 2) ORDER BY relation::text;
SELECT relation, action, rows FROM uproot.purge('big', 5000000000) ORDER BY relation::text;
SELECT id FROM big ORDER BY id;

-- A uuid primary key takes text keys, scalar or array; each is converted with uuid's own
-- input function, and a text that is no uuid is the caller's error.
CREATE TABLE docs (id uuid PRIMARY KEY, title text);
CREATE TABLE doc_pages (doc_id uuid REFERENCES docs, page int, PRIMARY KEY (doc_id, page));
INSERT INTO docs VALUES ('00000000-0000-0000-0000-00000000000a', 'ten'),
                        ('00000000-0000-0000-0000-00000000000b', 'eleven'),
                        ('00000000-0000-0000-0000-00000000000c', 'twelve');
INSERT INTO doc_pages SELECT id, p FROM docs, generate_series(1, 4) p;
SELECT relation, action, rows
  FROM uproot.purge('docs', '00000000-0000-0000-0000-00000000000a'::text)
 ORDER BY relation::text, action;
SELECT relation, action, rows
  FROM uproot.purge('docs', array['00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000c'])
 ORDER BY relation::text, action;
SELECT (SELECT count(*) FROM docs) AS docs, (SELECT count(*) FROM doc_pages) AS doc_pages;
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('docs', 'not-a-uuid'::text)$$);
\x off

-- A composite primary key is named with a jsonb object, or an array of objects.
CREATE TABLE users (tenant_id int, id int, name text, PRIMARY KEY (tenant_id, id));
CREATE TABLE sessions (id serial PRIMARY KEY, tenant_id int NOT NULL, user_id int NOT NULL,
                       FOREIGN KEY (tenant_id, user_id) REFERENCES users);
INSERT INTO users VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 1, 'c'), (2, 2, 'd');
INSERT INTO sessions (tenant_id, user_id) SELECT tenant_id, id FROM users, generate_series(1, 2) ORDER BY 1, 2;
SELECT relation, action, rows
  FROM uproot.purge('users', '{"tenant_id": 1, "id": 2}'::jsonb)
 ORDER BY relation::text, action;
SELECT relation, action, rows
  FROM uproot.purge('users', '[{"tenant_id": 2, "id": 1}, {"id": 2, "tenant_id": 2}]'::jsonb)
 ORDER BY relation::text, action;
SELECT tenant_id, id, name, (SELECT count(*) FROM sessions s WHERE s.tenant_id = u.tenant_id AND s.user_id = u.id) AS sessions
  FROM users u ORDER BY tenant_id, id;

-- The object must name exactly the key columns, none of them NULL; a scalar is no composite key.
\x on
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('users', '{"tenant_id": 1}'::jsonb)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('users', '{"tenant_id": 1, "id": 1, "name": "a"}'::jsonb)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('users', '{"tenant_id": 1, "id": null}'::jsonb)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('users', '[1, 2]'::jsonb)$$);
SELECT * FROM regress.error_of($$SELECT * FROM uproot.purge('users', 1)$$);
\x off
SELECT count(*) AS users_left FROM users;

-- Keys are values, never SQL: a text key that looks like an injection names exactly one row.
CREATE TABLE codes (code text PRIMARY KEY);
INSERT INTO codes VALUES ('a'), ('b'), ($$x'); DELETE FROM codes; --$$);
SELECT relation, action, rows
  FROM uproot.purge('codes', $$x'); DELETE FROM codes; --$$::text)
 ORDER BY relation::text;
SELECT code FROM codes ORDER BY code;

-- explain() shows the statements a purge runs: the keys are the parameter $1.
SELECT step, purpose FROM uproot.explain('accounts') ORDER BY step;
SELECT statement LIKE '%ANY ($1)%' AS keys_are_parameter_1
  FROM uproot.explain('accounts') WHERE step = 1;

-- And since keys are parameters, other keys reuse the same prepared statements.
SELECT count(*) FROM uproot.preview('accounts', 4);
SELECT cached_plans AS plans_before FROM uproot.cache_info() \gset
SELECT count(*) FROM uproot.preview('accounts', 5);
SELECT cached_plans = :plans_before AS no_new_plans FROM uproot.cache_info();

DROP SCHEMA keys CASCADE;
RESET search_path;
