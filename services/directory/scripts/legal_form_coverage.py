#!/usr/bin/env python3
"""Measures how much of the real GLEIF names the legal-form table (data/legal-forms.csv) covers.

It normalizes every name of ../shared/data/gleif-entities.csv.gz about the way the Rust code does
(src/domain/normalize.rs: NFKD, lower case, marks dropped, ASCII folding of the few Latin letters
that do not decompose; dots and apostrophes inside a word or after a letter join, every other
non-alphanumeric character separates words), strips the table's forms from the end and the start
of the name as the name key does (src/domain/name_key.rs: the entity's country's rows, then the
`*` rows, each longest first, repeatedly; a name that is nothing but a form keeps its last word),
and prints for the 30 countries with the most entities:
  entities    how many names of that country
  end, start  the share of names that end (start) with a form of the table
  non-fund    the share of names outside the FUND category that carry a form (funds rarely do)
  uncovered   the 10 most frequent last words of the names that end with no form: what a
              reader looks through for a legal form the table still misses

Also, with --check, the table's own test: every row, put after (or before) a made-up name in its
country (and every country of the 30 for a `*` row), must come out as its own token; a shorter
row of the country that wins over a longer `*` row, or a token shared by two different meanings
in one country, shows up there.

Run: python3 services/directory/scripts/legal_form_coverage.py [--top N] [--country XX ...] [--check]
"""

import argparse
import collections
import csv
import gzip
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "../../../../shared/data"))
TABLE = os.path.join(HERE, "../data/legal-forms.csv")

TOP30 = ("IN US GB NL DE LU IT CA ES KY FR IE AU SE BE VG DK PL CZ AT SG CH HK NO FI HU SA JE RO "
         "CY").split()

# Latin letters without a canonical decomposition, folded as tantivy's AsciiFoldingFilter does
# (the ones that occur in company names; the Rust filter knows many more).
FOLD = {
    "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ł": "l", "ħ": "h", "ı": "i", "þ": "th",
    "ð": "d", "ŧ": "t", "ŀ": "l", "ĸ": "q", "ſ": "s", "ƒ": "f", "ŋ": "n", "ə": "e", "ĳ": "ij",
    "‘": "'", "’": "'", "ʼ": "'",
}


def fold(text):
    """Compatibility decomposition, lower case, no marks, ASCII folding (`Müller` -> `muller`)."""
    out = []
    for c in unicodedata.normalize("NFKD", text):
        for low in c.lower():
            if unicodedata.combining(low):
                continue
            if low == "ς":  # Greek word-final sigma is the letter σ
                low = "σ"
            out.append(FOLD.get(low, low))
    return "".join(out)


def words(text):
    """The normalized words of a name or a form (`Sp. z o.o.` -> sp, z, oo)."""
    s = fold(text)
    kept = []
    for i, c in enumerate(s):
        if c in ".'":
            after = i > 0 and s[i - 1].isalnum()
            before = i + 1 < len(s) and s[i + 1].isalnum()
            if (after and before) or (c == "." and after):
                continue
        kept.append(c)
    out, word = [], []
    for c in "".join(kept):
        if c.isalnum():
            word.append(c)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def load_table(path=TABLE):
    """Rows by country: {country: {"start": [(words, token, form)], "end": [...]}}, longest first."""
    table = collections.defaultdict(lambda: {"start": [], "end": []})
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            w = tuple(words(row["form"]))
            if not w:
                sys.exit(f"legal-forms.csv: form {row['form']!r} has no words")
            table[row["country"].strip()][row["at"].strip()].append(
                (w, row["canonical"].strip(), row["form"]))
    for forms in table.values():
        for at in forms:
            forms[at].sort(key=lambda f: -len(f[0]))
    return table


def forms_for(table, country, at):
    own = table[country][at] if country in table else []
    return own + table["*"][at]


def name_key(table, name_words, country):
    """(base words, set of tokens, whether a form was found at the end, at the start)."""
    rest = list(name_words)
    tokens, at_end, at_start = set(), False, False
    while True:
        before = len(rest)
        if len(rest) > 1 and rest[0] == "the":
            rest = rest[1:]
        if len(rest) > 1 and rest[-1] == "the":
            rest = rest[:-1]
        for at in ("end", "start"):
            for w, token, _ in forms_for(table, country, at):
                n = len(w)
                if n < len(rest) and (tuple(rest[-n:]) == w if at == "end" else tuple(rest[:n]) == w):
                    if token:
                        tokens.add(token)
                    if at == "end":
                        rest, at_end = rest[:-n], True
                    else:
                        rest, at_start = rest[n:], True
                    break
        if len(rest) == before:
            return rest, tokens, at_end, at_start


def check(table):
    """The table's own test; returns the number of problems printed."""
    problems = 0
    meanings = collections.defaultdict(set)
    for country, forms in table.items():
        for at, rows in forms.items():
            for w, token, form in rows:
                targets = TOP30 if country == "*" else [country]
                for c in targets:
                    if c != country and any(w == own[0] for own in table[c][at]):
                        continue  # the country's own row for these words overrides the `*` one
                    name = ["zyxw", "qvut"]
                    name = name + list(w) if at == "end" else list(w) + name
                    _, tokens, _, _ = name_key(table, name, c)
                    want = {token} if token else set()
                    if tokens != want:
                        problems += 1
                        print(f"{c} {at} {form!r}: gives {sorted(tokens)}, not {sorted(want)}")
    with open(TABLE, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["canonical"]:
                meanings[(row["country"], row["canonical"])].add(row["meaning"])
    for (country, token), ms in sorted(meanings.items()):
        if len(ms) > 1:
            print(f"note: {country} token {token!r} has {len(ms)} meanings: {sorted(ms)}")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--top", type=int, default=10, help="uncovered last words to show")
    parser.add_argument("--country", nargs="*", help="countries to show (default: the top 30)")
    parser.add_argument("--check", action="store_true", help="also run the table's own test")
    args = parser.parse_args()
    table = load_table()
    if args.check:
        problems = check(table)
        print(f"check: {problems} problem(s)")
    countries = args.country or TOP30
    wanted = set(countries)
    stats = {c: collections.Counter() for c in countries}
    uncovered = {c: collections.Counter() for c in countries}
    with gzip.open(os.path.join(DATA, "gleif-entities.csv.gz"), "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            c = row["Entity.LegalAddress.Country"]
            if c not in wanted:
                continue
            w = words(row["Entity.LegalName"])
            if not w:
                continue
            _, tokens, at_end, at_start = name_key(table, w, c)
            s = stats[c]
            s["n"] += 1
            s["end"] += at_end
            s["start"] += at_start
            s["any"] += at_end or at_start
            if row["Entity.EntityCategory"] != "FUND":
                s["nf"] += 1
                s["nf_any"] += at_end or at_start
            if not at_end and len(w) > 1:
                uncovered[c][w[-1]] += 1
    pct = lambda a, b: f"{100 * a / b:5.1f}%" if b else "    -"
    print("country entities   end  start    any  non-fund  uncovered last words (count)")
    total = collections.Counter()
    for c in countries:
        s = stats[c]
        total.update(s)
        top = ", ".join(f"{w} {n}" for w, n in uncovered[c].most_common(args.top))
        print(f"{c:7} {s['n']:8} {pct(s['end'], s['n'])} {pct(s['start'], s['n'])} "
              f"{pct(s['any'], s['n'])}    {pct(s['nf_any'], s['nf'])}  {top}")
    print(f"{'all':7} {total['n']:8} {pct(total['end'], total['n'])} "
          f"{pct(total['start'], total['n'])} {pct(total['any'], total['n'])}    "
          f"{pct(total['nf_any'], total['nf'])}")
    rows = sum(len(r) for f in table.values() for r in f.values())
    print(f"table: {rows} rows, {len(table) - ('*' in table)} countries and *")


if __name__ == "__main__":
    main()
