#!/usr/bin/env python3
"""Tests of the checks themselves: they must reject what they exist to reject.

Run from anywhere with the Python of scripts/validate.sh's venv (make validate does), promtool
on PATH or in $PROMTOOL:

    python3 gitops/tests/checks_test.py [-v]

The fixtures in gitops/tests/fixtures are made to fail: a Deployment with an unknown field, a
misspelt custom resource field, a List, a kustomize patch, alerts without `severity` or
`runbook_url`, PromQL that does not parse, a failing promtool unit test, and more. Each test
runs a check on them and asserts that it fails and names each problem: file, object, path.
The normal runs of the checks leave gitops/tests/fixtures out; a test asserts that too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPTS = REPO / "scripts"
FIXTURES = REPO / "gitops" / "tests" / "fixtures"
CATALOG = REPO / "gitops" / "schemas" / "crds"
sys.path.insert(0, str(SCRIPTS))

import manifests  # noqa: E402  (scripts/manifests.py)

M = "gitops/tests/fixtures/manifests/"
R = "gitops/tests/fixtures/rules/"

# What scripts/validate_k8s.py must report on the fixtures: (source, object, fragment).
SCHEMA_REPORTS = {
    "core kinds are strict": [
        (M + "workloads.yaml", "Deployment/fixture-web",
         "spec.template.spec.containers[0].imagePullPolicyy: unknown field 'imagePullPolicyy'"),
        (M + "list.yaml", "Namespace/fixture",
         "items[1].metadata.labels.generation: expected string, got integer 3"),
    ],
    "kustomize output is checked": [
        ("gitops/tests/fixtures/kustomize", "Deployment/fixture-api",
         "spec.template.spec.terminationGracePeriod: unknown field"),
    ],
    "custom resources are strict and need a schema": [
        (M + "custom-resources.yaml", "ScaledObject/fixture-pay",
         "spec.minReplicas: unknown field 'minReplicas' (did you mean 'minReplicaCount'?)"),
        (M + "custom-resources.yaml", "ExternalSecret/fixture-secret",
         "no schema for external-secrets.io/v1beta1 ExternalSecret"),
        (M + "custom-resources.yaml", "Widget/fixture-widget", "spec.colour: unknown field"),
        (M + "custom-resources.yaml", "Widget/fixture-widget",
         "spec.size: 0 is less than the minimum of 1"),
        (M + "custom-resources.yaml", "Widget/fixture-widget",
         "metadata.labels.fixture.example.com/owner: invalid label value"),
        (M + "list.yaml", "Gadget/fixture-gadget", "items[2]: no schema for example.com/v1 Gadget"),
    ],
    "API server rules": [
        (M + "workloads.yaml", "Deployment/fixture-web", "spec.selector: selects"),
        (M + "workloads.yaml", "Deployment/fixture-web",
         "resources.requests.cpu: request 2 is above the limit 500m"),
        (M + "workloads.yaml", "Deployment/fixture-web",
         "ports[0].name: port name 'http-metrics-endpoint' must be an IANA service name"),
        (M + "workloads.yaml", "Deployment/fixture-web",
         "volumeMounts[0].name: mounts volume 'tmp', which the pod does not have"),
        (M + "workloads.yaml", "Service/Fixture_Service", "metadata.name: name 'Fixture_Service'"),
        (M + "workloads.yaml", "Service/Fixture_Service",
         "spec.ports[0]: a Service with several ports must name each"),
        (M + "list.yaml", "HorizontalPodAutoscaler/fixture-web",
         "items[0].spec.maxReplicas: 2 is below minReplicas 4"),
    ],
    "YAML that is no object or cannot be read": [
        (M + "not-a-manifest.yaml", "?/?", "not a Kubernetes object"),
        (M + "duplicate-key.yaml", "-", "key 'name' is given twice"),
    ],
}

# What scripts/check_prom_rules.py must report on the fixtures.
RULE_REPORTS = {
    "alerts need severity, summary and runbook_url": [
        (R + "alerts.yaml", "PrometheusRule/fixture-alerts",
         "spec.groups[0].rules[0]: alert 'FixtureNoRunbook' has no annotation 'runbook_url'"),
        (R + "alerts.yaml", "PrometheusRule/fixture-alerts",
         "spec.groups[0].rules[1]: alert 'FixtureNoSeverity' has no label 'severity'"),
    ],
    "promtool checks the rules": [
        (R + "bad-promql.yaml", "PrometheusRule/fixture-bad-promql",
         'spec.groups: promtool: group "fixture-promql", rule 1'),
    ],
    "the promtool unit tests run": [
        (R + "alerts.test.yaml", "promtool test rules", "alertname: FixtureNoRunbook, time: 1m"),
    ],
}


def run(script: str, *args: str | Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / script), *map(str, args)],
        capture_output=True, text=True, cwd=REPO,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


class FixturesFail(unittest.TestCase):
    """Each check, run on gitops/tests/fixtures, fails and names every problem."""

    def assert_reports(self, lines: list[str], reports: dict[str, list[tuple[str, ...]]]) -> None:
        for case, expected in reports.items():
            for source, obj, fragment in expected:
                with self.subTest(case, source=source, obj=obj, fragment=fragment):
                    line = re.compile(
                        rf"^{re.escape(source)}(:\d+)?: {re.escape(obj)}: .*{re.escape(fragment)}"
                    )
                    self.assertTrue(any(line.search(text) for text in lines), "\n".join(lines))

    def test_validate_k8s(self) -> None:
        status, lines = run("validate_k8s.py", FIXTURES.relative_to(REPO))
        self.assertEqual(status, 1)
        # pass: the ConfigMap of workloads.yaml, the two CRDs and the two PrometheusRules
        self.assertEqual(lines[-1], "5 passed, 11 failed")
        self.assert_reports(lines, SCHEMA_REPORTS)

    def test_check_prom_rules(self) -> None:
        status, lines = run("check_prom_rules.py", FIXTURES.relative_to(REPO))
        self.assertEqual(status, 1)
        self.assertEqual(lines[-1], "0 passed, 3 failed")
        self.assert_reports(lines, RULE_REPORTS)


class NormalRunsLeaveTheFixturesOut(unittest.TestCase):
    def test_walks_from_above_skip_the_fixtures(self) -> None:
        roots, files = manifests.find_inputs(list(manifests.DEFAULT_PATHS))
        inside = [p for p in [*roots, *files] if manifests.is_within(p, FIXTURES)]
        self.assertEqual(inside, [])
        self.assertTrue(roots and files)

    def test_naming_the_fixtures_walks_them(self) -> None:
        roots, files = manifests.find_inputs([FIXTURES])
        self.assertIn(FIXTURES / "kustomize", roots)
        self.assertIn(FIXTURES / "manifests" / "workloads.yaml", files)


class CrdToJsonSchema(unittest.TestCase):
    def test_conversion_is_strict(self) -> None:
        crd = FIXTURES / "crd" / "gizmo-crd.yaml"
        with tempfile.TemporaryDirectory() as out:
            status, lines = run("crd_to_jsonschema.py", "--out", out, crd)
            self.assertEqual(status, 0, lines)
            written = sorted(p.relative_to(out).as_posix() for p in Path(out).rglob("*.json"))
            self.assertEqual(written, ["fixture.example.com/gizmo_v2.json"])  # v1 is not served
            path = Path(out) / written[0]
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.assertEqual(schema["$schema"], "http://json-schema.org/draft-07/schema#")
            self.assertIs(schema["additionalProperties"], False)
            self.assertEqual(schema["properties"]["metadata"], {"type": "object"})
            spec = schema["properties"]["spec"]
            fields = spec["properties"]
            self.assertIs(spec["additionalProperties"], False)
            self.assertNotIn("additionalProperties", fields["extra"])  # preserves unknown fields
            self.assertIs(fields["tags"]["additionalProperties"]["additionalProperties"], False)
            self.assertEqual(fields["owner"]["type"], ["string", "null"])
            self.assertEqual(fields["owner"]["enum"], ["alice", "bob", None])
            self.assertEqual(fields["ratio"], {"type": "number", "exclusiveMinimum": 0})
            self.assertEqual(fields["mode"]["pattern"], "(?i)^(fast|slow)$")

            self.assertEqual(run("crd_to_jsonschema.py", "--check", "--out", out, crd)[0], 0)
            path.write_text("{}\n", encoding="utf-8")
            status, lines = run("crd_to_jsonschema.py", "--check", "--out", out, crd)
            self.assertEqual(status, 1)
            self.assertIn("DIFFERS", lines[0])

    def test_every_vendored_schema_is_listed_in_sources(self) -> None:
        sources = (CATALOG / "SOURCES.md").read_text(encoding="utf-8")
        files = sorted(CATALOG.rglob("*.json"))
        self.assertTrue(files)
        for path in files:
            name = path.relative_to(CATALOG).as_posix()
            self.assertRegex(name, r"^[a-z0-9.-]+/[a-z0-9]+_v[0-9a-z]+\.json$")
            self.assertIn(f"`{name}`", sources, f"{name} is not in SOURCES.md")
            schema = json.loads(path.read_text(encoding="utf-8"))
            self.assertEqual(schema.get("$schema"), "http://json-schema.org/draft-07/schema#", name)


if __name__ == "__main__":
    unittest.main()
