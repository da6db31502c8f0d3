#!/usr/bin/env python3
"""The alerting rules and dashboards on a real Prometheus and Alertmanager, against the suite's
real processes (make alerts, part of make test).

    python3 gitops/tests/live_alerts_test.py [--bin DIR] [--factor 30] [--keep]

Starts, on free loopback ports and all of its own: a redis-server (never the shared one), a
Postgres database and RabbitMQ names of its own on the shared servers, the api, two gateways
and the pay worker (binaries from --bin, default target/debug), Debian's `prometheus` and
`prometheus-alertmanager`, a webhook receiver and a stand-in for KEDA's RabbitMQ scaler metric.
Prometheus scrapes the services every second and evaluates the repository's recording and
alerting rules (gitops/platform/monitoring/base/rules) with every duration divided by --factor
(scripts/prom_scale.py, which also checks that the scaled copy is otherwise the original);
Alertmanager routes with the repository's routing (gitops/addons/kube-prometheus-stack/
values.yaml), its timings scaled alike, each receiver a webhook to this process. Then:

  1. a small drill (flash-drill burst) passes, every dashboard query that does not need the
     cluster returns data during it, and no page that must stay silent on a healthy sale fires;
  2. the pay worker stops while a second drill's orders arrive: FlashServiceDown{job=flash-pay}
     and FlashPaymentQueueStalled page; it starts again: both resolve, and the drill passes
     (every accepted order paid or declined, none lost);
  3. every gateway stops: FlashServiceDown{job=flash-gateway} pages, and resolves once they are
     back;
  4. Redis stops while buyers poll: FlashErrorBudgetBurnFast{slo=gateway-availability} pages,
     and resolves once Redis is back.

"Pages" means the alert reached Alertmanager (its API lists it) and was delivered to the
receivers its route names (pagerduty-flash and slack-flash for critical alerts); "resolves",
that the resolved notification was delivered. What needs a cluster is left out and said so:
kube-state-metrics, cAdvisor and the nginx exporter series (kube_*, container_*, nginx_*), the
blackbox probe, and KEDA itself (its scaler metric is served here from the queue's depth, read
with a passive declare as KEDA's AMQP mode does). Exit status 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import yaml  # noqa: E402

import prom_scale  # noqa: E402

DASHBOARDS = ROOT / "gitops/platform/monitoring/base/dashboards"
# Series only a cluster has: kube-state-metrics, cAdvisor, the nginx exporter of flash-web.
CLUSTER_ONLY = re.compile(r"\b(kube_|container_|nginx_)[a-z_]+")
NAMESPACE = "flash-tickets"
ADMIN_EMAIL = "alerts-admin@flash.local"
ADMIN_PASSWORD = "alerts-admin-local"
# Critical alerts a healthy sale here may show: what needs the cluster (flash-web's nginx, the
# public probe), and latency budgets, which a debug build on a shared 2-core machine may burn.
ALLOWED_WHEN_HEALTHY = (
    {"alertname": "FlashServiceDown", "job": "flash-web"},
    {"alertname": "FlashPublicProbeFailing"},
    {"alertname": "FlashErrorBudgetBurnFast", "slo": "api-latency"},
    {"alertname": "FlashErrorBudgetBurnFast", "slo": "gateway-latency"},
)
FIRE_WITHIN_S = 120
RESOLVE_WITHIN_S = 150


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] live-alerts: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, check: Callable[[], Any], within: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + within
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as error:  # noqa: BLE001 - a store or service still starting
            last_error = error
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {within:.0f}s" + (f" (last error: {last_error})" if last_error else ""))


def call(method: str, url: str, body: Any = None, token: str | None = None,
         timeout: float = 5) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready_url: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        handle.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
        handle.flush()
        self.popen = subprocess.Popen(self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()

    def wait_ready(self, within: float = 90) -> None:
        def ready() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}; log {self.log}")
            if self.ready_url is None:
                return True
            return call("GET", self.ready_url, timeout=2)[0] == 200

        wait_until(f"{self.name} ready", ready, within, 0.2)

    def stop(self, sig: int = signal.SIGTERM, within: float = 20) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, sig)
            self.popen.wait(within)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Webhook:
    """Alertmanager's receivers: every notification, by receiver."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notes: list[tuple[str, str, dict[str, str]]] = []  # receiver, status, labels
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    payload = {}
                receiver = self.path.strip("/")
                with hook.lock:
                    for alert in payload.get("alerts") or []:
                        hook.notes.append((receiver, alert.get("status", ""), alert.get("labels") or {}))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self, receiver: str, status: str, match: dict[str, str], since: int = 0) -> bool:
        with self.lock:
            return any(r == receiver and s == status and matches(labels, match)
                       for r, s, labels in self.notes[since:])

    def mark(self) -> int:
        with self.lock:
            return len(self.notes)


def matches(labels: dict[str, str], match: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in match.items())


class KedaStandIn:
    """keda_scaler_metrics_value of the ScaledObject flash-pay: the depth of pay.requests,
    read with a passive declare at each scrape (what KEDA's RabbitMQ scaler reports)."""

    def __init__(self, amqp_url: str, queue: str) -> None:
        import pika  # the validate venv has it (scripts/venv.sh)

        self.pika = pika
        self.params = pika.URLParameters(amqp_url)
        self.queue = queue
        self.lock = threading.Lock()
        self.connection: Any = None
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                depth = stand_in.depth()
                body = b""
                if depth is not None:
                    body = (
                        "# TYPE keda_scaler_metrics_value gauge\n"
                        f'keda_scaler_metrics_value{{namespace="{NAMESPACE}",scaledObject="flash-pay",'
                        f'scaler="rabbitMQScaler",metric="s0-rabbitmq-{stand_in.queue}"}} {depth}\n'
                    ).encode()
                self.send_response(200 if depth is not None else 503)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def depth(self) -> int | None:
        with self.lock:
            for _ in range(2):
                try:
                    if self.connection is None or self.connection.is_closed:
                        self.connection = self.pika.BlockingConnection(self.params)
                    channel = self.connection.channel()
                    try:
                        return channel.queue_declare(self.queue, passive=True).method.message_count
                    finally:
                        if channel.is_open:
                            channel.close()
                except Exception:  # noqa: BLE001 - the queue not declared yet, or the broker away
                    self.connection = None
            return None


# --------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    bin: Path
    factor: int
    work: Path
    run: str = field(default_factory=lambda: f"alerts{uuid.uuid4().hex[:10]}")
    procs: dict[str, Proc] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = re.sub(r"^(postgres(?:ql)?://[^/?]*).*$", r"\1",
                        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432"))
        self.pg_server = server
        self.database_url = f"{server}/{self.run}"
        self.amqp_url = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        self.redis_port = free_port()
        self.api = f"127.0.0.1:{free_port()}"
        self.gateways = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        self.pay_ops = f"127.0.0.1:{free_port()}"
        self.prometheus = f"127.0.0.1:{free_port()}"
        self.alertmanager = f"127.0.0.1:{free_port()}"
        self.webhook = Webhook()
        self.keda = KedaStandIn(self.amqp_url, f"{self.run}.pay.requests")

    # ---- processes

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LIMIT_", "ARGON2_"))}
        env.update({
            "DATABASE_URL": self.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "AMQP_URL": self.amqp_url,
            "AMQP_NAME_PREFIX": f"{self.run}.",
            "REDIS_KEY_PREFIX": f"{self.run}:",
            "FLASH_DEV_KEYS": "true",
            "ARGON2_MEMORY_KIB": "1024",
            "ARGON2_ITERATIONS": "1",
            "FLASH_ADMIN_EMAIL": ADMIN_EMAIL,
            "FLASH_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "RUST_LOG": "warn",
            "SHUTDOWN_GRACE_SECS": "2",
            "PAY_LATENCY_P50_MS": "20",
            "PAY_LATENCY_P99_MS": "80",
        })
        env.update(extra)
        return env

    def add(self, name: str, argv: list[str], env: dict[str, str], ready_url: str | None) -> Proc:
        proc = Proc(name, argv, env, self.work / f"{name}.log", ready_url)
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        say(f"run {self.run}: redis :{self.redis_port}, api {self.api}, gateways {', '.join(self.gateways)}, "
            f"pay {self.pay_ops}, prometheus {self.prometheus}, alertmanager {self.alertmanager}")
        redis = self.add("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
                                   "--save", "", "--appendonly", "no"], dict(os.environ), None)
        redis.start()
        wait_until("redis answers", lambda: socket.create_connection(("127.0.0.1", self.redis_port), 1).close() or True, 30)
        migrate = subprocess.run([str(self.bin / "flash-api"), "migrate"], env=self.env(),
                                 capture_output=True, text=True, timeout=120)
        if migrate.returncode != 0:
            raise RuntimeError(f"flash-api migrate failed: {migrate.stderr[-2000:]}")
        self.add("api", [str(self.bin / "flash-api")], self.env(API_ADDR=self.api), f"http://{self.api}/ready")
        for i, addr in enumerate(self.gateways):
            self.add(f"gateway-{i}", [str(self.bin / "flash-gateway")],
                     self.env(GATEWAY_ADDR=addr, WS_DRAIN_MS="200"), f"http://{addr}/ready")
        self.add("pay", [str(self.bin / "flash-pay")], self.env(PAY_OPS_ADDR=self.pay_ops),
                 f"http://{self.pay_ops}/ready")
        for name in ("api", "gateway-0", "gateway-1", "pay"):
            self.procs[name].start()
        for name in ("api", "gateway-0", "gateway-1", "pay"):
            self.procs[name].wait_ready()
        self.start_monitoring()

    def start_monitoring(self) -> None:
        problems = prom_scale.write(self.work, self.factor, f"http://127.0.0.1:{self.webhook.port}")
        if problems:
            raise RuntimeError("scaled rules: " + "; ".join(problems))
        say(f"rules and routing scaled by 1/{self.factor}: {self.work / 'rules.yaml'}, {self.work / 'alertmanager.yaml'}")

        def target(addr: str, pod: str) -> dict[str, Any]:
            return {"targets": [addr], "labels": {"namespace": NAMESPACE, "pod": pod}}

        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
            "rule_files": [str(self.work / "rules.yaml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager]}]}]},
            "scrape_configs": [
                {"job_name": "flash-api", "static_configs": [target(self.api, "flash-api-0")]},
                {"job_name": "flash-gateway", "static_configs": [
                    target(addr, f"flash-gateway-{i}") for i, addr in enumerate(self.gateways)]},
                {"job_name": "flash-pay", "static_configs": [target(self.pay_ops, "flash-pay-0")]},
                {"job_name": "keda-operator", "static_configs": [
                    target(f"127.0.0.1:{self.keda.port}", "keda-operator-0")]},
            ],
        }
        (self.work / "prometheus.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        prometheus = shutil.which(os.environ.get("PROMETHEUS", "prometheus"))
        alertmanager = shutil.which(os.environ.get("ALERTMANAGER", "prometheus-alertmanager")) or shutil.which("alertmanager")
        if not prometheus or not alertmanager:
            raise RuntimeError("prometheus and prometheus-alertmanager are needed (make deps installs "
                               "Debian's packages; or set PROMETHEUS and ALERTMANAGER)")
        self.add("alertmanager", [alertmanager, f"--config.file={self.work / 'alertmanager.yaml'}",
                                  f"--storage.path={self.work / 'am-data'}",
                                  f"--web.listen-address={self.alertmanager}", "--cluster.listen-address="],
                 dict(os.environ), f"http://{self.alertmanager}/-/ready").start()
        self.add("prometheus", [prometheus, f"--config.file={self.work / 'prometheus.yaml'}",
                                f"--storage.tsdb.path={self.work / 'prom-data'}",
                                f"--web.listen-address={self.prometheus}",
                                "--storage.tsdb.retention.time=2h", "--rules.alert.resend-delay=1s"],
                 dict(os.environ), f"http://{self.prometheus}/-/ready").start()
        self.procs["alertmanager"].wait_ready(60)
        self.procs["prometheus"].wait_ready(60)

        def all_up() -> bool:
            result = self.query('count(up{job=~"flash-.*|keda-operator"} == 1)')
            return bool(result) and float(result[0]["value"][1]) == 5

        wait_until("Prometheus scrapes the 5 targets", all_up, 60)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        self.webhook.server.shutdown()
        self.keda.server.shutdown()
        subprocess.run(["psql", f"{self.pg_server}/postgres", "-qc",
                        f'DROP DATABASE IF EXISTS "{self.run}" WITH (FORCE)'],
                       capture_output=True, timeout=60)
        subprocess.run([str(self.bin / "flash-drill"), "clean-broker", "--amqp-name-prefix", f"{self.run}."],
                       env=self.env(), capture_output=True, timeout=60)

    # ---- Prometheus and Alertmanager

    def query(self, promql: str) -> list[Any]:
        status, body = call("GET", f"http://{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if status != 200:
            raise RuntimeError(f"query {promql!r}: {status} {body}")
        return body["data"]["result"]

    def query_range(self, promql: str, start: float, end: float) -> list[Any]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
        status, body = call("GET", f"http://{self.prometheus}/api/v1/query_range?" + urllib.parse.urlencode(params),
                            timeout=30)
        if status != 200:
            raise RuntimeError(f"{status} {body}")
        return body["data"]["result"]

    def alertmanager_alerts(self, match: dict[str, str]) -> list[Any]:
        status, body = call("GET", f"http://{self.alertmanager}/api/v2/alerts?active=true")
        if status != 200:
            raise RuntimeError(f"Alertmanager alerts: {status} {body}")
        return [a for a in body if matches(a.get("labels") or {}, match)]

    def check(self, ok: bool, what: str) -> bool:
        say(("ok    " if ok else "FAIL  ") + what)
        if not ok:
            self.failures.append(what)
        return ok

    def expect_page(self, match: dict[str, str], since: int, receivers: tuple[str, ...]) -> bool:
        name = ",".join(f"{k}={v}" for k, v in match.items())
        try:
            wait_until(f"{name} firing in Alertmanager", lambda: self.alertmanager_alerts(match), FIRE_WITHIN_S)
            wait_until(f"{name} delivered", lambda: all(self.webhook.seen(r, "firing", match, since) for r in receivers),
                       FIRE_WITHIN_S)
        except TimeoutError as error:
            return self.check(False, f"{name} pages ({error})")
        return self.check(True, f"{name} reached Alertmanager and was delivered to {', '.join(receivers)}")

    def expect_resolved(self, match: dict[str, str], since: int, receiver: str) -> bool:
        name = ",".join(f"{k}={v}" for k, v in match.items())
        try:
            wait_until(f"{name} resolved", lambda: self.webhook.seen(receiver, "resolved", match, since)
                       and not self.alertmanager_alerts(match), RESOLVE_WITHIN_S)
        except TimeoutError as error:
            return self.check(False, f"{name} resolves ({error})")
        return self.check(True, f"{name} resolved (delivered to {receiver})")

    # ---- load

    def drill(self, name: str, users: int, tickets: int) -> subprocess.Popen[bytes]:
        argv = [str(self.bin / "flash-drill"), "burst", "--quiet",
                "--api", self.api, "--gateway", ",".join(self.gateways),
                "--database-url", self.database_url, "--redis-url", f"redis://127.0.0.1:{self.redis_port}",
                "--admin-email", ADMIN_EMAIL, "--admin-password", ADMIN_PASSWORD,
                "--users", str(users), "--tickets", str(tickets), "--run", f"{self.run}{name}",
                "--slo-join-p99-ms", "20000", "--slo-order-p99-ms", "20000",
                "--final-within-secs", "240", "--json", str(self.work / f"{name}.json")]
        log = (self.work / f"{name}.log").open("wb")
        return subprocess.Popen(argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_drill(self, name: str, drill: subprocess.Popen[bytes], within: float = 400) -> bool:
        try:
            code = drill.wait(within)
        except subprocess.TimeoutExpired:
            drill.kill()
            code = -1
        ok = self.check(code == 0, f"drill {name} passed (exit {code})")
        if not ok:
            print((self.work / f"{name}.log").read_text(errors="replace")[-4000:])
        return ok


# --------------------------------------------------------------------------- the checks


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, expr) of every target of every dashboard."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        panels = list(board.get("panels") or [])
        while panels:
            panel = panels.pop(0)
            panels.extend(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    out.append((path.name, panel.get("title", "?"), target["expr"]))
    return out


def check_dashboards(rig: Rig, start: float, end: float) -> None:
    status, body = call("GET", f"http://{rig.prometheus}/api/v1/label/service/values?match[]=http_requests_total")
    services = body["data"] if status == 200 else []
    rig.check({"api", "gateway"} <= set(services), f"label_values(http_requests_total, service) = {services}")
    events = rig.query_range("count by (event) (gateway_queue_waiting)", start, end)
    event_values = sorted({r["metric"].get("event", "") for r in events} - {""})
    rig.check(bool(event_values), f"label_values(gateway_queue_waiting, event) = {event_values}")
    event_regex = "(" + "|".join(event_values) + ")" if event_values else ".*"  # ids: [0-9a-f-]
    asked = empty = skipped = 0
    for board, panel, expr in dashboard_queries():
        if CLUSTER_ONLY.search(expr):
            skipped += 1
            continue
        for service in (services if "$service" in expr else [None]):
            promql = (expr.replace("$__rate_interval", "10s").replace("$__interval", "1s")
                      .replace("$__range", f"{int(end - start) + 1}s").replace("$event", event_regex))
            if service is not None:
                promql = promql.replace("$service", service)
            asked += 1
            try:
                result = rig.query_range(promql, start, end)
            except RuntimeError as error:
                rig.check(False, f"{board} / {panel}: {promql}: {error}")
                continue
            if not any(series.get("values") for series in result):
                empty += 1
                rig.check(False, f"{board} / {panel}: no data for {promql}")
    rig.check(empty == 0, f"dashboards: {asked - empty} of {asked} queries returned data during the drill "
                          f"({skipped} need the cluster: kube_*, container_*, nginx_*)")


def check_quiet(rig: Rig) -> None:
    status, body = call("GET", f"http://{rig.alertmanager}/api/v2/alerts?active=true")
    critical = [a["labels"] for a in body or [] if a.get("labels", {}).get("severity") == "critical"]
    unexpected = [labels for labels in critical
                  if not any(matches(labels, allowed) for allowed in ALLOWED_WHEN_HEALTHY)]
    rig.check(not unexpected, "no page on a healthy sale" + (f": {unexpected}" if unexpected else ""))


class Pollers:
    """Buyers polling their place on every gateway, about 20 requests a second in all."""

    def __init__(self, rig: Rig, event_id: str, tokens: list[str]) -> None:
        self.stop = threading.Event()
        self.codes: dict[int, int] = {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(rig, event_id, token, gateway), daemon=True)
                        for token in tokens for gateway in rig.gateways]
        for thread in self.threads:
            thread.start()

    def loop(self, rig: Rig, event_id: str, token: str, gateway: str) -> None:
        while not self.stop.is_set():
            try:
                code, _ = call("GET", f"http://{gateway}/queue/v1/events/{event_id}/status", token=token, timeout=3)
            except OSError:
                code = 0
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1
            self.stop.wait(0.2)

    def finish(self) -> dict[int, int]:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        return dict(sorted(self.codes.items()))


def buyers(rig: Rig, count: int) -> tuple[str, list[str]]:
    """An open sale, and `count` buyers in its queue (their access tokens)."""
    _, login = call("POST", f"http://{rig.api}/api/v1/auth/login", {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
    admin = login["access_token"]
    now = time.time()
    event = {
        "name": "Alerts test", "venue": "Loopback", "price_cents": 1000, "currency": "EUR",
        "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86_400)),
        "sale_opens_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
        "inventory": 10, "max_per_user": 1,
        "queue": {"admit_per_sec": 1, "max_active": 1, "admission_ttl_s": 60},
    }
    status, created = call("POST", f"http://{rig.api}/api/v1/admin/events", event, token=admin)
    if status != 201:
        raise RuntimeError(f"creating the event: {status} {created}")
    event_id = created["id"]
    tokens = []
    for i in range(count):
        email = f"poller{i}-{rig.run}@flash.local"
        status, body = call("POST", f"http://{rig.api}/api/v1/auth/register", {"email": email, "password": "poller-password"})
        if status != 201:
            raise RuntimeError(f"register: {status} {body}")
        _, login = call("POST", f"http://{rig.api}/api/v1/auth/login", {"email": email, "password": "poller-password"})
        tokens.append(login["access_token"])

    def joined() -> bool:
        return all(call("POST", f"http://{rig.gateways[0]}/queue/v1/events/{event_id}/join", token=t)[0] == 200
                   for t in tokens)

    wait_until("pollers join the queue", joined, 30, 1)
    return event_id, tokens


CRITICAL_RECEIVERS = ("pagerduty-flash", "slack-flash")


def run(rig: Rig) -> None:
    rig.start_all()

    say("1. a small drill: dashboards have data, no page")
    start = time.time()
    first = rig.drill("drill-healthy", users=300, tickets=100)
    rig.wait_drill("drill-healthy", first)
    end = time.time()
    time.sleep(3)
    check_dashboards(rig, start, end + 3)
    time.sleep(15)  # long enough for any `for:` to run out on what the sale left behind
    check_quiet(rig)

    say("2. the pay worker stops while orders arrive")
    match_down = {"alertname": "FlashServiceDown", "job": "flash-pay"}
    match_stalled = {"alertname": "FlashPaymentQueueStalled"}
    mark = rig.webhook.mark()
    rig.procs["pay"].stop()
    second = rig.drill("drill-without-pay", users=200, tickets=60)
    rig.expect_page(match_down, mark, CRITICAL_RECEIVERS)
    rig.expect_page(match_stalled, mark, CRITICAL_RECEIVERS)
    mark = rig.webhook.mark()
    rig.procs["pay"].start()
    rig.procs["pay"].wait_ready()
    rig.expect_resolved(match_down, mark, "pagerduty-flash")
    rig.expect_resolved(match_stalled, mark, "pagerduty-flash")
    rig.wait_drill("drill-without-pay", second)

    say("3. every gateway stops")
    match = {"alertname": "FlashServiceDown", "job": "flash-gateway"}
    mark = rig.webhook.mark()
    for i in range(len(rig.gateways)):
        rig.procs[f"gateway-{i}"].stop()
    rig.expect_page(match, mark, CRITICAL_RECEIVERS)
    mark = rig.webhook.mark()
    for i in range(len(rig.gateways)):
        rig.procs[f"gateway-{i}"].start()
    for i in range(len(rig.gateways)):
        rig.procs[f"gateway-{i}"].wait_ready()
    rig.expect_resolved(match, mark, "pagerduty-flash")

    say("4. Redis stops while buyers poll")
    match = {"alertname": "FlashErrorBudgetBurnFast", "slo": "gateway-availability"}
    event_id, tokens = buyers(rig, 3)
    pollers = Pollers(rig, event_id, tokens)
    time.sleep(5)
    mark = rig.webhook.mark()
    rig.procs["redis"].stop(signal.SIGKILL)
    rig.expect_page(match, mark, CRITICAL_RECEIVERS)
    mark = rig.webhook.mark()
    rig.procs["redis"].start()
    rig.expect_resolved(match, mark, "pagerduty-flash")
    codes = pollers.finish()
    rig.check(any(code >= 500 for code in codes), f"the pollers saw the outage: answers by status {codes}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=ROOT / "target/debug")
    parser.add_argument("--factor", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = parser.parse_args(argv)
    for tool in ("flash-api", "flash-gateway", "flash-pay", "flash-drill"):
        if not (args.bin / tool).exists():
            print(f"live-alerts: {args.bin / tool} is missing (cargo build --bins)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="flash-live-alerts-"))
    try:
        rig = Rig(args.bin, args.factor, work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    started = time.monotonic()
    try:
        run(rig)
    except Exception as error:  # noqa: BLE001 - reported with the logs, then cleaned up
        traceback.print_exc()
        rig.failures.append(f"{type(error).__name__}: {error}")
    finally:
        if rig.failures:
            for proc in rig.procs.values():
                print(f"--- {proc.name} ({proc.log}), last lines:\n{proc.tail()}")
        rig.stop_all()
        if args.keep or rig.failures:
            say(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    if rig.failures:
        say(f"{len(rig.failures)} failed in {took:.0f}s: " + "; ".join(rig.failures))
        return 1
    say(f"passed in {took:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
