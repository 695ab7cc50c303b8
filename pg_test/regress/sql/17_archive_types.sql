-- 17_archive_types: columns of every kind of type survive the round trip exactly
-- Arrays (with NULLs, multi-dimensional), jsonb, enums, domains, composite types and arrays
-- of them, ranges, numerics with a scale, timestamps, bytea, uuid keys... are archived
-- under their own types and come back identical.
SET client_min_messages = warning;  -- no NOTICE when an earlier file created it
CREATE EXTENSION IF NOT EXISTS pg_uproot;
RESET client_min_messages;
\set VERBOSITY default
CREATE SCHEMA types;
SET search_path = types;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE price AS (currency char(3), cents bigint);
CREATE TYPE address AS (street text, city text, tags text[]);

-- owners (uuid key) <- pets (composite key of a uuid and a text)
CREATE TABLE owners (
  id uuid PRIMARY KEY,
  nicknames text[],
  grid int[][],
  profile jsonb,
  settings json,
  mood mood,
  moods mood[],
  age positive_int,
  contact email,
  fee price,
  fees price[],
  home address,
  valid int4range,
  seen tstzrange,
  born date,
  updated timestamptz,
  local_time timestamp,
  balance numeric(12, 4),
  ratio double precision,
  ip inet,
  photo bytea,
  code char(4),
  flags bit(4),
  note text
);
CREATE TABLE pets (
  owner_id uuid REFERENCES owners,
  name text,
  PRIMARY KEY (owner_id, name),
  moods mood[],
  tricks jsonb
);
INSERT INTO owners VALUES (
  '00000000-0000-0000-0000-00000000000a',
  '{"Ann","A. \"the\" B",NULL,""}',
  '{{1,2,3},{4,NULL,6}}',
  '{"k": [1, 2.50, null, "x"], "nested": {"deep": {"ok": true}}, "": "empty key"}',
  '{"keeps":  "its   spacing", "and": [1,1]}',
  'happy',
  '{ok,sad,NULL}',
  42,
  'ann@example.org',
  ('EUR', 1234),
  ARRAY[('USD', 1)::price, NULL, ('GBP', NULL)::price],
  ('Main St 1', 'Springfield', '{a,b}'),
  '[1,10)',
  '[2024-01-01 00:00+00,)',
  '2024-02-29',
  '2024-02-29 12:34:56.789012+00',
  '2024-02-29 12:34:56.789012',
  -1234.5678,
  1.0e-10,
  '10.0.0.1/8',
  '\x00ff10',
  'ab',
  B'1010',
  E'multi\nline\ttab and unicode: ünï ✓'
), ('00000000-0000-0000-0000-00000000000b', '{}', NULL, 'null', NULL, NULL, '{}', NULL, NULL,
    NULL, '{}', (NULL, NULL, NULL), 'empty', NULL, NULL, NULL, NULL, 0, 'NaN', NULL, '', NULL, NULL, '');
INSERT INTO pets VALUES
  ('00000000-0000-0000-0000-00000000000a', 'rex', '{happy}', '[{"sit": 1}, {"roll": null}]'),
  ('00000000-0000-0000-0000-00000000000b', 'tom', NULL, NULL);
CREATE TABLE saved_owners AS SELECT * FROM owners;
CREATE TABLE saved_pets AS SELECT * FROM pets;

-- The archive columns have the source's types, enum, domain and composite types included.
SELECT source, archive, action FROM uproot.prepare_archive('owners') ORDER BY source::text;
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute
 WHERE attrelid = 'uproot_archive."types.owners"'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;

-- Archive both owners (keys given as text and cast to uuid) and compare the archived rows
-- with the saved copies, column for column through their text forms.
SELECT relation, action, rows
  FROM uproot.archive('owners', array['00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000b'])
 ORDER BY relation::text;
SELECT max(id) AS b FROM uproot.batches \gset
SELECT s.id,
       row(s.*)::text = row(a.id, a.nicknames, a.grid, a.profile, a.settings, a.mood, a.moods, a.age,
                            a.contact, a.fee, a.fees, a.home, a.valid, a.seen, a.born, a.updated,
                            a.local_time, a.balance, a.ratio, a.ip, a.photo, a.code, a.flags, a.note)::text
         AS archived_exactly
  FROM saved_owners s JOIN uproot_archive."types.owners" a USING (id)
 ORDER BY s.id;
SELECT owner_id, name, moods, tricks FROM uproot_archive."types.pets" ORDER BY owner_id, name;

-- Restore: every row is back, identical to the saved copy. Whole rows are compared through
-- their text form (json has no equality operator); some columns by their own equality too.
SELECT relation, action, rows FROM uproot.restore(:b) ORDER BY relation::text, action;
SELECT s.id, row(s.*)::text = row(o.*)::text AS restored_exactly,
       s.profile IS NOT DISTINCT FROM o.profile AS jsonb_equal,
       s.settings::text IS NOT DISTINCT FROM o.settings::text AS json_text_equal,
       s.fees IS NOT DISTINCT FROM o.fees AS composite_array_equal,
       s.grid IS NOT DISTINCT FROM o.grid AS array_equal,
       s.photo IS NOT DISTINCT FROM o.photo AS bytea_equal,
       s.balance IS NOT DISTINCT FROM o.balance AS numeric_equal
  FROM saved_owners s JOIN owners o USING (id)
 ORDER BY s.id;
SELECT count(*) AS pets_not_restored_exactly
  FROM (SELECT row(p.*)::text FROM saved_pets p EXCEPT SELECT row(p.*)::text FROM pets p) d;
-- A few values read back through their types.
SELECT nicknames[2], grid[2][3], profile #>> '{nested,deep,ok}' AS deep, moods[1], age + 1 AS age_plus,
       (fee).cents, (fees[3]).currency, (home).tags[2], upper(valid), note
  FROM owners WHERE id = '00000000-0000-0000-0000-00000000000a';

SELECT regress.drop_archives('types');
SELECT count(*) AS archive_tables_left FROM pg_class
 WHERE relnamespace = 'uproot_archive'::regnamespace AND relkind IN ('r', 'p') AND relname LIKE 'types.%';
DROP SCHEMA types CASCADE;
RESET search_path;
