#!/usr/bin/env python3
"""Make strict, standalone JSON Schemas (draft-07) from CustomResourceDefinition YAML files.

    python3 scripts/crd_to_jsonschema.py [--out DIR] [--check] [--include-unserved] CRD.yaml...

Each served version of each CRD in the files becomes DIR/<group>/<kind>_<version>.json, the
kind in lower case (the layout of kubeconform and the community CRDs catalog). DIR defaults to
gitops/schemas/crds, where scripts/validate_k8s.py looks; gitops/schemas/crds/SOURCES.md says
where each vendored schema came from and how to refresh it. With --check nothing is written:
the exit status is 1 when a file in DIR differs from what the CRDs give (or is missing).

The OpenAPI v3 schema of a CRD version becomes a JSON Schema that rejects what the API server
would silently drop:
  * a node that lists `properties` and says nothing about other keys (no
    `additionalProperties`, no `x-kubernetes-preserve-unknown-fields: true`) gets
    `additionalProperties: false`, so a misspelt or misplaced field is an error;
  * `nullable: true` adds null to the node's `type` (and to its `enum`);
  * OpenAPI's boolean `exclusiveMinimum`/`exclusiveMaximum` become draft-07's numeric form;
  * a Go (RE2) `pattern` whose global flags come after a leading `^`, like `^(?i)(a|b)$`, gets
    the flags moved to the front, `(?i)^(a|b)$` (same meaning; Python's re and most JSON Schema
    engines reject the Go spelling); any other pattern Python cannot compile is an error;
  * the root accepts `apiVersion`, `kind` and `metadata` even when the CRD omits them.
`x-kubernetes-*` extensions (CEL `x-kubernetes-validations` included) are copied as they are:
JSON Schema validators ignore them. Versions with `served: false` are left out (an object on
such a version then has no schema), unless --include-unserved.

Needs PyYAML (scripts/validate.sh's venv has it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "gitops" / "schemas" / "crds"
DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# Where a schema node holds other schema nodes: one, a list of them, or a map of name -> node.
CHILD_NODE = ("items", "additionalProperties", "additionalItems", "not")
CHILD_LIST = ("items", "allOf", "anyOf", "oneOf")
CHILD_MAP = ("properties", "patternProperties")
GO_FLAGS = re.compile(r"\(\?([ims]+)\)")
ROOT_FIELDS = (("apiVersion", "string"), ("kind", "string"), ("metadata", "object"))

Schema = dict[str, Any]


class SafeStringLoader(yaml.SafeLoader):
    """SafeLoader for CRDs: a bare `=` (YAML 1.1's "value" tag, an enum value in some CRDs) is
    the string "="."""


SafeStringLoader.add_constructor(
    "tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node)
)


def portable_pattern(pattern: str, notes: list[str]) -> str:
    """Return a pattern Python's re compiles with the meaning RE2 gives `pattern`."""
    try:
        re.compile(pattern)
        return pattern
    except re.error as error:
        first = GO_FLAGS.search(pattern)
        if first is None or pattern[: first.start()].strip("^"):
            raise ValueError(f"pattern {pattern!r} does not compile in Python ({error})") from None
    flags = "".join(sorted(set("".join(GO_FLAGS.findall(pattern)))))
    moved = f"(?{flags})" + GO_FLAGS.sub("", pattern)
    re.compile(moved)
    notes.append(f"pattern {pattern!r} written as {moved!r}")
    return moved


def strict(node: Any, notes: list[str]) -> Any:
    """A converted copy of one OpenAPI v3 schema node (see the module's docstring)."""
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in CHILD_MAP and isinstance(value, dict):
            value = {name: strict(child, notes) for name, child in value.items()}
        elif key in CHILD_NODE and isinstance(value, dict):
            value = strict(value, notes)
        elif key in CHILD_LIST and isinstance(value, list):
            value = [strict(child, notes) for child in value]
        elif key == "pattern" and isinstance(value, str):
            value = portable_pattern(value, notes)
        out[key] = value

    if (
        "properties" in out
        and "additionalProperties" not in out
        and out.get("x-kubernetes-preserve-unknown-fields") is not True
    ):
        out["additionalProperties"] = False

    if out.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]

    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(exclusive), bool):
            if out[exclusive] and bound in out:
                out[exclusive] = out.pop(bound)  # draft-07: the bound itself, exclusive
            else:
                del out[exclusive]
    return out


def crd_schemas(
    crd: Schema, include_unserved: bool = False, notes: list[str] | None = None
) -> Iterator[tuple[str, str, str, Schema]]:
    """Yield (group, kind, version, JSON Schema) for each version of a CRD object."""
    notes = [] if notes is None else notes
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    # apiextensions.k8s.io/v1beta1 CRDs may have one `version` and one top-level `validation`.
    versions = spec.get("versions") or [{"name": spec["version"], "served": True}]
    shared = (spec.get("validation") or {}).get("openAPIV3Schema")
    for version in versions:
        if version.get("served") is False and not include_unserved:
            continue
        source = (version.get("schema") or {}).get("openAPIV3Schema") or shared
        if source is None:
            notes.append(f"{group}/{version['name']} {kind} has no schema: anything is accepted")
            source = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema: Schema = {"$schema": DRAFT_07, **strict(source, notes)}
        if isinstance(schema.get("properties"), dict):
            for field, field_type in ROOT_FIELDS:
                schema["properties"].setdefault(field, {"type": field_type})
        yield group, kind, version["name"], schema


def schema_path(out: Path, group: str, kind: str, version: str) -> Path:
    return out / group / f"{kind.lower()}_{version}.json"


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, metavar="CRD.yaml")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="catalog directory (default: gitops/schemas/crds)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a file in --out differs or is missing",
    )
    parser.add_argument(
        "--include-unserved", action="store_true", help="also write versions with served: false"
    )
    args = parser.parse_args(argv)

    notes: list[str] = []
    made = stale = 0
    for file in args.files:
        with file.open(encoding="utf-8") as stream:
            documents = list(yaml.load_all(stream, Loader=SafeStringLoader))
        for crd in documents:
            if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
                continue
            for group, kind, version, schema in crd_schemas(crd, args.include_unserved, notes):
                path = schema_path(args.out, group, kind, version)
                text = render(schema)
                made += 1
                if args.check:
                    same = path.is_file() and path.read_text(encoding="utf-8") == text
                    stale += not same
                    print(f"{'same' if same else 'DIFFERS'}\t{path.relative_to(args.out)}\t{file}")
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                print(f"wrote\t{path.relative_to(args.out)}\t{group}/{version} {kind}")
    for note in sorted(set(notes)):
        print(f"note: {note}", file=sys.stderr)
    if not made:
        print("crd_to_jsonschema: no CustomResourceDefinition in the files given", file=sys.stderr)
        return 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
