#!/usr/bin/env python3
"""Builds the evaluation set of customer matching (MatchEntities) from the real GLEIF names.

For a deterministic random choice of entities it writes each name the way a salesperson would
type it into a CRM, one row per variant:
  exact         the legal name as registered
  case          in lower case, or in title case when it is lower case already
  abbreviated   a written-out legal form abbreviated (LIMITED -> Ltd, AKTIENGESELLSCHAFT -> AG)
  dropped       the trailing legal form left out (Acme Widgets, Inc. -> Acme Widgets)
  punctuation   punctuation left out (H.W. Machine Tools Ltd -> HW Machine Tools Ltd)
  accents       accents left out (names with accented letters only)
  extra_word    "The " put in front
The forms here are this script's own list, not the service's table, so that the set does not
test the table against itself.

Each row says whether the source entity is unambiguous in its country: no other entity of the
country has the same name once case, accents, punctuation, spacing and a trailing legal form
(this script's list) are left out. A matcher must never link a row to another entity, and
should link the unambiguous ones.

Output: data/match-eval.csv (from ../shared/data/gleif-entities.csv.gz, for the benchmark) or,
with --sample, data/match-eval-sample.csv (from data/sample-entities.csv.gz, the bundled sample,
for the test); columns kind,name,country,lei,unambiguous.
Run: python3 services/directory/scripts/make_match_set.py [--sample] [--entities N]
"""

import argparse
import collections
import csv
import gzip
import os
import random
import re
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.normpath(os.path.join(HERE, "../../../../shared/data"))

# Written-out form -> how people abbreviate it.
ABBREVIATIONS = [
    ("private limited", "Pvt Ltd"),
    ("public limited company", "PLC"),
    ("limited liability company", "LLC"),
    ("limited partnership", "LP"),
    ("limited", "Ltd"),
    ("incorporated", "Inc"),
    ("corporation", "Corp"),
    ("company", "Co"),
    ("aktiengesellschaft", "AG"),
    ("gesellschaft mit beschränkter haftung", "GmbH"),
    ("gesellschaft mbh", "GmbH"),
    ("aktiebolag", "AB"),
    ("aktieselskab", "A/S"),
    ("anpartsselskab", "ApS"),
    ("aksjeselskap", "AS"),
    ("osakeyhtiö", "Oy"),
    ("besloten vennootschap", "B.V."),
    ("naamloze vennootschap", "N.V."),
    ("società a responsabilità limitata", "S.r.l."),
    ("società per azioni", "S.p.A."),
    ("sociedad limitada", "S.L."),
    ("sociedad anónima", "S.A."),
    ("société anonyme", "S.A."),
    ("société par actions simplifiée", "SAS"),
    ("spółka z ograniczoną odpowiedzialnością", "Sp. z o.o."),
    ("spółka akcyjna", "S.A."),
    ("společnost s ručením omezeným", "s.r.o."),
    ("akciová společnost", "a.s."),
    ("korlátolt felelősségű társaság", "Kft."),
]

# Trailing legal forms a person may leave out (case-insensitive, after a space or comma).
TRAILING_FORM = re.compile(
    r"[\s,]+(" + "|".join(
        re.escape(f) for f, _ in ABBREVIATIONS
    ) + r"|pvt\.? ltd\.?|pte\.? ltd\.?|pty\.? ltd\.?|co\.?,? ltd\.?|ltd\.?|inc\.?|corp\.?|co\.?|llc|"
    r"l\.l\.c\.|llp|l\.?p\.|plc|gmbh|ag|kg|gmbh & co\.? kg|s\.?a\.?|s\.?l\.?|s\.?r\.?l\.?|s\.?p\.?a\.?|"
    r"b\.?v\.?|n\.?v\.?|oy|oyj|ab|as|asa|a/s|aps|sarl|s\.à r\.l\.|sas|s\.r\.o\.|a\.s\.|kft\.?|zrt\.?|"
    r"sp\. z o\.o\.)$",
    re.IGNORECASE,
)


def strip_accents(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def folded(name):
    """Case, accents, punctuation, spacing and a trailing form left out."""
    base = TRAILING_FORM.sub("", name.strip())
    base = strip_accents(base).lower()
    return "".join(c for c in base if c.isalnum())


def abbreviated(name):
    low = name.lower()
    for full, short in ABBREVIATIONS:
        if low.endswith(" " + full) or low.endswith("," + full):
            return name[: len(name) - len(full)].rstrip(" ,") + " " + short
    return None


def dropped(name):
    base = TRAILING_FORM.sub("", name).strip(" ,")
    return base if base != name.strip() and len(base) >= 3 else None


def punctuation(name):
    out = re.sub(r"[.,'’\-/&()\"]", "", name)
    out = re.sub(r"\s+", " ", out).strip()
    return out if out != name and out else None


def case(name):
    return name.lower() if name.lower() != name else name.title()


def accents(name):
    out = strip_accents(name)
    return out if out != name else None


def extra_word(name):
    return None if name.lower().startswith("the ") else "The " + name


MAKERS = {
    "exact": lambda n: n,
    "case": case,
    "abbreviated": abbreviated,
    "dropped": dropped,
    "punctuation": punctuation,
    "accents": accents,
    "extra_word": extra_word,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", action="store_true")
    parser.add_argument("--entities", type=int, default=None)
    args = parser.parse_args()
    if args.sample:
        source = os.path.join(HERE, "../data/sample-entities.csv.gz")
        out_path = os.path.join(HERE, "../data/match-eval-sample.csv")
        per_kind = args.entities or 60
    else:
        source = os.path.join(SHARED, "gleif-entities.csv.gz")
        out_path = os.path.join(HERE, "../data/match-eval.csv")
        per_kind = args.entities or 500
    with gzip.open(source, "rt", encoding="utf-8") as f:
        rows = [
            (r["LEI"], r["Entity.LegalName"].strip(), r["Entity.LegalAddress.Country"].strip())
            for r in csv.DictReader(f)
        ]
    same = collections.Counter((country, folded(name)) for _, name, country in rows)
    rng = random.Random(20261206)
    rng.shuffle(rows)
    out = []
    for kind, make in MAKERS.items():
        taken = 0
        for lei, name, country in rows:
            if taken >= per_kind:
                break
            if not country or len(name) > 200:
                continue
            typed = make(name)
            if not typed:
                continue
            unambiguous = same[(country, folded(name))] == 1
            out.append((kind, typed, country, lei, "true" if unambiguous else "false"))
            taken += 1
    with open(out_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["kind", "name", "country", "lei", "unambiguous"])
        w.writerows(out)
    print(f"wrote {len(out)} names to {os.path.normpath(out_path)}")


if __name__ == "__main__":
    main()
