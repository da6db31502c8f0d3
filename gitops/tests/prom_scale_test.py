"""Tests of scripts/prom_scale.py, the time-scaled copy of the rules and routing that
gitops/tests/live_alerts_test.py (make alerts) loads into real Prometheus and Alertmanager.

    python3 gitops/tests/prom_scale_test.py [-v] [-k NAME]

The repository's rules scale by 30 exactly and the copy passes its own check; the check refuses
a copy changed in anything but its durations, or scaled by another factor; every kind of
duration is scaled (for, interval, ranges, subqueries, offsets) and nothing else (thresholds,
label values, texts); a duration that does not divide is refused; the routing keeps its tree and
inhibitions, with every receiver a webhook. Run by scripts/validate.sh (step prom-rules).
"""
import copy
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True  # no __pycache__ in scripts/
import prom_scale as ps  # noqa: E402

from harness import Suite, expect  # noqa: E402  (gitops/tests/harness.py)

SUITE = Suite(__doc__.splitlines()[0])
test = SUITE.test
FACTOR = 30


@test
def test_repository_rules_scale_exactly():
    """the repository's rules divide by 30 and the scaled copy passes the check"""
    original = ps.repo_rule_groups()
    scaled = ps.scale_groups(original, FACTOR)
    problems = ps.check_scaled(original, scaled, FACTOR)
    if not ps.durations_of(original):
        problems.append("no duration found in the rules")
    if scaled == original:
        problems.append("nothing changed")
    expect(problems)


@test
def test_check_refuses_other_changes():
    """a changed threshold, a dropped rule or the wrong factor fail the check"""
    original = ps.repo_rule_groups()
    scaled = ps.scale_groups(original, FACTOR)
    problems = []
    changed = copy.deepcopy(scaled)
    rule = next(r for g in changed for r in g["rules"] if "alert" in r)
    rule["expr"] = rule["expr"].replace(">", ">=", 1)
    if not ps.check_scaled(original, changed, FACTOR):
        problems.append("a changed comparison passed")
    dropped = copy.deepcopy(scaled)
    dropped[0]["rules"].pop()
    if not ps.check_scaled(original, dropped, FACTOR):
        problems.append("a dropped rule passed")
    if not ps.check_scaled(original, ps.scale_groups(original, 10), FACTOR):
        problems.append("a copy scaled by 10 passed as scaled by 30")
    expect(problems)


@test
def test_every_kind_of_duration_and_nothing_else():
    """for, interval, ranges, subqueries and offsets scale; thresholds and labels do not"""
    groups = [{"name": "g", "interval": "30s", "rules": [{
        "alert": "A",
        "expr": 'sum(rate(x{le="5m"}[5m] offset 1h)) > 300 and max_over_time(y[1h:1m]) > 2',
        "for": "15m",
        "labels": {"window": "5m"},
    }]}]
    got = ps.scale_groups(groups, FACTOR)[0]
    rule = got["rules"][0]
    want_expr = 'sum(rate(x{le="5m"}[10s] offset 2m)) > 300 and max_over_time(y[2m:2s]) > 2'
    problems = []
    if rule["expr"] != want_expr:
        problems.append("expr %r, want %r" % (rule["expr"], want_expr))
    if (got["interval"], rule["for"], rule["labels"]["window"]) != ("1s", "30s", "5m"):
        problems.append("interval/for/label: %r" % ((got["interval"], rule["for"], rule["labels"]),))
    try:
        ps.scale_groups([{"name": "g", "rules": [{"record": "r", "expr": "rate(x[1s])"}]}], 7)
        problems.append("1s / 7 was not refused")
    except ps.ScaleError:
        pass
    if ps.from_ms(ps.to_ms("3d") // FACTOR) != "2h24m":
        problems.append("3d / 30 is %s" % ps.from_ms(ps.to_ms("3d") // FACTOR))
    expect(problems)


@test
def test_routing_scaled_with_webhooks():
    """the routing keeps its tree and inhibitions; timings scaled; every receiver a webhook"""
    config = ps.alertmanager_config(FACTOR, "http://127.0.0.1:1/")
    problems = []
    route = config["route"]
    if route["group_interval"] != "10s":
        problems.append("group_interval %r, want 10s (5m / 30)" % route["group_interval"])
    names = {r["receiver"] for r in route["routes"]}
    if not {"pagerduty-flash", "slack-flash", "deadmansswitch"} <= names:
        problems.append("routes lost: %s" % sorted(names))
    if not config["inhibit_rules"]:
        problems.append("inhibit_rules lost")
    for receiver in config["receivers"]:
        hooks = receiver.get("webhook_configs") or []
        if [h["url"] for h in hooks] != ["http://127.0.0.1:1/%s" % receiver["name"]]:
            problems.append("receiver %s: %r" % (receiver["name"], hooks))
    expect(problems)


if __name__ == "__main__":
    sys.exit(SUITE.main(sys.argv[1:]))
