#!/usr/bin/env python3
"""Derives the directory's sample data set from the real data beside the repository.

Reads ../shared/data/gleif-entities.csv.gz (real GLEIF legal names and countries, no street or
city) and ../shared/data/geonames-cities15000.csv.gz (real cities), picks a deterministic sample
of entities (every entity whose LEI hashes into the sample, about 20,000), and gives each one an
address made up from the GeoNames cities of its country: a real city (weighted by population),
its region code, a made-up street line and postal code. Every made-up address is flagged in the
`Cosell.AddressGenerated` column, which the loader stores and the API returns.

Output: data/sample-entities.csv.gz in the GLEIF golden-copy column layout (plus that flag).
Run from anywhere: python3 services/directory/scripts/make_sample.py [--size N]
"""

import argparse
import bisect
import csv
import gzip
import hashlib
import io
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "../../../../shared/data"))
OUT = os.path.join(HERE, "../data/sample-entities.csv.gz")

STREETS = [
    "Main Street", "Market Street", "Station Road", "Harbour Way", "Park Avenue", "Church Lane",
    "Mill Road", "King Street", "Queen Street", "High Street", "River Road", "Industrial Park",
    "Business Centre", "Commerce Drive", "Garden Road", "Bridge Street", "Hill Road",
]

HEADER = [
    "LEI",
    "Entity.LegalName",
    "Entity.LegalAddress.FirstAddressLine",
    "Entity.LegalAddress.City",
    "Entity.LegalAddress.Region",
    "Entity.LegalAddress.Country",
    "Entity.LegalAddress.PostalCode",
    "Entity.EntityCategory",
    "Cosell.AddressGenerated",
]


def stable(value: str) -> int:
    return int.from_bytes(hashlib.sha256(value.encode()).digest()[:8], "big")


def load_cities():
    by_country = {}
    with gzip.open(os.path.join(DATA, "geonames-cities15000.csv.gz"), "rt", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_country.setdefault(row["countrycode"], []).append(
                (row["name"], row["admin1code"], int(row["population"] or 0))
            )
    weighted = {}
    for cc, cities in by_country.items():
        cumulative, total = [], 0
        for _, _, pop in cities:
            total += max(pop, 1)
            cumulative.append(total)
        weighted[cc] = (cities, cumulative, total)
    return weighted


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=20000)
    args = parser.parse_args()
    cities = load_cities()
    with gzip.open(os.path.join(DATA, "gleif-entities.csv.gz"), "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    # Deterministic sample: the entities whose LEI hash is smallest.
    rows.sort(key=lambda r: stable(r["LEI"]))
    sample = sorted(rows[: args.size], key=lambda r: r["LEI"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for r in sample:
        rng = random.Random(stable("address:" + r["LEI"]))
        cc = r["Entity.LegalAddress.Country"]
        city = region = line = postal = ""
        if cc in cities:
            options, cumulative, total = cities[cc]
            name, admin1, _ = options[bisect.bisect_left(cumulative, rng.randrange(total) + 1)]
            city, region = name, admin1
            line = f"{rng.randrange(1, 400)} {rng.choice(STREETS)}"
            postal = f"{rng.randrange(10000, 99999)}"
        writer.writerow([
            r["LEI"], r["Entity.LegalName"], line, city, region, cc, postal,
            r["Entity.EntityCategory"], "true" if city else "false",
        ])
    # mtime=0: the same input gives the same bytes.
    with open(OUT, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(out.getvalue().encode("utf-8"))
    print(f"wrote {len(sample)} entities to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
