#!/usr/bin/env python3
"""Builds the directory's search-quality query set from the real GLEIF names.

For a deterministic random choice of entities of ../shared/data/gleif-entities.csv.gz, it writes
queries of five kinds, each the way a person would type the entity's name:
  prefix    the name with its last word cut to its first half (at least 3 characters)
  typo      the name with one edit (substitution, deletion, insertion or swap of neighbours) in
            one word of 5 or more letters
  lowercase the name in lower case
  noaccent  the name with its accents removed (names with accented letters only)
  nosuffix  the name without its legal-form suffix (Ltd, Inc., GmbH, S.A., ...)

Output: data/eval-queries.csv with columns kind,query,lei (the entity the query was made from).
Run: python3 services/directory/scripts/make_queries.py [--per-kind N]
"""

import argparse
import csv
import gzip
import os
import random
import re
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "../../../../shared/data"))
OUT = os.path.join(HERE, "../data/eval-queries.csv")

SUFFIX = re.compile(
    r"[\s,]+(ltd\.?|limited|inc\.?|incorporated|gmbh|s\.?a\.?|llc|l\.l\.c\.|plc|ag|b\.?v\.?|"
    r"n\.?v\.?|s\.?r\.?l\.?|s\.?p\.?a\.?|corp\.?|corporation|pty\.? ltd\.?|pvt\.? ltd\.?|"
    r"private limited|oy|ab|as|a/s|kg|sarl|s\.a\.r\.l\.)$",
    re.IGNORECASE,
)


def strip_accents(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def typo(rng, name):
    words = name.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not candidates:
        return None
    i = rng.choice(candidates)
    w = words[i]
    p = rng.randrange(1, len(w) - 1)
    kind = rng.choice(["sub", "del", "ins", "swap"])
    letters = "abcdefghijklmnopqrstuvwxyz"
    if w.isupper():
        letters = letters.upper()
    if kind == "sub":
        w2 = w[:p] + rng.choice([c for c in letters if c != w[p]]) + w[p + 1:]
    elif kind == "del":
        w2 = w[:p] + w[p + 1:]
    elif kind == "ins":
        w2 = w[:p] + rng.choice(letters) + w[p:]
    else:
        w2 = w[:p] + w[p + 1] + w[p] + w[p + 2:]
    if w2.lower() == w.lower():
        return None
    words[i] = w2
    return " ".join(words)


def prefix(name):
    words = name.split(" ")
    if len(words) < 2 or len(words[-1]) < 4:
        return None
    last = words[-1]
    return " ".join(words[:-1] + [last[: max(3, len(last) // 2)]])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=70)
    args = parser.parse_args()
    with gzip.open(os.path.join(DATA, "gleif-entities.csv.gz"), "rt", encoding="utf-8") as f:
        rows = [(r["LEI"], r["Entity.LegalName"].strip()) for r in csv.DictReader(f)]
    rng = random.Random(20261125)
    rng.shuffle(rows)
    makers = {
        "prefix": lambda n: prefix(n),
        "typo": lambda n: typo(rng, n),
        "lowercase": lambda n: n.lower() if n.lower() != n else None,
        "noaccent": lambda n: strip_accents(n) if strip_accents(n) != n else None,
        "nosuffix": lambda n: SUFFIX.sub("", n) if SUFFIX.search(n) and len(SUFFIX.sub("", n)) >= 4 else None,
    }
    out = []
    for kind, make in makers.items():
        taken = 0
        for lei, name in rows:
            if taken >= args.per_kind:
                break
            q = make(name)
            if q and len(q) <= 200:
                out.append((kind, q, lei))
                taken += 1
    with open(OUT, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "query", "lei"])
        w.writerows(out)
    print(f"wrote {len(out)} queries to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
