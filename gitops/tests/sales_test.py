#!/usr/bin/env python3
"""Tests of the sale calendar as code: gitops/sales/calendar.yaml, scripts/render_sales.py and
what it renders into the prod overlays (gitops/README.md "Sale day").

Run from anywhere (scripts/validate.sh does, with a Python that has PyYAML; kubectl or
kustomize renders the overlays):

    python3 gitops/tests/sales_test.py [-v] [-k NAME]

The committed rendered files must be what the generator renders from the calendar (a new sale
not rendered, a changed HPA bound or CPU request all fail; what is rendered never depends on the
clock, so this passes on any day; a finished sale still in the calendar is a warning); every
sale has its deny sync window in both AppProjects on flash-prod and none on flash-dev, a
Karpenter budget of 0 nodes for every reason on both NodePools over its freeze, floors that
follow the documented formula (recomputed here from the rendered overlays and the generator's
per-pod constants), a raise before the doors and a lower after the close inside the freeze;
gateways are never disrupted by Karpenter and nodes wait longer than a freeze for them; the
calendar's mistakes are refused. Prints one line per failed check and ends with
`N passed, M failed`; exit status 1 on any failure.
"""
import re
import datetime as dt
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True  # no __pycache__ in scripts/
import render_sales as rs  # noqa: E402  (the generator: its constants are written once, there)

from harness import Suite, expect  # noqa: E402  (gitops/tests/harness.py)

UTC = dt.timezone.utc
PROJECTS = ("flash-apps", "flash-platform")
NODEPOOLS = ("spot", "on-demand")


# ----------------------------------------------------------------------------- helpers
def rel(p):
    return os.path.relpath(p, ROOT)


_RENDERED = {}


def kustomize(path):
    """The objects of one kustomize root (rendered once per run)."""
    if path not in _RENDERED:
        cmd = ["kubectl", "kustomize"] if shutil.which("kubectl") else ["kustomize", "build"]
        r = subprocess.run(cmd + [os.path.join(ROOT, path)], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("%s does not render: %s" % (path, r.stderr.strip()[:400]))
        _RENDERED[path] = [d for d in yaml.safe_load_all(r.stdout) if d]
    return _RENDERED[path]


def find(objs, kind, name=None):
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs, kind, name):
    found = find(objs, kind, name)
    if len(found) != 1:
        raise AssertionError("expected one %s/%s, found %d" % (kind, name, len(found)))
    return found[0]


_NOW = dt.datetime.now(UTC)


def coming():
    """(sales, blocks) the generator plans now."""
    sales = rs.load_calendar()
    return sales, rs.plan(sales, _NOW, rs.read_facts())


def occurrence(schedule, around):
    """The start of a yearly `m h d M *` schedule in the year of `around` (or the year before,
    for a window that crosses New Year), the latest one not after `around` + 1 day."""
    m, h, d, mo, dow = schedule.split()
    if dow != "*":
        raise AssertionError("schedule %r names a weekday" % schedule)
    for year in (around.year + 1, around.year, around.year - 1):
        try:
            t = dt.datetime(year, int(mo), int(d), int(h), int(m), tzinfo=UTC)
        except ValueError:
            continue
        if t <= around + dt.timedelta(days=1):
            return t
    raise AssertionError("schedule %r has no occurrence near %s" % (schedule, around))


def covers(schedule, duration, start, end):
    """Does the window `schedule` + `duration` (UTC) cover [start, end]?"""
    t = occurrence(schedule, start)
    return t <= start and t + rs.parse_go_duration(duration) >= end


def cronjobs():
    objs = kustomize("gitops/platform/sale-day/overlays/prod")
    return {o["metadata"]["name"]: o for o in find(objs, "CronJob")}


def patched(cronjob):
    """{(kind, name): {field: value}} that a raise/lower CronJob's containers patch."""
    out = {}
    for c in cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]:
        args = c["args"]
        i = args.index("patch")
        kind, name = args[i + 1], args[i + 2]
        body = next(a for a in args if a.startswith("--patch="))[len("--patch="):]
        out[(kind, name)] = yaml.safe_load(body)["spec"]
    return out


def expected_floors(crowd, admissions, bounds, cpus):
    """The formula of gitops/README.md "Sale day", written out again from the generator's
    constants: what every rendered floor must equal."""
    u = rs.UTILISATION
    gateway = max(bounds["gateway"][0],
                  math.ceil(Fraction(crowd) / (rs.GATEWAY_SOCKETS_PER_POD * u)),
                  math.ceil(Fraction(crowd) / rs.JOIN_BURST_SECS / (rs.GATEWAY_JOINS_PER_SEC_PER_POD * u)))
    api = max(bounds["api"][0], math.ceil(Fraction(admissions) / (rs.API_ORDERS_PER_SEC_PER_POD * u)))
    pay = max(bounds["pay"][0], math.ceil(Fraction(admissions) / (rs.PAY_PAYMENTS_PER_SEC_PER_POD * u)))
    spare = math.ceil(rs.SPARE * (gateway * cpus["gateway"] + api * cpus["api"] + pay * cpus["pay"])
                      / cpus["placeholder"])
    return {"gateway": gateway, "api": api, "pay": pay, "spare": spare}


def rendered_bounds_and_cpus():
    """HPA bounds and CPU requests as the prod overlays render them (not as the generator reads
    its source files): a second, independent reading."""
    bounds, cpus = {}, {}
    for svc in ("gateway", "api"):
        hpa = one(kustomize("gitops/apps/%s/overlays/prod" % svc), "HorizontalPodAutoscaler", "flash-" + svc)
        bounds[svc] = (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"])
    so = one(kustomize("gitops/apps/pay/overlays/prod"), "ScaledObject", "flash-pay")
    bounds["pay"] = (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"])
    for svc in ("gateway", "api", "pay"):
        dep = one(kustomize("gitops/apps/%s/overlays/prod" % svc), "Deployment", "flash-" + svc)
        c = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == svc)
        cpus[svc] = rs.cpu(c["resources"]["requests"]["cpu"])
    dep = one(kustomize("gitops/platform/sale-day/overlays/prod"), "Deployment", rs.HEADROOM_DEPLOYMENT)
    cpus["placeholder"] = rs.cpu(dep["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])
    return bounds, cpus


def sale(name="s", doors="2027-03-01T18:00:00Z", **kw):
    entry = {"name": name, "doors_open": doors, "expected_crowd": 1000}
    entry.update(kw)
    if "window" not in entry and "doors_close" not in entry:
        entry["window"] = "2h"
    return entry


def refused(entries, *fragments):
    """The calendar is refused, with a problem naming each fragment."""
    try:
        rs.parse_calendar(entries)
    except rs.CalendarError as e:
        missing = [f for f in fragments if not any(f in p for p in e.problems)]
        return ["%r: no problem mentions %r (got %s)" % (entries, f, e.problems) for f in missing]
    return ["%r was accepted" % (entries,)]


SUITE = Suite("Tests of the sale calendar and its rendered manifests.",
              explained={rs.CalendarError: "the calendar cannot be rendered"})
test = SUITE.test


@test
def rendered_manifests_are_current():
    """The committed rendered files are what scripts/render_sales.py renders from the calendar
    (run it and commit when this fails: a sale was added, changed or removed, or an HPA bound or
    CPU request it reads changed)."""
    files, _ = rs.render_all(_NOW)
    problems = []
    for path, text in files.items():
        full = os.path.join(ROOT, path)
        if not os.path.isfile(full):
            problems.append("%s is missing: run python3 scripts/render_sales.py" % path)
            continue
        with open(full, encoding="utf-8") as f:
            if f.read() != text:
                problems.append("%s is stale: run python3 scripts/render_sales.py and commit it" % path)
    expect(problems)


@test
def generated_files_are_marked_and_included():
    """Each rendered file says it is generated and is included by the prod overlay it belongs to
    (and by no dev one)."""
    includes = {
        rs.OUT_PAY: ("gitops/apps/pay/overlays/prod", "patches"),
        rs.OUT_KARPENTER: ("gitops/platform/karpenter/overlays/prod", "patches"),
        rs.OUT_ARGOCD: ("argocd/envs/prod", "patches"),
        rs.OUT_SCHEDULE: ("gitops/platform/sale-day/overlays/prod", "resources"),
    }
    problems = []
    for path, (overlay, key) in includes.items():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            if not f.read().startswith("# GENERATED by scripts/render_sales.py"):
                problems.append("%s does not say it is generated" % path)
        with open(os.path.join(ROOT, overlay, "kustomization.yaml"), encoding="utf-8") as f:
            k = yaml.safe_load(f)
        entries = [e if isinstance(e, str) else e.get("path") for e in k.get(key, [])]
        if os.path.basename(path) not in entries:
            problems.append("%s/kustomization.yaml does not include %s in %s" % (overlay, os.path.basename(path), key))
    for d in ("gitops/apps/pay/overlays/dev", "gitops/platform/karpenter/overlays/dev", "argocd/envs/dev"):
        with open(os.path.join(ROOT, d, "kustomization.yaml"), encoding="utf-8") as f:
            if "sales.yaml" in f.read():
                problems.append("%s includes a sale file: the calendar is prod's" % d)
    expect(problems)


@test
def every_sale_has_a_deny_window_on_prod():
    """Every coming sale is covered, from its freeze (before the raise) to its end, by a deny
    sync window over every Application, manual syncs allowed, in UTC, in both AppProjects on
    flash-prod; flash-dev's projects have no window."""
    sales, _ = coming()
    objs = kustomize("argocd/envs/prod")
    problems = []
    for p in PROJECTS:
        windows = one(objs, "AppProject", p)["spec"].get("syncWindows", [])
        for w in windows:
            if w.get("kind") != "deny" or w.get("applications") != ["*"] or w.get("manualSync") is not True \
                    or w.get("timeZone") != "UTC":
                problems.append("AppProject %s: window %s is not a deny window over every Application, "
                                "manual syncs allowed, in UTC" % (p, w))
        for s in sales:
            if s.end <= _NOW:
                continue
            if not any(w.get("kind") == "deny" and covers(w["schedule"], w["duration"], s.freeze_start, s.end)
                       for w in windows):
                problems.append("AppProject %s on prod: no deny window covers sale %s (%s .. %s)"
                                % (p, s.name, rs.fmt_time(s.freeze_start), rs.fmt_time(s.end)))
    for p in find(kustomize("argocd/envs/dev"), "AppProject"):
        if p["spec"].get("syncWindows"):
            problems.append("AppProject %s on dev has sync windows: the sale freeze is prod's" % p["metadata"]["name"])
    if not sales:
        problems.append("the calendar holds no sale: keep the example (or a real one) so this is exercised")
    expect(problems)


@test
def budgets_block_every_disruption_during_each_sale():
    """Both prod NodePools have, for every coming sale, a budget of 0 nodes for Drifted,
    Underutilized and Empty whose schedule and duration cover the sale's freeze; their own
    budgets are kept."""
    sales, _ = coming()
    problems = []
    base = {n["metadata"]["name"]: n for n in find(kustomize("gitops/platform/karpenter/overlays/dev"), "NodePool")}
    for pool in NODEPOOLS:
        budgets = one(kustomize("gitops/platform/karpenter/overlays/prod"), "NodePool", pool)["spec"]["disruption"]["budgets"]
        for b in base[pool]["spec"]["disruption"]["budgets"]:
            if b not in budgets:
                problems.append("NodePool %s on prod lost its budget %s" % (pool, b))
        for s in sales:
            if not any(b.get("nodes") == "0" and "schedule" in b
                       and set(b.get("reasons", rs.BUDGET_REASONS)) >= set(rs.BUDGET_REASONS)
                       and covers(b["schedule"], b["duration"], s.freeze_start, s.end) for b in budgets):
                problems.append("NodePool %s on prod: no 0-node budget for %s covers sale %s (%s .. %s)"
                                % (pool, "/".join(rs.BUDGET_REASONS), s.name, rs.fmt_time(s.freeze_start),
                                   rs.fmt_time(s.end)))
    expect(problems)


@test
def floors_follow_the_formula():
    """The raise CronJob's HPA floors and spare count and pay's KEDA cron desiredReplicas equal
    the documented formula, recomputed from the rendered prod overlays; the lower CronJob sets
    the overlays' own minimums and 0 placeholders back; no floor exceeds its maximum."""
    _, blocks = coming()
    bounds, cpus = rendered_bounds_and_cpus()
    jobs = cronjobs()
    so = one(kustomize("gitops/apps/pay/overlays/prod"), "ScaledObject", "flash-pay")
    crons = {t["name"]: t for t in so["spec"]["triggers"] if t["type"] == "cron"}
    problems = []
    for b in blocks:
        want = expected_floors(b.crowd, b.admissions, bounds, cpus)
        raise_job, lower_job = jobs.get("flash-%s-raise" % b.name), jobs.get("flash-%s-lower" % b.name)
        if not raise_job or not lower_job:
            problems.append("%s: no raise or lower CronJob" % b.name)
            continue
        got = patched(raise_job)
        have = {"gateway": got.get(("horizontalpodautoscaler", "flash-gateway"), {}).get("minReplicas"),
                "api": got.get(("horizontalpodautoscaler", "flash-api"), {}).get("minReplicas"),
                "spare": got.get(("deployment", rs.HEADROOM_DEPLOYMENT), {}).get("replicas"),
                "pay": int(crons[b.name]["metadata"]["desiredReplicas"]) if b.name in crons else None}
        for k in want:
            if have[k] != want[k]:
                problems.append("%s: %s floor is %s, the formula gives %d" % (b.name, k, have[k], want[k]))
        for svc in ("gateway", "api", "pay"):
            if want[svc] > bounds[svc][1]:
                problems.append("%s: %s floor %d exceeds its prod maximum %d" % (b.name, svc, want[svc], bounds[svc][1]))
        got = patched(lower_job)
        back = {"gateway": got.get(("horizontalpodautoscaler", "flash-gateway"), {}).get("minReplicas"),
                "api": got.get(("horizontalpodautoscaler", "flash-api"), {}).get("minReplicas"),
                "spare": got.get(("deployment", rs.HEADROOM_DEPLOYMENT), {}).get("replicas")}
        if back != {"gateway": bounds["gateway"][0], "api": bounds["api"][0], "spare": 0}:
            problems.append("%s: the lower CronJob sets %s, not Git's minimums and 0 placeholders" % (b.name, back))
    if len(jobs) != 2 * len(blocks) or len(crons) != len(blocks):
        problems.append("%d CronJobs and %d KEDA cron triggers for %d coming sale blocks"
                        % (len(jobs), len(crons), len(blocks)))
    expect(problems)


@test
def worked_example_of_the_readme():
    """The README's worked example: 200,000 buyers at 2,000 admissions/s give gateway 20, api 3,
    pay 2 and 7 placeholders with today's prod overlays; at 10,000/s api 4; a crowd beyond the
    gateway's maximum is refused, not capped."""
    facts = rs.read_facts()
    problems = []
    got = rs.floors(200_000, 2_000, facts)
    if got != {"gateway": 20, "api": 3, "pay": 2, "spare": 7}:
        problems.append("200,000 buyers, 2,000/s: %s" % got)
    got = rs.floors(200_000, 10_000, facts)
    if (got["api"], got["pay"]) != (4, 2):
        problems.append("200,000 buyers, 10,000/s: %s" % got)
    small = rs.floors(1_000, 10, facts)
    if (small["gateway"], small["api"], small["pay"]) != tuple(facts.bounds[s][0] for s in ("gateway", "api", "pay")):
        problems.append("a small sale must keep the autoscalers' own minimums: %s" % small)
    try:
        rs.floors(1_000_000, 2_000, facts)
        problems.append("1,000,000 buyers (100 gateways, max %d) were accepted" % facts.bounds["gateway"][1])
    except rs.CalendarError as e:
        if not any("gateway" in p and "maximum" in p for p in e.problems):
            problems.append("1,000,000 buyers refused for another reason: %s" % e.problems)
    expect(problems)


@test
def raise_and_lower_sit_inside_the_freeze():
    """For every block: pay's cron trigger and the raise CronJob start PRESCALE_LEAD before the
    first doors, the lower CronJob and the trigger end TAIL after the last close, all in UTC;
    the freeze starts FREEZE_MARGIN before the raise (so self-heal cannot undo it) and lasts
    until the lower."""
    _, blocks = coming()
    jobs = cronjobs()
    so = one(kustomize("gitops/apps/pay/overlays/prod"), "ScaledObject", "flash-pay")
    crons = {t["name"]: t["metadata"] for t in so["spec"]["triggers"] if t["type"] == "cron"}
    problems = []
    for b in blocks:
        first = min(s.doors_open for s in b.sales)
        last = max(s.doors_close for s in b.sales)
        if b.raise_at != first - rs.PRESCALE_LEAD or b.end != last + rs.TAIL \
                or b.freeze_start != b.raise_at - rs.FREEZE_MARGIN:
            problems.append("%s: raise %s, end %s, freeze %s do not follow doors %s .. %s"
                            % (b.name, b.raise_at, b.end, b.freeze_start, first, last))
        r, lo = jobs.get("flash-%s-raise" % b.name), jobs.get("flash-%s-lower" % b.name)
        for job, at in ((r, b.raise_at), (lo, b.end)):
            if not job:
                continue
            if job["spec"]["schedule"] != rs.cron_at(at) or job["spec"].get("timeZone") != "Etc/UTC":
                problems.append("%s: CronJob %s runs %r %s, not at %s UTC" % (
                    b.name, job["metadata"]["name"], job["spec"]["schedule"], job["spec"].get("timeZone"), at))
        c = crons.get(b.name, {})
        if (c.get("start"), c.get("end"), c.get("timezone")) != (rs.cron_at(b.raise_at), rs.cron_at(b.end), "Etc/UTC"):
            problems.append("%s: pay's cron trigger %s does not run from the raise to the end" % (b.name, c))
        if r and r["spec"].get("startingDeadlineSeconds", 0) > (b.sales[0].doors_open - b.raise_at).total_seconds():
            problems.append("%s: a late raise could start after the doors" % b.name)
    expect(problems)


@test
def nodes_keep_gateways_through_a_sale():
    """The gateway's pods carry karpenter.sh/do-not-disrupt in both environments, and both
    NodePools' terminationGracePeriod (how long a draining node keeps such pods) outlasts every
    coming sale's freeze."""
    _, blocks = coming()
    problems = []
    for env in ("dev", "prod"):
        dep = one(kustomize("gitops/apps/gateway/overlays/%s" % env), "Deployment", "flash-gateway")
        ann = dep["spec"]["template"]["metadata"].get("annotations", {})
        if ann.get("karpenter.sh/do-not-disrupt") != "true":
            problems.append("%s: flash-gateway pods lack karpenter.sh/do-not-disrupt: \"true\"" % env)
        for pool in NODEPOOLS:
            np = one(kustomize("gitops/platform/karpenter/overlays/%s" % env), "NodePool", pool)
            grace = np["spec"]["template"]["spec"].get("terminationGracePeriod")
            if not grace:
                problems.append("%s: NodePool %s has no terminationGracePeriod" % (env, pool))
                continue
            for b in blocks:
                if rs.parse_go_duration(grace) < b.end - b.freeze_start:
                    problems.append("%s: NodePool %s terminationGracePeriod %s < %s's freeze %s"
                                    % (env, pool, grace, b.name, rs.fmt_duration(b.end - b.freeze_start)))
    expect(problems)


@test
def warm_spare_is_preemptible_and_prod_only():
    """flash-sale-day is a prod-only Application of flash-platform syncing the sale-day overlay;
    its placeholder runs at a negative priority that preempts nothing, holds 0 replicas in Git,
    and its Jobs' Role may patch exactly what they patch."""
    problems = []
    prod = {a["metadata"]["name"]: a for a in find(kustomize("argocd/envs/prod"), "Application")}
    dev = {a["metadata"]["name"] for a in find(kustomize("argocd/envs/dev"), "Application")}
    app = prod.get("flash-sale-day")
    if not app or app["spec"]["source"]["path"] != "gitops/platform/sale-day/overlays/prod" \
            or app["spec"]["project"] != "flash-platform":
        problems.append("prod has no Application flash-sale-day (flash-platform) syncing gitops/platform/sale-day/overlays/prod")
    if "flash-sale-day" in dev:
        problems.append("dev runs flash-sale-day: the calendar is prod's")
    objs = kustomize("gitops/platform/sale-day/overlays/prod")
    pc = one(objs, "PriorityClass", "flash-sale-headroom")
    if not pc["value"] < 0 or pc.get("preemptionPolicy") != "Never" or pc.get("globalDefault"):
        problems.append("PriorityClass flash-sale-headroom must be negative, preemptionPolicy Never, not the default")
    dep = one(objs, "Deployment", rs.HEADROOM_DEPLOYMENT)
    if dep["spec"].get("replicas") != 0 or dep["spec"]["template"]["spec"].get("priorityClassName") != "flash-sale-headroom":
        problems.append("Deployment %s must hold 0 replicas in Git and run at flash-sale-headroom priority" % rs.HEADROOM_DEPLOYMENT)
    role = one(objs, "Role", rs.SCALER)
    allowed = {(r, n) for rule in role["rules"] for r in rule["resources"] for n in rule.get("resourceNames", ["*"])
               if "patch" in rule["verbs"]}
    want = {("horizontalpodautoscalers", "flash-gateway"), ("horizontalpodautoscalers", "flash-api"),
            ("deployments", rs.HEADROOM_DEPLOYMENT)}
    if allowed != want:
        problems.append("Role %s may patch %s, want exactly %s" % (rs.SCALER, sorted(allowed), sorted(want)))
    plural = {"horizontalpodautoscaler": "horizontalpodautoscalers", "deployment": "deployments"}
    for name, job in cronjobs().items():
        spec = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        if spec.get("serviceAccountName") != rs.SCALER:
            problems.append("CronJob %s does not run as %s" % (name, rs.SCALER))
        for kind, target in patched(job):
            if (plural[kind], target) not in want:
                problems.append("CronJob %s patches %s/%s, which the Role does not allow" % (name, kind, target))
    expect(problems)


@test
def calendar_mistakes_are_refused():
    """The calendar parser refuses what it cannot render safely: window and doors_close both or
    neither, a time that is not UTC or not on a whole minute, a bad window, crowd, admission
    rate, event id, an unknown field, a name given twice."""
    problems = []
    problems += refused([sale(window="2h", doors_close="2027-03-01T20:00:00Z")], "exactly one of window and doors_close")
    problems += refused([{"name": "n", "doors_open": "2027-03-01T18:00:00Z", "expected_crowd": 5}], "exactly one")
    problems += refused([sale(doors="2027-03-01T18:00:00+01:00")], "UTC RFC 3339")
    problems += refused([sale(doors="2027-03-01T18:00:30Z")], "whole minute")
    problems += refused([sale(window="2 hours")], "window must be")
    problems += refused([sale(window="0m")], "window must be")
    problems += refused([sale(doors_close="2027-03-01T17:00:00Z")], "doors_close must be after")
    problems += refused([sale(expected_crowd=0)], "expected_crowd")
    problems += refused([sale(admit_per_sec=0)], "admit_per_sec")
    problems += refused([sale(event_id="42")], "event_id")
    problems += refused([sale(colour="red")], "unknown field")
    problems += refused([sale(name="a"), sale(name="a", doors="2027-04-01T18:00:00Z")], "given twice")
    problems += refused({"sales": []}, "must be a list")
    try:
        ok = rs.parse_calendar([sale(event_id="0b7e1f4e-8c1a-4c1e-9a53-1f8f1a0f2b3c", doors_close="2027-03-01T19:30:00Z",
                                     admit_per_sec=500)])
        if ok[0].doors_close - ok[0].doors_open != dt.timedelta(minutes=90) or ok[0].admissions != 500:
            problems.append("a valid sale read wrong: %s" % ok[0])
    except rs.CalendarError as e:
        problems.append("a valid sale was refused: %s" % e.problems)
    expect(problems)


@test
def sales_merge_finished_ones_are_named_and_far_ones_are_refused():
    """Planning renders every sale whatever the time (finished ones are named by `finished`,
    for a warning); merges sales whose freezes overlap into one block (crowds added); refuses a
    sale whose yearly schedule would fire before it (more than a year ahead)."""
    facts = rs.read_facts()
    cal = rs.parse_calendar([sale("a", "2027-03-01T18:00:00Z", window="1h", expected_crowd=100_000),
                             sale("b", "2027-03-01T19:30:00Z", window="30m", expected_crowd=50_000, admit_per_sec=100),
                             sale("c", "2027-06-01T18:00:00Z")])
    at = lambda s: rs.parse_time(s, "now")
    problems = []
    blocks = rs.plan(cal, at("2027-01-01T00:00:00Z"), facts)
    names = [[s.name for s in b.sales] for b in blocks]
    if names != [["a", "b"], ["c"]]:
        problems.append("blocks %s, want [[a, b], [c]] (a ends 19:15, b's freeze starts 18:55)" % names)
    elif blocks[0].crowd != 150_000 or blocks[0].admissions != math.ceil(Fraction(100_000, 60)) + 100 \
            or blocks[0].raise_at != at("2027-03-01T17:30:00Z") or blocks[0].end != at("2027-03-01T20:15:00Z"):
        problems.append("merged block a+b: crowd %d, %d/s, %s .. %s"
                        % (blocks[0].crowd, blocks[0].admissions, blocks[0].raise_at, blocks[0].end))
    later = [[s.name for s in b.sales] for b in rs.plan(cal, at("2027-07-01T00:00:00Z"), facts)]
    if later != names:
        problems.append("what is rendered changed with the clock: %s, then %s" % (names, later))
    over = rs.finished(cal, at("2027-03-01T19:20:00Z"))
    if len(over) != 1 or "sale a is over" not in over[0]:
        problems.append("at 19:20 (a over, b open) the finished sales named are %s, want a" % over)
    if len(rs.finished(cal, at("2027-07-01T00:00:00Z"))) != 3:
        problems.append("at July 2027 not every sale is named finished")
    files = rs.render([], facts)
    for path, text in files.items():
        if "No coming sale" not in text:
            problems.append("%s rendered for no sale does not say so" % path)
    try:
        rs.plan(cal, at("2026-02-01T00:00:00Z"), facts)
        problems.append("a sale 13 months ahead was accepted: its cron would fire a year early")
    except rs.CalendarError as e:
        if not any("less than a year ahead" in p for p in e.problems):
            problems.append("a far sale refused for another reason: %s" % e.problems)
    try:
        rs.plan(rs.parse_calendar([sale("long", window="4h")]), at("2027-01-01T00:00:00Z"), facts)
        problems.append("a freeze longer than the NodePools' terminationGracePeriod was accepted")
    except rs.CalendarError as e:
        if not any("terminationGracePeriod" in p for p in e.problems):
            problems.append("a long sale refused for another reason: %s" % e.problems)
    expect(problems)


@test
def capacity_prints_the_floors_the_calendar_would_render():
    """`render_sales.py --capacity CROWD --admit-per-sec RATE` prints the pods of the same
    formula as a sale's floors, and refuses (exit 1) a crowd prod's autoscalers cannot hold."""
    import contextlib
    import io
    facts = rs.read_facts()
    problems = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = rs.capacity(200_000, 2_000)
    want = rs.floors(200_000, 2_000, facts)
    if code != 0:
        problems.append("--capacity 200000 --admit-per-sec 2000 exited %d" % code)
    for svc in ("gateway", "api", "pay"):
        if not re.search(r"\b%s\s+%d pods\b" % (svc, want[svc]), out.getvalue()):
            problems.append("%s: %d pods not printed in %r" % (svc, want[svc], out.getvalue()))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if rs.capacity(10_000_000, None) != 1:
            problems.append("a crowd of 10,000,000 was not refused")
        if rs.capacity(0, None) != 2:
            problems.append("a crowd of 0 was not refused as a usage error")
    expect(problems)


# ----------------------------------------------------------------------------- main
def main(argv):
    os.chdir(ROOT)
    for warning in rs.finished(rs.load_calendar(), _NOW):
        print("warning: " + warning)
    return SUITE.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
