#!/usr/bin/env python3
"""Validate every Kubernetes object in gitops/ and argocd/ strictly, offline.

    python3 scripts/validate_k8s.py [PATH...] [--kubernetes-version 1.32.0]
                                    [--crd-schemas DIR] [--skip-kind KIND] [-v]

Inputs (PATH defaults to gitops and argocd; see scripts/manifests.py): every kustomize root,
bases and overlays alike, is rendered and its output checked; every other YAML file is read as
it is, all of its documents, and the items of a `kind: List` one by one. gitops/tests/fixtures
is left out unless named. A document that is not a Kubernetes object (no apiVersion and kind)
is an error, except in the files manifests.NOT_MANIFESTS names (Helm values) and in promtool
unit-test files (top-level `rule_files` and `tests`; scripts/check_prom_rules.py runs them).

Each object is validated against its schema, and an object without one is an error:
  * the built-in kinds against the Kubernetes 1.32 JSON schemas of the `kubernetes-validate`
    wheel, its "strict" flavour: a field the API does not define is an error;
  * other kinds against gitops/schemas/crds/<group>/<kind>_<version>.json (vendored, strict:
    see SOURCES.md there; --crd-schemas DIR is searched first) or a CRD among the inputs, and
    their metadata against the built-in ObjectMeta schema;
  * SKIP_KINDS (below) names kinds not validated, each with its reason; --skip-kind adds one.
Then the API server's own rules that a schema cannot state (see api_rules): names, namespaces,
label and annotation keys and values, workload selectors that select their pod template,
container, volume and port names, volume mounts of volumes that exist, resource quantities and
requests within limits, HPA and PDB bounds, Service ports, ConfigMap and Secret keys and sizes.
Not checked: CEL rules of CRDs (x-kubernetes-validations), admission webhooks, references
between objects.

Output: one line per problem, `SOURCE: Kind/name: path: message` (SOURCE is file:line for a
plain file, the directory for kustomize output), then `N passed, M failed` counting objects (a
root that does not render or a file that cannot be read counts as one failed). Exit status 1
when anything failed or no object was found, 2 on a usage error.

Needs PyYAML, jsonschema and kubernetes-validate (scripts/validate.sh's venv has them).
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

import crd_to_jsonschema
import manifests

KUBERNETES_VERSION = "1.32.0"
CRD_CATALOG = manifests.REPO / "gitops" / "schemas" / "crds"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# Kinds that are not validated: "Kind" or "group/Kind" -> why. Every other kind needs a schema.
SKIP_KINDS: dict[str, str] = {}
NOT_AN_OBJECT = (
    "not a Kubernetes object: apiVersion and kind must be non-empty strings (a file that is "
    "not a manifest belongs in NOT_MANIFESTS of scripts/manifests.py, with the reason)"
)

JsonPath = list[str | int]
Problem = tuple[JsonPath, str]


# ----------------------------------------------------------------------------- schemas
def core_schema_dir(version: str) -> Path:
    """The strict JSON schemas of one Kubernetes version inside the kubernetes-validate wheel
    (found without importing the package: only its data is used)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "validate_k8s: the kubernetes-validate package is not installed "
            "(scripts/validate.sh installs it into its venv)"
        )
    base = Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    directory = base / f"v{version}-local-strict"
    if not directory.is_dir():
        have = sorted(d.name[1 : -len("-local-strict")] for d in base.glob("v*-local-strict"))
        sys.exit(
            f"validate_k8s: no schemas for Kubernetes {version} in kubernetes-validate; "
            f"it has {', '.join(have)}"
        )
    return directory


class Schemas:
    """Finds and caches the validator of each (group, version, kind)."""

    def __init__(self, version: str, crd_dirs: list[Path]):
        core = core_schema_dir(version)
        definitions = json.loads((core / "_definitions.json").read_text(encoding="utf-8"))
        self.registry = Registry().with_resource(
            definitions["$id"], Resource.from_contents(definitions)
        )
        self.core: dict[tuple[str, str, str], Path] = {}
        for path in core.glob("*.json"):
            if path.name.startswith("_") or path.name == "all.json":
                continue
            schema = json.loads(path.read_text(encoding="utf-8"))
            for gvk in schema.get("x-kubernetes-group-version-kind") or []:
                self.core[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = path
        self.object_meta = jsonschema.Draft202012Validator(
            {"$ref": f"{definitions['$id']}#/$defs/{OBJECT_META}"}, registry=self.registry
        )
        self.crd_dirs = crd_dirs
        self.from_inputs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.cache: dict[tuple[str, str, str], tuple[Any, bool] | None] = {}

    def add_crd(self, crd: dict[str, Any]) -> None:
        for group, kind, version, schema in crd_to_jsonschema.crd_schemas(crd):
            self.from_inputs.setdefault((group, version, kind), schema)

    def validator(self, group: str, version: str, kind: str) -> tuple[Any, bool] | None:
        """(validator, is a built-in kind), or None when there is no schema."""
        key = (group, version, kind)
        if key not in self.cache:
            self.cache[key] = self._find(key)
        return self.cache[key]

    def _find(self, key: tuple[str, str, str]) -> tuple[Any, bool] | None:
        group, version, kind = key
        if key in self.core:
            schema = json.loads(self.core[key].read_text(encoding="utf-8"))
            return jsonschema.Draft202012Validator(schema, registry=self.registry), True
        for directory in self.crd_dirs:
            path = crd_to_jsonschema.schema_path(directory, group, kind, version)
            if path.is_file():
                schema = json.loads(path.read_text(encoding="utf-8"))
                break
        else:
            schema = self.from_inputs.get(key)
        if schema is None:
            return None
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
        return cls(schema), False

    def versions_of(self, group: str, kind: str) -> list[str]:
        found = {v for (g, v, k) in self.core if (g, k) == (group, kind)}
        found |= {v for (g, v, k) in self.from_inputs if (g, k) == (group, kind)}
        for directory in self.crd_dirs:
            found |= {
                p.stem.split("_", 1)[1] for p in (directory / group).glob(f"{kind.lower()}_*.json")
            }
        return sorted(found)


# ----------------------------------------------------------------------------- messages
def dotted(path: JsonPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(root)"


def brief(value: Any, width: int = 70) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


JSON_TYPE = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def wanted_types(schema: Any) -> list[str]:
    types = schema.get("type") if isinstance(schema, dict) else None
    types = [types] if isinstance(types, str) else list(types or [])
    return [t for t in types if t != "null"]


def describe(error: jsonschema.ValidationError) -> list[Problem]:
    """One jsonschema error as (path, message) pairs a person can act on."""
    path: JsonPath = list(error.absolute_path)
    value, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties") or {})
        patterns = [re.compile(p) for p in schema.get("patternProperties") or {}]
        out: list[Problem] = []
        for key in value:
            if key in known or any(p.search(str(key)) for p in patterns):
                continue
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(([*path, key], f"unknown field {key!r}{hint}"))
        return out or [(path, error.message)]
    if error.validator == "required":
        missing = re.match(r"^'(.*)' is a required property$", error.message)
        return [(path, f"missing required field {missing.group(1) if missing else error.message}")]
    if error.validator == "type":
        want = " or ".join(wanted_types(schema)) or str(error.validator_value)
        return [(path, f"expected {want}, got {JSON_TYPE.get(type(value), '?')} {brief(value)}")]
    if error.validator in ("oneOf", "anyOf") and error.context:
        if all(e.validator == "type" for e in error.context):
            want = " or ".join(
                dict.fromkeys(t for e in error.context for t in wanted_types(e.schema))
            )
            return [
                (path, f"expected {want}, got {JSON_TYPE.get(type(value), '?')} {brief(value)}")
            ]
        return describe(jsonschema.exceptions.best_match(error.context))
    if error.validator == "enum":
        return [(path, f"{brief(value)} is not one of {brief(error.validator_value, 200)}")]
    message = error.message
    return [(path, message if len(message) <= 300 else message[:297] + "...")]


def schema_problems(validator: Any, instance: Any) -> list[Problem]:
    try:
        errors = sorted(
            validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]
        )
    except re.error as error:
        return [([], f"a pattern of the schema does not compile in Python ({error}); not checked")]
    return [problem for error in errors for problem in describe(error)]


# ----------------------------------------------------------------------------- API rules
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
IANA_SVC_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$")
DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)
SUFFIX_VALUE = {
    "": 1,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
ANNOTATIONS_LIMIT = 256 * 1024  # bytes of keys and values together (API server)
CONFIGMAP_LIMIT = 1024 * 1024  # bytes of data and binaryData (API server: 1 MiB)
RBAC_KINDS = {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
SELECTING_WORKLOADS = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"}
POD_TEMPLATE_AT = {  # kind -> where its pod template is
    "Deployment": ["spec", "template"],
    "ReplicaSet": ["spec", "template"],
    "StatefulSet": ["spec", "template"],
    "DaemonSet": ["spec", "template"],
    "Job": ["spec", "template"],
    "ReplicationController": ["spec", "template"],
    "PodTemplate": ["template"],
    "CronJob": ["spec", "jobTemplate", "spec", "template"],
}


def dig(value: Any, path: JsonPath) -> Any:
    for part in path:
        if isinstance(part, int):
            value = value[part] if isinstance(value, list) and part < len(value) else None
        else:
            value = value.get(part) if isinstance(value, dict) else None
    return value


def mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def quantity(value: Any) -> Decimal | None:
    """A resource quantity's value, or None when it is not one ("500m", "1Gi", 2, "1e3")."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    match = QUANTITY.match(str(value))
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    suffix = match.group(2) or ""
    if len(suffix) > 1 and suffix[0] in "eE":  # a decimal exponent, "1e3"
        return number.scaleb(int(suffix[1:]))
    return number * SUFFIX_VALUE[suffix]


def qualified_name_problem(key: Any) -> str | None:
    """Why key is not a qualified name ([prefix/]name), or None."""
    if not isinstance(key, str):
        return f"{brief(key)} is not a string"
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and DNS_SUBDOMAIN.match(prefix)):
        return f"{key!r}: the prefix before '/' must be a DNS subdomain (lowercase, <= 253)"
    if not (len(name) <= 63 and NAME_PART.match(name)):
        return (
            f"{key!r}: the name must be <= 63 characters of [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )
    return None


def label_problems(labels: Any, at: JsonPath) -> list[Problem]:
    out: list[Problem] = []
    for key, value in mapping(labels).items():
        if why := qualified_name_problem(key):
            out.append(([*at, key], f"invalid label key {why}"))
        if not isinstance(value, str):
            continue  # the schema says so
        if value and not (len(value) <= 63 and NAME_PART.match(value)):
            out.append(
                (
                    [*at, key],
                    f"invalid label value {value!r}: <= 63 characters of "
                    "[A-Za-z0-9-_.], starting and ending alphanumeric",
                )
            )
    return out


def is_dns_label(text: str) -> bool:
    return len(text) <= 63 and bool(DNS_LABEL.match(text))


NAME_RULES = {  # kinds whose names follow another rule than DEFAULT_NAME_RULE
    "Service": "a DNS-1035 label (lowercase, starts with a letter, <= 63)",
    "Namespace": "a DNS label (lowercase, <= 63)",
    **{kind: "a path segment (no '/' or '%', not '.' or '..')" for kind in RBAC_KINDS},
}
DEFAULT_NAME_RULE = "a DNS subdomain (lowercase, <= 253)"


def name_is_valid(kind: str, name: str) -> bool:
    if kind in RBAC_KINDS:
        return name not in (".", "..") and not re.search("[/%]", name)
    if kind == "Service":
        return len(name) <= 63 and bool(DNS_1035_LABEL.match(name))
    if kind == "Namespace":
        return is_dns_label(name)
    return len(name) <= 253 and bool(DNS_SUBDOMAIN.match(name))


def metadata_problems(obj: dict[str, Any], kind: str) -> list[Problem]:
    meta = mapping(obj.get("metadata"))
    out: list[Problem] = []
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        out.append((["metadata"], "missing metadata.name"))
    elif isinstance(name, str) and not name_is_valid(kind, name):
        rule = NAME_RULES.get(kind, DEFAULT_NAME_RULE)
        out.append((["metadata", "name"], f"name {name!r} must be {rule}"))
    namespace = meta.get("namespace")
    if isinstance(namespace, str) and not is_dns_label(namespace):
        out.append((["metadata", "namespace"], f"namespace {namespace!r} must be a DNS label"))
    out += label_problems(meta.get("labels"), ["metadata", "labels"])
    annotations = mapping(meta.get("annotations"))
    for key in annotations:
        if why := qualified_name_problem(key):
            out.append((["metadata", "annotations", key], f"invalid annotation key {why}"))
    size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_LIMIT:
        out.append(
            (
                ["metadata", "annotations"],
                f"annotations take {size} bytes; the limit is {ANNOTATIONS_LIMIT}",
            )
        )
    return out


def selects(selector: dict[str, Any], labels: dict[str, Any]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects labels."""
    if any(labels.get(k) != v for k, v in mapping(selector.get("matchLabels")).items()):
        return False
    for expression in sequence(selector.get("matchExpressions")):
        key, operator = mapping(expression).get("key"), mapping(expression).get("operator")
        values = sequence(mapping(expression).get("values"))
        present = key in labels
        if (
            (operator == "In" and not (present and labels[key] in values))
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def container_problems(container: dict[str, Any], at: JsonPath) -> list[Problem]:
    out: list[Problem] = []
    port_names: set[str] = set()
    for j, port in enumerate(sequence(container.get("ports"))):
        name = mapping(port).get("name")
        if not isinstance(name, str):
            continue
        if not (len(name) <= 15 and IANA_SVC_NAME.match(name)):
            out.append(
                (
                    [*at, "ports", j, "name"],
                    f"port name {name!r} must be an IANA service "
                    "name: <= 15 lowercase letters, digits and single '-', with a letter",
                )
            )
        if name in port_names:
            out.append(([*at, "ports", j, "name"], f"port name {name!r} is used twice"))
        port_names.add(name)
    resources = mapping(container.get("resources"))
    amounts: dict[tuple[str, str], Decimal] = {}
    for section in ("requests", "limits"):
        for resource, value in mapping(resources.get(section)).items():
            amount = quantity(value)
            if amount is None:
                out.append(
                    (
                        [*at, "resources", section, resource],
                        f"{brief(value)} is not a quantity (like 250m, 2, 512Mi, 1Gi)",
                    )
                )
            elif amount < 0:
                out.append(([*at, "resources", section, resource], "must not be negative"))
            else:
                amounts[(section, resource)] = amount
    for (section, resource), amount in amounts.items():
        limit = amounts.get(("limits", resource))
        if section == "requests" and limit is not None and amount > limit:
            out.append(
                (
                    [*at, "resources", "requests", resource],
                    f"request {resources['requests'][resource]} is above the limit "
                    f"{resources['limits'][resource]}",
                )
            )
    return out


def pod_spec_problems(spec: Any, at: JsonPath) -> list[Problem]:
    spec = mapping(spec)
    out: list[Problem] = []
    volumes: set[str] = set()
    for i, volume in enumerate(sequence(spec.get("volumes"))):
        name = mapping(volume).get("name")
        if isinstance(name, str):
            if not is_dns_label(name):
                out.append(
                    ([*at, "volumes", i, "name"], f"volume name {name!r} must be a DNS label")
                )
            if name in volumes:
                out.append(([*at, "volumes", i, "name"], f"volume name {name!r} is used twice"))
            volumes.add(name)
    containers: set[str] = set()
    for section in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(sequence(spec.get(section))):
            container, here = mapping(container), [*at, section, i]
            name = container.get("name")
            if isinstance(name, str):
                if not is_dns_label(name):
                    out.append(([*here, "name"], f"container name {name!r} must be a DNS label"))
                if name in containers:
                    out.append(([*here, "name"], f"container name {name!r} is used twice"))
                containers.add(name)
            for j, mount in enumerate(sequence(container.get("volumeMounts"))):
                volume = mapping(mount).get("name")
                if isinstance(volume, str) and volume not in volumes:
                    out.append(
                        (
                            [*here, "volumeMounts", j, "name"],
                            f"mounts volume {volume!r}, which the pod does not have",
                        )
                    )
            out += container_problems(container, here)
    return out


def service_problems(spec: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    ports = sequence(spec.get("ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = mapping(port)
        name = port.get("name")
        if isinstance(name, str):
            if not is_dns_label(name):
                out.append(
                    (["spec", "ports", i, "name"], f"port name {name!r} must be a DNS label")
                )
            if name in names:
                out.append((["spec", "ports", i, "name"], f"port name {name!r} is used twice"))
            names.add(name)
        elif len(ports) > 1:
            out.append((["spec", "ports", i], "a Service with several ports must name each"))
        target = port.get("targetPort")
        if isinstance(target, str) and not (len(target) <= 15 and IANA_SVC_NAME.match(target)):
            out.append(
                (
                    ["spec", "ports", i, "targetPort"],
                    f"targetPort {target!r} must be a number or an IANA service name",
                )
            )
    return out


def data_problems(obj: dict[str, Any], kind: str) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, str] = {}
    size = 0
    for section in ("data", "stringData", "binaryData"):
        for key, value in mapping(obj.get(section)).items():
            if not (isinstance(key, str) and DATA_KEY.match(key) and len(key) <= 253):
                out.append(([section, str(key)], f"key {key!r} must be <= 253 of [-._a-zA-Z0-9]"))
            elif key in seen and {seen[key], section} != {"data", "stringData"}:
                out.append(([section, key], f"key {key!r} is also in {seen[key]}"))
            seen.setdefault(str(key), section)
            size += len(str(key).encode()) + len(str(value).encode())
    if kind == "ConfigMap" and size > CONFIGMAP_LIMIT:
        out.append(
            ([], f"the data takes {size} bytes; a ConfigMap holds at most {CONFIGMAP_LIMIT}")
        )
    return out


def api_rules(obj: dict[str, Any], kind: str, built_in: bool) -> list[Problem]:
    """What the API server would reject although the schema allows it."""
    out = metadata_problems(obj, kind)
    if not built_in:
        return out
    spec = mapping(obj.get("spec"))
    if kind == "Pod":
        out += pod_spec_problems(spec, ["spec"])
    if kind in POD_TEMPLATE_AT:
        at = POD_TEMPLATE_AT[kind]
        template = mapping(dig(obj, at))
        labels = mapping(mapping(template.get("metadata")).get("labels"))
        out += label_problems(labels, [*at, "metadata", "labels"])
        out += pod_spec_problems(template.get("spec"), [*at, "spec"])
        selector = spec.get("selector")
        if kind in SELECTING_WORKLOADS:
            selector = mapping(selector)
            out += label_problems(selector.get("matchLabels"), ["spec", "selector", "matchLabels"])
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                out.append((["spec", "selector"], "the selector is empty"))
            elif not selects(selector, labels):
                out.append(
                    (
                        ["spec", "selector"],
                        f"selects {brief(selector)}, which the pod "
                        f"template's labels {brief(labels)} do not match",
                    )
                )
    if kind == "HorizontalPodAutoscaler":
        low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if isinstance(low, int) and low < 1:
            out.append((["spec", "minReplicas"], "must be at least 1"))
        if isinstance(high, int) and isinstance(low, int) and high < low:
            out.append((["spec", "maxReplicas"], f"{high} is below minReplicas {low}"))
    if kind == "PodDisruptionBudget" and {"minAvailable", "maxUnavailable"} <= spec.keys():
        out.append((["spec"], "minAvailable and maxUnavailable exclude each other"))
    if kind == "Service":
        out += service_problems(spec)
    if kind in ("ConfigMap", "Secret"):
        out += data_problems(obj, kind)
    return out


# ----------------------------------------------------------------------------- objects
@dataclass
class Item:
    """One object to validate: where it came from, and its path inside its document."""

    where: str
    obj: Any
    rendered: bool
    prefix: JsonPath = field(default_factory=list)


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def fail(self, where: str, what: str, problems: list[Problem]) -> None:
        self.failed += 1
        self.lines += [f"{where}: {what}: {dotted(path)}: {message}" for path, message in problems]

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def is_promtool_test(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and "rule_files" in document
        and "tests" in document
        and "apiVersion" not in document
        and "kind" not in document
    )


def collect(sources: list[manifests.Source], report: Report) -> Iterator[Item]:
    """The objects of every source; unreadable sources are reported as failed."""
    for source in sources:
        if source.error:
            report.fail(source.label, "-", [([], source.error)])
            continue
        not_manifests = (
            None if source.rendered else manifests.not_manifest_reason(Path(source.label))
        )
        try:
            for line, document in manifests.documents(source.text or ""):
                where = source.label if source.rendered else f"{source.label}:{line}"
                if not_manifests:
                    report.skip(not_manifests)
                elif is_promtool_test(document):
                    report.skip("promtool unit tests, run by scripts/check_prom_rules.py")
                elif (
                    isinstance(document, dict)
                    and document.get("kind") == "List"
                    and isinstance(document.get("items"), list)
                ):
                    for i, obj in enumerate(document["items"]):
                        yield Item(where, obj, source.rendered, ["items", i])
                else:
                    yield Item(where, document, source.rendered)
        except manifests.YamlError as error:
            where = (
                source.label
                if source.rendered or error.line is None
                else f"{source.label}:{error.line}"
            )
            report.fail(where, "-", [([], f"YAML: {error}")])


def check(
    item: Item, schemas: Schemas, skip: dict[str, str], report: Report, verbose: bool
) -> None:
    obj = item.obj
    if not isinstance(obj, dict):
        report.fail(
            item.where,
            "-",
            [(item.prefix, f"a {JSON_TYPE.get(type(obj), '?')}, not a Kubernetes object")],
        )
        return
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    meta = mapping(obj.get("metadata"))
    what = f"{kind or '?'}/{meta.get('name') or meta.get('generateName') or '?'}"
    if not (isinstance(api_version, str) and api_version and isinstance(kind, str) and kind):
        report.fail(item.where, what, [(item.prefix, NOT_AN_OBJECT)])
        return
    group, _, version = api_version.rpartition("/")
    why = skip.get(f"{group}/{kind}") or skip.get(kind)
    if why:
        report.skip(f"{kind}: {why}")
        return
    found = schemas.validator(group, version, kind)
    if found is None:
        versions = schemas.versions_of(group, kind)
        known = f" (there are schemas for {', '.join(versions)})" if versions else ""
        report.fail(item.where, what, [(item.prefix, f"no schema for {api_version} {kind}{known}")])
        return
    validator, built_in = found
    problems = schema_problems(validator, obj)
    if not built_in and "metadata" in obj:
        problems += [
            (["metadata", *p], m) for p, m in schema_problems(schemas.object_meta, obj["metadata"])
        ]
    problems += api_rules(obj, kind, built_in)
    if problems:
        report.fail(item.where, what, [([*item.prefix, *p], m) for p, m in problems])
        return
    report.passed += 1
    if verbose:
        print(f"ok {item.where}: {what}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    manifests.add_paths_argument(parser)
    parser.add_argument(
        "--kubernetes-version",
        default=KUBERNETES_VERSION,
        help="the Kubernetes schemas to use (default %(default)s)",
    )
    parser.add_argument(
        "--crd-schemas",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a catalog of CRD schemas (<group>/<kind>_<version>.json) to "
        "search before gitops/schemas/crds",
    )
    parser.add_argument(
        "--skip-kind",
        action="append",
        default=[],
        metavar="KIND",
        help="Kind or group/Kind not to validate (counted as skipped)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also list what passed")
    args = parser.parse_args(argv)

    paths = manifests.paths_of(args)
    if missing := [str(p) for p in paths if not p.exists()]:
        print(f"validate_k8s: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    version = args.kubernetes_version.removeprefix("v")
    version += ".0" if version.count(".") == 1 else ""
    schemas = Schemas(version, [*args.crd_schemas, CRD_CATALOG])
    skip = {**SKIP_KINDS, **{kind: "--skip-kind" for kind in args.skip_kind}}

    report = Report()
    items = list(collect(manifests.read_sources(paths), report))
    for item in items:  # a CRD among the inputs is the schema of its kind
        obj = item.obj
        if (
            isinstance(obj, dict)
            and obj.get("kind") == "CustomResourceDefinition"
            and str(obj.get("apiVersion", "")).startswith("apiextensions.k8s.io/")
        ):
            try:
                schemas.add_crd(obj)
            except (KeyError, TypeError, ValueError) as error:
                print(
                    f"validate_k8s: {item.where}: the CRD gives no schema: {error}", file=sys.stderr
                )
    for item in items:
        check(item, schemas, skip, report, args.verbose)

    for line in report.lines:
        print(line)
    for why, count in sorted(report.skipped.items()):
        print(f"skipped {count} document(s): {why}")
    if report.passed + report.failed == 0:
        print(
            f"validate_k8s: no Kubernetes object under {' '.join(map(str, paths))}", file=sys.stderr
        )
    print(f"{report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 and report.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
