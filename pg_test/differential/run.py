#!/usr/bin/env python3
"""Differential test for pg_uproot.

For every seed, a random schema is built twice: d{seed}_orig with the generated ON DELETE actions, and
d{seed}_twin where every NO ACTION / RESTRICT / CASCADE edge is ON DELETE CASCADE (SET NULL / SET DEFAULT
stay). uproot.purge_where on the original must leave exactly what a native DELETE leaves on the twin.
Some seeds use uproot.purge with keys instead, and some use follow_set_null => true (the twin then turns
SET NULL / SET DEFAULT into CASCADE as well). Python 3 stdlib only; talks to Postgres through psql.
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
        n = rng.randint(3, 9)
        for i in range(n):
            self._make_table(i)
        for i in range(1, n):
            self._forward_fks(self.tables[i])
        for t in self.tables:
            if t.keys() and rng.random() < 0.25:
                self._add_fk(t, t, late=True)
                self.stats.add("self-reference")
        if rng.random() < 0.4:
            for _ in range(rng.randint(1, 2)):
                self._add_cycle()
        for t in self.tables:
            self._sentinel_ok(t)
        for t in self.tables:
            for fk in t.fks:
                self._choose_action(t, fk)
        self._bad_defaults()
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
            r = rng.random()
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
        if own:
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
                out.append(
                    f"ALTER TABLE {self.qname(schema, t)} ADD CONSTRAINT {qi(fk.name)} FOREIGN KEY "
                    f"({', '.join(map(qi, fk.cols))}) REFERENCES {self.qname(schema, p)} "
                    f"({', '.join(map(qi, fk.ref_cols))}) ON DELETE {action}{deferred};"
                )
                if fk.indexed:
                    out.append(f"CREATE INDEX ON {self.qname(schema, t)} ({', '.join(map(qi, fk.cols))});")
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
                             f" ON DELETE {fk.action}{sc}{' late' if fk.late else ''}{'' if fk.indexed else ' unindexed'}")
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
        f"DROP SCHEMA IF EXISTS {orig} CASCADE;",
        f"DROP SCHEMA IF EXISTS {twin} CASCADE;",
        s.build_sql(orig, twin=False),
        s.build_sql(twin, twin=True),
    ]
    for t in s.tables:
        out.append(f"CREATE TEMP TABLE _b{t.idx} AS TABLE {s.qname(orig, t)};")
        out.append(f"SELECT 'BEFORE', {t.idx}, {lit(s.qname(orig, t))}::regclass::text, count(*) FROM _b{t.idx};")
    out += [
        f"SELECT 'PREVIEW', relation::text, action, rows FROM {preview};",
        # From here an error is a result, not the end of the script.
        "\\set ON_ERROR_STOP 0",
        "\\set LAST_ERROR_SQLSTATE ''",
        "\\set LAST_ERROR_MESSAGE ''",
        f"CREATE TEMP TABLE _purge AS SELECT relation::text AS rel, action, rows FROM {purge};",
        "SELECT 'PURGE_ERR', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
        "\\set LAST_ERROR_SQLSTATE ''",
        "\\set LAST_ERROR_MESSAGE ''",
        f"DELETE FROM {s.qname(twin, root)} WHERE {s.predicate}\n;",
        "SELECT 'NATIVE_ERR', :'LAST_ERROR_SQLSTATE', replace(:'LAST_ERROR_MESSAGE', E'\\n', ' ');",
        "\\set ON_ERROR_STOP 1",
        "CREATE TEMP TABLE IF NOT EXISTS _purge (rel text, action text, rows bigint);",
        "SELECT 'PURGE', rel, action, rows FROM _purge;",
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


def check(s, stdout):
    """Returns (problems, outcome): problems are (kind, text); outcome counts what the seed did."""
    before, preview, purge, tables, rows, errs = {}, [], [], {}, [], {}
    for line in stdout.splitlines():
        f = line.split(SEP)
        tag = f[0]
        if tag == "BEFORE":
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
    pe, ne = errs["PURGE_ERR"], errs["NATIVE_ERR"]
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
        return problems, {"both failed": 1, "errors": f"uproot: {pe[0]} {pe[1]} / native: {ne[0]} {ne[1]}"}
    if pe or ne:
        problems.append(("error", f"uproot {'failed: ' + pe[0] + ' ' + pe[1] if pe else 'succeeded'}; "
                                  f"native DELETE on the twin {'failed: ' + ne[0] + ' ' + ne[1] if ne else 'succeeded'}"))
        return problems, {}
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
    outcome = {"deleted": 0, "detached": 0, "seeds with an empty family": 0}
    for i, (o_only, w_only, o_n, w_n, changed) in sorted(tables.items()):
        rel = names[i]
        got = {a: sum(n for r, a2, n in purge if r == rel and a2 == a) for a in ("deleted", "nullified", "defaulted")}
        if before[i][1] - o_n != got["deleted"]:
            problems.append(("counts", f"{rel}: {before[i][1] - o_n} row(s) disappeared, purge says deleted {got['deleted']}"))
        # Rows left behind with new FK values are the detached ones; a row that was deleted is not detached.
        if not (max(got["nullified"], got["defaulted"]) <= changed <= got["nullified"] + got["defaulted"]):
            problems.append(("counts", f"{rel}: {changed} surviving row(s) were updated, purge says nullified "
                                       f"{got['nullified']}, defaulted {got['defaulted']}"))
        outcome["deleted"] += before[i][1] - o_n
        outcome["detached"] += changed
    if outcome["deleted"] == 0:
        outcome["seeds with an empty family"] = 1
    return problems, outcome


# ---------------------------------------------------------------------------------------------------------


def psql(args, sql, db):
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", SEP,
           "-h", args.host, "-p", str(args.port), "-U", args.user, "-d", db]
    return subprocess.run(cmd, input=sql, capture_output=True, text=True, encoding="utf-8")


def wait_for_server(args):
    """After a backend crash the postmaster restarts everything; wait until it takes connections again."""
    for _ in range(120):
        if psql(args, "SELECT 1;\n", args.db).returncode == 0:
            return
        time.sleep(0.5)
    sys.exit("the server did not come back after a crash")


def run_seed(args, seed, verbose):
    s = Schema(seed)
    script = seed_script(s)
    t0 = time.time()
    r = psql(args, script, args.db)
    if verbose:
        print(f"-- seed {seed}: mode={s.mode} follow_set_null={s.follow_set_null}\n{s.describe()}")
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
        problems, outcome = check(s, r.stdout)
    return s, script, problems, outcome


def drop_sql(seed):
    return f"SET client_min_messages = warning; DROP SCHEMA IF EXISTS d{seed}_orig, d{seed}_twin CASCADE;\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--host", default="/tmp")
    ap.add_argument("--port", type=int, default=int(os.environ.get("PGPORT", 5432)))
    ap.add_argument("--user", default="postgres")
    ap.add_argument("--db", default="uproot_diff")
    ap.add_argument("--only", type=int, help="rerun one seed, verbosely")
    ap.add_argument("--keep", action="store_true", help="keep a failing seed's schemas")
    args = ap.parse_args()

    setup = psql(args, f"DROP DATABASE IF EXISTS {qi(args.db)};\n"
                       f"CREATE DATABASE {qi(args.db)} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C';\n",
                 "postgres")
    if setup.returncode == 0:
        setup = psql(args, "CREATE EXTENSION pg_uproot;\n", args.db)
    if setup.returncode != 0:
        sys.exit(f"setup failed: {setup.stderr.strip()}")

    seeds = [args.only] if args.only is not None else range(args.first_seed, args.first_seed + args.seeds)
    failed, kinds, coverage, totals = [], {}, {}, {}
    t0 = time.time()
    for seed in seeds:
        s, script, problems, outcome = run_seed(args, seed, verbose=args.only is not None)
        for k in s.stats | {f"mode {s.mode}"} | ({"follow_set_null"} if s.follow_set_null else set()):
            coverage[k] = coverage.get(k, 0) + 1
        if "errors" in outcome:
            print(f"note: seed {seed}: uproot and the native DELETE both failed ({outcome.pop('errors')})")
        for k, v in outcome.items():
            totals[k] = totals.get(k, 0) + v
        if problems:
            failed.append(seed)
            for k in {k for k, _ in problems}:
                kinds[k] = kinds.get(k, 0) + 1
            path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"uproot_diff_seed{seed}.sql")
            with open(path, "w", encoding="utf-8") as f:
                f.write(script)
            print(f"FAIL seed {seed} (mode={s.mode}, follow_set_null={s.follow_set_null})")
            print(f"  root {s.qname(f'd{seed}_orig', s.tables[0])}, predicate: {s.predicate!r}")
            for kind, text in problems:
                print(f"  [{kind}] {text}")
            print(s.describe())
            print(f"  the seed's whole SQL script: {path}")
        if not problems or not args.keep:
            psql(args, drop_sql(seed), args.db)
    elapsed = time.time() - t0
    if args.only is None:
        print("coverage (seeds): " + ", ".join(f"{k} {v}" for k, v in sorted(coverage.items())))
    print("outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) +
          " (seeds where uproot and the native DELETE both failed count as passes)")
    if failed:
        print("failures by kind (seeds): " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
        print("failed seeds: " + " ".join(map(str, failed)))
        print(f"rerun one with: {sys.argv[0]} --port {args.port} --only SEED --keep")
    print(f"{len(seeds) - len(failed)} passed, {len(failed)} failed  ({elapsed:.1f}s)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
