#!/usr/bin/env python3
"""Render the sale calendar (gitops/sales/calendar.yaml) into the flash-prod manifests that get
the cluster ready for each sale.

    python3 scripts/render_sales.py            # rewrite the rendered files (then commit them)
    python3 scripts/render_sales.py --check    # exit 1 if a committed file is stale
    python3 scripts/render_sales.py --now 2027-03-01T17:00:00Z   # render as at another time

For every coming sale (gitops/README.md "Sale day"):

  * pre-scaling, from `doors_open - PRESCALE_LEAD` until `doors_close + TAIL`, to the floors the
    formula below gives: pay through a KEDA cron trigger beside its queue and CPU triggers
    (KEDA already owns pay's HPA); gateway and api, which scale with plain HPAs, through a
    CronJob that raises their HPA's minReplicas at the start and one that sets Git's values
    back at the end (an HPA has no schedule of its own, and KEDA cannot share a Deployment with
    an HPA);
  * warm spare nodes: the same CronJobs scale the placeholder Deployment flash-sale-headroom
    (negative priority, gitops/platform/sale-day) to the spare count and back to 0;
  * a freeze from FREEZE_MARGIN before the raise until the end: an Argo CD deny sync window in
    both AppProjects on flash-prod (so self-heal cannot undo the raise; manual syncs stay
    allowed), and a Karpenter disruption budget of 0 nodes for Drifted, Underutilized and Empty
    on both NodePools.

Sales whose freezes overlap or touch form one block: one raise, one lower, one window, one budget,
with floors computed from their crowds and admission rates added together. What is rendered
depends on the calendar alone, never on the clock, so a clone renders and tests the same on any
day. Cron has no year (a schedule `25 17 1 3 *` fires every 1 March): remove a sale from the
calendar once it is over and render again, or it freezes the same date next year; this script
and gitops/tests/sales_test.py warn about every finished sale still in the calendar. A sale so
far ahead that its schedule would also fire before it is refused.

The formula, per block (C = expected crowd, A = admissions per second, U = UTILISATION):

    gateway = max(HPA min, ceil(C / (GATEWAY_SOCKETS_PER_POD * U)),
                           ceil(C / JOIN_BURST_SECS / (GATEWAY_JOINS_PER_SEC_PER_POD * U)))
    api     = max(HPA min, ceil(A / (API_ORDERS_PER_SEC_PER_POD * U)))
    pay     = max(KEDA min, ceil(A / (PAY_PAYMENTS_PER_SEC_PER_POD * U)))
    spare   = ceil(SPARE * (gateway * cpu_gateway + api * cpu_api + pay * cpu_pay) / cpu_placeholder)

with A = admit_per_sec, or ceil(C / DEFAULT_ADMIT_SECS) when the calendar gives none; the HPA
bounds and the CPU requests are read from the prod overlays, the placeholder's from
gitops/platform/sale-day/base/headroom.yaml. A floor above the autoscaler's maximum is an error
(raise maxReplicas in the overlay first).

Written files (each says it is generated; nothing else is touched):
    gitops/apps/pay/overlays/prod/sales.yaml              JSON patch: KEDA cron triggers
    gitops/platform/karpenter/overlays/prod/sales.yaml    JSON patch: NodePool budgets
    argocd/envs/prod/sales.yaml                           JSON patch: AppProject sync windows
    gitops/platform/sale-day/overlays/prod/schedule.yaml  List: the raise and lower CronJobs

Needs python3 and PyYAML; reads only the repository. Exit status 0 on success, 1 when --check
finds a stale file, 2 when the calendar (or a value it depends on) is wrong.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import uuid
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CALENDAR = "gitops/sales/calendar.yaml"
OUT_PAY = "gitops/apps/pay/overlays/prod/sales.yaml"
OUT_KARPENTER = "gitops/platform/karpenter/overlays/prod/sales.yaml"
OUT_ARGOCD = "argocd/envs/prod/sales.yaml"
OUT_SCHEDULE = "gitops/platform/sale-day/overlays/prod/schedule.yaml"
OUTPUTS = (OUT_PAY, OUT_KARPENTER, OUT_ARGOCD, OUT_SCHEDULE)

# ----------------------------------------------------------------------------- capacity
# Per-pod capacities, each from one row of BENCHMARKS.md "Current figures" (2-core machine,
# load generator and stores on the same cores; a prod pod requests less than that machine but
# has it to itself). Rerun the row's command and update the constant with the table.

# "idle WebSockets on 1 gateway": 15,000 held (6.6 KiB RSS each). Every waiting buyer holds one.
GATEWAY_SOCKETS_PER_POD = 15_000
# "joins of distinct users, 1 gateway, 64 connections": 20,263/s.
GATEWAY_JOINS_PER_SEC_PER_POD = 20_263
# "orders on one hot event, 64 buyers": 4,361/s. Each admitted buyer places one order.
API_ORDERS_PER_SEC_PER_POD = 4_361
# "payments end to end": 10,810/s (one flash-pay). Each order asks one payment.
PAY_PAYMENTS_PER_SEC_PER_POD = 10_810

# A pod is planned at two thirds of its measured figure: the prod gateway HPA's target is the
# same share (10,000 of the 15,000 sockets measured), so the pre-scaled floor is what the HPA
# itself would ask for when the crowd arrives, not less.
UTILISATION = Fraction(2, 3)
# The crowd joins within the first minute around the doors (the pre-queue takes joins before).
JOIN_BURST_SECS = 60
# A sale without admit_per_sec: the whole crowd may be admitted within a minute.
DEFAULT_ADMIT_SECS = 60
# Warm spare: room for half as much again as the floors request, so the HPAs can grow 50 % at
# once by preempting placeholders instead of waiting for nodes.
SPARE = Fraction(1, 2)

# ----------------------------------------------------------------------------- timing
# The floors are raised this long before the doors (pods started, ready and in the ALB's target
# groups; the nodes for them and the spare provisioned).
PRESCALE_LEAD = dt.timedelta(minutes=30)
# The freeze (Argo CD deny window, Karpenter budgets) starts this long before the raise, so
# self-heal cannot put Git's floors back the moment the raise Job changes them.
FREEZE_MARGIN = dt.timedelta(minutes=5)
# Everything lasts this long after the doors close: orders placed at the close are paid or expire
# within ORDER_HOLD_SECS (600 s, docs/configuration.md), and their payments settle.
TAIL = dt.timedelta(minutes=15)

# ----------------------------------------------------------------------------- names
NAMESPACE = "flash-ticket"
KEDA_TIMEZONE = "Etc/UTC"
CRONJOB_TIMEZONE = "Etc/UTC"
ARGOCD_TIMEZONE = "UTC"
BUDGET_REASONS = ["Drifted", "Underutilized", "Empty"]  # every reason a budget can name (NodePool v1)
MAX_BUDGETS = 50  # NodePool spec.disruption.budgets maxItems
HEADROOM_DEPLOYMENT = "flash-sale-headroom"
SCALER = "flash-sale-scaler"
# registry.k8s.io/kubectl v1.34.1 (EKS runs 1.33: infra/modules/flash/variables.tf), pinned by
# digest like every third-party image (gitops/README.md "Images"). Its entrypoint is kubectl.
KUBECTL_IMAGE = ("registry.k8s.io/kubectl:v1.34.1"
                 "@sha256:59bafa07ff3a6d4b417e7633ddb9d79a9606ca98bf64bac080b3e65748669250")
HEADER = """\
# GENERATED by scripts/render_sales.py from gitops/sales/calendar.yaml: do not edit by hand.
# Edit the calendar, run `python3 scripts/render_sales.py`, commit both (gitops/README.md
# "Sale day"); gitops/tests/sales_test.py fails while this file is stale.
"""


class CalendarError(Exception):
    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


# ----------------------------------------------------------------------------- reading
class _Loader(yaml.SafeLoader):
    """Timestamps stay strings (parsed below, UTC only); a key given twice is an error."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        "key %r is given twice" % key_node.value, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

RFC3339_UTC = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.0+)?(Z|\+00:00)$")
DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?$")
GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_time(value, what):
    """A UTC RFC 3339 time on a whole minute, as an aware datetime."""
    m = RFC3339_UTC.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ValueError("%s must be a UTC RFC 3339 time like 2027-03-01T18:00:00Z, is %r" % (what, value))
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    try:
        t = dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.timezone.utc)
    except ValueError as e:
        raise ValueError("%s %r: %s" % (what, value, e)) from None
    if s:
        raise ValueError("%s must be on a whole minute (cron has no seconds), is %r" % (what, value))
    return t


def parse_window(value):
    m = DURATION.match(str(value)) if isinstance(value, str) else None
    if not m or not any(m.groups()):
        raise ValueError("window must be hours and minutes like 2h, 90m or 1h30m, is %r" % (value,))
    d = dt.timedelta(hours=int(m.group(1) or 0), minutes=int(m.group(2) or 0))
    if d <= dt.timedelta(0):
        raise ValueError("window must be longer than 0, is %r" % value)
    return d


def parse_go_duration(value):
    """A Kubernetes-style duration (3h, 90m, 1h30m, 45s) as a timedelta."""
    m = GO_DURATION.match(str(value))
    if not m or not any(m.groups()):
        raise ValueError("not a duration: %r" % (value,))
    h, mi, s = (int(x or 0) for x in m.groups())
    return dt.timedelta(hours=h, minutes=mi, seconds=s)


def fmt_duration(d):
    """A timedelta of whole minutes as Argo CD and Karpenter read it: 2h50m, 3h, 45m."""
    minutes = int(d.total_seconds()) // 60
    h, m = divmod(minutes, 60)
    return ("%dh" % h if h else "") + ("%dm" % m if m else "") or "0m"


def fmt_time(t):
    return t.strftime("%Y-%m-%dT%H:%MZ")


def cron_at(t):
    """minute hour day month * — fires at t, and on the same date every year (cron has no year)."""
    return "%d %d %d %d *" % (t.minute, t.hour, t.day, t.month)


def cpu(value):
    """A CPU quantity (500m, 1, 0.5) in cores."""
    s = str(value)
    return Fraction(s[:-1]) / 1000 if s.endswith("m") else Fraction(s)


@dataclass
class Sale:
    name: str
    doors_open: dt.datetime
    doors_close: dt.datetime
    expected_crowd: int
    admit_per_sec: int | None = None
    event_id: str | None = None

    @property
    def raise_at(self):
        return self.doors_open - PRESCALE_LEAD

    @property
    def freeze_start(self):
        return self.raise_at - FREEZE_MARGIN

    @property
    def end(self):
        return self.doors_close + TAIL

    @property
    def admissions(self):
        """Admissions per second the backend must take: the calendar's, or the crowd in a minute."""
        if self.admit_per_sec is not None:
            return self.admit_per_sec
        return math.ceil(Fraction(self.expected_crowd, DEFAULT_ADMIT_SECS))


FIELDS = {"name", "event_id", "doors_open", "window", "doors_close", "expected_crowd", "admit_per_sec"}


def parse_calendar(entries):
    """Sales from the calendar's list; CalendarError lists every problem found."""
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise CalendarError(["the calendar must be a list of sales (`[]` when there is none)"])
    sales, problems, names = [], [], set()
    for i, e in enumerate(entries):
        where = "sale %d" % (i + 1)
        if not isinstance(e, dict):
            problems.append("%s: must be a mapping" % where)
            continue
        if isinstance(e.get("name"), str) and e["name"].strip():
            where = "sale %r" % e["name"]
        here = []
        unknown = sorted(set(e) - FIELDS)
        if unknown:
            here.append("unknown field(s) %s" % ", ".join(map(str, unknown)))
        name = e.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            here.append("name must be a non-empty string of at most 100 characters")
        elif name in names:
            here.append("name is given twice")
        else:
            names.add(name)
        event_id = e.get("event_id")
        if event_id is not None:
            try:
                if str(uuid.UUID(str(event_id))) != str(event_id).lower():
                    raise ValueError
            except ValueError:
                here.append("event_id must be a hyphenated UUID, is %r" % (event_id,))
        doors_open = doors_close = None
        try:
            doors_open = parse_time(e.get("doors_open"), "doors_open")
        except ValueError as err:
            here.append(str(err))
        if ("window" in e) == ("doors_close" in e):
            here.append("give exactly one of window and doors_close")
        elif doors_open is not None:
            try:
                if "window" in e:
                    doors_close = doors_open + parse_window(e["window"])
                else:
                    doors_close = parse_time(e["doors_close"], "doors_close")
                    if doors_close <= doors_open:
                        here.append("doors_close must be after doors_open")
            except ValueError as err:
                here.append(str(err))
        crowd = e.get("expected_crowd")
        if not isinstance(crowd, int) or isinstance(crowd, bool) or crowd < 1:
            here.append("expected_crowd must be a whole number of buyers, at least 1, is %r" % (crowd,))
        admit = e.get("admit_per_sec")
        if admit is not None and (not isinstance(admit, int) or isinstance(admit, bool) or not 1 <= admit <= 100_000):
            here.append("admit_per_sec must be a whole number from 1 to 100,000 (queue.admit_per_sec), is %r" % (admit,))
        if here:
            problems += ["%s: %s" % (where, p) for p in here]
            continue
        sales.append(Sale(name, doors_open, doors_close, crowd, admit, event_id and str(event_id)))
    if problems:
        raise CalendarError(problems)
    return sales


def load_calendar(path=None):
    path = Path(path) if path else ROOT / CALENDAR
    try:
        entries = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, yaml.YAMLError) as e:
        raise CalendarError(["%s: %s" % (path, " ".join(str(e).split()))]) from None
    return parse_calendar(entries)


# ----------------------------------------------------------------------------- the repository
def _docs(rel):
    with open(ROOT / rel, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def _find(rel, kind, name):
    for d in _docs(rel):
        if d.get("kind") == kind and d.get("metadata", {}).get("name") == name:
            return d
    raise CalendarError(["%s: no %s/%s (the generator reads it)" % (rel, kind, name)])


def _cpu_request(rel, container):
    dep = next((d for d in _docs(rel) if d.get("kind") == "Deployment"), None)
    for c in (dep or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        if c.get("name") == container:
            return cpu(c["resources"]["requests"]["cpu"])
    raise CalendarError(["%s: no CPU request for container %s (the generator reads it)" % (rel, container)])


@dataclass
class Facts:
    """What the formula and the checks read from the manifests (prod overlays and bases)."""
    bounds: dict = field(default_factory=dict)       # service -> (min, max)
    cpu: dict = field(default_factory=dict)          # service or "placeholder" -> cores
    grace: dict = field(default_factory=dict)        # NodePool -> terminationGracePeriod
    budgets: dict = field(default_factory=dict)      # NodePool -> budgets already in the base


def read_facts():
    f = Facts()
    for svc in ("gateway", "api"):
        hpa = _find("gitops/apps/%s/overlays/prod/autoscaling.yaml" % svc, "HorizontalPodAutoscaler", "flash-" + svc)
        f.bounds[svc] = (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    so = _find("gitops/apps/pay/overlays/prod/autoscaling.yaml", "ScaledObject", "flash-pay")
    f.bounds["pay"] = (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"])
    for svc in ("gateway", "api", "pay"):
        f.cpu[svc] = _cpu_request("gitops/apps/%s/overlays/prod/resources.yaml" % svc, svc)
    f.cpu["placeholder"] = _cpu_request("gitops/platform/sale-day/base/headroom.yaml", "pause")
    for pool in ("spot", "on-demand"):
        np = _find("gitops/platform/karpenter/base/nodepool-%s.yaml" % pool, "NodePool", pool)
        f.grace[pool] = parse_go_duration(np["spec"]["template"]["spec"]["terminationGracePeriod"])
        f.budgets[pool] = len(np["spec"]["disruption"].get("budgets", []))
    problems = []
    for p in sorted((ROOT / "argocd" / "projects").glob("*.yaml")):
        for d in _docs(p.relative_to(ROOT)):
            if d.get("kind") == "AppProject" and d.get("spec", {}).get("syncWindows"):
                problems.append("%s: AppProject %s has syncWindows of its own; %s sets the list and "
                                "would replace them" % (p.relative_to(ROOT), d["metadata"]["name"], OUT_ARGOCD))
    if problems:
        raise CalendarError(problems)
    return f


# ----------------------------------------------------------------------------- planning
def floors(crowd, admissions, facts):
    """The pods each service starts the sale with, and the warm-spare placeholders (the formula of
    the module's docstring). Raises CalendarError when a floor exceeds its autoscaler's maximum."""
    u = UTILISATION
    want = {
        "gateway": max(math.ceil(Fraction(crowd) / (GATEWAY_SOCKETS_PER_POD * u)),
                       math.ceil(Fraction(crowd, JOIN_BURST_SECS) / (GATEWAY_JOINS_PER_SEC_PER_POD * u))),
        "api": math.ceil(Fraction(admissions) / (API_ORDERS_PER_SEC_PER_POD * u)),
        "pay": math.ceil(Fraction(admissions) / (PAY_PAYMENTS_PER_SEC_PER_POD * u)),
    }
    out, problems = {}, []
    for svc, n in want.items():
        lo, hi = facts.bounds[svc]
        out[svc] = max(lo, n)
        if out[svc] > hi:
            problems.append("%s needs %d pods for a crowd of %d (%d admissions/s), above its prod maximum %d: "
                            "raise it in gitops/apps/%s/overlays/prod/autoscaling.yaml first"
                            % (svc, out[svc], crowd, admissions, hi, svc))
    if problems:
        raise CalendarError(problems)
    requested = sum(out[s] * facts.cpu[s] for s in ("gateway", "api", "pay"))
    out["spare"] = math.ceil(SPARE * requested / facts.cpu["placeholder"])
    return out


@dataclass
class Block:
    """Sales whose freezes overlap or touch: prepared for together."""
    sales: list
    floors: dict = field(default_factory=dict)

    @property
    def raise_at(self):
        return min(s.raise_at for s in self.sales)

    @property
    def freeze_start(self):
        return self.raise_at - FREEZE_MARGIN

    @property
    def end(self):
        return max(s.end for s in self.sales)

    @property
    def name(self):
        return "sale-" + self.sales[0].doors_open.strftime("%Y%m%d-%H%M")

    @property
    def crowd(self):
        return sum(s.expected_crowd for s in self.sales)

    @property
    def admissions(self):
        return sum(s.admissions for s in self.sales)


def plan(sales, now, facts):
    """The blocks to render: every sale of the calendar (finished ones too: see `finished`),
    overlapping ones merged, floors computed; CalendarError for a sale that cannot be rendered
    safely at `now` (one so far ahead that its yearly schedule would fire first)."""
    coming = sorted(sales, key=lambda s: (s.freeze_start, s.name))
    blocks = []
    for s in coming:
        if blocks and s.freeze_start <= blocks[-1].end:
            blocks[-1].sales.append(s)
        else:
            blocks.append(Block([s]))
    problems = []
    for b in blocks:
        label = "%s (%s)" % (b.name, ", ".join(s.name for s in b.sales))
        try:
            b.floors = floors(b.crowd, b.admissions, facts)
        except CalendarError as e:
            problems += ["%s: %s" % (label, p) for p in e.problems]
        length = b.end - b.freeze_start
        for pool, grace in sorted(facts.grace.items()):
            if length > grace:
                problems.append("%s: its freeze lasts %s, longer than NodePool %s's terminationGracePeriod %s: a node "
                                "that starts draining during it could lose its gateways before the end; shorten the "
                                "sale or raise terminationGracePeriod in gitops/platform/karpenter/base (this replaces "
                                "every node once: not during a sale)"
                                % (label, fmt_duration(length), pool, fmt_duration(grace)))
        # Cron has no year: the same date in an earlier year must not fall on or after now.
        for year in range(now.year - 1, b.freeze_start.year):
            try:
                early = b.freeze_start.replace(year=year)
            except ValueError:  # 29 February
                continue
            if early + length > now:
                problems.append("%s: its schedule (%s UTC every year) would first freeze %s; add it to the calendar "
                                "less than a year ahead" % (label, cron_at(b.freeze_start), fmt_time(early)))
                break
    for pool, n in sorted(facts.budgets.items()):
        if n + len(blocks) > MAX_BUDGETS:
            problems.append("NodePool %s: %d budgets of its own + %d sale blocks exceed Karpenter's %d"
                            % (pool, n, len(blocks), MAX_BUDGETS))
    if problems:
        raise CalendarError(problems)
    return blocks


# ----------------------------------------------------------------------------- rendering
class _Dumper(yaml.SafeDumper):
    """No &anchors/*aliases for values used twice: every object reads on its own."""

    def ignore_aliases(self, data):
        return True


def _dump(obj):
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _block_comment(b):
    lines = ["# %s: freeze %s .. %s UTC (%s), floors raised at %s" % (
        b.name, fmt_time(b.freeze_start), fmt_time(b.end), fmt_duration(b.end - b.freeze_start), fmt_time(b.raise_at))]
    for s in b.sales:
        lines.append("#   %s: doors %s .. %s, crowd %d, %d admissions/s%s%s" % (
            s.name, fmt_time(s.doors_open), fmt_time(s.doors_close), s.expected_crowd, s.admissions,
            "" if s.admit_per_sec is not None else " (none given: crowd / %d s)" % DEFAULT_ADMIT_SECS,
            ", event %s" % s.event_id if s.event_id else ""))
    f = b.floors
    lines.append("#   floors: gateway %d, api %d, pay %d; warm spare %d placeholders"
                 % (f["gateway"], f["api"], f["pay"], f["spare"]))
    return "\n".join(lines) + "\n"


def _patch_file(what, guard, ops_by_block, blocks):
    """A JSON 6902 patch: a `test` op first (the whole patch when no sale is coming: kustomize
    refuses an empty one), then each block's ops under its comment."""
    text = HEADER + what + _dump([guard])
    if not blocks:
        text += "# No coming sale.\n"
    for b in blocks:
        text += _block_comment(b) + _dump(ops_by_block(b))
    return text


def render_pay(blocks):
    what = ("# A KEDA cron trigger per coming sale, appended to flash-pay's triggers (the queue and CPU ones\n"
            "# stay): from the raise to the end, at least the sale's pay floor. KEDA takes the largest.\n")

    def ops(b):
        return [{"op": "add", "path": "/spec/triggers/-", "value": {
            "type": "cron",
            "name": b.name,
            "metadata": {
                "timezone": KEDA_TIMEZONE,
                "start": cron_at(b.raise_at),
                "end": cron_at(b.end),
                "desiredReplicas": str(b.floors["pay"]),
            },
        }}]

    return _patch_file(what, {"op": "test", "path": "/metadata/name", "value": "flash-pay"}, ops, blocks)


def render_karpenter(blocks):
    what = ("# A disruption budget of 0 nodes per coming sale, for every reason a budget can name, appended to\n"
            "# each NodePool's own: nothing is consolidated or replaced for drift during the freeze. Karpenter\n"
            "# reads the schedule in UTC. Spot interruptions and expiry are not budgeted (the gateway's\n"
            "# do-not-disrupt and the 3 h terminationGracePeriod cover expiry).\n")

    def ops(b):
        return [{"op": "add", "path": "/spec/disruption/budgets/-", "value": {
            "nodes": "0",
            "reasons": list(BUDGET_REASONS),
            "schedule": cron_at(b.freeze_start),
            "duration": fmt_duration(b.end - b.freeze_start),
        }}]

    return _patch_file(what, {"op": "test", "path": "/kind", "value": "NodePool"},
                       ops, blocks)


def render_argocd(blocks):
    what = ("# The sync windows of both AppProjects on flash-prod: a deny window per coming sale, over every\n"
            "# Application, from the freeze to the end. Automated syncs (self-heal included) wait; manual\n"
            "# syncs are allowed (manualSync), for a fix during a sale (gitops/README.md \"Sale day\").\n")
    guard = {"op": "test", "path": "/kind", "value": "AppProject"}
    text = HEADER + what + _dump([guard])
    if not blocks:
        return text + "# No coming sale.\n"
    windows = []
    for b in blocks:
        windows.append({
            "kind": "deny",
            "schedule": cron_at(b.freeze_start),
            "duration": fmt_duration(b.end - b.freeze_start),
            "timeZone": ARGOCD_TIMEZONE,
            "applications": ["*"],
            "manualSync": True,
            "description": "%s: %s; gitops/sales/calendar.yaml" % (b.name, ", ".join(s.name for s in b.sales)),
        })
    text += "".join(_block_comment(b) for b in blocks)
    return text + _dump([{"op": "add", "path": "/spec/syncWindows", "value": windows}])


def _kubectl(name, args):
    return {
        "name": name,
        "image": KUBECTL_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/kubectl"],
        "args": ["--namespace=" + NAMESPACE] + args,
        # kubectl keeps its discovery cache under $HOME: the only writable place is /tmp.
        "env": [{"name": "HOME", "value": "/tmp/" + name}],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"},
                      "limits": {"cpu": "200m", "memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _cronjob(b, action, when, gateway, api, spare, deadline):
    name = "flash-%s-%s" % (b.name, action)
    labels = {"app.kubernetes.io/name": SCALER, "app.kubernetes.io/component": "sale-day",
              "flash-tickets.io/sale": b.name}
    patch = lambda key, n: json.dumps({"spec": {key: n}}, separators=(",", ":"))
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels,
                     "annotations": {"flash-tickets.io/sales": ", ".join(s.name for s in b.sales)}},
        "spec": {
            "schedule": cron_at(when),
            "timeZone": CRONJOB_TIMEZONE,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": deadline,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {"spec": {
                "backoffLimit": 4,
                "activeDeadlineSeconds": 900,
                "ttlSecondsAfterFinished": 86400,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": SCALER,
                        # The one pod that calls the API: patches two HPAs and one Deployment
                        # (gitops/platform/sale-day/base/scaler.yaml).
                        "automountServiceAccountToken": True,
                        "enableServiceLinks": False,
                        "restartPolicy": "Never",
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        "containers": [
                            _kubectl("gateway-floor", ["patch", "horizontalpodautoscaler", "flash-gateway",
                                                       "--type=merge", "--patch=" + patch("minReplicas", gateway)]),
                            _kubectl("api-floor", ["patch", "horizontalpodautoscaler", "flash-api",
                                                   "--type=merge", "--patch=" + patch("minReplicas", api)]),
                            _kubectl("warm-spare", ["patch", "deployment", HEADROOM_DEPLOYMENT,
                                                    "--type=merge", "--patch=" + patch("replicas", spare)]),
                        ],
                        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
                    },
                },
            }},
        },
    }


def render_schedule(blocks, facts):
    what = ("# Per coming sale, two CronJobs (Etc/UTC; cron has no year, so each is rendered away once its\n"
            "# sale is over): `raise` sets the gateway's and the api's HPA minReplicas to the sale's floors\n"
            "# and the warm-spare placeholder to its count; `lower` sets Git's values back (HPA minimum,\n"
            "# placeholder 0). The sale's Argo CD deny window, which starts before the raise, keeps\n"
            "# self-heal from undoing it; when the window closes self-heal restores Git's values too.\n")
    items = []
    text = HEADER + what
    if not blocks:
        text += "# No coming sale.\n"
    for b in blocks:
        text += _block_comment(b)
        items.append(_cronjob(b, "raise", b.raise_at, b.floors["gateway"], b.floors["api"], b.floors["spare"],
                              # a late start still raises before the doors
                              int((PRESCALE_LEAD - dt.timedelta(minutes=5)).total_seconds())))
        items.append(_cronjob(b, "lower", b.end, facts.bounds["gateway"][0], facts.bounds["api"][0], 0, 3600))
    return text + _dump({"apiVersion": "v1", "kind": "List", "items": items})


def render(blocks, facts):
    """{repository-relative path: text} of every rendered file."""
    return {
        OUT_PAY: render_pay(blocks),
        OUT_KARPENTER: render_karpenter(blocks),
        OUT_ARGOCD: render_argocd(blocks),
        OUT_SCHEDULE: render_schedule(blocks, facts),
    }


def render_all(now=None, calendar=None):
    """(files, blocks) for the calendar at `now` (default: the real time)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    facts = read_facts()
    blocks = plan(load_calendar(calendar), now, facts)
    return render(blocks, facts), blocks


def finished(sales, now):
    """Warnings for the sales whose freeze is over at `now`: still in the calendar, their
    yearly schedules would freeze the same date next year."""
    return ["sale %s is over (%s): remove it from %s and render again, or its schedules "
            "(cron has no year) freeze the same date next year" % (s.name, fmt_time(s.end), CALENDAR)
            for s in sorted(sales, key=lambda s: s.end) if s.end <= now]


def capacity(crowd, admit_per_sec):
    """Prints the pods each service needs for `crowd` buyers admitted at `admit_per_sec` (the
    crowd in DEFAULT_ADMIT_SECS when None), and whether prod's autoscalers allow them."""
    if crowd < 1 or (admit_per_sec is not None and admit_per_sec < 1):
        print("render_sales: --capacity and --admit-per-sec must be at least 1", file=sys.stderr)
        return 2
    admissions = admit_per_sec or math.ceil(Fraction(crowd, DEFAULT_ADMIT_SECS))
    facts = read_facts()
    print("crowd %d, %d admissions/s (per pod, at %d%% of the BENCHMARKS.md figures: gateway %d sockets "
          "and %d joins/s, api %d orders/s, pay %d payments/s)"
          % (crowd, admissions, round(UTILISATION * 100), GATEWAY_SOCKETS_PER_POD,
             GATEWAY_JOINS_PER_SEC_PER_POD, API_ORDERS_PER_SEC_PER_POD, PAY_PAYMENTS_PER_SEC_PER_POD))
    try:
        pods = floors(crowd, admissions, facts)
    except CalendarError as e:
        for p in e.problems:
            print("  too large for prod today: " + p)
        return 1
    for svc in ("gateway", "api", "pay"):
        lo, hi = facts.bounds[svc]
        print("  %-8s %4d pods (prod autoscaler %d..%d)" % (svc, pods[svc], lo, hi))
    print("  %-8s %4d warm spare placeholders" % ("spare", pods["spare"]))
    return 0


# ----------------------------------------------------------------------------- main
def main(argv):
    ap = argparse.ArgumentParser(description="Render gitops/sales/calendar.yaml into the prod manifests.")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a rendered file is stale")
    ap.add_argument("--now", help="render as at this UTC time (RFC 3339), not the real time")
    ap.add_argument("--calendar", help="another calendar file (default: %s)" % CALENDAR)
    ap.add_argument("--capacity", type=int, metavar="CROWD",
                    help="write nothing: print the pods each service needs for a crowd of CROWD buyers "
                         "(and --admit-per-sec), by the same formula and per-pod figures")
    ap.add_argument("--admit-per-sec", type=int, metavar="RATE",
                    help="with --capacity: the queue's admissions per second (default: the crowd in %d s)"
                         % DEFAULT_ADMIT_SECS)
    a = ap.parse_args(argv)
    if a.capacity is not None:
        return capacity(a.capacity, a.admit_per_sec)
    try:
        now = parse_time(a.now, "--now") if a.now else None
    except ValueError as e:
        print("render_sales: %s" % e, file=sys.stderr)
        return 2
    try:
        files, blocks = render_all(now, a.calendar)
    except CalendarError as e:
        print("render_sales: the calendar cannot be rendered:", file=sys.stderr)
        for p in e.problems:
            print("  - " + p, file=sys.stderr)
        return 2
    now = now or dt.datetime.now(dt.timezone.utc)
    for warning in finished(load_calendar(a.calendar), now):
        print("warning: " + warning, file=sys.stderr)
    for b in blocks:
        print(_block_comment(b).replace("# ", "", 1).replace("#   ", "  ").rstrip())
        if dt.timedelta(0) <= b.freeze_start - now < dt.timedelta(hours=1):
            print("  warning: its freeze starts within the hour (%s): Argo CD must sync this render before then"
                  % fmt_time(b.freeze_start))
    if not blocks:
        print("no coming sale")
    stale = []
    for rel, text in files.items():
        path = ROOT / rel
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old == text:
            continue
        stale.append(rel)
        if not a.check:
            path.write_text(text, encoding="utf-8")
            print("wrote " + rel)
    if a.check and stale:
        print("stale (run python3 scripts/render_sales.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    if not stale:
        print("every rendered file is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
