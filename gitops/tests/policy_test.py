#!/usr/bin/env python3
"""Policy tests of the GitOps manifests: what schemas cannot say.

Run from the repository root (scripts/validate.sh does, with a Python that has PyYAML):

    python3 gitops/tests/policy_test.py [-v] [-k NAME]

Every overlay (gitops/**/overlays/<env>, argocd/envs/<env>) is rendered with `kubectl kustomize`
and checked: probes, requests and limits, non-root read-only containers, pinned images, no
Secret with data, autoscaling that owns the replica count, graceful termination, ports and
names that match the code (services/*/src/config.rs) and the contract, ExternalSecret keys of
the right environment, every metric a rule, dashboard or autoscaler reads exists in the code,
a runbook for every alert, Argo CD Applications that sync automatically in waves, the
Dockerfiles' pinned bases, and the release workflow's image rewrite.

Argo CD is simulated further: AppProject sync windows it can parse, hooks it cleans up and that
cannot hang a sync, CRDs and Namespaces applied before the objects that need them (within an
Application by phase and wave, across the app-of-apps by Application wave, Helm charts by the
CRDs they are known to install), and no object owned by two Applications. The `check_rejects_*`
tests run those checks on bad examples kept in this file and fail if any goes unreported.

Prints one line per failed check and ends with `N passed, M failed`; exit status 1 on any
failure.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

from harness import Suite, expect  # noqa: E402  (gitops/tests/harness.py)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ENVS = ("dev", "prod")
SERVICES = {  # the contract's names and ports (docs/contract.md "Names and ports")
    "api": {"service": "flash-api", "port": 4000, "public": "/api"},
    "gateway": {"service": "flash-gateway", "port": 3000, "public": "/queue"},
    "pay": {"service": "flash-pay", "port": 3100, "public": None},
    "web": {"service": "flash-web", "port": 80, "public": "/"},
}
RUST_SERVICES = ("api", "gateway", "pay")
NAMESPACE = "flash-ticket"
ECR = re.compile(r"^\d{12}\.dkr\.ecr\.eu-west-1\.amazonaws\.com/flash/(gateway|api|pay|web)$")
REPO_URL = "https://github.com/flash-tickets/flash-tickets.git"
RUNBOOK_PREFIX = "https://github.com/flash-tickets/flash-tickets/blob/main/"


# ----------------------------------------------------------------------------- helpers
def rel(p):
    return os.path.relpath(p, ROOT)


def kustomize(path):
    cmd = ["kubectl", "kustomize"] if shutil.which("kubectl") else ["kustomize", "build"]
    r = subprocess.run(cmd + [path], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("%s does not render: %s" % (rel(path), r.stderr.strip()[:400]))
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def overlays():
    dirs = sorted(glob.glob(os.path.join(ROOT, "gitops", "**", "overlays", "*"), recursive=True))
    dirs += sorted(glob.glob(os.path.join(ROOT, "argocd", "envs", "*")))
    return [d for d in dirs if os.path.isfile(os.path.join(d, "kustomization.yaml"))]


_RENDERED = {}
_RENDER_ERRORS = {}


def rendered():
    """{overlay dir: [objects]} of every overlay that renders, rendered once; the others are in
    _RENDER_ERRORS (every_overlay_renders reports them) so one broken overlay does not hide the
    rest from the other tests."""
    if not _RENDERED and not _RENDER_ERRORS:
        for d in overlays():
            try:
                _RENDERED[d] = kustomize(d)
            except AssertionError as e:
                _RENDER_ERRORS[d] = str(e)
    return _RENDERED


def env_of(path):
    return os.path.basename(path)


def objects(kind=None, where="gitops"):
    for d, objs in rendered().items():
        if not rel(d).startswith(where):
            continue
        for o in objs:
            if kind is None or o.get("kind") == kind:
                yield d, o


def name(o):
    return "%s/%s" % (o.get("kind"), o.get("metadata", {}).get("name"))


def config_maps(objs):
    """{name: data} of the ConfigMaps among rendered objects."""
    return {o["metadata"]["name"]: o.get("data", {}) for o in objs if o.get("kind") == "ConfigMap"}


def env_names(container, cms):
    """Names of the variables a container gets: its env and the ConfigMaps of its envFrom."""
    names = {e["name"] for e in container.get("env", [])}
    for ref in container.get("envFrom", []):
        names |= set(cms.get((ref.get("configMapRef") or {}).get("name"), {}))
    return names


def pod_spec(o):
    if o.get("kind") in ("Deployment", "Job"):
        return o["spec"]["template"]["spec"]
    return None


def argocd_envs():
    """(dir, env, objects, {AppProject name: object}, {Application name: object}) of every
    argocd/envs/<env>: what the root app-of-apps of one cluster syncs. Fails unless every
    environment rendered: a test of the Applications must not pass on none."""
    found = []
    for d, objs in rendered().items():
        if not rel(d).startswith("argocd/envs/"):
            continue
        found.append(env_of(d))
        projects = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "AppProject"}
        apps = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "Application"}
        yield d, env_of(d), objs, projects, apps
    missing = sorted(set(ENVS) - set(found))
    if missing:
        raise AssertionError("argocd/envs/%s did not render: no Application of it was checked" % ",".join(missing))


def app_of(o):
    labels = o.get("metadata", {}).get("labels", {})
    return labels.get("app.kubernetes.io/component")


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def code_config_vars():
    """Every environment variable a service reads (clap `env = "…"`)."""
    names = set()
    for p in glob.glob(os.path.join(ROOT, "services", "*", "src", "**", "*.rs"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "shared", "*", "src", "**", "*.rs"), recursive=True):
        with open(p, encoding="utf-8") as f:
            names |= set(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', f.read()))
    # RUST_LOG is read by tracing-subscriber's EnvFilter (shared/kit/src/telemetry.rs).
    with open(os.path.join(ROOT, "shared", "kit", "src", "telemetry.rs"), encoding="utf-8") as f:
        if re.search(r"EnvFilter::(try_)?from_default_env|RUST_LOG", f.read()):
            names.add("RUST_LOG")
    return names


def code_metrics():
    """{metric name: kind} of every metric the code records (metrics::counter!/gauge!/histogram!)."""
    out = {}
    for p in glob.glob(os.path.join(ROOT, "services", "**", "*.rs"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "shared", "**", "*.rs"), recursive=True):
        if "/tests/" in p:
            continue
        with open(p, encoding="utf-8") as f:
            text = f.read()
        for kind, metric in re.findall(r'metrics::(counter|gauge|histogram)!\(\s*"([a-z_:][a-z0-9_:]*)"', text):
            out[metric] = kind
        # Counters named by a constant (e.g. the pay worker's `Job::OUTCOMES_METRIC`).
        for metric in re.findall(r'const \w*METRIC\w*: &(?:\'static )?str = "([a-z_:][a-z0-9_:]*)"', text):
            out[metric] = "counter"
        # Families a service renders itself (kit::metrics::Source): ("name", "kind", …) tuples.
        for metric, kind in re.findall(r'\(\s*"([a-z_:][a-z0-9_:]*)",\s*"(counter|gauge)"', text):
            out[metric] = kind
    return out


SUITE = Suite("Policy tests of gitops/ and argocd/.")
test = SUITE.test


@test
def every_overlay_renders():
    """Every overlay renders with kubectl kustomize and holds objects."""
    problems = ["%s renders no object" % rel(d) for d, objs in rendered().items() if not objs]
    problems += sorted(_RENDER_ERRORS.values())
    expect(problems)
    assert len(rendered()) >= 2 * 8, "expected dev and prod overlays of every component, found %d" % len(rendered())


@test
def workloads_have_requests_and_limits():
    """Every container of every Deployment and Job requests and limits cpu and memory."""
    problems = []
    for d, o in objects():
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec.get("initContainers", []) + spec["containers"]:
            res = c.get("resources") or {}
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(kind) or {}):
                        problems.append("%s: %s container %s has no %s.%s" % (rel(d), name(o), c["name"], kind, r))
    expect(problems)


@test
def deployments_have_probes():
    """Every Deployment container has startup, liveness and readiness probes; the services'
    liveness and startup are /live and readiness is /ready on their own port."""
    problems = []
    for d, o in objects("Deployment"):
        for c in o["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append("%s: %s container %s has no %s" % (rel(d), name(o), c["name"], probe))
            if c["name"] in SERVICES:
                want = {"startupProbe": "/live", "livenessProbe": "/live", "readinessProbe": "/ready"}
                for probe, path in want.items():
                    got = (c.get(probe) or {}).get("httpGet", {})
                    if got.get("path") != path or got.get("port") != "http":
                        problems.append("%s: %s %s must be GET %s on port http, is %s"
                                        % (rel(d), name(o), probe, path, got))
                if c["name"] in RUST_SERVICES and not (c.get("readinessProbe", {}).get("timeoutSeconds", 1) >= 3):
                    problems.append("%s: %s readiness timeout must cover /ready's 2 s store checks" % (rel(d), name(o)))
    expect(problems)


@test
def containers_are_non_root_and_read_only():
    """Pods run as non-root with RuntimeDefault seccomp; containers drop ALL capabilities, cannot
    escalate and have a read-only root filesystem."""
    problems = []
    for d, o in objects():
        spec = pod_spec(o)
        if spec is None:
            continue
        psc = spec.get("securityContext") or {}
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            problems.append("%s: %s has no RuntimeDefault seccomp profile" % (rel(d), name(o)))
        if spec.get("automountServiceAccountToken") is not False:
            problems.append("%s: %s mounts a service account token" % (rel(d), name(o)))
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c.get("securityContext") or {}
            where = "%s: %s container %s" % (rel(d), name(o), c["name"])
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                problems.append(where + " may run as root (runAsNonRoot)")
            if sc.get("runAsUser", psc.get("runAsUser")) in (None, 0):
                problems.append(where + " has no non-zero runAsUser")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(where + " has a writable root filesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(where + " allows privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(where + " does not drop ALL capabilities")
            if sc.get("privileged"):
                problems.append(where + " is privileged")
    expect(problems)


def image_problem(image):
    if "@sha256:" in image:
        ref, digest = image.split("@", 1)
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return "bad digest"
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag and no digest"
    tag = last.rsplit(":", 1)[1]
    if tag in ("latest", "") or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", tag):
        return "tag %r is not a pinned version" % tag
    return None


@test
def images_are_pinned():
    """Every image has a digest or a version tag (never `latest`); the Flash images come from the
    ECR repositories flash/<service> in eu-west-1; third-party images are pinned by digest."""
    problems = []
    for d, o in objects():
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec.get("initContainers", []) + spec["containers"]:
            image = c["image"]
            p = image_problem(image)
            if p:
                problems.append("%s: %s container %s image %s: %s" % (rel(d), name(o), c["name"], image, p))
            repo = re.split(r"[:@]", image.rsplit("/", 1)[-1])[0]
            full = image.rsplit("/", 1)[0] + "/" + repo
            if c["name"] in SERVICES or c["name"] == "migrate":
                if not ECR.match(full):
                    problems.append("%s: %s container %s image %s is not an ECR flash/<service> image"
                                    % (rel(d), name(o), c["name"], image))
            elif "@sha256:" not in image:
                problems.append("%s: %s third-party image %s is not pinned by digest" % (rel(d), name(o), image))
    expect(problems)


@test
def no_secret_manifests():
    """No Secret object anywhere in gitops/ or argocd/, rendered or plain: secrets come from
    ExternalSecrets only."""
    problems = []
    for d, objs in rendered().items():
        for o in objs:
            if o.get("kind") == "Secret":
                problems.append("%s renders %s" % (rel(d), name(o)))
    for top in ("gitops", "argocd"):
        for p in glob.glob(os.path.join(ROOT, top, "**", "*.y*ml"), recursive=True):
            with open(p, encoding="utf-8") as f:
                try:
                    docs = list(yaml.safe_load_all(f))
                except yaml.YAMLError as e:
                    problems.append("%s: YAML error %s" % (rel(p), e))
                    continue
            for doc in docs:
                if isinstance(doc, dict) and doc.get("kind") == "Secret":
                    problems.append("%s holds a Secret manifest" % rel(p))
    expect(problems)


def scale_targets(objs):
    out = {}
    for o in objs:
        if o.get("kind") == "HorizontalPodAutoscaler":
            out[o["spec"]["scaleTargetRef"]["name"]] = o
        elif o.get("kind") == "ScaledObject":
            out[o["spec"]["scaleTargetRef"]["name"]] = o
    return out


@test
def autoscalers_own_the_replica_count():
    """Every Deployment is scaled by an HPA (autoscaling/v2) or a KEDA ScaledObject and sets no
    replicas; it has a PodDisruptionBudget; prod keeps at least 2 replicas of every public
    service; dev and prod bounds are sane."""
    problems = []
    for d, objs in rendered().items():
        if not rel(d).startswith("gitops/apps"):
            continue
        targets = scale_targets(objs)
        pdbs = [o for o in objs if o.get("kind") == "PodDisruptionBudget"]
        for o in objs:
            if o.get("kind") != "Deployment":
                continue
            n = o["metadata"]["name"]
            if "replicas" in o["spec"]:
                problems.append("%s: %s sets spec.replicas (the autoscaler owns it)" % (rel(d), name(o)))
            a = targets.get(n)
            if a is None:
                problems.append("%s: %s has no HPA or ScaledObject" % (rel(d), name(o)))
                continue
            if a["kind"] == "HorizontalPodAutoscaler":
                if a["apiVersion"] != "autoscaling/v2":
                    problems.append("%s: HPA %s is not autoscaling/v2" % (rel(d), n))
                lo, hi = a["spec"].get("minReplicas", 1), a["spec"]["maxReplicas"]
                if not a["spec"].get("behavior"):
                    problems.append("%s: HPA %s has no scaling behavior" % (rel(d), n))
            else:
                lo, hi = a["spec"].get("minReplicaCount", 0), a["spec"]["maxReplicaCount"]
                if lo < 1:
                    problems.append("%s: %s may scale to zero: payments would wait for a cold start" % (rel(d), n))
            if lo > hi:
                problems.append("%s: %s min %d > max %d" % (rel(d), n, lo, hi))
            if env_of(d) == "prod" and lo < 2:
                problems.append("%s: %s keeps fewer than 2 replicas in prod" % (rel(d), n))
            sel = o["spec"]["selector"]["matchLabels"]
            if not any(p["spec"]["selector"].get("matchLabels") == sel for p in pdbs):
                problems.append("%s: %s has no PodDisruptionBudget" % (rel(d), name(o)))
    expect(problems)


@test
def custom_metrics_are_served():
    """The HPAs' Pods metrics are served by a prometheus-adapter rule; the gateway scales on its
    WebSockets and the api on its request rate; pay's ScaledObject reads pay.requests."""
    adapter = yaml.safe_load(read("gitops/addons/prometheus-adapter/values.yaml"))
    served = {r["name"]["as"] for r in adapter["rules"]["custom"]}
    problems = []
    seen = {}
    for d, o in objects("HorizontalPodAutoscaler"):
        for m in o["spec"]["metrics"]:
            if m["type"] == "Pods":
                metric = m["pods"]["metric"]["name"]
                seen.setdefault(o["metadata"]["name"], set()).add(metric)
                if metric not in served:
                    problems.append("%s: HPA %s uses %s, which no prometheus-adapter rule serves"
                                    % (rel(d), o["metadata"]["name"], metric))
            elif m["type"] not in ("Resource",):
                problems.append("%s: HPA %s uses a %s metric" % (rel(d), o["metadata"]["name"], m["type"]))
    if "gateway_ws_connections" not in seen.get("flash-gateway", set()):
        problems.append("flash-gateway does not scale on gateway_ws_connections")
    if "http_requests_per_second" not in seen.get("flash-api", set()):
        problems.append("flash-api does not scale on http_requests_per_second")
    for d, o in objects("ScaledObject"):
        triggers = {t["type"]: t for t in o["spec"]["triggers"]}
        rmq = triggers.get("rabbitmq")
        if not rmq or rmq["metadata"].get("queueName") != "pay.requests" or rmq["metadata"].get("mode") != "QueueLength":
            problems.append("%s: %s does not scale on the depth of pay.requests" % (rel(d), name(o)))
        if o["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("name") != "flash-pay":
            problems.append("%s: %s must name its HPA flash-pay (dashboards, alerts)" % (rel(d), name(o)))
    expect(problems)


@test
def termination_outlasts_the_drain():
    """terminationGracePeriodSeconds exceeds preStop + SHUTDOWN_GRACE_SECS (the WebSocket and
    request drain), every Deployment has a preStop, and pods spread across zones."""
    problems = []
    for d, objs in rendered().items():
        cms = config_maps(objs)
        for o in objs:
            if o.get("kind") != "Deployment":
                continue
            spec = o["spec"]["template"]["spec"]
            grace = spec.get("terminationGracePeriodSeconds", 30)
            zones = [t for t in spec.get("topologySpreadConstraints", [])
                     if t.get("topologyKey") == "topology.kubernetes.io/zone"]
            if not zones:
                problems.append("%s: %s does not spread across zones" % (rel(d), name(o)))
            for c in spec["containers"]:
                pre = ((c.get("lifecycle") or {}).get("preStop") or {})
                if not pre:
                    problems.append("%s: %s container %s has no preStop" % (rel(d), name(o), c["name"]))
                    continue
                sleep = (pre.get("sleep") or {}).get("seconds", 0)
                drain = 0
                for ref in c.get("envFrom", []):
                    cm = cms.get((ref.get("configMapRef") or {}).get("name"), {})
                    if "SHUTDOWN_GRACE_SECS" in cm:
                        drain = int(cm["SHUTDOWN_GRACE_SECS"])
                if c["name"] in RUST_SERVICES and not drain:
                    problems.append("%s: %s sets no SHUTDOWN_GRACE_SECS" % (rel(d), name(o)))
                if grace <= sleep + drain:
                    problems.append("%s: %s terminationGracePeriodSeconds %d <= preStop %d + drain %d"
                                    % (rel(d), name(o), grace, sleep, drain))
    expect(problems)


@test
def names_and_ports_match_the_contract_and_the_code():
    """Services flash-web:80, flash-gateway:3000, flash-api:4000, flash-pay:3100 in flash-ticket,
    each selecting its Deployment and targeting a named container port that the binary listens
    on by default; ServiceMonitors scrape a port the Service has."""
    problems = []
    defaults = {}
    for svc, var in (("api", "API_ADDR"), ("gateway", "GATEWAY_ADDR"), ("pay", "PAY_OPS_ADDR")):
        m = re.search(r'env\s*=\s*"%s",\s*default_value\s*=\s*"[0-9.]+:(\d+)"' % var,
                      read("services/%s/src/config.rs" % svc))
        defaults[svc] = int(m.group(1)) if m else None
        if defaults[svc] != SERVICES[svc]["port"]:
            problems.append("services/%s/src/config.rs: %s defaults to port %s, the contract says %d"
                            % (svc, var, defaults[svc], SERVICES[svc]["port"]))
    for d, objs in rendered().items():
        if not rel(d).startswith("gitops/apps"):
            continue
        app = rel(d).split("/")[2]
        want = SERVICES[app]
        svcs = [o for o in objs if o.get("kind") == "Service"]
        deps = [o for o in objs if o.get("kind") == "Deployment"]
        if [s["metadata"]["name"] for s in svcs] != [want["service"]] or len(deps) != 1:
            problems.append("%s: expected Service %s and one Deployment" % (rel(d), want["service"]))
            continue
        s, dep = svcs[0], deps[0]
        for o in objs:
            if o["metadata"].get("namespace", NAMESPACE) != NAMESPACE:
                problems.append("%s: %s is not in %s" % (rel(d), name(o), NAMESPACE))
        tmpl = dep["spec"]["template"]["metadata"]["labels"]
        if any(tmpl.get(k) != v for k, v in s["spec"]["selector"].items()):
            problems.append("%s: Service %s does not select its Deployment's pods" % (rel(d), want["service"]))
        http = [p for p in s["spec"]["ports"] if p["name"] == "http"]
        if not http or http[0]["port"] != want["port"]:
            problems.append("%s: Service %s port http must be %d" % (rel(d), want["service"], want["port"]))
        container = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == app)
        cports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort")
            allports = {pp["name"]: pp["containerPort"] for c in dep["spec"]["template"]["spec"]["containers"]
                        for pp in c.get("ports", [])}
            if tp not in allports:
                problems.append("%s: Service port %s targets %r, no container port has that name" % (rel(d), p["name"], tp))
        if app in RUST_SERVICES and cports.get("http") != defaults.get(app):
            problems.append("%s: container port http %s is not the binary's port %s" % (rel(d), cports.get("http"), defaults.get(app)))
        for sm in (o for o in objs if o.get("kind") == "ServiceMonitor"):
            sel = sm["spec"]["selector"]["matchLabels"]
            if any(s["metadata"].get("labels", {}).get(k) != v for k, v in sel.items()):
                problems.append("%s: ServiceMonitor %s does not select Service %s" % (rel(d), sm["metadata"]["name"], want["service"]))
            for ep in sm["spec"]["endpoints"]:
                if ep.get("port") not in {p["name"] for p in s["spec"]["ports"]} or ep.get("path") != "/metrics":
                    problems.append("%s: ServiceMonitor %s scrapes %s%s" % (rel(d), sm["metadata"]["name"], ep.get("port"), ep.get("path")))
    expect(problems)


@test
def configuration_uses_only_known_variables():
    """Every ConfigMap and env variable of the services is one the code reads; the cluster runs
    JSON logs, real keys, MIGRATE_ON_START=false and the JWKS URLs of the two services."""
    known = code_config_vars()
    problems = []
    required = {
        "api": {"LOG_FORMAT": "json", "MIGRATE_ON_START": "false", "FLASH_DEV_KEYS": "false",
                "API_SIGNING_KEY_FILE": None, "REDIS_URL": None, "REDIS_MODE": "cluster",
                "TRUST_FORWARDED_FOR": "true",
                "GATE_JWKS_URL": "http://flash-gateway:3000/queue/.well-known/jwks.json"},
        "gateway": {"LOG_FORMAT": "json", "FLASH_DEV_KEYS": "false", "GATE_SIGNING_KEY_FILE": None,
                    "REDIS_URL": None, "REDIS_MODE": "cluster",
                    "TRUST_FORWARDED_FOR": "true",
                    "ACCESS_JWKS_URL": "http://flash-api:4000/api/.well-known/jwks.json"},
        "pay": {"LOG_FORMAT": "json"},
    }
    for d, objs in rendered().items():
        if not rel(d).startswith("gitops/apps"):
            continue
        app = rel(d).split("/")[2]
        if app not in RUST_SERVICES:
            continue
        cms = config_maps(objs)
        for o in objs:
            spec = pod_spec(o)
            if spec is None:
                continue
            for c in spec["containers"]:
                env = {}
                for ref in c.get("envFrom", []):
                    cm = (ref.get("configMapRef") or {}).get("name")
                    if cm not in cms:
                        problems.append("%s: %s reads ConfigMap %s, which the overlay does not make" % (rel(d), name(o), cm))
                    env.update(cms.get(cm, {}))
                    if "secretRef" in ref:
                        problems.append("%s: %s takes a whole Secret as env" % (rel(d), name(o)))
                for e in c.get("env", []):
                    env[e["name"]] = e["value"] if "value" in e else "<from %s>" % ",".join(e.get("valueFrom", {}))
                for var in env:
                    if var not in known:
                        problems.append("%s: %s sets %s, which no service reads" % (rel(d), name(o), var))
                if o["kind"] == "Deployment":
                    for var, value in required[app].items():
                        if var not in env or (value is not None and env[var] != value):
                            problems.append("%s: %s must set %s=%s (has %r)" % (rel(d), name(o), var, value, env.get(var)))
                    keyfile = env.get("API_SIGNING_KEY_FILE") or env.get("GATE_SIGNING_KEY_FILE")
                    if keyfile:
                        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
                        if not any(keyfile.startswith(m.rstrip("/") + "/") for m in mounts):
                            problems.append("%s: %s key file %s is not on a mounted volume" % (rel(d), name(o), keyfile))
    expect(problems)


@test
def network_policies_allow_exactly_the_egress_each_service_needs():
    """Each Rust service's NetworkPolicy restricts egress to DNS, the ports of the stores its
    Deployment is given a URL for (DATABASE_URL 5432, REDIS_URL 6379, AMQP_URL 5671) and the
    peers whose JWKS it reads; a store it has no URL for is not reachable."""
    store_ports = {"DATABASE_URL": 5432, "REDIS_URL": 6379, "AMQP_URL": 5671}
    peers = {"GATE_JWKS_URL": ("flash-gateway", 3000), "ACCESS_JWKS_URL": ("flash-api", 4000)}
    problems = []
    for d, objs in rendered().items():
        if not rel(d).startswith("gitops/apps"):
            continue
        app = rel(d).split("/")[2]
        if app not in RUST_SERVICES:
            continue
        cms = config_maps(objs)
        policies = [o for o in objs if o.get("kind") == "NetworkPolicy"]
        for o in objs:
            if o.get("kind") != "Deployment":
                continue
            c = o["spec"]["template"]["spec"]["containers"][0]
            env = env_names(c, cms)
            labels = o["spec"]["template"]["metadata"].get("labels", {})
            mine = [p for p in policies
                    if all(labels.get(k) == v for k, v in p["spec"]["podSelector"].get("matchLabels", {}).items())
                    and "Egress" in p["spec"].get("policyTypes", [])]
            if not mine:
                problems.append("%s: no NetworkPolicy restricts the egress of %s" % (rel(d), name(o)))
                continue
            open_ports, peer_ports, dns = set(), set(), False
            for p in mine:
                for rule in p["spec"].get("egress", []):
                    ports = {(x.get("port"), x.get("protocol", "TCP")) for x in rule.get("ports", [])}
                    if not ports:
                        problems.append("%s: %s allows egress on every port" % (rel(d), name(p)))
                    to = rule.get("to", [])
                    if (53, "UDP") in ports:
                        dns = True
                    elif not to:
                        open_ports |= {port for port, _ in ports}
                    else:
                        for peer in to:
                            sel = (peer.get("podSelector") or {}).get("matchLabels", {})
                            if "app.kubernetes.io/name" in sel:
                                peer_ports |= {(sel["app.kubernetes.io/name"], port) for port, _ in ports}
            if not dns:
                problems.append("%s: %s may not resolve names (no egress to port 53/UDP)" % (rel(d), name(o)))
            want = {port for var, port in store_ports.items() if var in env}
            if open_ports != want:
                problems.append("%s: %s reaches store ports %s, needs exactly %s"
                                % (rel(d), name(o), sorted(open_ports), sorted(want)))
            for var, peer in peers.items():
                if var in env and peer not in peer_ports:
                    problems.append("%s: %s reads %s but may not reach %s:%d" % ((rel(d), name(o), var) + peer))
    expect(problems)


@test
def external_secrets_read_their_environment():
    """ExternalSecrets use the ClusterSecretStore aws-secrets-manager and read flash/<env>/… of
    their overlay's environment; the Secrets the workloads reference are all made by one; no
    rendered overlay keeps an ENV placeholder."""
    problems = []
    made = {}
    for d, o in objects("ExternalSecret"):
        env = env_of(d)
        ref = o["spec"]["secretStoreRef"]
        if ref != {"kind": "ClusterSecretStore", "name": "aws-secrets-manager"}:
            problems.append("%s: %s uses store %s" % (rel(d), name(o), ref))
        for item in o["spec"]["data"]:
            key = item["remoteRef"]["key"]
            if not key.startswith("flash/%s/" % env):
                problems.append("%s: %s reads %s, not flash/%s/…" % (rel(d), name(o), key, env))
        made.setdefault(env, set()).add((o["metadata"].get("namespace"), o["spec"]["target"]["name"],
                                         tuple(i["secretKey"] for i in o["spec"]["data"])))
    for d, objs in rendered().items():
        text = yaml.safe_dump_all(objs)
        if re.search(r"flash/ENV/|flash-ENV\b", text):
            problems.append("%s still holds an ENV placeholder" % rel(d))
        if not rel(d).startswith("gitops/apps"):
            continue
        env = env_of(d)
        secrets = {(ns, n): keys for ns, n, keys in made.get(env, set())}
        for o in objs:
            refs = []
            spec = pod_spec(o)
            if spec:
                for c in spec["containers"]:
                    for e in c.get("env", []):
                        s = (e.get("valueFrom") or {}).get("secretKeyRef")
                        if s:
                            refs.append((s["name"], s["key"]))
                for v in spec.get("volumes", []):
                    if "secret" in v:
                        refs.append((v["secret"]["secretName"], None))
            if o.get("kind") == "TriggerAuthentication":
                refs += [(t["name"], t["key"]) for t in o["spec"]["secretTargetRef"]]
            for sname, key in refs:
                keys = secrets.get((NAMESPACE, sname))
                if keys is None:
                    problems.append("%s: %s reads Secret %s, which no ExternalSecret of %s makes" % (rel(d), name(o), sname, env))
                elif key is not None and key not in keys:
                    problems.append("%s: %s reads %s/%s, which the ExternalSecret does not fill" % (rel(d), name(o), sname, key))
    expect(problems)


@test
def migration_is_a_presync_hook():
    """The api overlays carry the migration Job as an Argo CD PreSync hook running
    `flash-api migrate` with the api's image and no migrate-on-start in the Deployment."""
    problems = []
    for d, objs in rendered().items():
        if not rel(d).startswith("gitops/apps/api/"):
            continue
        jobs = [o for o in objs if o.get("kind") == "Job"]
        dep = next(o for o in objs if o.get("kind") == "Deployment")
        if len(jobs) != 1:
            problems.append("%s: expected one migration Job" % rel(d))
            continue
        job = jobs[0]
        ann = job["metadata"].get("annotations", {})
        if ann.get("argocd.argoproj.io/hook") != "PreSync":
            problems.append("%s: the migration Job is not a PreSync hook" % rel(d))
        if "argocd.argoproj.io/hook-delete-policy" not in ann:
            problems.append("%s: the migration Job has no hook delete policy" % rel(d))
        c = job["spec"]["template"]["spec"]["containers"][0]
        if c.get("args") != ["migrate"]:
            problems.append("%s: the migration Job runs %s, not `migrate`" % (rel(d), c.get("args")))
        if c["image"] != dep["spec"]["template"]["spec"]["containers"][0]["image"]:
            problems.append("%s: the migration Job and the api run different images" % rel(d))
        if job["spec"]["template"]["spec"].get("restartPolicy") != "Never" or "backoffLimit" not in job["spec"]:
            problems.append("%s: the migration Job must not restart in place and must bound its retries" % rel(d))
    expect(problems)


@test
def ingress_routes_one_origin():
    """The ALB Ingress routes /api to flash-api, /queue to flash-gateway and / to flash-web, with
    TLS from ACM, HTTP→HTTPS, a WebSocket-friendly idle timeout and /ready health checks."""
    problems = []
    found = 0
    for d, o in objects("Ingress"):
        found += 1
        ann = o["metadata"].get("annotations", {})
        if o["spec"].get("ingressClassName") != "alb":
            problems.append("%s: not an ALB Ingress" % rel(d))
        if not ann.get("alb.ingress.kubernetes.io/certificate-arn", "").startswith("arn:aws:acm:eu-west-1:"):
            problems.append("%s: no ACM certificate in eu-west-1" % rel(d))
        if ann.get("alb.ingress.kubernetes.io/ssl-redirect") != "443":
            problems.append("%s: HTTP is not redirected to HTTPS" % rel(d))
        m = re.search(r"idle_timeout\.timeout_seconds=(\d+)", ann.get("alb.ingress.kubernetes.io/load-balancer-attributes", ""))
        if not m or int(m.group(1)) < 60:
            problems.append("%s: the idle timeout must outlast the gateway's 30 s pings" % rel(d))
        if ann.get("alb.ingress.kubernetes.io/target-type") != "ip":
            problems.append("%s: targets must be pods (ip)" % rel(d))
        routes = [(p["path"], p["backend"]["service"]["name"]) for r in o["spec"]["rules"] for p in r["http"]["paths"]]
        want = [("/api", "flash-api"), ("/queue", "flash-gateway"), ("/", "flash-web")]
        if routes != want:
            problems.append("%s: routes %s, want %s (most specific first)" % (rel(d), routes, want))
    for d, o in objects("Service"):
        if o["metadata"]["name"] in ("flash-api", "flash-gateway", "flash-web"):
            if o["metadata"].get("annotations", {}).get("alb.ingress.kubernetes.io/healthcheck-path") != "/ready":
                problems.append("%s: Service %s has no /ready ALB health check" % (rel(d), o["metadata"]["name"]))
    if found != 2:
        problems.append("expected one Ingress per environment, found %d" % found)
    expect(problems)


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                "offset", "bool", "inf", "nan", "le", "sum", "max", "min", "avg", "count", "topk", "bottomk",
                "quantile", "stddev", "stdvar", "count_values", "group", "vector", "scalar", "rate", "irate",
                "increase", "delta", "deriv", "histogram_quantile", "label_replace", "label_join",
                "avg_over_time", "max_over_time", "min_over_time", "sum_over_time", "count_over_time",
                "absent", "absent_over_time", "changes", "resets", "clamp_min", "clamp_max", "abs", "time",
                "predict_linear", "sort", "sort_desc", "ceil", "floor", "round", "exp", "ln", "timestamp"}
OUTSIDE = ("up", "kube_", "container_", "keda_", "nginx_", "probe_")
CLUSTER_SCOPED = {"Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ClusterSecretStore", "NodePool", "EC2NodeClass", "IngressClass", "PriorityClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService",
                  "IngressClassParams", "ClusterExternalSecret", "ClusterTriggerAuthentication", "NodeClaim",
                  "PersistentVolume", "CSIDriver", "RuntimeClass"}


def metric_names(expr):
    expr = re.sub(r"<<[^>]*>>", " ", expr)                # prometheus-adapter templates
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)       # strings
    expr = re.sub(r"\{[^}]*\}", " ", expr)                # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)               # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\$\w+", " ", expr)                    # Grafana variables
    names = set()
    for tok, nxt in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\(?)", expr):
        if nxt or tok.lower() in PROMQL_WORDS or re.fullmatch(r"\d+[smhdwy]", tok):
            continue
        names.add(tok)
    return names


@test
def metrics_read_are_metrics_written():
    """Every metric that the rules, dashboards and prometheus-adapter read is recorded by the
    code (histogram series only for *_seconds, which the exporter renders as histograms), by a
    recording rule, or by the platform (kube-state-metrics, cAdvisor, KEDA, nginx exporter)."""
    code = code_metrics()
    problems = []
    rules = []
    for d, o in objects("PrometheusRule"):
        for g in o["spec"]["groups"]:
            rules += g["rules"]
    recorded = {r["record"] for r in rules if "record" in r}
    exprs = [("rule " + (r.get("alert") or r.get("record")), r["expr"]) for r in rules]
    for p in glob.glob(os.path.join(ROOT, "gitops/platform/monitoring/base/dashboards/*.json")):
        board = json.load(open(p, encoding="utf-8"))
        for panel in board["panels"]:
            for t in panel.get("targets", []):
                exprs.append(("%s: %s" % (os.path.basename(p), panel["title"]), t["expr"]))
        for v in board["templating"]["list"]:
            q = v.get("query")
            if isinstance(q, dict):
                m = re.match(r"label_values\((\w+)", q.get("query", ""))
                if m:
                    exprs.append(("%s variable %s" % (os.path.basename(p), v["name"]), m.group(1)))
    adapter = yaml.safe_load(read("gitops/addons/prometheus-adapter/values.yaml"))
    for r in adapter["rules"]["custom"]:
        exprs.append(("prometheus-adapter", r["seriesQuery"]))
    for where, expr in exprs:
        for metric in metric_names(expr):
            if metric in recorded or metric in code or metric.startswith(OUTSIDE):
                continue
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            if base in code and code[base] == "histogram":
                if metric.endswith("_bucket") and not base.endswith("_seconds"):
                    problems.append("%s: %s: %s is a summary (no buckets), only *_seconds are histograms" % (where, expr.strip()[:60], metric))
                continue
            problems.append("%s: reads %s, which nothing records" % (where, metric))
    if len(exprs) < 50:
        problems.append("only %d expressions found: the scan is broken" % len(exprs))
    expect(problems)


@test
def every_alert_has_a_runbook():
    """Every alert has severity critical or warning, a summary, a description and a runbook_url
    that points at an existing docs/runbooks/<alert>.md of this repository."""
    problems = []
    alerts = set()
    for d, o in objects("PrometheusRule"):
        for g in o["spec"]["groups"]:
            for r in g["rules"]:
                if "alert" not in r:
                    continue
                alerts.add(r["alert"])
                if r.get("labels", {}).get("severity") not in ("critical", "warning"):
                    problems.append("%s: %s has no severity critical|warning" % (rel(d), r["alert"]))
                ann = r.get("annotations", {})
                for a in ("summary", "description", "runbook_url"):
                    if not ann.get(a):
                        problems.append("%s: %s has no %s" % (rel(d), r["alert"], a))
                url = ann.get("runbook_url", "")
                path = url[len(RUNBOOK_PREFIX):] if url.startswith(RUNBOOK_PREFIX) else None
                if path != "docs/runbooks/%s.md" % r["alert"]:
                    problems.append("%s: %s runbook_url %s is not %sdocs/runbooks/%s.md" % (rel(d), r["alert"], url, RUNBOOK_PREFIX, r["alert"]))
                elif not os.path.isfile(os.path.join(ROOT, path)):
                    problems.append("%s: %s runbook %s does not exist" % (rel(d), r["alert"], path))
    if len(alerts) < 10:
        problems.append("only %d alerts found" % len(alerts))
    expect(problems)


@test
def argocd_applications_sync_in_waves():
    """Every Application syncs automatically with prune, self-heal and retries, has a sync wave,
    belongs to an AppProject of its environment that allows its source and destination, pins
    its chart version, and points at an existing path of this repository for its own
    environment; operators come before the apps, and the apps ignore replicas."""
    problems = []
    for d, env, objs, projects, apps in argocd_envs():
        if "flash-root" not in apps:
            problems.append("%s: no root app-of-apps flash-root" % rel(d))
        waves = {}
        for n, a in apps.items():
            where = "%s: Application %s" % (rel(d), n)
            ann = a["metadata"].get("annotations", {})
            if "argocd.argoproj.io/sync-wave" not in ann:
                problems.append(where + " has no sync wave")
            waves[n] = int(ann.get("argocd.argoproj.io/sync-wave", "0"))
            sp = a["spec"].get("syncPolicy", {})
            auto = sp.get("automated") or {}
            if not (auto.get("prune") and auto.get("selfHeal")):
                problems.append(where + " does not sync automatically with prune and self-heal")
            if not sp.get("retry"):
                problems.append(where + " has no retry")
            proj = projects.get(a["spec"]["project"])
            if proj is None:
                problems.append(where + " names unknown project %s" % a["spec"]["project"])
                continue
            dest = a["spec"]["destination"]
            if not any(x.get("namespace") == dest.get("namespace") and x.get("server") == dest.get("server")
                       for x in proj["spec"]["destinations"]):
                problems.append(where + " deploys to %s, which project %s does not allow" % (dest, proj["metadata"]["name"]))
            sources = a["spec"].get("sources") or [a["spec"]["source"]]
            for s in sources:
                if s["repoURL"] not in proj["spec"]["sourceRepos"]:
                    problems.append(where + " uses %s, not in project %s" % (s["repoURL"], proj["metadata"]["name"]))
                if "chart" in s:
                    if not re.fullmatch(r"\d+\.\d+\.\d+", str(s.get("targetRevision", ""))):
                        problems.append(where + " does not pin chart %s to a version" % s["chart"])
                    for vf in (s.get("helm") or {}).get("valueFiles", []):
                        p = vf.replace("$values/", "")
                        if not os.path.isfile(os.path.join(ROOT, p)):
                            problems.append(where + " value file %s does not exist" % p)
                        elif re.search(r"values-(dev|prod)\.yaml$", p) and not p.endswith("values-%s.yaml" % env):
                            problems.append(where + " reads another environment's values %s" % p)
                else:
                    if s["repoURL"] != REPO_URL:
                        problems.append(where + " syncs from %s" % s["repoURL"])
                    if "path" in s:
                        if not os.path.isdir(os.path.join(ROOT, s["path"])):
                            problems.append(where + " path %s does not exist" % s["path"])
                        elif s["path"].startswith("gitops/") and not s["path"].endswith("/" + env):
                            problems.append(where + " syncs %s in %s" % (s["path"], env))
                        elif s["path"].startswith("gitops/apps/"):
                            ign = a["spec"].get("ignoreDifferences", [])
                            if not any(i.get("kind") == "Deployment" and "/spec/replicas" in i.get("jsonPointers", []) for i in ign) \
                                    or "RespectIgnoreDifferences=true" not in sp.get("syncOptions", []):
                                problems.append(where + " may fight the autoscaler over replicas")
            # The project must allow every kind the Application's path renders (Argo CD refuses
            # the sync otherwise): cluster-scoped kinds by whitelist, namespaced ones by the
            # whitelist when the project has one.
            for s in sources:
                path = os.path.join(ROOT, s.get("path", "")) if "path" in s else None
                if not path or not s["path"].startswith("gitops/") or path not in rendered():
                    continue
                for o in rendered()[path]:
                    kind = (o["apiVersion"].split("/")[0] if "/" in o["apiVersion"] else "", o["kind"])
                    if kind[1] in CLUSTER_SCOPED:
                        allowed = proj["spec"].get("clusterResourceWhitelist") or []
                    elif proj["spec"].get("namespaceResourceWhitelist"):
                        allowed = proj["spec"]["namespaceResourceWhitelist"]
                    else:
                        continue
                    if not any(x["group"] in (kind[0], "*") and x["kind"] in (kind[1], "*") for x in allowed):
                        problems.append(where + " deploys %s, which project %s does not allow" % (name(o), proj["metadata"]["name"]))
        operators = [n for n, a in apps.items() if any("chart" in s for s in (a["spec"].get("sources") or []))]
        for app in ("flash-api", "flash-gateway", "flash-pay", "flash-web", "flash-ingress", "flash-foundation"):
            if app not in waves:
                problems.append("%s: no Application %s" % (rel(d), app))
        late = [op for op in operators if waves[op] >= waves.get("flash-api", 0)]
        if late:
            problems.append("%s: operators %s do not sync before the apps" % (rel(d), late))
        if waves.get("flash-foundation", 0) >= waves.get("kube-prometheus-stack", 0):
            problems.append("%s: the foundation (Grafana's Secret) must sync before kube-prometheus-stack" % rel(d))
        if waves.get("external-secrets", 0) >= waves.get("flash-foundation", 0):
            problems.append("%s: External Secrets must sync before the foundation's ExternalSecrets" % rel(d))
        apps_proj = projects.get("flash-apps", {}).get("spec", {})
        if apps_proj.get("clusterResourceWhitelist") not in ([], None) or \
                any(x.get("kind") == "Secret" for x in apps_proj.get("namespaceResourceWhitelist", [])):
            problems.append("%s: project flash-apps must allow no cluster-scoped kind and no Secret" % rel(d))
    expect(problems)


# ----------------------------------------------------------------------------- Argo CD, simulated
# What Argo CD itself would refuse or get wrong, beyond what the project allows: sync windows it
# cannot parse (argoproj/argo-cd SyncWindow.Validate: robfig/cron with five fields,
# time.ParseDuration, time.LoadLocation), hooks that pile up or hang a sync, CRDs and Namespaces
# that come after the objects that need them, and objects that two Applications fight over.
SYNC_WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
HOOK_DELETE = "argocd.argoproj.io/hook-delete-policy"
HOOKS = {"PreSync", "Sync", "PostSync", "SyncFail", "PreDelete", "PostDelete", "Skip"}
HOOK_DELETE_POLICIES = {"HookSucceeded", "HookFailed", "BeforeHookCreation"}
# The phases of a sync, in order; other hooks (SyncFail, PreDelete, PostDelete, Skip) are not
# applied by a sync that succeeds.
SYNC_PHASES = {"PreSync": 0, "Sync": 1, "PostSync": 2}
# A hook blocks its phase until it ends: a Job hook retries a few times at most and gives up
# within the hour (the migration: 2 retries, 15 minutes).
HOOK_MAX_BACKOFF = 5
HOOK_MAX_DEADLINE = 3600
# Groups of Kubernetes 1.32 itself and of the aggregated metrics APIs: no CRD installs them.
BUILTIN_GROUPS = {"", "apps", "batch", "autoscaling", "policy", "admissionregistration.k8s.io",
                  "apiextensions.k8s.io", "apiregistration.k8s.io", "authentication.k8s.io",
                  "authorization.k8s.io", "certificates.k8s.io", "coordination.k8s.io",
                  "discovery.k8s.io", "events.k8s.io", "flowcontrol.apiserver.k8s.io",
                  "internal.apiserver.k8s.io", "networking.k8s.io", "node.k8s.io",
                  "rbac.authorization.k8s.io", "resource.k8s.io", "scheduling.k8s.io",
                  "storage.k8s.io", "storagemigration.k8s.io", "metrics.k8s.io",
                  "custom.metrics.k8s.io", "external.metrics.k8s.io"}
# CRDs on the cluster before any Application syncs: Argo CD's own (argocd/bootstrap).
PREINSTALLED_GROUPS = {"argoproj.io"}
# Namespaces every cluster has before any Application syncs (argocd: the bootstrap's).
PREEXISTING_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease", "argocd"}
# The CRD groups each Helm chart installs (charts are not rendered offline), and the value that
# turns them off (None: always installed). Every group of gitops/schemas/crds but Argo CD's must
# be one of these: `argocd_applications_install_crds_and_namespaces_first` checks it.
CHART_CRDS = {
    "external-secrets": (("installCRDs",), {"external-secrets.io", "generators.external-secrets.io"}),
    "kube-prometheus-stack": (("crds", "enabled"), {"monitoring.coreos.com"}),
    "keda": (("crds", "install"), {"keda.sh", "eventing.keda.sh"}),
    "karpenter": (None, {"karpenter.sh", "karpenter.k8s.aws"}),
    "aws-load-balancer-controller": (None, {"elbv2.k8s.aws"}),
}
# Custom resources a chart makes when its values enable them (at any depth: keda's
# prometheus.operator.serviceMonitor, the ALB controller's serviceMonitor, ...).
CHART_CUSTOM_RESOURCES = {"serviceMonitor": ("monitoring.coreos.com", "ServiceMonitor"),
                          "podMonitor": ("monitoring.coreos.com", "PodMonitor"),
                          "prometheusRule": ("monitoring.coreos.com", "PrometheusRule")}
CRON_MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
CRON_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# robfig/cron's standard fields, as Argo CD parses sync window schedules (no @descriptors).
CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
               ("month", 1, 12, CRON_MONTHS), ("day of week", 0, 6, CRON_DAYS))
GO_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
GO_DURATION_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)"


def api_group(o):
    api = o.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def annotations(o):
    return (o.get("metadata") or {}).get("annotations") or {}


def sync_wave(o):
    """The object's sync wave (default 0), or None when the annotation is not an integer."""
    try:
        return int(str(annotations(o).get(SYNC_WAVE, "0")).strip())
    except ValueError:
        return None


def sync_order(o):
    """When a sync applies the object: (phase, wave), or None when a successful sync does not."""
    hooks = [h.strip() for h in str(annotations(o).get(HOOK, "Sync")).split(",")]
    phases = [SYNC_PHASES[h] for h in hooks if h in SYNC_PHASES]
    return (min(phases), sync_wave(o) or 0) if phases else None


def cron_field_problem(part, lo, hi, names):
    rng, slash, step = part.partition("/")
    number = lambda t: re.fullmatch(r"[0-9]+", t) is not None
    if slash and not (number(step) and int(step) > 0):
        return "step %r is not a positive number" % step
    if rng in ("*", "?"):
        return None
    value = lambda t: names.get(t.lower(), int(t) if number(t) else None)
    a, dash, b = rng.partition("-")
    start, end = value(a), (value(b) if dash else value(a))
    if start is None or end is None:
        return "%r is not a number%s, a range, * or ?" % (rng, " or a name" if names else "")
    if not (lo <= start <= hi and lo <= end <= hi):
        return "%r is outside %d-%d" % (rng, lo, hi)
    if start > end:
        return "range %r ends before it starts" % rng
    return None


def cron_problems(schedule):
    """Why robfig/cron (minute hour day-of-month month day-of-week) refuses a schedule."""
    fields = str(schedule).split()
    if len(fields) != 5:
        return ["schedule %r has %d fields, not 5 (minute hour day-of-month month day-of-week)"
                % (schedule, len(fields))]
    out = []
    for text, (field, lo, hi, names) in zip(fields, CRON_FIELDS):
        for part in text.split(","):
            p = cron_field_problem(part, lo, hi, names)
            if p:
                out.append("schedule %r: %s field: %s" % (schedule, field, p))
    return out


def go_duration_seconds(text):
    """Seconds of a Go duration (time.ParseDuration, without sign), or None."""
    if not isinstance(text, str) or not re.fullmatch("(?:%s)+" % GO_DURATION_PART, text):
        return None
    return sum(float(n) * GO_DURATION_UNITS[u] for n, u in re.findall(GO_DURATION_PART, text))


def time_zone_known(name):
    import zoneinfo
    zones = zoneinfo.available_timezones()
    if not zones:
        raise AssertionError("no time zone database (tzdata): cannot check sync window time zones")
    return name in zones


def sync_window_problems(where, windows, apps):
    """What Argo CD refuses in an AppProject's syncWindows, and patterns that match none of the
    project's Applications ([(name, destination namespace, server, cluster name)], None: not
    checked) - a window that applies to nothing, most likely a typo."""
    import fnmatch
    problems = []
    for i, w in enumerate(windows or []):
        at = "%s syncWindows[%d]" % (where, i)
        if not isinstance(w, dict):
            problems.append(at + " is not a mapping")
            continue
        if w.get("kind") not in ("allow", "deny"):
            problems.append(at + " kind %r is not allow or deny" % w.get("kind"))
        if not w.get("schedule"):
            problems.append(at + " has no schedule")
        else:
            problems += [at + " " + p for p in cron_problems(w["schedule"])]
        seconds = go_duration_seconds(w.get("duration"))
        if seconds is None:
            problems.append(at + " duration %r is not a Go duration (30m, 1h30m, 2h)" % w.get("duration"))
        elif seconds <= 0:
            problems.append(at + " duration %r is empty" % w.get("duration"))
        lists = {k: w.get(k) or [] for k in ("applications", "namespaces", "clusters")}
        for k, v in lists.items():
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                problems.append(at + " %s must be a list of names or patterns" % k)
                lists[k] = []
        if not any(lists.values()):
            problems.append(at + " has no applications, namespaces or clusters: Argo CD refuses it")
        tz = w.get("timeZone")
        if tz is not None and (not isinstance(tz, str) or not time_zone_known(tz)):
            problems.append(at + " timeZone %r is not an IANA time zone" % tz)
        for flag in ("manualSync", "andOperator"):
            if flag in w and not isinstance(w[flag], bool):
                problems.append(at + " %s %r is not a boolean" % (flag, w[flag]))
        if apps is not None:
            fields = {"applications": (0,), "namespaces": (1,), "clusters": (2, 3)}
            for k, idx in fields.items():
                for pattern in lists[k]:
                    if not any(a[j] and fnmatch.fnmatchcase(a[j], pattern) for a in apps for j in idx):
                        problems.append(at + " %s pattern %r matches no Application of the project in any environment"
                                        % (k, pattern))
    return problems


def hook_problems(where, o):
    """A hook Argo CD does not know, cannot clean up, or may wait on for ever."""
    ann = annotations(o)
    if HOOK not in ann:
        return []
    at = "%s: %s" % (where, name(o))
    problems = []
    hooks = [h.strip() for h in str(ann[HOOK]).split(",")]
    unknown = [h for h in hooks if h not in HOOKS]
    if unknown:
        problems.append("%s hook %s is not one of %s" % (at, unknown, sorted(HOOKS)))
    if hooks == ["Skip"]:
        return problems  # not a hook: the object is never applied
    if HOOK_DELETE not in ann:
        problems.append(at + " is a hook without %s: every sync leaves one behind" % HOOK_DELETE)
        policies = []
    else:
        policies = [p.strip() for p in str(ann[HOOK_DELETE]).split(",")]
        bad = [p for p in policies if p not in HOOK_DELETE_POLICIES]
        if bad:
            problems.append("%s delete policy %s is not one of %s" % (at, bad, sorted(HOOK_DELETE_POLICIES)))
    # A hook with a fixed name must be gone before the next sync creates it again, or the next
    # sync fails on the immutable Job template (a new image) or finds the old run.
    meta = o.get("metadata") or {}
    if meta.get("name") and policies and "BeforeHookCreation" not in policies \
            and not {"HookSucceeded", "HookFailed"} <= set(policies):
        problems.append(at + " has a fixed name but the old run may survive: add BeforeHookCreation")
    if o.get("kind") == "Job":
        spec = o.get("spec") or {}
        b, dl = spec.get("backoffLimit"), spec.get("activeDeadlineSeconds")
        if not (isinstance(b, int) and 0 <= b <= HOOK_MAX_BACKOFF):
            problems.append("%s backoffLimit %r is not set within 0-%d" % (at, b, HOOK_MAX_BACKOFF))
        if not (isinstance(dl, int) and 0 < dl <= HOOK_MAX_DEADLINE):
            problems.append("%s activeDeadlineSeconds %r is not set within 1-%d: the sync may wait for ever"
                            % (at, dl, HOOK_MAX_DEADLINE))
    elif o.get("kind") == "Pod":
        dl = (o.get("spec") or {}).get("activeDeadlineSeconds")
        if not (isinstance(dl, int) and 0 < dl <= HOOK_MAX_DEADLINE):
            problems.append("%s activeDeadlineSeconds %r is not set within 1-%d" % (at, dl, HOOK_MAX_DEADLINE))
    return problems


def cluster_kinds(objs):
    """Kinds without a namespace: the known ones and those of cluster-scoped CRDs among objs."""
    return CLUSTER_SCOPED | {o["spec"]["names"]["kind"] for o in objs
                             if o.get("kind") == "CustomResourceDefinition" and o["spec"].get("scope") == "Cluster"}


def namespace_of(o, dest_ns, cluster):
    """The namespace Argo CD puts an object in: its own, else the Application's destination."""
    if o.get("kind") in cluster:
        return None
    return (o.get("metadata") or {}).get("namespace") or dest_ns or None


def in_app_order_problems(where, objs, dest_ns):
    """Within one Application's sync: a CRD or Namespace applied after (a later phase, or a
    higher wave) an object of its kind or in it. Argo CD applies Namespaces and CRDs first
    within one phase and wave, so the same phase and wave is fine."""
    problems = []
    cluster = cluster_kinds(objs)
    for o in objs:
        if sync_wave(o) is None:
            problems.append("%s: %s %s %r is not an integer" % (where, name(o), SYNC_WAVE, annotations(o)[SYNC_WAVE]))
    for p in objs:
        if p.get("kind") == "CustomResourceDefinition":
            needs = lambda o, p=p: (api_group(o), o.get("kind")) == (p["spec"]["group"], p["spec"]["names"]["kind"])
            what = "of kind %s.%s" % (p["spec"]["names"]["kind"], p["spec"]["group"])
        elif p.get("kind") == "Namespace":
            needs = lambda o, p=p: namespace_of(o, dest_ns, cluster) == p["metadata"]["name"]
            what = "in namespace %s" % p["metadata"]["name"]
        else:
            continue
        made = sync_order(p)
        for o in objs:
            used = sync_order(o)
            if o is p or used is None or not needs(o):
                continue
            if made is None or made > used:
                problems.append("%s: %s %s is applied at (phase, wave) %s, %s at %s: after its user"
                                % (where, name(o), what, used, name(p), made or "never"))
    return problems


def deep_merge(a, b):
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def chart_values(source):
    """The Helm values of a chart source: its value files of this repository, merged in order."""
    values = {}
    for vf in (source.get("helm") or {}).get("valueFiles", []):
        path = os.path.join(ROOT, vf.replace("$values/", ""))
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                values = deep_merge(values, yaml.safe_load(f) or {})
    return values


def chart_crd_groups(chart, values):
    switch, groups = CHART_CRDS.get(chart, (None, set()))
    if switch:
        v = values
        for k in switch:
            v = v.get(k, {}) if isinstance(v, dict) else {}
        if v is False:
            return set()
    return set(groups)


def chart_custom_resources(values):
    """(group, kind) of the custom resources that values turn on ({serviceMonitor: {enabled: true}})."""
    out = set()
    if isinstance(values, dict):
        for k, v in values.items():
            if k in CHART_CUSTOM_RESOURCES and isinstance(v, dict) and v.get("enabled") is True:
                out.add(CHART_CUSTOM_RESOURCES[k])
            out |= chart_custom_resources(v)
    elif isinstance(values, list):
        for v in values:
            out |= chart_custom_resources(v)
    return out


_SOURCES = {}


def render_source(path):
    """Objects of a repository path as Argo CD renders it: kustomize if it has a kustomization,
    else its YAML files."""
    full = os.path.join(ROOT, path)
    if full in rendered():
        return rendered()[full]
    if full not in _SOURCES:
        if any(os.path.isfile(os.path.join(full, k)) for k in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
            _SOURCES[full] = kustomize(full)
        else:
            docs = []
            for p in sorted(glob.glob(os.path.join(full, "*.y*ml"))):
                with open(p, encoding="utf-8") as f:
                    docs += [x for x in yaml.safe_load_all(f) if isinstance(x, dict)]
            _SOURCES[full] = docs
    return _SOURCES[full]


def app_profile(app, objs, charts):
    """What an Application installs and needs. objs: what its repository paths render; charts:
    {chart name: merged values} of its Helm sources."""
    spec = app["spec"]
    dest_ns = spec.get("destination", {}).get("namespace") or ""
    options = (spec.get("syncPolicy") or {}).get("syncOptions") or []
    p = {"name": app["metadata"]["name"], "wave": sync_wave(app) or 0, "crds": set(), "namespaces": set(),
         "creates": {dest_ns} if dest_ns and "CreateNamespace=true" in options else set(),
         "uses": set(), "into": set(), "objects": set()}
    cluster = cluster_kinds(objs)
    for o in objs:
        group, kind, n = api_group(o), o.get("kind"), (o.get("metadata") or {}).get("name")
        if kind == "CustomResourceDefinition":
            p["crds"].add((o["spec"]["group"], o["spec"]["names"]["kind"]))
        elif kind == "Namespace":
            p["namespaces"].add(n)
        if group not in BUILTIN_GROUPS:
            p["uses"].add((group, kind))
        ns = namespace_of(o, dest_ns, cluster)
        if ns:
            p["into"].add(ns)
        p["objects"].add((group, kind, ns or "", n))
    for chart, values in charts.items():
        p["crds"] |= {(g, "*") for g in chart_crd_groups(chart, values)}
        p["uses"] |= chart_custom_resources(values)
        if dest_ns:
            p["into"].add(dest_ns)
    return p


def app_order_problems(where, profiles):
    """Across the Applications of one app-of-apps: the Application that installs a CRD, or makes
    a Namespace, syncs in a lower wave than every other Application that needs it (Applications
    of one wave sync at the same time)."""
    problems = []
    for p in profiles:
        for group, kind in sorted(p["uses"]):
            if any(g == group and k in (kind, "*") for g, k in p["crds"]):
                continue
            makers = sorted((q["wave"], q["name"]) for q in profiles
                            if any(g == group and k in (kind, "*") for g, k in q["crds"]))
            if not makers:
                if group not in PREINSTALLED_GROUPS:
                    problems.append("%s: Application %s uses %s.%s, whose CRD no Application installs"
                                    % (where, p["name"], kind, group))
            elif makers[0][0] >= p["wave"]:
                problems.append("%s: Application %s (wave %d) uses %s.%s, whose CRD %s installs in wave %d: it must be lower"
                                % (where, p["name"], p["wave"], kind, group, makers[0][1], makers[0][0]))
        for ns in sorted(p["into"]):
            if ns in p["namespaces"] | p["creates"] | PREEXISTING_NAMESPACES:
                continue
            makers = sorted((q["wave"], q["name"]) for q in profiles if ns in q["namespaces"] | q["creates"])
            if not makers:
                problems.append("%s: Application %s deploys into namespace %s, which nothing creates (CreateNamespace=true?)"
                                % (where, p["name"], ns))
            elif makers[0][0] >= p["wave"]:
                problems.append("%s: Application %s (wave %d) deploys into namespace %s, which %s creates in wave %d: it must be lower"
                                % (where, p["name"], p["wave"], ns, makers[0][1], makers[0][0]))
    return problems


def shared_resource_problems(where, profiles):
    """Objects that two Applications render: Argo CD reports SharedResourceWarning and the two
    keep overwriting (and may prune) each other's copy."""
    owners = {}
    for p in profiles:
        for key in p["objects"]:
            owners.setdefault(key, []).append(p["name"])
    return ["%s: %s %s/%s (group %r) belongs to Applications %s" % (where, k[1], k[2] or "-", k[3], k[0], sorted(v))
            for k, v in sorted(owners.items()) if len(v) > 1]


def app_profiles(env, apps):
    """{Application name: profile} of an environment's Applications, rendered from this repository."""
    out = {}
    for n, a in apps.items():
        objs, charts, paths = [], {}, []
        for s in a["spec"].get("sources") or [a["spec"]["source"]]:
            if "chart" in s:
                charts[s["chart"]] = chart_values(s)
            elif "path" in s and s.get("repoURL") == REPO_URL and os.path.isdir(os.path.join(ROOT, s["path"])):
                objs += render_source(s["path"])
                paths.append(s["path"])
        out[n] = app_profile(a, objs, charts)
        out[n]["paths"] = paths
        out[n]["objs"] = objs
    return out


@test
def argocd_sync_windows_are_well_formed():
    """Every sync window of every AppProject is one Argo CD accepts: kind allow|deny, a 5-field
    cron schedule, a Go duration, some applications, namespaces or clusters (each matching one
    of the project's Applications), an IANA timeZone and boolean flags."""
    problems = []
    envs = list(argocd_envs())
    # argocd/projects is the same in every environment: a pattern may name an Application of
    # one environment only.
    members = {}
    for d, env, objs, projects, apps in envs:
        for a in apps.values():
            dest = a["spec"]["destination"]
            members.setdefault(a["spec"].get("project"), []).append(
                (a["metadata"]["name"], dest.get("namespace"), dest.get("server"), dest.get("name")))
    for d, env, objs, projects, apps in envs:
        for pn, proj in projects.items():
            problems += sync_window_problems("%s: AppProject %s" % (rel(d), pn),
                                             proj["spec"].get("syncWindows"), members.get(pn, []))
    expect(problems)


@test
def argocd_hooks_are_cleaned_up_and_bounded():
    """Every Argo CD hook is a known phase with a delete policy of HookSucceeded, HookFailed or
    BeforeHookCreation (BeforeHookCreation when it has a fixed name); a Job or Pod hook has a
    bounded backoffLimit and activeDeadlineSeconds."""
    problems = []
    hooks = 0
    for d, objs in rendered().items():
        for o in objs:
            hooks += HOOK in annotations(o)
            problems += hook_problems(rel(d), o)
    if not hooks:
        problems.append("no hook found: the migration Job is a PreSync hook (migration_is_a_presync_hook)")
    expect(problems)


@test
def sync_waves_apply_crds_and_namespaces_first():
    """Within each Application, no CustomResourceDefinition or Namespace comes in a later phase
    or a higher sync wave than an object of its kind or in it."""
    problems = []
    for d, env, objs, projects, apps in argocd_envs():
        for n, p in app_profiles(env, apps).items():
            dest = apps[n]["spec"]["destination"].get("namespace")
            problems += in_app_order_problems("%s: Application %s" % (rel(d), n), p["objs"], dest)
    expect(problems)


@test
def argocd_applications_install_crds_and_namespaces_first():
    """The app-of-apps syncs the Application installing a CRD (rendered, or by its Helm chart) or
    making a Namespace in a lower wave than every Application that uses the kind (rendered, or
    turned on in its chart's values) or deploys into the namespace; every vendored CRD group is
    installed by an Application."""
    problems = []
    vendored = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "gitops", "schemas", "crds", "*"))
                if os.path.isdir(p)}
    for d, env, objs, projects, apps in argocd_envs():
        profiles = app_profiles(env, apps)
        problems += app_order_problems(rel(d), list(profiles.values()))
        installed = {g for p in profiles.values() for g, _ in p["crds"]}
        for g in sorted(vendored - installed - PREINSTALLED_GROUPS):
            problems.append("%s: no Application installs the CRDs of %s (gitops/schemas/crds/%s; CHART_CRDS?)" % (rel(d), g, g))
    expect(problems)


@test
def every_object_belongs_to_one_application():
    """No object (group, kind, namespace, name) is rendered by two Applications of one cluster
    (SharedResourceWarning), and every gitops overlay of an environment is some Application's
    source in that environment."""
    problems = []
    for d, env, objs, projects, apps in argocd_envs():
        profiles = app_profiles(env, apps)
        problems += shared_resource_problems(rel(d), list(profiles.values()))
        synced = {p for prof in profiles.values() for p in prof["paths"]}
        for o in overlays():
            if rel(o).startswith("gitops/") and env_of(o) == env and rel(o) not in synced:
                problems.append("%s: no Application syncs %s" % (rel(d), rel(o)))
    expect(problems)


@test
def dockerfiles_are_pinned_multi_stage_and_non_root():
    """Each service's Dockerfile is multi-stage, pins every base image by tag and digest, ends
    as a non-root USER, and builds the binary the Deployment runs."""
    problems = []
    for svc in SERVICES:
        path = "services/%s/Dockerfile" % svc
        if not os.path.isfile(os.path.join(ROOT, path)):
            problems.append("%s is missing" % path)
            continue
        text = read(path)
        froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
        if len(froms) < 2:
            problems.append("%s is not multi-stage" % path)
        for image in froms:
            if not re.fullmatch(r"[^@\s]+:[^@\s:]+@sha256:[0-9a-f]{64}", image):
                problems.append("%s: base %s is not pinned by tag and digest" % (path, image))
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        if not users or users[-1].split(":")[0] in ("root", "0"):
            problems.append("%s: the image does not end as a non-root user" % path)
        if svc in RUST_SERVICES:
            if "--locked" not in text or "--bin flash-%s" % svc not in text:
                problems.append("%s does not build flash-%s from Cargo.lock" % (path, svc))
            if 'ENTRYPOINT ["/usr/local/bin/flash-%s"]' % svc not in text:
                problems.append("%s does not run flash-%s" % (path, svc))
    expect(problems)


@test
def release_rewrite_renders_a_digest():
    """scripts/set-image.py (the release workflow's commit) points an overlay at an ECR image by
    digest, the overlay still renders, and promote copies it to prod; `latest` is refused."""
    tmp = tempfile.mkdtemp(prefix="policy-set-image-")
    try:
        shutil.copytree(os.path.join(ROOT, "gitops"), os.path.join(tmp, "gitops"))
        script = os.path.join(ROOT, "scripts", "set-image.py")
        digest = "sha256:" + "0123456789abcdef" * 4
        repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/flash/api"
        run = lambda *a: subprocess.run([sys.executable, script] + list(a), cwd=tmp, capture_output=True, text=True)
        r = run("set", "gitops/apps/api/overlays/dev", "flash-api", "--repository", repo, "--tag", "abc1234", "--digest", digest)
        assert r.returncode == 0, r.stderr
        r = run("promote", "gitops/apps/api/overlays/dev", "gitops/apps/api/overlays/prod", "flash-api")
        assert r.returncode == 0, r.stderr
        for env in ENVS:
            objs = kustomize(os.path.join(tmp, "gitops/apps/api/overlays", env))
            images = {c["image"] for o in objs if pod_spec(o) for c in pod_spec(o)["containers"]}
            assert images == {"%s:abc1234@%s" % (repo, digest)}, "%s renders %s" % (env, images)
        r = run("set", "gitops/apps/api/overlays/dev", "flash-api", "--repository", repo, "--tag", "latest", "--digest", digest)
        assert r.returncode != 0, "set-image accepted the tag latest"
        r = run("set", "gitops/apps/api/overlays/dev", "flash-nope", "--repository", repo, "--digest", digest)
        assert r.returncode != 0, "set-image accepted an image name the overlay does not have"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- the checks, checked
# The Argo CD checks above run on bad examples, in memory (gitops/tests/fixtures is walked by
# checks_test.py's schema run, which counts its files): each bad example must be reported with
# the expected words, and each good one must pass, so a check that stops seeing anything fails.
def _docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def _expect_reports(check, bad, good):
    """bad: [(label, input, fragment)]; good: [(label, input)]; check(input) -> problems."""
    problems = []
    for label, arg, fragment in bad:
        got = check(arg)
        if not any(fragment in p for p in got):
            problems.append("%s: expected a report containing %r, got %s" % (label, fragment, got or "nothing"))
    for label, arg in good:
        got = check(arg)
        if got:
            problems.append("%s: expected no report, got %s" % (label, got))
    expect(problems)


@test
def check_rejects_bad_sync_windows():
    """argocd_sync_windows_are_well_formed rejects bad kinds, cron schedules, durations, time
    zones, flags, empty selections and patterns matching nothing."""
    apps = [("flash-api", "flash-ticket", "https://kubernetes.default.svc", None),
            ("flash-web", "flash-ticket", "https://kubernetes.default.svc", "in-cluster")]
    ok = {"kind": "deny", "schedule": "0 18 * * 5", "duration": "2h", "applications": ["flash-*"]}
    w = lambda **kw: dict(ok, **kw)
    check = lambda window: sync_window_problems("fixture", [window], apps)
    bad = [
        ("kind block", w(kind="block"), "kind 'block' is not allow or deny"),
        ("no schedule", w(schedule=None), "has no schedule"),
        ("4 fields", w(schedule="0 18 * *"), "has 4 fields, not 5"),
        ("6 fields", w(schedule="0 0 18 * * 5"), "has 6 fields, not 5"),
        ("descriptor", w(schedule="@daily"), "has 1 fields, not 5"),
        ("minute 60", w(schedule="60 18 * * 5"), "minute field: '60' is outside 0-59"),
        ("hour 24", w(schedule="0 24 * * 5"), "hour field: '24' is outside 0-23"),
        ("day of month 0", w(schedule="0 18 0 * *"), "day of month field: '0' is outside 1-31"),
        ("month 13", w(schedule="0 18 * 13 *"), "month field: '13' is outside 1-12"),
        ("day of week 7", w(schedule="0 18 * * 7"), "day of week field: '7' is outside 0-6"),
        ("reversed range", w(schedule="0 20-18 * * *"), "range '20-18' ends before it starts"),
        ("step 0", w(schedule="*/0 18 * * *"), "step '0' is not a positive number"),
        ("step word", w(schedule="*/x 18 * * *"), "step 'x' is not a positive number"),
        ("empty list item", w(schedule="0 6,,18 * * *"), "hour field: '' is not a number"),
        ("bad day name", w(schedule="0 18 * * MON-FRY"), "day of week field: 'MON-FRY' is not a number or a name"),
        ("month name as day", w(schedule="0 18 * * JAN"), "day of week field: 'JAN' is not a number"),
        ("duration words", w(duration="1 hour"), "is not a Go duration"),
        ("duration no unit", w(duration="90"), "is not a Go duration"),
        ("duration days", w(duration="1d"), "is not a Go duration"),
        ("duration negative", w(duration="-1h"), "is not a Go duration"),
        ("duration zero", w(duration="0s"), "duration '0s' is empty"),
        ("duration missing", w(duration=None), "is not a Go duration"),
        ("nothing selected", w(applications=[]), "has no applications, namespaces or clusters"),
        ("selection not a list", w(applications="flash-api"), "applications must be a list"),
        ("time zone typo", w(timeZone="Europe/Pariss"), "timeZone 'Europe/Pariss' is not an IANA time zone"),
        ("time zone abbreviation", w(timeZone="CEST"), "is not an IANA time zone"),
        ("manualSync string", w(manualSync="true"), "manualSync 'true' is not a boolean"),
        ("application typo", w(applications=["flash-apii"]), "applications pattern 'flash-apii' matches no Application"),
        ("namespace typo", w(applications=[], namespaces=["flash-tickets"]), "namespaces pattern 'flash-tickets' matches no"),
        ("cluster typo", w(applications=[], clusters=["https://kubernetes.default"]), "clusters pattern"),
    ]
    good = [
        ("deny weekday evenings", w(schedule="30 17 * * 1-5,SAT", duration="1h30m", timeZone="Europe/Paris", manualSync=True)),
        ("allow by namespace", w(kind="allow", schedule="*/15 0-6/2 1,15 JAN-mar ?", duration="45m",
                                 applications=[], namespaces=["flash-ticket"], andOperator=False)),
        ("by cluster name", w(schedule="5/10 3 1-31 * *", duration="1.5h",
                              applications=[], clusters=["in-cluster"], timeZone="UTC")),
    ]
    _expect_reports(check, bad, good)
    assert sync_window_problems("fixture", None, apps) == [], "an AppProject without windows must pass"


_HOOK_JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: fixture-migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  backoffLimit: 2
  activeDeadlineSeconds: 900
  template: {spec: {restartPolicy: Never, containers: [{name: migrate, image: fixture}]}}
"""


@test
def check_rejects_bad_hooks():
    """argocd_hooks_are_cleaned_up_and_bounded rejects hooks without or with unknown delete
    policies, unknown phases, a fixed name Argo CD cannot recreate, and unbounded Jobs and Pods."""
    def job(ann=None, drop_ann=(), meta=None, **spec):
        o = _docs(_HOOK_JOB)[0]
        o["metadata"]["annotations"].update(ann or {})
        for k in drop_ann:
            del o["metadata"]["annotations"][k]
        o["metadata"].update(meta or {})
        for k, v in spec.items():
            if v is None:
                del o["spec"][k]
            else:
                o["spec"][k] = v
        return o
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "fixture-smoke-", "annotations": {
        HOOK: "PostSync", HOOK_DELETE: "HookSucceeded"}}, "spec": {"containers": []}}
    check = lambda o: hook_problems("fixture", o)
    bad = [
        ("no delete policy", job(drop_ann=[HOOK_DELETE]), "is a hook without argocd.argoproj.io/hook-delete-policy"),
        ("unknown delete policy", job(ann={HOOK_DELETE: "OnSuccess"}), "delete policy ['OnSuccess'] is not one of"),
        ("one unknown in a list", job(ann={HOOK_DELETE: "HookSucceeded,Always"}), "delete policy ['Always']"),
        ("unknown phase", job(ann={HOOK: "PreSynk"}), "hook ['PreSynk'] is not one of"),
        ("fixed name, kept on failure", job(ann={HOOK_DELETE: "HookSucceeded"}), "add BeforeHookCreation"),
        ("no backoffLimit", job(backoffLimit=None), "backoffLimit None is not set within 0-5"),
        ("backoffLimit 50", job(backoffLimit=50), "backoffLimit 50 is not set within 0-5"),
        ("no activeDeadlineSeconds", job(activeDeadlineSeconds=None), "activeDeadlineSeconds None is not set within 1-3600"),
        ("a day-long deadline", job(activeDeadlineSeconds=86400), "activeDeadlineSeconds 86400"),
        ("unbounded Pod", pod, "activeDeadlineSeconds None is not set within 1-3600"),
    ]
    good = [
        ("the migration", job()),
        ("generateName, deleted on success", job(ann={HOOK: "PostSync", HOOK_DELETE: "HookSucceeded"},
                                                 meta={"name": None, "generateName": "fixture-smoke-"})),
        ("fixed name, deleted either way", job(ann={HOOK: "PreSync,PostSync", HOOK_DELETE: "HookSucceeded,HookFailed"})),
        ("Skip is not a hook", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": {HOOK: "Skip"}}}),
        ("not a hook", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
    ]
    _expect_reports(check, bad, good)


_ORDERED = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.fixture.example.com, annotations: {argocd.argoproj.io/sync-wave: "WAVE_CRD"}}
spec:
  group: fixture.example.com
  scope: Namespaced
  names: {kind: Widget, plural: widgets}
---
apiVersion: v1
kind: Namespace
metadata: {name: fixture, annotations: {argocd.argoproj.io/sync-wave: "WAVE_NS"}}
---
apiVersion: fixture.example.com/v1
kind: Widget
metadata: {name: w, namespace: other, annotations: {argocd.argoproj.io/sync-wave: "WAVE_CR"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: in-destination, annotations: {argocd.argoproj.io/sync-wave: "WAVE_CM"}}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: hook
  namespace: HOOK_NS
  annotations: {argocd.argoproj.io/hook: HOOK_PHASE, argocd.argoproj.io/hook-delete-policy: BeforeHookCreation}
"""


@test
def check_rejects_crds_and_namespaces_applied_late():
    """sync_waves_apply_crds_and_namespaces_first rejects a CRD or Namespace in a higher wave or a
    later phase than its users, and a sync wave that is not a number."""
    def objs(**kw):
        values = dict(WAVE_CRD="0", WAVE_NS="0", WAVE_CR="0", WAVE_CM="0", HOOK_NS="other", HOOK_PHASE="PostSync")
        values.update(kw)
        text = _ORDERED
        for k, v in values.items():
            text = text.replace(k, v)
        return _docs(text)
    check = lambda o: in_app_order_problems("fixture", o, "fixture")
    bad = [
        ("CRD after its resource", objs(WAVE_CRD="5"), "Widget/w of kind Widget.fixture.example.com is applied at (phase, wave) (1, 0), CustomResourceDefinition/widgets.fixture.example.com at (1, 5)"),
        ("Namespace after an object in the destination", objs(WAVE_NS="1"), "ConfigMap/in-destination in namespace fixture is applied at (phase, wave) (1, 0), Namespace/fixture at (1, 1)"),
        ("Namespace after a PreSync hook in it", objs(HOOK_NS="fixture", HOOK_PHASE="PreSync"), "Job/hook in namespace fixture is applied at (phase, wave) (0, 0)"),
        ("Namespace skipped", [dict(o, metadata=dict(o["metadata"], annotations={HOOK: "Skip"}))
                               if o["kind"] == "Namespace" else o for o in objs()], "Namespace/fixture at never"),
        ("wave not a number", objs(WAVE_CM="soon"), "argocd.argoproj.io/sync-wave 'soon' is not an integer"),
    ]
    good = [
        ("same wave: Argo CD applies CRDs and Namespaces first", objs()),
        ("lower waves", objs(WAVE_CRD="-5", WAVE_NS="-1", WAVE_CR="3", WAVE_CM="-1")),
        ("PostSync hook in a Namespace of a higher wave", objs(HOOK_NS="fixture", WAVE_NS="9", WAVE_CM="9")),
    ]
    _expect_reports(check, bad, good)


def _app(n, wave, path=None, chart=None, dest="fixture", create_ns=False):
    src = {"repoURL": REPO_URL, "path": path} if path else {"repoURL": "https://charts.example.com", "chart": chart}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": n, "annotations": {SYNC_WAVE: str(wave)}},
            "spec": {"source": src, "destination": {"namespace": dest},
                     "syncPolicy": {"syncOptions": ["CreateNamespace=true"] if create_ns else []}}}


_WIDGET_CRD = _docs(_ORDERED)[0]
_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fixture"}}
_WIDGET = {"apiVersion": "fixture.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
_CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}
_SCALED = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s"}}


@test
def check_rejects_applications_out_of_crd_order():
    """argocd_applications_install_crds_and_namespaces_first rejects an Application that uses a
    kind (rendered or in its chart values) or a namespace in the same or an earlier wave than
    the Application installing it, or that nothing installs."""
    def check(case):
        return app_order_problems("fixture", [app_profile(a, objs, charts) for a, objs, charts in case])
    base = lambda w_op=-10, w_ns=-20, w_user=0, w_keda=-5, w_prom=-30, w_alb=-20: [
        (_app("operator", w_op, path="x"), [_WIDGET_CRD], {}),
        (_app("namespaces", w_ns, path="y"), [_NAMESPACE], {}),
        (_app("user", w_user, path="z"), [_WIDGET, _CM, _SCALED], {}),
        (_app("keda", w_keda, chart="keda", dest="keda", create_ns=True), [], {"keda": {}}),
        (_app("kube-prometheus-stack", w_prom, chart="kube-prometheus-stack", dest="monitoring", create_ns=True), [],
         {"kube-prometheus-stack": {}}),
        (_app("alb", w_alb, chart="aws-load-balancer-controller", dest="kube-system"), [],
         {"aws-load-balancer-controller": {"serviceMonitor": {"enabled": True}}}),
    ]
    bad = [
        ("CRD in the same wave", base(w_op=0), "Application user (wave 0) uses Widget.fixture.example.com, whose CRD operator installs in wave 0"),
        ("CRD in a later wave", base(w_op=3), "whose CRD operator installs in wave 3: it must be lower"),
        ("chart CRDs later", base(w_keda=1), "uses ScaledObject.keda.sh, whose CRD keda installs in wave 1"),
        ("chart values use a CRD too early", base(w_alb=-40), "Application alb (wave -40) uses ServiceMonitor.monitoring.coreos.com, whose CRD kube-prometheus-stack installs in wave -30"),
        ("CRDs turned off", [(a, o, {"kube-prometheus-stack": {"crds": {"enabled": False}}} if c.get("kube-prometheus-stack") is not None else c)
                             for a, o, c in base()], "uses ServiceMonitor.monitoring.coreos.com, whose CRD no Application installs"),
        ("nobody installs it", base()[1:], "Application user uses Widget.fixture.example.com, whose CRD no Application installs"),
        ("namespace in the same wave", base(w_ns=0), "Application user (wave 0) deploys into namespace fixture, which namespaces creates in wave 0"),
        ("namespace nobody creates", [x for x in base() if x[0]["metadata"]["name"] != "namespaces"],
         "Application user deploys into namespace fixture, which nothing creates"),
    ]
    good = [("in order", base()),
            ("CreateNamespace makes its own namespace", [(_app("user", -99, path="z", create_ns=True), [_CM], {})])]
    _expect_reports(check, bad, good)


@test
def check_rejects_shared_resources():
    """every_object_belongs_to_one_application rejects one object rendered by two Applications,
    whether its namespace is written or comes from the destination."""
    def check(case):
        return shared_resource_problems("fixture", [app_profile(a, objs, {}) for a, objs in case])
    explicit = dict(_CM, metadata={"name": "settings", "namespace": "fixture"})
    bad = [
        ("same ConfigMap, namespace from the destinations", [(_app("a", 0, path="x"), [_CM]), (_app("b", 1, path="y"), [_CM])],
         "ConfigMap fixture/settings (group '') belongs to Applications ['a', 'b']"),
        ("written namespace and destination", [(_app("a", 0, path="x"), [explicit]), (_app("b", 0, path="y", dest="fixture"), [_CM])],
         "ConfigMap fixture/settings"),
        ("cluster-scoped, any destination", [(_app("a", 0, path="x", dest="one"), [_NAMESPACE]), (_app("b", 0, path="y", dest="two"), [_NAMESPACE])],
         "Namespace -/fixture (group '') belongs to Applications ['a', 'b']"),
    ]
    good = [
        ("other namespaces", [(_app("a", 0, path="x", dest="one"), [_CM]), (_app("b", 0, path="y", dest="two"), [_CM])]),
        ("other kinds", [(_app("a", 0, path="x"), [_CM]), (_app("b", 0, path="y"), [_WIDGET])]),
    ]
    _expect_reports(check, bad, good)


# ----------------------------------------------------------------------------- promotion and release
# flash-prod runs one promoted revision, a release tag written once (argocd/envs/prod/root.yaml)
# and copied into every prod Application by kustomize; flash-dev tracks main. A commit SHA is
# refused too: flash-root manages itself from the promoted revision, and a commit cannot name its
# own SHA, so the root would re-point itself at whatever older revision that commit's tree names.
# A release tag can name itself: the release workflow creates it on the commit that names it.
RELEASE_TAG = re.compile(r"^release-\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(\.[1-9]\d*)?$")
BRANCH_NAMES = {"main", "master", "head", "develop", "trunk"}
DEV_REVISION = "main"
PROD_ROOT = "argocd/envs/prod/root.yaml"
PROMOTED_PLACEHOLDER = "PROMOTED"


def repo_revisions(app):
    """[(label, targetRevision)] of an Application's sources in this repository."""
    spec = app.get("spec", {})
    if spec.get("sources"):
        return [("sources[%d]" % i, s.get("targetRevision")) for i, s in enumerate(spec["sources"])
                if s.get("repoURL") == REPO_URL]
    s = spec.get("source") or {}
    return [("source", s.get("targetRevision"))] if s.get("repoURL") == REPO_URL else []


def promoted_revision_problems(where, apps):
    """apps: {name: Application} of flash-prod. Every source of this repository on one revision,
    flash-root's, and that revision a release tag: never main, HEAD, a branch-like name, a
    commit SHA or nothing."""
    problems = []
    if "flash-root" not in apps:
        problems.append("%s: no root app-of-apps flash-root" % where)
    by_revision = {}
    for n in sorted(apps):
        for label, rev in repo_revisions(apps[n]):
            rev = "" if rev is None else str(rev)
            by_revision.setdefault(rev, []).append("%s %s" % (n, label))
    if not by_revision:
        problems.append("%s: no Application syncs from %s" % (where, REPO_URL))
    for rev, users in sorted(by_revision.items()):
        what = "%s: %s track %r" % (where, ", ".join(users), rev)
        if not rev or rev.upper() == "HEAD" or rev.lower() in BRANCH_NAMES or rev.startswith("refs/heads/"):
            problems.append(what + ": a branch (or nothing), not a promoted release tag")
        elif re.fullmatch(r"[0-9a-fA-F]{7,40}", rev):
            problems.append(what + ": a commit SHA; flash-root manages itself, and a commit cannot name its "
                            "own SHA, so prod tracks a release tag release-YYYY-MM-DD[.N]")
        elif not RELEASE_TAG.match(rev):
            problems.append(what + ": not a release tag release-YYYY-MM-DD[.N] (a branch-like or moving name?)")
    if len(by_revision) > 1:
        problems.append("%s: the Applications track %d revisions %s, not one" % (where, len(by_revision), sorted(by_revision)))
    root = apps.get("flash-root")
    if root and by_revision:
        root_rev = dict(repo_revisions(root)).get("source")
        others = sorted(set(by_revision) - {str(root_rev)})
        if others:
            problems.append("%s: flash-root tracks %r but other Applications %s: the root's revision is the one"
                            % (where, root_rev, others))
    return problems


@test
def prod_tracks_one_promoted_revision():
    """flash-prod's Applications (the root included) track one release tag written once, in
    argocd/envs/prod/root.yaml, never main, HEAD, a branch-like name or a commit SHA; flash-dev's
    track main."""
    problems = []
    seen = set()
    for d, env, objs, projects, apps in argocd_envs():
        seen.add(env)
        if env == "prod":
            problems += promoted_revision_problems(rel(d), apps)
            # Written once: root.yaml holds the value, every other prod file the placeholder.
            with open(os.path.join(ROOT, PROD_ROOT), encoding="utf-8") as f:
                written = dict(repo_revisions(yaml.safe_load(f))).get("source")
            rendered_root = dict(repo_revisions(apps.get("flash-root", {}))).get("source")
            if written != rendered_root:
                problems.append("%s names %r but flash-root renders %r" % (PROD_ROOT, written, rendered_root))
            for p in sorted(glob.glob(os.path.join(d, "apps", "*.yaml"))):
                with open(p, encoding="utf-8") as f:
                    for doc in yaml.safe_load_all(f):
                        for label, rev in repo_revisions(doc or {}):
                            if rev != PROMOTED_PLACEHOLDER:
                                problems.append("%s: %s says targetRevision %r; prod's revision is written in %s "
                                                "only (say %s)" % (rel(p), label, rev, PROD_ROOT, PROMOTED_PLACEHOLDER))
        else:
            for n, a in sorted(apps.items()):
                for label, rev in repo_revisions(a):
                    if rev != DEV_REVISION:
                        problems.append("%s: Application %s %s tracks %r; %s tracks %s" % (rel(d), n, label, rev, env, DEV_REVISION))
    if "prod" not in seen:
        problems.append("argocd/envs/prod did not render")
    expect(problems)


def _promoted_app(name, rev, multi=False):
    src = {"repoURL": REPO_URL, "targetRevision": rev}
    spec = {"sources": [{"repoURL": "https://charts.example.com", "chart": "x", "targetRevision": "1.2.3"},
                        dict(src, ref="values")]} if multi else {"source": dict(src, path="argocd/envs/prod")}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": name}, "spec": spec}


@test
def check_rejects_unpromoted_prod_revisions():
    """prod_tracks_one_promoted_revision rejects main, HEAD, branch-like names, commit SHAs, an
    empty revision, Applications on different revisions, and an add-on's values source that
    does not follow the root."""
    tag = "release-2026-12-04"
    def case(root=tag, api=tag, addon=tag):
        return {"flash-root": _promoted_app("flash-root", root), "flash-api": _promoted_app("flash-api", api),
                "keda": _promoted_app("keda", addon, multi=True)}
    check = lambda apps: promoted_revision_problems("fixture", apps)
    bad = [
        ("everything on main", case("main", "main", "main"), "track 'main': a branch"),
        ("one app on main", case(api="main"), "flash-api source track 'main': a branch"),
        ("HEAD", case(addon="HEAD"), "keda sources[1] track 'HEAD': a branch"),
        ("refs/heads", case(*["refs/heads/main"] * 3), "a branch"),
        ("branch-like name", case(*["release/2026-12"] * 3), "not a release tag release-YYYY-MM-DD[.N]"),
        ("feature branch", case(*["feature-checkout"] * 3), "not a release tag"),
        ("moving name", case(*["prod"] * 3), "not a release tag"),
        ("semver range", case(*["release-*"] * 3), "not a release tag"),
        ("no such month", case(*["release-2026-13-01"] * 3), "not a release tag"),
        ("full SHA", case(*["3d3c42e5aac5ba805825da76410c181273ba90b1"] * 3), "a commit SHA"),
        ("short SHA", case(*["3d3c42e"] * 3), "a commit SHA"),
        ("no revision", case(*[None] * 3), "track '': a branch (or nothing)"),
        ("two releases", case(api="release-2026-11-20"), "track 2 revisions"),
        ("root behind", case(root="release-2026-11-20"), "flash-root tracks 'release-2026-11-20' but other Applications"),
        ("add-on values on main", case(addon="main"), "not one"),
        ("no root", {"flash-api": _promoted_app("flash-api", tag)}, "no root app-of-apps flash-root"),
    ]
    good = [("one release", case()), ("a second release that day", case(*["release-2026-12-04.2"] * 3))]
    _expect_reports(check, bad, good)


# Every `uses:` of the workflows (and of local composite actions) is pinned to a full commit SHA
# with the version in a trailing comment (`uses: owner/repo@<40 hex> # vX.Y.Z`): a tag or branch
# can be moved to other code under the same name. Local actions (./…) and Docker images pinned by
# digest (docker://…@sha256:…) are the exceptions.
ACTION_PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
DOCKER_PINNED = re.compile(r"^docker://[^@\s]+@sha256:[0-9a-f]{64}$")
VERSION_COMMENT = re.compile(r"#\s*v?\d+\.\d+\.\d+\b")


def workflow_uses(doc):
    """[(where, uses)] of a workflow's jobs (reusable workflows) and steps, or a composite
    action's steps."""
    out = []
    if not isinstance(doc, dict):
        return out
    for job_name, job in (doc.get("jobs") or {}).items():
        if not isinstance(job, dict):
            continue
        if "uses" in job:
            out.append(("job %s" % job_name, job["uses"]))
        for i, step in enumerate(job.get("steps") or []):
            if isinstance(step, dict) and "uses" in step:
                out.append(("job %s step %s" % (job_name, step.get("name") or i + 1), step["uses"]))
    for i, step in enumerate((doc.get("runs") or {}).get("steps") or []):
        if isinstance(step, dict) and "uses" in step:
            out.append(("step %s" % (step.get("name") or i + 1), step["uses"]))
    return out


def workflow_pin_problems(where, text):
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ["%s: YAML error %s" % (where, e)]
    problems = []
    lines = text.splitlines()
    for at, uses in workflow_uses(doc):
        uses = str(uses).strip()
        if uses.startswith("./"):
            continue
        if uses.startswith("docker://"):
            if not DOCKER_PINNED.match(uses):
                problems.append("%s: %s uses %s: a Docker image must be pinned by digest (@sha256:…)" % (where, at, uses))
            continue
        if not ACTION_PINNED.match(uses):
            problems.append("%s: %s uses %s: not pinned to a full 40-hex commit SHA" % (where, at, uses))
            continue
        line_re = re.compile(r"^\s*(-\s+)?uses:\s*['\"]?%s['\"]?\s*(#.*)?$" % re.escape(uses))
        comments = [m.group(2) or "" for m in (line_re.match(l) for l in lines) if m]
        if not comments or not all(VERSION_COMMENT.search(c) for c in comments):
            problems.append("%s: %s uses %s without a trailing `# vX.Y.Z` comment naming the version" % (where, at, uses))
    return problems


def workflow_files():
    pats = [".github/workflows/*.yml", ".github/workflows/*.yaml", ".github/actions/**/action.yml",
            ".github/actions/**/action.yaml", "action.yml", "action.yaml"]
    return sorted({p for pat in pats for p in glob.glob(os.path.join(ROOT, pat), recursive=True)})


@test
def workflow_actions_are_pinned_by_commit():
    """Every `uses:` in .github (workflows, local composite actions) is pinned to a full commit
    SHA with a `# vX.Y.Z` comment; local ./ actions and docker://…@sha256: images excepted."""
    files = workflow_files()
    problems = [] if files else ["no workflow in .github/workflows"]
    for p in files:
        with open(p, encoding="utf-8") as f:
            problems += workflow_pin_problems(rel(p), f.read())
    expect(problems)


@test
def check_rejects_unpinned_actions():
    """workflow_actions_are_pinned_by_commit rejects tags, branches, short SHAs, SHAs without a
    version comment, unpinned reusable workflows and Docker images without a digest."""
    sha = "3d3c42e5aac5ba805825da76410c181273ba90b1"
    def wf(uses, comment=" # v7.0.1", job_level=False):
        if job_level:
            return "on: push\njobs:\n  call:\n    uses: %s%s\n" % (uses, comment)
        return "on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n      - uses: %s%s\n" % (uses, comment)
    check = lambda text: workflow_pin_problems("fixture", text)
    bad = [
        ("major tag", wf("actions/checkout@v4", ""), "uses actions/checkout@v4: not pinned to a full 40-hex commit SHA"),
        ("full tag with comment", wf("actions/checkout@v4.2.2"), "not pinned to a full 40-hex commit SHA"),
        ("branch", wf("actions/checkout@main", ""), "not pinned"),
        ("no ref", wf("actions/checkout", ""), "not pinned"),
        ("short SHA", wf("actions/checkout@3d3c42e"), "not pinned"),
        ("upper-case SHA", wf("actions/checkout@" + sha.upper()), "not pinned"),
        ("SHA without comment", wf("actions/checkout@" + sha, ""), "without a trailing `# vX.Y.Z` comment"),
        ("SHA with a vague comment", wf("actions/checkout@" + sha, " # v7"), "without a trailing `# vX.Y.Z` comment"),
        ("reusable workflow by tag", wf("org/repo/.github/workflows/ci.yml@v1", "", job_level=True), "job call uses"),
        ("Docker image by tag", wf("docker://alpine:3.20", ""), "a Docker image must be pinned by digest"),
        ("Docker digest cut short", wf("docker://alpine@sha256:abc", ""), "a Docker image must be pinned by digest"),
        ("flow style", "on: push\njobs: {b: {runs-on: x, steps: [{uses: actions/cache@v5}]}}\n", "actions/cache@v5: not pinned"),
    ]
    good = [
        ("SHA and version", wf("actions/checkout@" + sha)),
        ("quoted", wf("'actions/checkout@%s'" % sha)),
        ("action in a subfolder", wf("github/codeql-action/init@" + sha, " # v3.29.5")),
        ("reusable workflow by SHA", wf("org/repo/.github/workflows/ci.yml@" + sha, " # v1.0.0", job_level=True)),
        ("local action", wf("./.github/actions/setup", "")),
        ("Docker image by digest", wf("docker://alpine@sha256:" + "0" * 64, "")),
    ]
    _expect_reports(check, bad, good)


# The release workflow builds each image once and pushes it, scans and signs that pushed digest
# (never a second build, never a local copy), with the OIDC token keyless signing needs.
def release_image_problems(where, doc):
    problems = []
    job = ((doc or {}).get("jobs") or {}).get("images")
    if not isinstance(job, dict):
        return ["%s: no job `images`" % where]
    steps = [s for s in job.get("steps") or [] if isinstance(s, dict)]
    text = lambda s: json.dumps(s)
    builds = [s for s in steps if str(s.get("uses", "")).startswith("docker/build-push-action@")]
    if len(builds) != 1:
        problems.append("%s: job images runs docker/build-push-action %d times, not once" % (where, len(builds)))
    build = builds[0] if builds else {}
    w = build.get("with") or {}
    if builds and (str(w.get("push")).lower() != "true" or str(w.get("load", "false")).lower() == "true"):
        problems.append("%s: the one build must push (push: true) and not load a local copy" % where)
    bid = build.get("id")
    scans = [s for s in steps if re.match(r"(aquasecurity/trivy-action|anchore/scan-action)@", str(s.get("uses", "")))]
    if not scans:
        problems.append("%s: job images scans nothing (trivy-action or scan-action)" % where)
    for s in scans:
        ref = str((s.get("with") or {}).get("image-ref") or (s.get("with") or {}).get("image") or "")
        if not ref.endswith("@${{ steps.%s.outputs.digest }}" % bid):
            problems.append("%s: the scan reads %r, not the pushed image by digest (image@${{ steps.%s.outputs.digest }})"
                            % (where, ref, bid))
    order = {id(s): i for i, s in enumerate(steps)}
    signs = [s for s in steps if re.search(r"\bcosign sign\b", str(s.get("run", "")))]
    if not any(str(s.get("uses", "")).startswith("sigstore/cosign-installer@") for s in steps):
        problems.append("%s: job images does not install cosign (sigstore/cosign-installer)" % where)
    if not signs:
        problems.append("%s: job images does not sign the image (cosign sign)" % where)
    for s in signs:
        if "--yes" not in s["run"] or re.search(r"--key\b", s["run"]):
            problems.append("%s: cosign must sign keyless and unattended (--yes, no --key)" % where)
        if ("@${{ steps.%s.outputs.digest }}" % bid) not in text(s):
            problems.append("%s: cosign signs something other than the pushed digest" % where)
        if scans and order[id(s)] < max(order[id(x)] for x in scans):
            problems.append("%s: the image is signed before it is scanned" % where)
    perms = job.get("permissions") or {}
    if perms.get("id-token") != "write":
        problems.append("%s: job images lacks `id-token: write` (keyless signing needs the OIDC token)" % where)
    return problems


@test
def release_builds_once_scans_and_signs_the_pushed_digest():
    """The release workflow's images job builds and pushes each image once, scans the pushed
    image by digest, then signs that digest with cosign keyless (id-token: write)."""
    p = os.path.join(ROOT, ".github", "workflows", "release.yml")
    with open(p, encoding="utf-8") as f:
        expect(release_image_problems(rel(p), yaml.safe_load(f)))


@test
def check_rejects_rebuilt_unscanned_or_unsigned_images():
    """release_builds_once_scans_and_signs_the_pushed_digest rejects a build-then-rebuild, a
    scan of a local image, a missing or key-based signature and a missing id-token."""
    def doc(steps, perms=None):
        return {"jobs": {"images": {"permissions": perms or {"id-token": "write"}, "steps": steps}}}
    build = {"id": "push", "uses": "docker/build-push-action@x", "with": {"push": True}}
    scan = {"uses": "aquasecurity/trivy-action@x", "with": {"image-ref": "${{ env.R }}@${{ steps.push.outputs.digest }}"}}
    inst = {"uses": "sigstore/cosign-installer@x"}
    sign = {"run": 'cosign sign --yes "$R@${{ steps.push.outputs.digest }}"'}
    check = lambda d: release_image_problems("fixture", d)
    bad = [
        ("build, scan locally, rebuild to push",
         doc([dict(build, id="b", **{"with": {"load": True, "push": False}}),
              dict(scan, **{"with": {"image-ref": "flash/api:scan"}}), build, inst, sign]),
         "runs docker/build-push-action 2 times"),
        ("scan of a tag", doc([build, dict(scan, **{"with": {"image-ref": "r/flash/api:sha-1"}}), inst, sign]),
         "not the pushed image by digest"),
        ("no scan", doc([build, inst, sign]), "scans nothing"),
        ("no push", doc([dict(build, **{"with": {"push": False}}), scan, inst, sign]), "must push"),
        ("no signature", doc([build, scan]), "does not sign"),
        ("key-based", doc([build, scan, inst, {"run": "cosign sign --yes --key k.pem $R@${{ steps.push.outputs.digest }}"}]),
         "keyless"),
        ("signs a tag", doc([build, scan, inst, {"run": "cosign sign --yes r/flash/api:sha-1"}]), "other than the pushed digest"),
        ("signed before the scan", doc([build, inst, sign, scan]), "signed before it is scanned"),
        ("no OIDC token", doc([build, scan, inst, sign], perms={"contents": "read"}), "id-token: write"),
    ]
    good = [("build, push, scan, sign", doc([build, scan, inst, sign]))]
    _expect_reports(check, bad, good)


# ----------------------------------------------------------------------------- main
def main(argv):
    os.chdir(ROOT)
    return SUITE.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
