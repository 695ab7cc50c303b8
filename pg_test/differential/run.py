#!/usr/bin/env python3
"""Differential test for pg_uproot.

For every seed, a random schema is built twice: d{seed}_orig with the generated ON DELETE actions, and
d{seed}_twin where every NO ACTION / RESTRICT / CASCADE edge is ON DELETE CASCADE (SET NULL / SET DEFAULT
stay). uproot.purge_where on the original must leave exactly what a native DELETE leaves on the twin.
Some seeds use uproot.purge with keys instead, and some use follow_set_null => true (the twin then turns
SET NULL / SET DEFAULT into CASCADE as well). Every odd seed purges in the form a family with 10,000+ rows
in a table takes (uproot.debug_large_form: join leaves first, each by a statement of its own), so that the
small families here cover it too.

Archive seeds (a1, a2, ..., schemas a{seed}_orig / a{seed}_twin, drawn independently of the purge seeds) run
uproot.archive_where / uproot.archive instead: the live tables must equal the twin, the archive tables must
hold exactly the rows that disappeared, and uproot.restore must bring every table back to its snapshot.
Every odd archive seed archives in the large form too. Seeds 2, 3, 6, 7, ... (purge and archive)
plan every statement that binds found keys for its values (uproot.debug_plan_for_values), as
statements that bind 1,000+ keys are; on those purge seeds the preview, with sequential scans off,
keeps the kept plan of each statement whose plan reads its keys through an index, as previews with
1,000+ keys do (outcome "preview kept generic plans").
Python 3 stdlib only; talks to Postgres through psql, one session per seed.
"""

import argparse
import os
import random
import subprocess
import sys
import time
import uuid

SEP = "\x1f"  # psql field separator: never appears in generated names or values


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def lit(s):
    return "'" + s.replace("'", "''") + "'"


def sql_value(v, typ):
    if v is None:
        return "NULL"
    return str(v) if typ in ("int", "bigint") else lit(v)


# ---------------------------------------------------------------------------------------------------------
# Schema model


class Col:
    def __init__(self, name, typ, not_null=False):
        self.name = name
        self.typ = typ
        self.not_null = not_null
        self.default = None  # SQL literal, for SET DEFAULT columns that point at a row
        self.uses = 0  # how many FKs use this column
        self.in_key = False
        # (table index, column) of the single-column key this NOT NULL FK column references; lets later
        # FKs share the column (the PG15 "tenant" pattern that SET NULL (col) exists for).
        self.tenant = None


class FK:
    def __init__(self, name, child, parent, cols, ref_cols, late):
        self.name = name
        self.child = child  # table index
        self.parent = parent  # table index
        self.cols = cols  # child column names, declared order
        self.ref_cols = ref_cols  # parent column names, same order (a permutation of a key)
        self.late = late  # self-reference or back edge: its values are chosen after all tables have rows
        self.action = "NO ACTION"
        self.set_cols = None  # column list of SET NULL (...) / SET DEFAULT (...)
        self.indexed = True
        self.default_target = None  # the parent row a SET DEFAULT edge's defaults point at
        # In the original schema, a declared relation (uproot.declare_relation) instead of a constraint;
        # the twin keeps the real FK, so native cascade is the reference for the declared edge too.
        self.declared = False


class Table:
    def __init__(self, idx, name):
        self.idx = idx
        self.name = name
        self.cols = []
        self.pk = None  # list of column names
        self.uniques = []  # list of lists of column names
        self.fks = []
        self.kind = None
        self.sentinel = None  # a row that no predicate selects and that references nothing
        self.rows = []
        self.nrows = 0
        self.dropped = False  # created with a leading column that is dropped again: attnums start at 2

    def col(self, name):
        for c in self.cols:
            if c.name == name:
                return c
        raise KeyError(name)

    def add_col(self, base, typ, not_null=False):
        names = {c.name for c in self.cols}
        name, k = base, 2
        while name in names:
            name, k = f"{base}{k}", k + 1
        c = Col(name, typ, not_null)
        self.cols.append(c)
        return c

    def keys(self):
        return ([self.pk] if self.pk else []) + self.uniques


WEIRD = ["Up{}", "with space {}", 'quo"te {}', "it's {}", "ünï{}", "Ω{}", "MiX{}ed"]


def weird(rng, base, p):
    """Sometimes an identifier that needs quoting: upper case, a space, quotes, unicode."""
    return rng.choice(WEIRD).format(base) if rng.random() < p else base


class Schema:
    def __init__(self, seed, archive=False):
        self.seed = seed
        self.archive = archive
        self.label = f"a{seed}" if archive else f"d{seed}"  # schema prefix, and what --only takes
        # Archive seeds draw other schemas than purge seeds of the same number.
        rng = random.Random(f"archive {seed}" if archive else seed)
        self.rng = rng
        self.tables = []
        self.stats = set()
        # A quarter of the purge seeds draw a plain tree (single-column integer keys, one foreign key
        # per table to its primary key, no cycle, no SET NULL / SET DEFAULT, no declared relation or
        # owned parent): the shape where a purge deletes a table in the statement that finds its
        # rows. Its own stream, so that the other seeds keep the schemas they had before.
        self.plain = not archive and random.Random(f"plain {seed}").random() < 0.25
        if self.plain:
            self.stats.add("plain tree")
        n = rng.randint(3, 9)
        for i in range(n):
            self._make_table(i)
        for i in range(1, n):
            self._forward_fks(self.tables[i])
        for t in self.tables:
            if t.keys() and not self.plain and rng.random() < 0.25:
                self._add_fk(t, t, late=True)
                self.stats.add("self-reference")
        if not self.plain and rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                self._add_cycle()
        for t in self.tables:
            self._sentinel_ok(t)
        for t in self.tables:
            for fk in t.fks:
                self._choose_action(t, fk)
        self._bad_defaults()
        self._declare_some()
        self._own_some()
        self._gen_data()
        self.follow_set_null = rng.random() < 0.15
        self.mode = "keys" if rng.random() < 0.2 and self.tables[0].pk else "where"
        self.predicate = self._predicate()
        if archive:
            # Sometimes max_roots (the twin then deletes the roots that were archived), and sometimes no
            # prepare_archive (archive creates its tables itself).
            self.max_roots = rng.randint(1, 4) if self.mode == "where" and rng.random() < 0.2 else None
            self.prepare = rng.random() < 0.85

    # -- tables -------------------------------------------------------------------------------------------
    def _make_table(self, i):
        rng = self.rng
        names = {t.name for t in self.tables}
        name = weird(rng, f"t{i}", 0.25)
        while name in names:
            name += "x"
        t = Table(i, name)
        self.tables.append(t)
        if rng.random() < 0.2:
            t.dropped = True
            self.stats.add("dropped column")
        has_key = i == 0 or rng.random() < 0.85
        if has_key:
            kinds = ["int", "int", "bigint", "text", "uuid", "comp_ii", "comp_it"]
            tenants = [p for p in self.tables[:i] if p.pk and len(p.pk) == 1 and p.kind in ("int", "bigint")]
            if self.plain:
                kinds, tenants = ["int", "int", "bigint"], []
            if tenants:
                kinds += ["scoped", "scoped"]
            t.kind = rng.choice(kinds)
            self.stats.add(f"{t.kind} key")
            if t.kind in ("int", "bigint", "text", "uuid"):
                c = t.add_col(weird(rng, "id", 0.15), t.kind, True)
                t.pk = [c.name]
            elif t.kind in ("comp_ii", "comp_it"):
                a = t.add_col(weird(rng, "a", 0.15), "int", True)
                b = t.add_col(weird(rng, "b", 0.15), "int" if t.kind == "comp_ii" else "text", True)
                t.pk = [a.name, b.name]
            else:  # scoped: PRIMARY KEY (tenant column, id), the tenant column being an FK
                tenant = rng.choice(tenants)
                self._add_fk(t, tenant, late=False, key=tenant.pk, nullable=False)
                g = t.fks[-1].cols[0]
                c = t.add_col("id", "int", True)
                t.pk = [g, c.name]
            if rng.random() < 0.12:
                # The key is only UNIQUE: no primary key, yet a parent (and maybe the root).
                t.uniques.insert(0, t.pk)
                t.pk = None
                self.stats.add("UNIQUE key, no primary key")
            for c in t.keys()[0]:
                t.col(c).in_key = True
            r = 1.0 if self.plain else rng.random()
            if r < 0.2:
                c = t.add_col(weird(rng, "code", 0.2), "text", True)
                t.uniques.append([c.name])
            elif r < 0.3:
                a = t.add_col("ua", "int", True)
                b = t.add_col("ub", "text", True)
                t.uniques.append([a.name, b.name])
            for u in t.uniques:
                for c in u:
                    t.col(c).in_key = True
        else:
            self.stats.add("table without any key")
        t.ncol = t.add_col(weird(rng, "n", 0.15), "int", True).name
        t.note = t.add_col("note", "text").name if rng.random() < 0.5 else None
        t.nrows = rng.randint(5, 120) if i == 0 else rng.randint(*rng.choice([(2, 10), (10, 60), (60, 200)]))

    def _forward_fks(self, t):
        rng = self.rng
        if t.kind != "scoped" and rng.random() < 0.08:
            self.stats.add("island")  # not connected to the root: must stay untouched
            return
        want = 1 + (rng.random() < 0.45) + (rng.random() < 0.15)
        if self.plain:
            want = 1
        parents = [p for p in self.tables[: t.idx] if p.keys()]
        while len(t.fks) < want:  # a scoped table already has its tenant FK
            self._add_fk(t, rng.choice(parents), late=False)
        if len(t.fks) >= 2:
            self.stats.add("several FKs in one table")

    def _add_fk(self, child, parent, late, key=None, nullable=None):
        rng = self.rng
        key = key or rng.choice(parent.keys())
        if key is not parent.pk:
            self.stats.add("FK to a UNIQUE constraint")
        ref_cols = list(key)
        if len(ref_cols) > 1 and rng.random() < 0.5:
            ref_cols.reverse()  # declared in a different order than the referenced key
            self.stats.add("FK column order differs from key order")
        if nullable is None:
            nullable = late or rng.random() < 0.6
        cols = []
        for pc in ref_cols:
            pcol = parent.col(pc)
            shared = None
            if pcol.tenant is not None and rng.random() < 0.85:
                shared = next((c for c in child.cols if c.tenant == pcol.tenant and c.name not in cols), None)
            if shared:
                self.stats.add("FK sharing a column with another FK")
                c = shared
            else:
                base = weird(rng, f"{parent.name[:6]}_{pc[:6]}".replace(" ", "_"), 0.1)
                typ = pcol.typ
                if rng.random() < 0.15 and typ in ("int", "text"):
                    typ = {"int": "bigint", "text": "varchar"}[typ]  # FK with a cross-type equality operator
                    self.stats.add("FK column type differs from key type")
                c = child.add_col(base, typ, not nullable)
            c.uses += 1
            cols.append(c.name)
        if len(key) == 1 and not nullable and not late and parent.pk == key:
            child.col(cols[0]).tenant = (parent.idx, key[0])
        fk = FK(weird(rng, f"fk_{child.idx}_{len(child.fks)}", 0.15), child.idx, parent.idx, cols, ref_cols, late)
        fk.indexed = rng.random() < 0.8
        if len(cols) > 1:
            self.stats.add("multi-column FK")
        child.fks.append(fk)
        return fk

    def _add_cycle(self):
        rng = self.rng
        # child i references j (i -> j): the back edge j -> i closes a 2-cycle; i -> k -> j plus j -> i a 3-cycle.
        two = [(fk.child, fk.parent) for t in self.tables for fk in t.fks if not fk.late and fk.parent != fk.child]
        three = [(i, j) for (i, k) in two for (k2, j) in two if k2 == k and j != i]
        options = [(p, 2) for p in two] + [(p, 3) for p in three]
        options = [((i, j), n) for ((i, j), n) in options if self.tables[i].keys()]
        if not options:
            return
        (i, j), n = rng.choice(options)
        self._add_fk(self.tables[j], self.tables[i], late=True)
        self.stats.add(f"{n}-table cycle")

    def _sentinel_ok(self, t):
        # A sentinel row gets SET DEFAULT values pointing at it; it must never join a family: it references
        # nothing (all its FK columns NULL) and no predicate selects it (n = -1).
        if t.keys() and all(not t.col(c).not_null for fk in t.fks for c in fk.cols):
            t.sentinel = {}
            for c in t.cols:
                if c.name in sum(t.keys(), []):
                    t.sentinel[c.name] = {"int": -1, "bigint": -1, "text": "~sentinel", "uuid": str(uuid.UUID(int=0))}[c.typ]
                elif c.name == t.ncol:
                    t.sentinel[c.name] = -1
                else:
                    t.sentinel[c.name] = None

    def _choose_action(self, t, fk):
        rng = self.rng
        child = t
        own = [c for c in fk.cols if child.col(c).uses == 1 and not child.col(c).not_null and not child.col(c).in_key]
        actions = ["NO ACTION"] * 30 + ["CASCADE"] * 25 + ["RESTRICT"] * 15
        if own and not self.plain:
            actions += ["SET NULL"] * 18 + ["SET DEFAULT"] * 12
        fk.action = rng.choice(actions)
        self.stats.add(fk.action)
        if fk.action not in ("SET NULL", "SET DEFAULT"):
            return
        if own != fk.cols:
            fk.set_cols = own
        elif len(own) > 1 and rng.random() < 0.4:
            fk.set_cols = [rng.choice(own)]
        if fk.set_cols:
            self.stats.add(f"{fk.action} (column list)")
        parent = self.tables[fk.parent]
        if fk.action != "SET DEFAULT" or fk.set_cols is not None:
            return
        if parent.sentinel is not None and rng.random() < 0.6:
            fk.default_target = parent.sentinel
            self.stats.add("SET DEFAULT to a sentinel row")

    def _declare_some(self):
        # Its own random stream, so that every seed keeps the schema and data it had before.
        rng = random.Random(f"declared {self.seed} {self.archive}")
        if self.plain:
            return
        for t in self.tables:
            for fk in t.fks:
                declarable = fk.action in ("NO ACTION", "RESTRICT", "CASCADE") or (
                    fk.action == "SET NULL" and fk.set_cols is None)
                if declarable and rng.random() < 0.3:
                    fk.declared = True
                    self.stats.add("declared relation")

    def _own_some(self):
        # Owned parents (uproot.declare_owned), purge seeds only, from a random stream of their own: a
        # parent that no remaining row references through an owned edge goes with its last child.
        self.owned = []
        if self.archive or self.plain:
            return
        rng = random.Random(f"owned {self.seed}")
        if rng.random() >= 0.35:
            return
        candidates = [fk for t in self.tables for fk in t.fks
                      if fk.child != fk.parent and self.tables[fk.parent].pk]
        rng.shuffle(candidates)
        self.owned = candidates[:rng.randint(1, 2)]
        if self.owned:
            self.stats.add("owned parents")

    def owned_sql(self, schema):
        out = []
        for fk in self.owned:
            via = self.declared_name(fk) if fk.declared else fk.name
            out.append(f"DO $uproot$ BEGIN PERFORM uproot.declare_owned({lit(self.qname(schema, self.tables[fk.child]))}, "
                       f"{lit(via)}); END $uproot$;")
        return "\n".join(out)

    def owned_reference(self, twin):
        """The reference for owned parents, on the twin after its native DELETE: until nothing changes, delete
        (with native cascade) each parent that a row gone since the snapshot referenced through an owned edge
        and that no remaining row references through one."""
        stmts = []
        for fk in self.owned:
            c, p = self.tables[fk.child], self.tables[fk.parent]
            gone = f"(SELECT * FROM _b{c.idx} EXCEPT ALL SELECT * FROM {self.qname(twin, c)}) g"
            on = " AND ".join(f"g.{qi(a)} = p.{qi(b)}" for a, b in zip(fk.cols, fk.ref_cols))
            keep = ""
            for other in self.owned:
                if other.parent != fk.parent:
                    continue
                x = self.tables[other.child]
                xon = " AND ".join(f"x.{qi(a)} = p.{qi(b)}" for a, b in zip(other.cols, other.ref_cols))
                keep += f" AND NOT EXISTS (SELECT FROM {self.qname(twin, x)} x WHERE {xon})"
            stmts.append(f"DELETE FROM {self.qname(twin, p)} p WHERE EXISTS (SELECT FROM {gone} WHERE {on}){keep};\n"
                         f"    GET DIAGNOSTICS n = ROW_COUNT; total := total + n;")
        body = "\n    ".join(stmts)
        return ("DO $ref$ DECLARE n bigint; total bigint; BEGIN\n  LOOP\n    total := 0;\n    "
                f"{body}\n    EXIT WHEN total = 0;\n  END LOOP;\nEND $ref$;")

    def declared_name(self, fk):
        return f"{self.label}_{fk.name}"

    def _bad_defaults(self):
        # A default that points at an ordinary row, which the purge may delete: then both must fail. Only in
        # tables whose FKs all detach, so their rows never join the family: a family row set to a doomed
        # default makes native PG fail or not depending on its trigger order.
        for t in self.tables[1:]:
            if t.fks and all(fk.action in ("SET NULL", "SET DEFAULT") for fk in t.fks):
                for fk in t.fks:
                    if (fk.action == "SET DEFAULT" and fk.set_cols is None and fk.default_target is None
                            and self.rng.random() < 0.5):
                        fk.default_target = "ordinary"  # a row is picked once the data exists
                        self.stats.add("SET DEFAULT to an ordinary row")

    # -- data ---------------------------------------------------------------------------------------------
    def _new_value(self, typ, used, small=False):
        rng = self.rng
        while True:
            if typ == "int":
                v = rng.randint(1, 20) if small else rng.randint(1, 10**6)
            elif typ == "bigint":
                v = rng.randint(2**33, 2**50)
            elif typ == "text":
                alphabet = "abcdefghijk" + ("' é" if rng.random() < 0.1 else "")
                v = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
            else:
                v = str(uuid.UUID(int=rng.getrandbits(128)))
            if v not in used:
                used.add(v)
                return v

    def _pick_parent(self, row, fk, p_null):
        """Choose the referenced row for fk; returns False if a NOT NULL FK cannot be satisfied."""
        rng = self.rng
        child, parent = self.tables[fk.child], self.tables[fk.parent]
        free = [c for c in fk.cols if row.get(c) is None]  # shared columns are already set
        fixed = [(c, rc) for c, rc in zip(fk.cols, fk.ref_cols) if c not in free]
        nullable = all(not child.col(c).not_null for c in free)
        if nullable and rng.random() < p_null:
            return True
        cands = parent.rows + ([parent.sentinel] if parent.sentinel else [])
        cands = [p for p in cands if all(p[rc] == row[c] for c, rc in fixed)]
        if not cands:
            return nullable
        p = rng.choice(cands)
        for c, rc in zip(fk.cols, fk.ref_cols):
            if c in free:
                row[c] = p[rc]
        if len(free) > 1 and nullable and rng.random() < 0.05:
            row[rng.choice(free)] = None  # MATCH SIMPLE: a partly NULL key references nothing
            self.stats.add("partly NULL multi-column FK")
        return True

    def _gen_data(self):
        rng = self.rng
        for t in self.tables:
            fk_cols = {c for fk in t.fks for c in fk.cols}
            used = {c.name: set() for c in t.cols}
            taken = {tuple(k): set() for k in t.keys()}
            if t.sentinel:
                for k in t.keys():
                    taken[tuple(k)].add(tuple(t.sentinel[c] for c in k))
            for _ in range(t.nrows):
                row = {c.name: None for c in t.cols}
                if not all(self._pick_parent(row, fk, 0.15) for fk in t.fks if not fk.late):
                    continue
                for k in t.keys():
                    # Single columns (and the id of a scoped key) draw unique values; the other composite
                    # key columns draw small values, so that no single column is unique by itself.
                    gen = [c for c in k if c not in fk_cols]
                    small = len(gen) > 1
                    for _ in range(50):
                        for c in gen:
                            row[c] = self._new_value(t.col(c).typ, set() if small else used[c], small)
                        if tuple(row[c] for c in k) not in taken[tuple(k)]:
                            break
                    else:
                        row = None
                        break
                    taken[tuple(k)].add(tuple(row[c] for c in k))
                if row is None:
                    continue
                row[t.ncol] = rng.randint(0, 99)
                if t.note:
                    row[t.note] = rng.choice([None, "x", "y", "it's", "ü"])
                t.rows.append(row)
        for t in self.tables:
            for fk in t.fks:
                if fk.late and fk.parent == t.idx and rng.random() < 0.3 and not any(
                        t.col(c).uses > 1 for c in fk.cols):
                    # A chain: every row references the one before it, a tree as deep as the table is long.
                    self.stats.add("deep self-reference chain")
                    for prev, row in zip(t.rows, t.rows[1:]):
                        for c, rc in zip(fk.cols, fk.ref_cols):
                            row[c] = prev[rc]
                elif fk.late:
                    for row in t.rows:
                        self._pick_parent(row, fk, 0.3)
        for t in self.tables:
            for fk in t.fks:
                target = fk.default_target
                if target == "ordinary":
                    target = rng.choice(self.tables[fk.parent].rows) if self.tables[fk.parent].rows else None
                if target:
                    for c, rc in zip(fk.cols, fk.ref_cols):
                        t.col(c).default = sql_value(target[rc], t.col(c).typ)

    # -- predicate ----------------------------------------------------------------------------------------
    def _predicate(self):
        rng = self.rng
        root = self.tables[0]
        n = qi(root.ncol)
        key = root.keys()[0]
        k = qi(key[0])
        # Values that exist, so that most families are not empty.
        ns = [r[root.ncol] for r in root.rows] or [0]
        form = rng.randint(0, 9)
        if form <= 2:
            m = rng.randint(2, 5)
            p = f"{n} % {m} = {rng.randint(0, m - 1)}"
        elif form == 3:
            a = rng.randint(0, 90)
            p = f"{n} BETWEEN {a} AND {a + rng.randint(0, 30)}"
        elif form == 4:
            p = f"{n} IN ({', '.join(str(rng.choice(ns)) for _ in range(rng.randint(1, 6)))})"
        elif form == 5:
            p = f"{n} = {rng.choice(ns)} OR {n} = {rng.choice(ns)}"
        elif form == 6:
            p = rng.choice([f"{n} < 0", f"{n} >= 0", f"{n} < 50 -- a trailing comment"])
        elif root.col(key[0]).typ in ("int", "bigint"):
            p = f"{k} % 3 = {rng.randint(0, 2)}"
        elif root.col(key[0]).typ == "text":
            p = f"{k} < {lit(rng.choice('bcdefghij'))}"
        else:
            p = f"{k}::text < {lit(rng.choice('3456789abc'))}"
        if root.sentinel:
            p = f"({p}\n) AND {n} >= 0"
        return p

    # -- SQL ----------------------------------------------------------------------------------------------
    def qname(self, schema, t):
        return f"{schema}.{qi(t.name)}"

    def build_sql(self, schema, twin):
        out = [f"CREATE SCHEMA {schema};"]
        for t in self.tables:
            defs = []
            for c in t.cols:
                d = f"{qi(c.name)} {c.typ}"
                if c.not_null:
                    d += " NOT NULL"
                if c.default is not None:
                    d += f" DEFAULT {c.default}"
                defs.append(d)
            if t.pk:
                defs.append(f"PRIMARY KEY ({', '.join(map(qi, t.pk))})")
            for u in t.uniques:
                defs.append(f"UNIQUE ({', '.join(map(qi, u))})")
            if t.dropped:
                defs.insert(0, "junk int")
            out.append(f"CREATE TABLE {self.qname(schema, t)} ({', '.join(defs)});")
            if t.dropped:
                out.append(f"ALTER TABLE {self.qname(schema, t)} DROP COLUMN junk;")
        for t in self.tables:
            rows = t.rows + ([t.sentinel] if t.sentinel else [])
            if rows:
                names = ", ".join(qi(c.name) for c in t.cols)
                vals = ",\n".join("(" + ", ".join(sql_value(r[c.name], c.typ) for c in t.cols) + ")" for r in rows)
                out.append(f"INSERT INTO {self.qname(schema, t)} ({names}) VALUES\n{vals};")
        # FKs after the data: cycles need no two-step insert, and adding each FK validates all rows.
        for t in self.tables:
            for fk in t.fks:
                action = fk.action
                if twin and (action in ("NO ACTION", "RESTRICT", "CASCADE") or self.follow_set_null):
                    action = "CASCADE"
                if fk.set_cols and action != "CASCADE":
                    action += f" ({', '.join(map(qi, fk.set_cols))})"
                p = self.tables[fk.parent]
                # The twin's FK checks run at commit (referential actions are never deferred). PG runs a
                # cascade's triggers breadth-first, so an immediate check can fail spuriously: a row updated
                # by a second SET NULL/DEFAULT edge is rechecked against every FK (its xmin is now ours)
                # after a parent of it was deleted but before the cascade from that parent reached it.
                # At commit only the final state counts. See README.md.
                deferred = " DEFERRABLE INITIALLY DEFERRED" if twin else ""
                if fk.declared and not twin:
                    if fk.indexed:
                        out.append(f"CREATE INDEX ON {self.qname(schema, t)} ({', '.join(map(qi, fk.cols))});")
                    on_delete = {"NO ACTION": "restrict", "RESTRICT": "restrict", "CASCADE": "cascade",
                                 "SET NULL": "set null"}[fk.action]
                    arr = lambda cols: "ARRAY[" + ", ".join(lit(c) for c in cols) + "]"
                    out.append(
                        f"DO $uproot$ BEGIN PERFORM uproot.declare_relation({lit(self.declared_name(fk))}, "
                        f"{lit(self.qname(schema, t))}, {arr(fk.cols)}, {lit(self.qname(schema, p))}, "
                        f"{arr(fk.ref_cols)}, {lit(on_delete)}); END $uproot$;"
                    )
                    continue
                out.append(
                    f"ALTER TABLE {self.qname(schema, t)} ADD CONSTRAINT {qi(fk.name)} FOREIGN KEY "
                    f"({', '.join(map(qi, fk.cols))}) REFERENCES {self.qname(schema, p)} "
                    f"({', '.join(map(qi, fk.ref_cols))}) ON DELETE {action}{deferred};"
                )
                if fk.indexed:
                    out.append(f"CREATE INDEX ON {self.qname(schema, t)} ({', '.join(map(qi, fk.cols))});")
        if not twin and self.owned:
            out.append(self.owned_sql(schema))
        return "\n".join(out)

    def describe(self):
        lines = []
        for t in self.tables:
            cols = ", ".join(f"{c.name} {c.typ}{' NOT NULL' if c.not_null else ''}"
                             f"{' DEFAULT ' + c.default if c.default else ''}" for c in t.cols)
            key = f" pk({', '.join(t.pk)})" if t.pk else " no pk"
            uq = "".join(f" unique({', '.join(u)})" for u in t.uniques)
            lines.append(f"  [{t.idx}] {qi(t.name)} ({cols}){key}{uq}  rows={len(t.rows)}"
                         f"{' +sentinel' if t.sentinel else ''}")
            for fk in t.fks:
                sc = f" ({', '.join(fk.set_cols)})" if fk.set_cols else ""
                lines.append(f"       fk {qi(fk.name)} ({', '.join(fk.cols)}) -> [{fk.parent}]({', '.join(fk.ref_cols)})"
                             f" ON DELETE {fk.action}{sc}{' late' if fk.late else ''}{'' if fk.indexed else ' unindexed'}"
                             f"{' DECLARED' if fk.declared else ''}{' OWNED' if fk in self.owned else ''}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# One seed: one psql session


def keys_expr(s, orig):
    """The keys argument that selects the same roots as the predicate."""
    root = s.tables[0]
    if len(root.pk) == 1:
        return f"ARRAY(SELECT {qi(root.pk[0])} FROM {s.qname(orig, root)} WHERE {s.predicate}\n)"
    obj = ", ".join(f"{lit(c)}, {qi(c)}" for c in root.pk)
    return (f"(SELECT coalesce(jsonb_agg(jsonb_build_object({obj})), '[]') FROM {s.qname(orig, root)} "
            f"WHERE {s.predicate}\n)")


def corrupt_edge(s):
    """The NO ACTION / RESTRICT foreign key that the corruption run leaves out of the family closure (drawn
    from its own generator, so that the schema stays what the seed's generator made), or None. A declared
    relation is no constraint (nothing checks it), so it is never the one left out."""
    fks = [fk for t in s.tables for fk in t.fks if fk.action in ("NO ACTION", "RESTRICT") and not fk.declared]
    return random.Random(f"corrupt {s.seed}").choice(fks).name if fks else None


def corrupt_runs(s, purge):
    """The purge with one edge left out of the closure (uproot.debug_skip_edge), once as it runs (the
    set-based check where it applies) and once with PostgreSQL's per-row triggers only: both must fail with
    the same SQLSTATE, or both succeed with the same counts. Each runs in a transaction that rolls back."""
    skip = corrupt_edge(s)
    if skip is None:
        return []
    out = []
    for how, extra in (("set", ""), ("row", "SET LOCAL uproot.debug_row_triggers = on;")):
        out += [
            "\\set LAST_ERROR_SQLSTATE ''",
            "\\set LAST_ERROR_MESSAGE ''",
            f"BEGIN; SET LOCAL uproot.debug_skip_edge = {lit(skip)}; {extra}",
            f"SELECT 'CORRUPT_ROWS', '{how}', string_agg(format('%s %s %s', relation, action, rows), ', ' "
            f"ORDER BY relation::text, action) FROM {purge};",
            "ROLLBACK;",
            f"SELECT 'CORRUPT_ERR', '{how}', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
        ]
    return out


def keep_row_run(purge):
    """The purge with its family statement bound without one row its collect found
    (uproot.debug_fail_at = 'family_keeps_row', set-based path only): the statement's count falls short,
    so the check must probe the keys the collects walked and catch the row (23503, or 23001 for RESTRICT
    on PostgreSQL 18). Where nothing was kept back (no table collected below the root, or PostgreSQL's
    triggers check), the purge must return what the real one does. Rolled back."""
    return [
        "\\set LAST_ERROR_SQLSTATE ''",
        "\\set LAST_ERROR_MESSAGE ''",
        "BEGIN; SET LOCAL uproot.debug_fail_at = 'family_keeps_row';",
        f"SELECT 'KEEP_ROWS', string_agg(format('%s %s %s', relation, action, rows), ', ' "
        f"ORDER BY relation::text, action) FROM {purge};",
        "ROLLBACK;",
        "SELECT 'KEEP_ERR', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
    ]


def planned_for_values(s):
    """Does this seed's purge (or archive) plan every statement that binds found keys for its values
    (uproot.debug_plan_for_values)? Seeds 2, 3, 6, 7, ...: half the small form, half the large."""
    return s.seed % 4 in (2, 3)


def key_runs(s):
    """Does this seed's preview count every leaf it may by runs of consecutive parent keys
    (uproot.debug_key_runs), as previews whose 1,000+ keys form long runs do? Odd seeds: half."""
    return s.seed % 2 == 1


def row_triggers(s):
    """Does this seed run with uproot.debug_row_triggers on (PostgreSQL's per-row triggers check, never the
    set-based check; an all-CASCADE tree then takes PostgreSQL's native cascade, as in REPEATABLE READ or
    with a user trigger)? Seeds 4, 5, 12, 13, ...: a quarter, half in the large form."""
    return s.seed % 8 in (4, 5)


def large_form(s):
    """Does this seed's purge (or archive) take the large form (uproot.debug_large_form)? Every other seed."""
    return s.seed % 2 == 1


def seed_script(s):
    orig, twin = f"{s.label}_orig", f"{s.label}_twin"
    root = s.tables[0]
    root_lit = lit(s.qname(orig, root))
    opts = ", follow_set_null => true" if s.follow_set_null else ""
    if s.mode == "keys":
        keys = keys_expr(s, orig)
        preview = f"uproot.preview({root_lit}, {keys}{opts})"
        purge = f"uproot.purge({root_lit}, {keys}{opts})"
    else:
        preview = f"uproot.preview_where({root_lit}, {lit(s.predicate)}{opts})"
        purge = f"uproot.purge_where({root_lit}, {lit(s.predicate)}{opts})"
    out = [
        "SET client_min_messages = warning;",
        "SET synchronous_commit = off;",  # many small commits: do not wait for each WAL flush
        *(["SET uproot.debug_row_triggers = on;"] if row_triggers(s) else []),
        f"DROP SCHEMA IF EXISTS {orig} CASCADE;",
        f"DROP SCHEMA IF EXISTS {twin} CASCADE;",
        s.build_sql(orig, twin=False),
        s.build_sql(twin, twin=True),
    ]
    for t in s.tables:
        out.append(f"CREATE TEMP TABLE _b{t.idx} AS TABLE {s.qname(orig, t)};")
        out.append(f"SELECT 'BEFORE', {t.idx}, {lit(s.qname(orig, t))}::regclass::text, count(*) FROM _b{t.idx};")
    out += [
        # odd seeds count leaves by runs of their parents' keys wherever a preview may
        *(["SET uproot.debug_key_runs = on;"] if key_runs(s) else []),
        # the seeds whose purge plans for the values: the preview asks of every statement that binds
        # found keys whether its kept plan reads them all through an index (and keeps it if so, which
        # it reports at DEBUG1), with index scans made likely on these small tables
        *(["SET uproot.debug_plan_for_values = on;", "SET enable_seqscan = off;",
           "SET client_min_messages = debug1;"] if planned_for_values(s) else []),
        # owned parents add lines of their own families, as in purge: one line per (relation, action)
        (f"SELECT 'PREVIEW', relation::text, action, sum(rows) FROM {preview} GROUP BY 1, 2, 3;" if s.owned
         else f"SELECT 'PREVIEW', relation::text, action, rows FROM {preview};"),
        "RESET uproot.debug_key_runs;",
        "RESET uproot.debug_plan_for_values;",
        "RESET enable_seqscan;",
        "SET client_min_messages = warning;",
        # whether the preview may count some leaf by runs
        f"SELECT 'RUNS', count(*) FROM uproot.explain({root_lit}, {lit(s.predicate)}, false, "
        f"{str(s.follow_set_null).lower()}, '{{}}', 'preview') WHERE purpose LIKE '%one index range per run%';",
        # which check the purge runs: the set-based one, or PostgreSQL's per-row triggers
        f"SELECT 'PATH', count(*) FROM uproot.explain({root_lit}, {lit(s.predicate)}, false, "
        f"{str(s.follow_set_null).lower()}) WHERE purpose LIKE '%(set-based check)%';",
        # whether it deletes a table in the statement that finds its rows (one foreign key, from
        # its one parent)
        f"SELECT 'WHEN_FOUND', count(*) FROM uproot.explain({root_lit}, {lit(s.predicate)}, false, "
        f"{str(s.follow_set_null).lower()}) WHERE purpose LIKE '%delete the rows of%';",
        # whether PostgreSQL's native cascade deletes the family below the roots
        f"SELECT 'NATIVE', count(*) FROM uproot.explain({root_lit}, {lit(s.predicate)}, false, "
        f"{str(s.follow_set_null).lower()}) WHERE purpose LIKE '%ON DELETE CASCADE deletes the rest%';",
        # From here an error is a result, not the end of the script.
        "\\set ON_ERROR_STOP 0",
        # every other seed purges in the form families with 10,000+ rows in a table take (join
        # leaves by statements of their own, first), which the small families here never reach
        *(["SET uproot.debug_large_form = on;"] if large_form(s) else []),
        # every other seed plans each statement that binds found keys for its values, as
        # statements that bind 1,000+ keys are
        *(["SET uproot.debug_plan_for_values = on;"] if planned_for_values(s) else []),
        *corrupt_runs(s, purge),
        *keep_row_run(purge),
        "\\set LAST_ERROR_SQLSTATE ''",
        "\\set LAST_ERROR_MESSAGE ''",
        f"CREATE TEMP TABLE _purge AS SELECT relation::text AS rel, action, rows FROM {purge};",
        "SELECT 'PURGE_ERR', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
        "RESET uproot.debug_large_form;",
        "RESET uproot.debug_plan_for_values;",
        "\\set LAST_ERROR_SQLSTATE ''",
        "\\set LAST_ERROR_MESSAGE ''",
        f"DELETE FROM {s.qname(twin, root)} WHERE {s.predicate}\n;",
    ]
    if s.owned:
        out.append(s.owned_reference(twin))
    out += [
        "SELECT 'NATIVE_ERR', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
        "\\set ON_ERROR_STOP 1",
        "CREATE TEMP TABLE IF NOT EXISTS _purge (rel text, action text, rows bigint);",
        # owned parents add lines of their own families: one line per (relation, action)
        ("SELECT 'PURGE', rel, action, sum(rows) FROM _purge GROUP BY rel, action;" if s.owned
         else "SELECT 'PURGE', rel, action, rows FROM _purge;"),
    ]
    for t in s.tables:
        o, w = s.qname(orig, t), s.qname(twin, t)
        out.append(
            f"SELECT 'TABLE', {t.idx}, (SELECT count(*) FROM (TABLE {o} EXCEPT ALL TABLE {w}) x), "
            f"(SELECT count(*) FROM (TABLE {w} EXCEPT ALL TABLE {o}) x), (SELECT count(*) FROM {o}), "
            f"(SELECT count(*) FROM {w}), (SELECT count(*) FROM (TABLE {o} EXCEPT ALL TABLE _b{t.idx}) x);"
        )
        # A few differing rows, so a failure explains itself.
        out.append(f"SELECT 'ROW', {t.idx}, 'only in orig', x::text FROM (TABLE {o} EXCEPT ALL TABLE {w} LIMIT 3) x;")
        out.append(f"SELECT 'ROW', {t.idx}, 'only in twin', x::text FROM (TABLE {w} EXCEPT ALL TABLE {o} LIMIT 3) x;")
    return "\n".join(out) + "\n"


# what uproot reports at DEBUG1 when a preview statement keeps its generic plan for its keys
KEPT_PLAN_MESSAGE = "runs its kept generic plan, which reads every key array through an index"


def check(s, stdout, stderr=""):
    """Returns (problems, outcome): problems are (kind, text); outcome counts what the seed did."""
    before, preview, purge, tables, rows, errs = {}, [], [], {}, [], {}
    set_based, when_found, native, corrupt, keep = False, False, False, {}, {}
    runs = False
    kept_plan = KEPT_PLAN_MESSAGE in stderr
    for line in stdout.splitlines():
        f = line.split(SEP)
        tag = f[0]
        if tag == "PATH":
            set_based = int(f[1]) > 0
        elif tag == "RUNS":
            runs = key_runs(s) and int(f[1]) > 0
        elif tag == "NATIVE":
            native = int(f[1]) > 0
        elif tag == "WHEN_FOUND":
            when_found = int(f[1]) > 0
        elif tag == "CORRUPT_ROWS":
            corrupt.setdefault(f[1], {})["rows"] = f[2]
        elif tag == "CORRUPT_ERR":
            corrupt.setdefault(f[1], {})["err"] = (f[2], f[3]) if f[2] else None
        elif tag == "KEEP_ROWS":
            keep["rows"] = f[1]
        elif tag == "KEEP_ERR":
            keep["err"] = (f[1], f[2]) if f[1] else None
        elif tag == "BEFORE":
            before[int(f[1])] = (f[2], int(f[3]))
        elif tag == "PREVIEW":
            preview.append((f[1], f[2], int(f[3])))
        elif tag == "PURGE":
            purge.append((f[1], f[2], int(f[3])))
        elif tag in ("PURGE_ERR", "NATIVE_ERR"):
            errs[tag] = (f[1], f[2]) if f[1] else None
        elif tag == "TABLE":
            tables[int(f[1])] = tuple(int(x) for x in f[2:])
        elif tag == "ROW":
            rows.append((int(f[1]), f[2], f[3]))
    if len(before) != len(s.tables) or len(tables) != len(s.tables) or len(errs) != 2:
        return [("psql", "incomplete output from psql")], {}
    problems = []
    names = {i: before[i][0] for i in before}
    # the corrupted closure: the set-based check must catch what PostgreSQL's triggers catch
    corruption = {}
    if corrupt:
        cs, cr = corrupt.get("set", {}), corrupt.get("row", {})
        se, re_ = cs.get("err"), cr.get("err")
        if (se is None) != (re_ is None) or (se and se[0] != re_[0]) or (not se and cs.get("rows") != cr.get("rows")):
            problems.append(("corruption", f"with {corrupt_edge(s)} left out of the closure: set-based path "
                                           f"{se or cs.get('rows')!r}, per-row triggers {re_ or cr.get('rows')!r}"))
        elif se and se[1].startswith("uproot: update or delete"):
            corruption["corruption caught by the set-based check (23503, or 23001 for RESTRICT on PostgreSQL 18)"] = 1
        elif se:
            corruption["corruption caught by PostgreSQL's triggers"] = 1
        else:
            corruption["corruption left nothing behind"] = 1
    pe, ne = errs["PURGE_ERR"], errs["NATIVE_ERR"]
    # a row kept back from the family statement: caught by the set-based check, or nothing was kept
    # back and the purge returned what the real one did (compared below, once the real one's lines
    # are known)
    ke = keep.get("err")
    if ke and ke[1].startswith("uproot: update or delete"):
        corruption["a row kept back from the family statement caught by the set-based check"] = 1
    elif ke and not pe:
        problems.append(("keep-row", f"with a row kept back from the family statement: {ke[0]} {ke[1]}"))
    for i, (o_only, w_only, o_n, w_n, changed) in sorted(tables.items()):
        if o_only or w_only:
            problems.append(("content", f"table {names[i]}: {o_only} row(s) only in orig, {w_only} only in twin "
                                        f"(orig has {o_n} rows, twin {w_n}; both had {before[i][1]})"))
            for j, side, r in rows:
                if j == i:
                    problems.append(("content", f"    {side}: {r}"))
    if pe and ne:
        for i, (o_only, w_only, o_n, w_n, changed) in tables.items():
            if o_n != before[i][1] or changed:
                problems.append(("atomicity", f"purge failed but changed {names[i]}"))
        return problems, {"both failed": 1, "errors": f"uproot: {pe[0]} {pe[1]} / native: {ne[0]} {ne[1]}",
                          "set-based path": int(set_based), "deleted when found": int(when_found),
                          "native cascade path": int(native), "PostgreSQL's triggers only": int(row_triggers(s)),
                          "preview counted by key runs": int(runs), "preview kept generic plans": int(kept_plan),
                          "large form": int(large_form(s)), "planned for values": int(planned_for_values(s)), **corruption}
    if pe or ne:
        problems.append(("error", f"uproot {'failed: ' + pe[0] + ' ' + pe[1] if pe else 'succeeded'}; "
                                  f"native DELETE on the twin {'failed: ' + ne[0] + ' ' + ne[1] if ne else 'succeeded'}"))
        return problems, {}
    if keep and not ke and not s.owned:
        want = sorted(", ".join(f"{r} {a} {n}" for r, a, n in purge).split(", ")) if purge else []
        got = sorted(keep["rows"].split(", ")) if keep.get("rows") else []
        if want != got:
            problems.append(("keep-row", f"with nothing caught, the purge that kept a row back returned {got}, "
                                         f"the real one {want}"))
    if sorted(preview) != sorted(purge):
        problems.append(("preview", "preview and purge disagree (relation, action, rows):"))
        for r in sorted(set(preview) | set(purge)):
            if preview.count(r) != purge.count(r):
                problems.append(("preview", f"    {r}: {preview.count(r)}x in preview, {purge.count(r)}x in purge"))
    seen = set()
    for rel, action, n in purge:
        if (rel, action) in seen:
            problems.append(("counts", f"purge returned {rel} {action} more than once"))
        seen.add((rel, action))
        if rel not in names.values():
            problems.append(("counts", f"purge returned a relation outside the schema: {rel}"))
        if action not in ("deleted", "nullified", "defaulted"):
            problems.append(("counts", f"purge returned an unknown action: {rel} {action}"))
    outcome = {"deleted": 0, "detached": 0, "seeds with an empty family": 0, "set-based path": int(set_based),
               "deleted when found": int(when_found), "native cascade path": int(native),
               "PostgreSQL's triggers only": int(row_triggers(s)), "large form": int(large_form(s)), "planned for values": int(planned_for_values(s)),
               "preview counted by key runs": int(runs), "preview kept generic plans": int(kept_plan), **corruption}
    for i, (o_only, w_only, o_n, w_n, changed) in sorted(tables.items()):
        rel = names[i]
        got = {a: sum(n for r, a2, n in purge if r == rel and a2 == a) for a in ("deleted", "nullified", "defaulted")}
        if before[i][1] - o_n != got["deleted"]:
            problems.append(("counts", f"{rel}: {before[i][1] - o_n} row(s) disappeared, purge says deleted {got['deleted']}"))
        # Rows left behind with new FK values are the detached ones; a row that was deleted is not detached.
        # With owned parents, purge sums its operations' lines: a row detached by the family can be detached
        # again, or deleted, by an owned parent's family, so only the contents (compared above) say it all.
        if not s.owned and not (max(got["nullified"], got["defaulted"]) <= changed <= got["nullified"] + got["defaulted"]):
            problems.append(("counts", f"{rel}: {changed} surviving row(s) were updated, purge says nullified "
                                       f"{got['nullified']}, defaulted {got['defaulted']}"))
        outcome["deleted"] += before[i][1] - o_n
        outcome["detached"] += changed
    if outcome["deleted"] == 0:
        outcome["seeds with an empty family"] = 1
    return problems, outcome


# ---------------------------------------------------------------------------------------------------------
# One archive seed: archive, compare with the twin and the snapshot, restore, compare with the snapshot


def archive_script(s):
    orig, twin = f"{s.label}_orig", f"{s.label}_twin"
    root = s.tables[0]
    root_lit = lit(s.qname(orig, root))
    opts = ", follow_set_null => true" if s.follow_set_null else ""
    if s.mode == "keys":
        keys = keys_expr(s, orig)
        preview = f"uproot.preview({root_lit}, {keys}{opts})"
        archive = f"uproot.archive({root_lit}, {keys}{opts})"
    else:
        mr = f", max_roots => {s.max_roots}" if s.max_roots else ""
        preview = f"uproot.preview_where({root_lit}, {lit(s.predicate)}{opts})"
        archive = f"uproot.archive_where({root_lit}, {lit(s.predicate)}{mr}{opts})"
    in_schema = (f"(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 f"WHERE n.nspname = {lit(orig)})")
    batches = f"(SELECT id FROM uproot.batches WHERE root::oid IN {in_schema})"
    err_reset = ["\\set LAST_ERROR_SQLSTATE ''", "\\set LAST_ERROR_MESSAGE ''"]

    def err(tag):
        return f"SELECT '{tag}', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');"

    def cols(t, alias=None):
        return ", ".join((alias + "." if alias else "") + qi(c.name) for c in t.cols)

    out = [
        "SET client_min_messages = warning;",
        "SET synchronous_commit = off;",  # many small commits: do not wait for each WAL flush
        f"DROP SCHEMA IF EXISTS {orig} CASCADE;",
        f"DROP SCHEMA IF EXISTS {twin} CASCADE;",
        s.build_sql(orig, twin=False),
        s.build_sql(twin, twin=True),
    ]
    for t in s.tables:
        o = s.qname(orig, t)
        # The snapshot that restore must bring back.
        out.append(f"CREATE TEMP TABLE _b{t.idx} AS TABLE {o};")
        out.append(f"SELECT 'BEFORE', {t.idx}, {lit(o)}::regclass::text, count(*), "
                   f"{lit(orig + '.' + t.name)} FROM _b{t.idx};")
    if not s.max_roots:
        out.append(f"SELECT 'PREVIEW', relation::text, action, rows FROM {preview};")
    if s.prepare:
        out.append(f"SELECT 'PREPARE', source::text, archive::text, action FROM uproot.prepare_archive({root_lit}{opts});")
    key = [qi(c) for c in root.keys()[0]]
    if s.max_roots:
        out.append(f"CREATE TEMP TABLE _roots AS SELECT {', '.join(key)} FROM {s.qname(orig, root)} LIMIT 0;")
    out += ["\\set ON_ERROR_STOP 0"] + err_reset + [
        # every other seed archives in the large form (join leaves moved first, each by a statement
        # of its own), which the small families here never reach
        *(["SET uproot.debug_large_form = on;"] if large_form(s) else []),
        *(["SET uproot.debug_plan_for_values = on;"] if planned_for_values(s) else []),
        f"CREATE TEMP TABLE _arch AS SELECT batch_id, relation::text AS rel, action, rows FROM {archive};",
        err("ARCHIVE_ERR"),
        "RESET uproot.debug_large_form;",
        "RESET uproot.debug_plan_for_values;",
        "SELECT :'LAST_ERROR_SQLSTATE' = '' AS archive_ok \\gset",
    ] + err_reset
    native = f"DELETE FROM {s.qname(twin, root)} WHERE {s.predicate}\n;"
    if s.max_roots:
        # The twin deletes the roots that archive chose: every root row of the batch (a family may hold
        # more root rows than the chosen ones; deleting those too changes nothing if the family is whole).
        ins = lit(f"INSERT INTO _roots SELECT {', '.join(key)} FROM %s WHERE _uproot_batch = %s")
        out += [
            "\\if :archive_ok",
            f"SELECT format({ins}, archive, (SELECT max(batch_id) FROM _arch)) FROM uproot.archive_tables "
            f"WHERE source = {root_lit}::regclass AND EXISTS (SELECT FROM _arch) \\gexec",
            f"DELETE FROM {s.qname(twin, root)} WHERE ({', '.join(key)}) IN (SELECT {', '.join(key)} FROM _roots);",
            "\\else",
            native,
            "\\endif",
        ]
    else:
        out.append(native)
    out += [
        err("NATIVE_ERR"),
        "\\set ON_ERROR_STOP 1",
        "CREATE TEMP TABLE IF NOT EXISTS _arch (batch_id bigint, rel text, action text, rows bigint);",
        "SELECT 'ARCHIVE', coalesce(batch_id::text, 'null'), rel, action, rows FROM _arch;",
        f"SELECT 'BATCH', id, root::text, replace(coalesce(predicate, '<null>'), E'\\n', '\\n'), "
        f"predicate IS NOT DISTINCT FROM {'NULL' if s.mode == 'keys' else lit(s.predicate)}, keys IS NOT NULL, "
        f"restored_at IS NOT NULL FROM uproot.batches WHERE id IN {batches};",
        f"SELECT 'COUNTS', b.id, e.key, e.value FROM uproot.batches b, jsonb_each_text(b.counts) e WHERE b.id IN {batches};",
        f"SELECT 'BREL', batch_id, relation::text, rows FROM uproot.batch_relations WHERE batch_id IN {batches};",
        f"SELECT 'AMAP', source::text, archive::text FROM uproot.archive_tables WHERE source::oid IN {in_schema};",
        "SELECT coalesce((SELECT max(batch_id) FROM _arch), -1) AS batch \\gset",
    ]
    for t in s.tables:
        i, o, w = t.idx, s.qname(orig, t), s.qname(twin, t)
        src = f"{lit(o)}::regclass"
        # _a{i}: the source columns of the archive table (an empty stand-in if there is none).
        stand_in = lit(f"(SELECT {cols(t)}, NULL::bigint AS _uproot_batch FROM _b{i} WHERE false) e")
        out.append(f"SELECT format('CREATE TEMP VIEW _a{i} AS SELECT {cols(t).replace(chr(39), chr(39) * 2)}, "
                   f"_uproot_batch FROM %s', coalesce((SELECT archive::text FROM uproot.archive_tables "
                   f"WHERE source = {src}), {stand_in})) \\gexec")
        attrs = ("(SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' "
                 "ORDER BY attnum) FROM pg_attribute WHERE attrelid = {} AND attnum > 0 AND NOT attisdropped)")
        out.append(f"SELECT 'ACOLS', {i}, {attrs.format('a.source')}, {attrs.format('a.archive')}, "
                   # constraints, and NOT NULLs but the one on _uproot_batch (PostgreSQL 18 also
                   # records a NOT NULL as a constraint, contype 'n': counted once, as a column)
                   f"(SELECT count(*) FROM pg_constraint WHERE conrelid = a.archive AND contype <> 'n') + "
                   f"(SELECT count(*) FROM pg_attribute WHERE attrelid = a.archive AND attnum > 0 "
                   f"AND attnotnull AND attname <> '_uproot_batch'), "
                   f"(SELECT count(*) FROM pg_attrdef WHERE adrelid = a.archive) "
                   f"FROM uproot.archive_tables a WHERE source = {src};")
        out.append(
            f"SELECT 'TABLE', {i}, (SELECT count(*) FROM (TABLE {o} EXCEPT ALL TABLE {w}) x), "
            f"(SELECT count(*) FROM (TABLE {w} EXCEPT ALL TABLE {o}) x), (SELECT count(*) FROM {o}), "
            f"(SELECT count(*) FROM {w}), (SELECT count(*) FROM (TABLE {o} EXCEPT ALL TABLE _b{i}) x);"
        )
        out.append(f"SELECT 'ROW', {i}, 'only in orig', x::text FROM (TABLE {o} EXCEPT ALL TABLE {w} LIMIT 3) x;")
        out.append(f"SELECT 'ROW', {i}, 'only in twin', x::text FROM (TABLE {w} EXCEPT ALL TABLE {o} LIMIT 3) x;")
        # _d{i}: the rows that disappeared. With a key: the snapshot rows whose key is gone (a detached row
        # keeps its key). Without one, a detached row's old version is in the difference too (see check).
        if t.keys():
            match = " AND ".join(f"l.{qi(c)} = b.{qi(c)}" for c in t.keys()[0])
            out.append(f"CREATE TEMP TABLE _d{i} AS SELECT * FROM _b{i} b WHERE NOT EXISTS (SELECT FROM {o} l WHERE {match});")
        else:
            out.append(f"CREATE TEMP TABLE _d{i} AS TABLE _b{i} EXCEPT ALL TABLE {o};")
        arch = f"SELECT {cols(t)} FROM _a{i} WHERE _uproot_batch = :batch"
        out.append(
            f"SELECT 'ARCH', {i}, (SELECT count(*) FROM _a{i}), (SELECT count(*) FROM _a{i} WHERE _uproot_batch = :batch), "
            f"(SELECT count(*) FROM ({arch} EXCEPT ALL TABLE _d{i}) x), "
            f"(SELECT count(*) FROM (TABLE _d{i} EXCEPT ALL {arch}) x), (SELECT count(*) FROM _d{i});"
        )
        out.append(f"SELECT 'AROW', {i}, 'archived, did not disappear', x::text FROM ({arch} EXCEPT ALL TABLE _d{i} LIMIT 3) x;")
        out.append(f"SELECT 'AROW', {i}, 'disappeared, not archived', x::text FROM (TABLE _d{i} EXCEPT ALL {arch} LIMIT 3) x;")
    out += [
        "SELECT :batch > 0 AS has_batch \\gset",
        "\\if :has_batch",
        "\\set ON_ERROR_STOP 0",
    ] + err_reset + [
        "CREATE TEMP TABLE _rest AS SELECT relation::text AS rel, action, rows FROM uproot.restore(:batch);",
        err("RESTORE_ERR"),
        "\\set ON_ERROR_STOP 1",
        "CREATE TEMP TABLE IF NOT EXISTS _rest (rel text, action text, rows bigint);",
        "SELECT 'RESTORE', rel, action, rows FROM _rest;",
        "SELECT 'RBATCH', id, restored_at IS NOT NULL FROM uproot.batches WHERE id = :batch;",
    ]
    for t in s.tables:
        i, o = t.idx, s.qname(orig, t)
        out.append(f"SELECT 'RTABLE', {i}, (SELECT count(*) FROM (TABLE {o} EXCEPT ALL TABLE _b{i}) x), "
                   f"(SELECT count(*) FROM (TABLE _b{i} EXCEPT ALL TABLE {o}) x), "
                   f"(SELECT count(*) FROM _a{i} WHERE _uproot_batch = :batch), (SELECT count(*) FROM _a{i});")
        out.append(f"SELECT 'RROW', {i}, 'only after restore', x::text FROM (TABLE {o} EXCEPT ALL TABLE _b{i} LIMIT 3) x;")
        out.append(f"SELECT 'RROW', {i}, 'only before archive', x::text FROM (TABLE _b{i} EXCEPT ALL TABLE {o} LIMIT 3) x;")
    out.append("\\endif")
    return "\n".join(out) + "\n"


def check_archive(s, stdout):
    """Like check(), for an archive seed."""
    before, preview, prepare, arch, batches, counts, brel, amap, acols = {}, [], [], [], [], [], [], {}, {}
    tables, archt, rows, errs, restore, rbatch, rtables = {}, {}, [], {}, [], [], {}
    for line in stdout.splitlines():
        f = line.split(SEP)
        tag = f[0]
        if tag == "BEFORE":
            before[int(f[1])] = (f[2], int(f[3]), f[4])
        elif tag == "PREVIEW":
            preview.append((f[1], "archived" if f[2] == "deleted" else f[2], int(f[3])))
        elif tag == "PREPARE":
            prepare.append((f[1], f[2], f[3]))
        elif tag in ("ARCHIVE_ERR", "NATIVE_ERR", "RESTORE_ERR"):
            errs[tag] = (f[1], f[2]) if f[1] else None
        elif tag == "ARCHIVE":
            arch.append((f[1], f[2], f[3], int(f[4])))
        elif tag == "BATCH":
            batches.append((int(f[1]), f[2], f[3], f[4] == "t", f[5] == "t", f[6] == "t"))
        elif tag == "COUNTS":
            counts.append((int(f[1]), f[2], int(f[3])))
        elif tag == "BREL":
            brel.append((int(f[1]), f[2], int(f[3])))
        elif tag == "AMAP":
            amap[f[1]] = f[2]
        elif tag == "ACOLS":
            acols[int(f[1])] = (f[2], f[3], int(f[4]), int(f[5]))
        elif tag == "TABLE":
            tables[int(f[1])] = tuple(int(x) for x in f[2:])
        elif tag == "ARCH":
            archt[int(f[1])] = tuple(int(x) for x in f[2:])
        elif tag in ("ROW", "AROW", "RROW"):
            rows.append((tag, int(f[1]), f[2], f[3]))
        elif tag == "RESTORE":
            restore.append((f[1], f[2], int(f[3])))
        elif tag == "RBATCH":
            rbatch.append((int(f[1]), f[2] == "t"))
        elif tag == "RTABLE":
            rtables[int(f[1])] = tuple(int(x) for x in f[2:])
    n = len(s.tables)
    if len(before) != n or len(tables) != n or len(archt) != n or "NATIVE_ERR" not in errs:
        return [("psql", "incomplete output from psql")], {}
    problems = []
    names = {i: before[i][0] for i in before}
    plain = {before[i][0]: before[i][2] for i in before}  # regclass text -> schema.name, the ledger's keys

    def samples(kind, tag, i):
        for t2, j, side, r in rows:
            if t2 == tag and j == i:
                problems.append((kind, f"    {side}: {r}"))

    for i, (o_only, w_only, o_n, w_n, changed) in sorted(tables.items()):
        if o_only or w_only:
            problems.append(("content", f"table {names[i]}: {o_only} row(s) only in orig, {w_only} only in twin "
                                        f"(orig has {o_n} rows, twin {w_n}; both had {before[i][1]})"))
            samples("content", "ROW", i)
    ae, ne = errs.get("ARCHIVE_ERR"), errs["NATIVE_ERR"]
    if ae and ne:
        for i, (o_only, w_only, o_n, w_n, changed) in tables.items():
            if o_n != before[i][1] or changed:
                problems.append(("atomicity", f"archive failed but changed {names[i]}"))
            if archt[i][0]:
                problems.append(("atomicity", f"archive failed but the archive table of {names[i]} holds {archt[i][0]} row(s)"))
        if batches:
            problems.append(("atomicity", f"archive failed but the ledger has batch(es) {[b[0] for b in batches]}"))
        return problems, {"both failed": 1, "errors": f"uproot: {ae[0]} {ae[1]} / native: {ne[0]} {ne[1]}"}
    if ae or ne:
        problems.append(("error", f"uproot {'failed: ' + ae[0] + ' ' + ae[1] if ae else 'succeeded'}; "
                                  f"native DELETE on the twin {'failed: ' + ne[0] + ' ' + ne[1] if ne else 'succeeded'}"))
        return problems, {}

    # What archive returned.
    ids = {b for b, _, _, _ in arch}
    if len(ids) > 1 or "null" in ids:
        problems.append(("counts", f"archive returned batch ids {sorted(ids)}, expected one"))
    seen = set()
    for _, rel, action, k in arch:
        if (rel, action) in seen:
            problems.append(("counts", f"archive returned {rel} {action} more than once"))
        seen.add((rel, action))
        if rel not in plain:
            problems.append(("counts", f"archive returned a relation outside the schema: {rel}"))
        if action not in ("archived", "nullified", "defaulted"):
            problems.append(("counts", f"archive returned an unknown action: {rel} {action}"))
    got = {(rel, action): k for _, rel, action, k in arch}
    if not arch:
        # No root matched: archive returns no rows (preview still lists the family, with zeros).
        if any(k for _, _, k in preview):
            problems.append(("preview", f"archive returned nothing, preview says {sorted(preview)}"))
    elif not s.max_roots and sorted(preview) != sorted((r, a, k) for _, r, a, k in arch):
        problems.append(("preview", "preview ('deleted' read as 'archived') and archive disagree (relation, action, rows):"))
        res = [(r, a, k) for _, r, a, k in arch]
        for r in sorted(set(preview) | set(res)):
            if preview.count(r) != res.count(r):
                problems.append(("preview", f"    {r}: {preview.count(r)}x in preview, {res.count(r)}x in archive"))
    for src, a, action in prepare:
        if action != "created":
            problems.append(("archive table", f"prepare_archive on a new schema: {src} -> {a} {action!r}, expected 'created'"))

    outcome = {"archived": 0, "detached": 0, "restored": 0, "reattached": 0, "seeds with an empty family": 0,
               "large form": int(large_form(s)), "planned for values": int(planned_for_values(s))}
    batch = int(next(iter(ids))) if len(ids) == 1 and "null" not in ids else None
    for i, (o_only, w_only, o_n, w_n, changed) in sorted(tables.items()):
        rel = names[i]
        gone = before[i][1] - o_n
        a_all, a_batch, a_not_d, d_not_a, d_n = archt[i]
        if gone != got.get((rel, "archived"), 0):
            problems.append(("counts", f"{rel}: {gone} row(s) disappeared, archive says archived "
                                       f"{got.get((rel, 'archived'), 0)}"))
        nul, dfl = got.get((rel, "nullified"), 0), got.get((rel, "defaulted"), 0)
        if not (max(nul, dfl) <= changed <= nul + dfl):
            problems.append(("counts", f"{rel}: {changed} surviving row(s) were updated, archive says nullified "
                                       f"{nul}, defaulted {dfl}"))
        # The archive table holds exactly the rows that disappeared, all in this batch. Without a key the
        # old versions of detached rows cannot be told apart from the disappeared ones: then the archived
        # rows must be among them, as many as disappeared.
        exact = bool(s.tables[i].keys()) or changed == 0
        if a_all != a_batch or a_batch != gone or a_not_d or (exact and d_not_a):
            problems.append(("archive content", f"{rel}: {gone} row(s) disappeared; its archive table holds {a_all} "
                                                f"row(s), {a_batch} in batch {batch}; {a_not_d} archived row(s) did not "
                                                f"disappear, {d_not_a} of the {d_n} candidate row(s) are not archived"
                                                f"{'' if exact else ' (no key, and detached rows: containment only)'}"))
            samples("archive content", "AROW", i)
        if gone and rel not in amap:
            problems.append(("archive table", f"{rel} has archived rows but no row in uproot.archive_tables"))
        if rel in amap:  # prepare_archive, or archive itself, made it
            if i not in acols:
                problems.append(("archive table", f"{rel}: cannot read the columns of {amap[rel]}"))
            else:
                src_cols, a_cols, ncons, ndefs = acols[i]
                want = sorted(src_cols.split(", ") + ["_uproot_batch bigint"])
                if sorted(a_cols.split(", ")) != want or ncons or ndefs:
                    problems.append(("archive table", f"{amap[rel]}: columns ({a_cols}), {ncons} constraint(s) "
                                                      f"or NOT NULL(s) besides _uproot_batch's, "
                                                      f"{ndefs} default(s); expected ({src_cols}) + _uproot_batch bigint, "
                                                      f"none"))
        outcome["archived"] += gone
        outcome["detached"] += changed

    if batch is None:
        # No root matched: no rows, no batch, nothing moved (any change shows up in the counts above).
        if arch:
            return problems, outcome
        if batches:
            problems.append(("ledger", f"archive returned nothing but the ledger has batch(es) {[b[0] for b in batches]}"))
        outcome["seeds with an empty family"] = 1
        return problems, outcome

    # The ledger: one batch, not restored, its counts and relations those archive returned (relations with
    # no rows archived may be left out).
    archived = {rel: k for (rel, action), k in got.items() if action == "archived" and k}
    if [b[0] for b in batches] != [batch]:
        problems.append(("ledger", f"ledger batches for this schema: {[b[0] for b in batches]}, expected [{batch}]"))
    for b, root, pred, pred_ok, has_keys, restored in batches:
        if b != batch:
            continue
        want_pred = "<null>" if s.mode == "keys" else s.predicate.replace("\n", "\\n")
        if root != names[0] or not pred_ok or has_keys != (s.mode == "keys") or restored:
            problems.append(("ledger", f"batch {b}: root {root}, predicate {pred!r}, keys recorded {has_keys}, restored "
                                       f"{restored}; expected root {names[0]}, predicate {want_pred!r}, keys recorded "
                                       f"{s.mode == 'keys'}, not restored"))
    ledger_counts = {k: v for b, k, v in counts if b == batch and v}
    if ledger_counts != {plain[r]: k for r, k in archived.items()}:
        problems.append(("ledger", f"batch {batch} counts {ledger_counts}, archive returned {archived}"))
    rels = {r: k for b, r, k in brel if b == batch and k}
    if rels != archived:
        problems.append(("ledger", f"batch {batch} batch_relations {rels}, archive returned {archived}"))

    # Restore.
    re = errs.get("RESTORE_ERR")
    if re or len(rtables) != n:
        problems.append(("restore", f"restore({batch}) failed: {re[0]} {re[1]}" if re else "no output after restore"))
        return problems, outcome
    rgot = {}
    for rel, action, k in restore:
        rgot[(rel, action)] = rgot.get((rel, action), 0) + k
        if action not in ("restored", "reattached"):
            problems.append(("restore", f"restore returned {rel} {action} {k}"))
    for rel in plain:
        want = (archived.get(rel, 0), got.get((rel, "nullified"), 0) + got.get((rel, "defaulted"), 0))
        have = (rgot.get((rel, "restored"), 0), rgot.get((rel, "reattached"), 0))
        if want != have:
            problems.append(("restore", f"{rel}: restore says restored {have[0]}, reattached {have[1]}; archive had "
                                        f"archived {want[0]}, detached {want[1]}"))
        outcome["restored"] += have[0]
        outcome["reattached"] += have[1]
    if rbatch != [(batch, True)]:
        problems.append(("restore", f"batch {batch} is not marked restored: {rbatch}"))
    for i, (extra, missing, in_batch, a_all) in sorted(rtables.items()):
        if extra or missing:
            problems.append(("restore", f"after restore, {names[i]} differs from before the archive: {extra} row(s) "
                                        f"only after, {missing} only before"
                                        f"{'' if s.tables[i].keys() else ' (a table without a key)'}"))
            samples("restore", "RROW", i)
        if in_batch or a_all:
            problems.append(("restore", f"after restore, the archive table of {names[i]} still holds {a_all} row(s), "
                                        f"{in_batch} of batch {batch}"))
    return problems, outcome


# ---------------------------------------------------------------------------------------------------------


def psql(args, sql, db):
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", SEP,
           "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", db]
    # every purge also proves that each statement it ran is one uproot.explain shows
    env = dict(os.environ, PGOPTIONS="-c uproot.debug_check_explain=on -c uproot.debug_check_catalog=on")
    return subprocess.run(cmd, input=sql, capture_output=True, text=True, encoding="utf-8", env=env)


def wait_for_server(args):
    """After a backend crash the postmaster restarts everything; wait until it takes connections again."""
    for _ in range(120):
        if psql(args, "SELECT 1;\n", args.db).returncode == 0:
            return
        time.sleep(0.5)
    sys.exit("the server did not come back after a crash")


def parse_seed(label):
    """'52' is purge seed 52, 'a52' archive seed 52."""
    archive = label.startswith("a")
    return int(label[1:] if archive else label), archive


def run_seed(args, label, verbose):
    seed, archive = parse_seed(label)
    s = Schema(seed, archive=archive)
    script = archive_script(s) if archive else seed_script(s)
    t0 = time.time()
    r = psql(args, script, args.db)
    if verbose:
        extra = f" max_roots={s.max_roots} prepare_archive={s.prepare}" if archive else ""
        print(f"-- seed {label}: mode={s.mode} follow_set_null={s.follow_set_null}{extra}\n{s.describe()}")
        print(f"-- predicate: {s.predicate!r}\n-- psql exit {r.returncode} in {time.time() - t0:.2f}s")
        print(r.stdout.replace(SEP, " | "))
        if r.stderr:
            print("-- stderr:\n" + r.stderr)
    if r.returncode == 2:  # connection lost: most likely the backend crashed
        problems, outcome = [("crash", f"connection lost: {r.stderr.strip()[-1500:]}")], {}
        wait_for_server(args)
    elif r.returncode != 0:
        problems, outcome = [("psql", f"psql failed (exit {r.returncode}): {r.stderr.strip()[-2000:]}")], {}
    else:
        problems, outcome = check_archive(s, r.stdout) if archive else check(s, r.stdout, r.stderr)
    return s, script, problems, outcome


def drop_sql(label):
    orig = f"{label}_orig"
    # An archive seed also leaves archive tables and ledger rows behind.
    in_schema = (f"(SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 f"WHERE n.nspname = {lit(orig)})")
    return (f"SET client_min_messages = warning; SET synchronous_commit = off;\n"
            f"DELETE FROM uproot.batches WHERE root::oid IN {in_schema};\n"
            f"WITH d AS (DELETE FROM uproot.archive_tables WHERE source::oid IN {in_schema} RETURNING archive)\n"
            f"SELECT format('DROP TABLE IF EXISTS %s', archive) FROM d \\gexec\n"
            f"DROP SCHEMA IF EXISTS {orig}, {label}_twin CASCADE;\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200, help="purge seeds")
    ap.add_argument("--archive-seeds", type=int, default=100, help="archive seeds (a1, a2, ...)")
    ap.add_argument("--first-seed", type=int, default=1, help="first seed of both ranges")
    ap.add_argument("--host", default="/tmp")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", 5432)))
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--db", default="uproot_diff")
    ap.add_argument("--only", help="rerun one seed, verbosely: 52 (purge) or a52 (archive)")
    ap.add_argument("--keep", action="store_true", help="keep a failing seed's schemas (and archive tables)")
    args = ap.parse_args()
    if args.only is not None:
        try:
            parse_seed(args.only)
        except ValueError:
            sys.exit(f"--only takes a seed like 52 or a52, not {args.only!r}")

    setup = psql(args, f"DROP DATABASE IF EXISTS {qi(args.db)};\n"
                       f"CREATE DATABASE {qi(args.db)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';\n",
                 "postgres")
    if setup.returncode == 0:
        setup = psql(args, "CREATE EXTENSION pg_uproot;\n", args.db)
    if setup.returncode != 0:
        sys.exit(f"setup failed: {setup.stderr.strip()}")

    first = args.first_seed
    if args.only is not None:
        labels = [args.only]
    else:
        labels = [str(n) for n in range(first, first + args.seeds)]
        labels += [f"a{n}" for n in range(first, first + args.archive_seeds)]
    failed, kinds, coverage, totals = [], {}, {}, {}
    t0 = time.time()
    for label in labels:
        s, script, problems, outcome = run_seed(args, label, verbose=args.only is not None)
        op = "archive" if s.archive else "purge"
        tags = s.stats | {f"mode {s.mode}"} | ({"follow_set_null"} if s.follow_set_null else set())
        if s.archive:
            tags |= {"archive"} | ({"archive max_roots"} if s.max_roots else set()) | (
                set() if s.prepare else {"archive without prepare_archive"})
        for k in tags:
            coverage[k] = coverage.get(k, 0) + 1
        if "errors" in outcome:
            print(f"note: seed {label}: uproot and the native DELETE both failed ({outcome.pop('errors')})")
        for k, v in outcome.items():
            totals.setdefault(op, {})[k] = totals.get(op, {}).get(k, 0) + v
        if problems:
            failed.append(label)
            for k in {k for k, _ in problems}:
                kinds[k] = kinds.get(k, 0) + 1
            path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"uproot_diff_seed{label}.sql")
            with open(path, "w", encoding="utf-8") as f:
                f.write(script)
            extra = f", max_roots={s.max_roots}, prepare_archive={s.prepare}" if s.archive else ""
            print(f"FAIL {op} seed {label} (mode={s.mode}, follow_set_null={s.follow_set_null}{extra})")
            print(f"  root {s.qname(f'{s.label}_orig', s.tables[0])}, predicate: {s.predicate!r}")
            for kind, text in problems:
                print(f"  [{kind}] {text}")
            print(s.describe())
            print(f"  the seed's whole SQL script: {path}")
        if not problems or not args.keep:
            r = psql(args, drop_sql(s.label), args.db)
            if r.returncode != 0:
                print(f"warning: cleanup of seed {label} failed: {r.stderr.strip()}")
    elapsed = time.time() - t0
    if args.only is None:
        print("coverage (seeds): " + ", ".join(f"{k} {v}" for k, v in sorted(coverage.items())))
    for op, t in sorted(totals.items()):
        print(f"outcome ({op}): " + ", ".join(f"{k} {v}" for k, v in sorted(t.items())) +
              " (seeds where uproot and the native DELETE both failed count as passes)")
    if failed:
        print("failures by kind (seeds): " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        print("failed seeds: " + " ".join(failed))
        print(f"rerun one with: {sys.argv[0]} --port {args.port} --only SEED --keep")
    print(f"{len(labels) - len(failed)} passed, {len(failed)} failed  ({elapsed:.1f}s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
