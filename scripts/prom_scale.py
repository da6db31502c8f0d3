#!/usr/bin/env python3
"""The repository's Prometheus rules and Alertmanager routing with every duration divided by a
factor, so that a test can watch on real Prometheus, in seconds, what takes minutes in a
cluster (gitops/tests/live_alerts_test.py).

    python3 scripts/prom_scale.py --factor 30 --out DIR

writes DIR/rules.yaml (the groups of every PrometheusRule in gitops/platform/monitoring/base/
rules, scaled) and DIR/alertmanager.yaml (the routing of gitops/addons/kube-prometheus-stack/
values.yaml, scaled, every receiver replaced by a webhook to --webhook URL/<receiver>), and
checks that the scaled copy is the original but for its durations.

What is scaled, and nothing else: a rule's `for`, a group's `interval`, every PromQL range and
subquery (`[5m]`, `[1h:5m]`) and `offset`, and the route's group_wait, group_interval and
repeat_interval. With factor 30, `for: 5m` becomes 10s, `[1h]` 2m and `interval: 30s` 1s. Each
scaled duration of the rules must divide exactly (to the millisecond; the route's timings are
rounded up to it: group_wait 10s becomes 334ms); thresholds in seconds (`> 300`) and
texts stay as they are: the rules must mean the same thing, only sooner.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from check_prom_rules import is_prometheus_rule, rules_file

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "gitops/platform/monitoring/base/rules"
STACK_VALUES = ROOT / "gitops/addons/kube-prometheus-stack/values.yaml"

UNITS_MS = {"y": 365 * 86_400_000, "w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000,
            "m": 60_000, "s": 1000, "ms": 1}
# What a duration is written with here (Prometheus also knows y and w; the output avoids them).
OUTPUT_UNITS = ("d", "h", "m", "s", "ms")
DURATION = r"(?:\d+(?:ms|[smhdwy]))+"
DURATION_PART = re.compile(r"(\d+)(ms|[smhdwy])")
# A PromQL range or subquery, `[5m]`, `[1h:5m]`, `[1h:]`, and an offset.
RANGE = re.compile(rf"\[\s*({DURATION})\s*(?::\s*({DURATION})?\s*)?\]")
OFFSET = re.compile(rf"\boffset\s+(-?)({DURATION})\b")
RULE_DURATION_FIELDS = ("for", "keep_firing_for")
ROUTE_DURATION_FIELDS = ("group_wait", "group_interval", "repeat_interval")


class ScaleError(ValueError):
    pass


def to_ms(text: str) -> int:
    text = str(text).strip()
    if not re.fullmatch(DURATION, text):
        raise ScaleError(f"{text!r} is not a duration")
    return sum(int(n) * UNITS_MS[unit] for n, unit in DURATION_PART.findall(text))


def from_ms(ms: int) -> str:
    if ms == 0:
        return "0s"
    out = ""
    for unit in OUTPUT_UNITS:
        n, ms = divmod(ms, UNITS_MS[unit])
        if n:
            out += f"{n}{unit}"
    return out


def divide(text: str, factor: int, round_up: bool = False) -> str:
    ms = to_ms(text)
    if ms % factor and not round_up:
        raise ScaleError(f"{text} does not divide by {factor} to the millisecond")
    return from_ms(-(-ms // factor))


def scale_expr(expr: str, factor: int) -> str:
    """expr with every range, subquery step and offset divided by factor."""

    def ranged(match: re.Match[str]) -> str:
        inner = divide(match.group(1), factor)
        if ":" in match.group(0):
            step = match.group(2)
            inner += ":" + (divide(step, factor) if step else "")
        return f"[{inner}]"

    expr = RANGE.sub(ranged, expr)
    return OFFSET.sub(lambda m: f"offset {m.group(1)}{divide(m.group(2), factor)}", expr)


def expr_durations(expr: str) -> Iterator[str]:
    for match in RANGE.finditer(expr):
        yield match.group(1)
        if match.group(2):
            yield match.group(2)
    for match in OFFSET.finditer(expr):
        yield match.group(2)


def map_groups(groups: list[Any], on_duration: Callable[[str], str],
               on_expr: Callable[[str], str]) -> list[Any]:
    """A copy of rule groups with on_duration applied to every duration field and on_expr to
    every expression."""
    out = copy.deepcopy(groups)
    for group in out:
        if "interval" in group:
            group["interval"] = on_duration(group["interval"])
        for rule in group.get("rules") or []:
            rule["expr"] = on_expr(str(rule["expr"]))
            for field in RULE_DURATION_FIELDS:
                if field in rule:
                    rule[field] = on_duration(rule[field])
    return out


def scale_groups(groups: list[Any], factor: int) -> list[Any]:
    return map_groups(groups, lambda d: divide(d, factor), lambda e: scale_expr(e, factor))


def durations_of(groups: list[Any]) -> list[str]:
    """Every duration of the groups, in document order."""
    found: list[str] = []

    def note(d: str) -> str:
        found.append(str(d))
        return "<duration>"

    def note_expr(expr: str) -> str:
        found.extend(expr_durations(expr))
        return "<expr>"

    map_groups(groups, note, note_expr)
    return found


def without_durations(groups: list[Any]) -> list[Any]:
    def blank(expr: str) -> str:
        expr = RANGE.sub("[<duration>]", expr)
        return OFFSET.sub("offset <duration>", expr)

    return map_groups(groups, lambda _: "<duration>", blank)


def check_scaled(original: list[Any], scaled: list[Any], factor: int) -> list[str]:
    """Problems, if scaled is anything but original with every duration divided by factor."""
    problems = []
    if without_durations(original) != without_durations(scaled):
        problems.append("the scaled rules differ from the original in more than their durations")
    before, after = durations_of(original), durations_of(scaled)
    if len(before) != len(after):
        problems.append(f"{len(before)} durations in the original, {len(after)} scaled")
    for b, a in zip(before, after):
        if to_ms(b) != to_ms(a) * factor:
            problems.append(f"{b} scaled to {a}, not to 1/{factor} of it")
    return problems


def repo_rule_groups(rules_dir: Path = RULES_DIR) -> list[Any]:
    """The groups of every PrometheusRule under rules_dir, as Prometheus reads them."""
    groups: list[Any] = []
    for path in sorted(rules_dir.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if is_prometheus_rule(document):
                groups += yaml.safe_load(rules_file(document.get("spec")))["groups"]
    if not groups:
        raise ScaleError(f"no PrometheusRule in {rules_dir}")
    return groups


def scale_route(route: dict[str, Any], factor: int) -> dict[str, Any]:
    out = {k: v for k, v in route.items() if k != "routes"}
    for field in ROUTE_DURATION_FIELDS:
        if field in out:
            out[field] = divide(out[field], factor, round_up=True)
    if route.get("routes"):
        out["routes"] = [scale_route(r, factor) for r in route["routes"]]
    return out


def alertmanager_config(factor: int, webhook: str, values: Path = STACK_VALUES) -> dict[str, Any]:
    """The repository's Alertmanager routing and inhibitions, scaled, with every receiver a
    webhook to {webhook}/{receiver name} that also reports resolved alerts."""
    config = yaml.safe_load(values.read_text(encoding="utf-8"))["alertmanager"]["config"]
    receivers = [
        {"name": r["name"],
         "webhook_configs": [{"url": f"{webhook.rstrip('/')}/{r['name']}", "send_resolved": True}]}
        for r in config["receivers"]
    ]
    return {
        "route": scale_route(config["route"], factor),
        "inhibit_rules": config.get("inhibit_rules", []),
        "receivers": receivers,
    }


def write(out: Path, factor: int, webhook: str) -> list[str]:
    original = repo_rule_groups()
    scaled = scale_groups(original, factor)
    problems = check_scaled(original, scaled, factor)
    out.mkdir(parents=True, exist_ok=True)
    dump = {"sort_keys": False, "allow_unicode": True, "width": 1 << 16}
    (out / "rules.yaml").write_text(yaml.safe_dump({"groups": scaled}, **dump), encoding="utf-8")
    (out / "alertmanager.yaml").write_text(
        yaml.safe_dump(alertmanager_config(factor, webhook), **dump), encoding="utf-8")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=int, default=30)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--webhook", default="http://127.0.0.1:9/")
    args = parser.parse_args(argv)
    problems = write(args.out, args.factor, args.webhook)
    for problem in problems:
        print(f"prom_scale: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
