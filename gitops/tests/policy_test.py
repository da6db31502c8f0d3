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
Dockerfiles' pinned bases, and the release workflow's image rewrite. Prints one line per
failed check and ends with `N passed, M failed`; exit status 1 on any failure.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

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


def rendered():
    """{overlay dir: [objects]} of every overlay, rendered once."""
    if not _RENDERED:
        for d in overlays():
            _RENDERED[d] = kustomize(d)
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


class Failures(Exception):
    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


def expect(problems):
    if problems:
        raise Failures(problems)


# ----------------------------------------------------------------------------- tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def every_overlay_renders():
    """Every overlay renders with kubectl kustomize and holds objects."""
    problems = ["%s renders no object" % rel(d) for d, objs in rendered().items() if not objs]
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
OUTSIDE = ("up", "kube_", "container_", "keda_", "nginx_")
CLUSTER_SCOPED = {"Namespace", "StorageClass", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "ClusterSecretStore", "NodePool", "EC2NodeClass", "IngressClass", "PriorityClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService"}


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
    for d, objs in rendered().items():
        if not rel(d).startswith("argocd/envs/"):
            continue
        env = env_of(d)
        projects = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "AppProject"}
        apps = {o["metadata"]["name"]: o for o in objs if o.get("kind") == "Application"}
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


# ----------------------------------------------------------------------------- main
def main(argv):
    ap = argparse.ArgumentParser(description="Policy tests of gitops/ and argocd/.")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing tests too")
    ap.add_argument("-k", dest="pattern", help="run only tests whose name contains this")
    a = ap.parse_args(argv)
    os.chdir(ROOT)
    passed = failed = 0
    for fn in TESTS:
        if a.pattern and a.pattern not in fn.__name__:
            continue
        try:
            fn()
        except Failures as e:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, (fn.__doc__ or "").strip().splitlines()[0]))
            for p in e.problems:
                print("  - " + p)
        except AssertionError as e:
            failed += 1
            print("FAIL %s: %s" % (fn.__name__, e))
        except Exception as e:  # a broken manifest must fail the test, not the runner
            failed += 1
            print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e))
        else:
            passed += 1
            if a.verbose:
                print("ok   %s" % fn.__name__)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
