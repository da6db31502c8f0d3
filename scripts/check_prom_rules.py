#!/usr/bin/env python3
"""Check the PrometheusRule objects with promtool and run the promtool unit tests, offline.

    python3 scripts/check_prom_rules.py [PATH...] [--promtool PATH]
                                        [--require-label NAME] [--require-annotation NAME] [-v]

PATH defaults to gitops and argocd, read as scripts/validate_k8s.py reads them (every
kustomize root rendered, other YAML files as they are; gitops/tests/fixtures only when named).

  * Rules: the `spec` of every PrometheusRule (monitoring.coreos.com) becomes a Prometheus rules
    file, checked with `promtool check rules --lint=duplicate-rules --lint-fatal`: PromQL, rule
    and label names, durations, templates, duplicate rules. Group fields the Prometheus
    Operator accepts but this promtool may not know (partial_response_strategy, query_offset,
    labels) are dropped first; the CRD schema checks them. Every group must have rules, and
    every alert the labels and annotations required (default: label `severity`, annotations
    `summary` and `runbook_url`, each a non-empty string; the options replace the defaults).
  * Unit tests: every YAML file under PATH with top-level `rule_files` and `tests` (today
    gitops/platform/monitoring/tests/*.test.yaml) runs with `promtool test rules`. A
    `rule_files` entry (relative to the test file, globs allowed) may be a rules file or a
    manifest holding PrometheusRule objects, whose rules are extracted first; so the tests
    read the very manifests Argo CD applies.

promtool is --promtool, else $PROMTOOL, else `promtool` on PATH (Debian's `prometheus`
package; scripts/validate.sh installs it when it may).

Output: one line per problem, `SOURCE: PrometheusRule/name: where: message` or
`TEST FILE: promtool test rules: message`, then `N passed, M failed` counting PrometheusRule
objects and test files. Exit status 1 when anything failed or nothing was found.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import manifests

REQUIRED_LABELS = ("severity",)
REQUIRED_ANNOTATIONS = ("summary", "runbook_url")
# Group fields of the PrometheusRule CRD that older promtool releases reject.
OPERATOR_ONLY_GROUP_FIELDS = ("partial_response_strategy", "query_offset", "labels")
PROMTOOL_NOISE = ("Checking ", "SUCCESS", "FAILED:", "Unit Testing:")


@dataclass
class Rules:
    where: str
    name: str
    spec: dict[str, Any]


def is_prometheus_rule(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and document.get("kind") == "PrometheusRule"
        and str(document.get("apiVersion", "")).startswith("monitoring.coreos.com/")
    )


def rules_file(spec: Any) -> str:
    """A Prometheus rules file holding the groups of a PrometheusRule spec."""
    groups = []
    for group in (spec if isinstance(spec, dict) else {}).get("groups") or []:
        if isinstance(group, dict):
            group = {k: v for k, v in group.items() if k not in OPERATOR_ONLY_GROUP_FIELDS}
        groups.append(group)
    return yaml.safe_dump({"groups": groups}, sort_keys=False, allow_unicode=True, width=1 << 16)


def required_problems(spec: Any, labels: list[str], annotations: list[str]) -> list[str]:
    groups = (spec or {}).get("groups") if isinstance(spec, dict) else None
    if not groups:
        return ["spec.groups: no rule group"]
    out = []
    for g, group in enumerate(groups):
        if not isinstance(group, dict):
            continue  # the CRD schema reports it
        rules = group.get("rules") or []
        if not rules:
            out.append(f"spec.groups[{g}]: group {group.get('name')!r} has no rules")
        for r, rule in enumerate(rules):
            if not isinstance(rule, dict) or "alert" not in rule:
                continue
            at = f"spec.groups[{g}].rules[{r}]"
            for kind, names in (("labels", labels), ("annotations", annotations)):
                given = rule.get(kind) if isinstance(rule.get(kind), dict) else {}
                for name in names:
                    value = given.get(name)
                    if not (isinstance(value, str) and value.strip()):
                        singular = kind[:-1]
                        out.append(f"{at}: alert {rule['alert']!r} has no {singular} {name!r}")
    return out


def promtool_messages(output: str, path: Path, label: str) -> list[str]:
    """promtool's findings, without its banners and with our names instead of temp files."""
    messages = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith(PROMTOOL_NOISE):
            continue
        line = line.replace(f"{path}: ", "").replace(str(path), label)
        messages.append(re.sub(r"^\d+:\d+: ", "", line))  # positions in the extracted file
    return messages


class Checker:
    def __init__(self, promtool: str, workdir: Path, labels: list[str], annotations: list[str]):
        self.promtool = promtool
        self.workdir = workdir
        self.labels = labels
        self.annotations = annotations
        self.verdicts: dict[str, tuple[bool, list[str]]] = {}  # by rules file content
        self.names: dict[str, str] = {}  # extracted rules file -> what messages call it

    def write(self, content: str, name: str) -> Path:
        digest = hashlib.sha256(f"{name}\0{content}".encode()).hexdigest()[:16]
        path = self.workdir / f"{digest}.rules.yaml"
        if not path.exists():
            path.write_text(content, encoding="utf-8")
        self.names.setdefault(str(path), name)
        return path

    def unmask(self, text: str) -> str:
        """text with the names of our temporary files replaced by what they hold."""
        for path, name in self.names.items():
            text = text.replace(path, name)
        return text

    def promtool_check(self, content: str) -> tuple[bool, list[str]]:
        """(ok, messages) of `promtool check rules` on one rules file; identical content (the
        same rules in a base and its overlays) is checked once."""
        if content not in self.verdicts:
            path = self.write(content, "rules")
            done = subprocess.run(
                [
                    self.promtool,
                    "check",
                    "rules",
                    "--lint=duplicate-rules",
                    "--lint-fatal",
                    str(path),
                ],
                capture_output=True,
                text=True,
            )
            messages = promtool_messages(done.stdout + "\n" + done.stderr, path, "rules")
            if done.returncode != 0 and not messages:
                messages = [f"promtool check rules exited with {done.returncode}"]
            self.verdicts[content] = (done.returncode == 0, messages)
        return self.verdicts[content]

    def check_rules(self, rules: Rules) -> list[str]:
        ok, messages = self.promtool_check(rules_file(rules.spec))
        problems = [] if ok else [f"spec.groups: promtool: {m}" for m in messages]
        return problems + required_problems(rules.spec, self.labels, self.annotations)

    def run_test(self, test_file: Path, test: dict[str, Any], label: str) -> list[str]:
        """Problems of one promtool unit-test file (none when it passes)."""
        base = test_file.parent
        rule_paths: list[str] = []
        for i, entry in enumerate(test.get("rule_files") or []):
            matches = sorted(base.glob(str(entry)))
            if not matches:
                return [f"rule_files[{i}]: {entry!r} matches no file"]
            for match in matches:
                try:
                    found = [d for _, d in manifests.documents(match.read_text(encoding="utf-8"))]
                except (OSError, UnicodeDecodeError, manifests.YamlError) as error:
                    return [f"rule_files[{i}]: {manifests.shown(match)}: {error}"]
                objects = [d for d in found if is_prometheus_rule(d)]
                for obj in objects:
                    name = (obj.get("metadata") or {}).get("name")
                    content = rules_file(obj.get("spec"))
                    shown = f"{manifests.shown(match)} PrometheusRule/{name}"
                    rule_paths.append(str(self.write(content, shown)))
                if not objects:
                    rule_paths.append(str(match.resolve()))
        with tempfile.NamedTemporaryFile(
            "w", suffix=".test.yaml", dir=self.workdir, delete=False, encoding="utf-8"
        ) as stream:
            yaml.safe_dump(
                {**test, "rule_files": rule_paths}, stream, sort_keys=False, width=1 << 16
            )
        done = subprocess.run(
            [self.promtool, "test", "rules", stream.name], capture_output=True, text=True, cwd=base
        )
        if done.returncode == 0:
            return []
        output = self.unmask((done.stdout + "\n" + done.stderr).replace(stream.name, label))
        # promtool spreads one failure over several lines and separates failures by blank lines
        problems = []
        for block in re.split(r"\n\s*\n", output):
            text = " ".join(" ".join(promtool_messages(block, Path(stream.name), label)).split())
            if text:
                problems.append(text[:3000])
        return problems or [f"promtool test rules exited with {done.returncode}"]


def find_rules(sources: list[manifests.Source]) -> tuple[list[Rules], list[str]]:
    """The PrometheusRule objects of the sources, and the sources that could not be read."""
    found, errors = [], []
    for source in sources:
        if source.error:
            errors.append(f"{source.label}: -: (root): {source.error}")
            continue
        try:
            for line, document in manifests.documents(source.text or ""):
                if is_prometheus_rule(document):
                    where = source.label if source.rendered else f"{source.label}:{line}"
                    name = (document.get("metadata") or {}).get("name", "?")
                    found.append(Rules(where, name, document.get("spec") or {}))
        except manifests.YamlError as error:
            if source.rendered or "PrometheusRule" in (source.text or ""):
                errors.append(f"{source.label}: -: (root): YAML: {error}")
    return found, errors


def find_tests(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML file under paths whose top level has `rule_files` and `tests`."""
    files: list[Path] = []
    for start in paths:
        if start.is_file():
            files.append(start)
            continue
        for directory, names in manifests.walk(start):
            files += [directory / n for n in names if n.endswith(manifests.YAML_SUFFIXES)]
    tests = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
            if "rule_files" not in text:
                continue
            document = yaml.load(text, Loader=manifests.ManifestLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # not a test file; validate_k8s.py reports unreadable YAML
        if isinstance(document, dict) and "rule_files" in document and "tests" in document:
            tests.append((path, document))
    return tests


def find_promtool(given: str | None) -> str | None:
    candidate = given or os.environ.get("PROMTOOL") or "promtool"
    return shutil.which(candidate)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    manifests.add_paths_argument(parser)
    parser.add_argument("--promtool", help="the promtool to run (default: $PROMTOOL, else PATH)")
    parser.add_argument(
        "--require-label",
        action="append",
        metavar="NAME",
        help=f"a label every alert needs (default: {', '.join(REQUIRED_LABELS)})",
    )
    parser.add_argument(
        "--require-annotation",
        action="append",
        metavar="NAME",
        help=f"an annotation every alert needs (default: {', '.join(REQUIRED_ANNOTATIONS)})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also list what passed")
    args = parser.parse_args(argv)

    paths = manifests.paths_of(args)
    if missing := [str(p) for p in paths if not p.exists()]:
        print(f"check_prom_rules: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    promtool = find_promtool(args.promtool)
    if promtool is None:
        print(
            "check_prom_rules: promtool is missing: install Debian's prometheus package "
            "(make validate INSTALL=1 does), or set PROMTOOL",
            file=sys.stderr,
        )
        print("0 passed, 1 failed")
        return 1

    rules, lines = find_rules(manifests.read_sources(paths))
    tests = find_tests(paths)
    passed, failed = 0, len(lines)
    with tempfile.TemporaryDirectory(prefix="check-prom-rules-") as workdir:
        checker = Checker(
            promtool,
            Path(workdir),
            args.require_label or list(REQUIRED_LABELS),
            args.require_annotation or list(REQUIRED_ANNOTATIONS),
        )
        results = [(f"{r.where}: PrometheusRule/{r.name}", checker.check_rules(r)) for r in rules]
        for path, test in tests:
            label = manifests.shown(path)
            results.append((f"{label}: promtool test rules", checker.run_test(path, test, label)))
    for what, problems in results:
        if problems:
            failed += 1
            lines += [f"{what}: {problem}" for problem in problems]
        else:
            passed += 1
            if args.verbose:
                print(f"ok {what}")
    for line in lines:
        print(line)
    if passed + failed == 0:
        print(
            f"check_prom_rules: no PrometheusRule and no promtool test under "
            f"{' '.join(map(str, paths))}",
            file=sys.stderr,
        )
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
