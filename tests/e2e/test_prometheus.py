"""A real Prometheus server (Debian's `prometheus`, installed by scripts/ensure-services.sh) scrapes
a gateway twice over: on the loopback `--metrics-port` without a key and on the main port with the
master key. Its query API must return the gateway's request count, and every query of the Grafana
dashboard in deploy/grafana/ must name metrics the gateway exports and evaluate on the real server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import GatewayProcess, free_port, serve_config
from tests.e2e.test_metrics import samples, scrape_text
from tests.e2e.test_metrics_outcomes import MASTER, config, send_everything
from tests.upstreams.openai_server import OpenAIUpstream

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "clawdbot-dashboard.json"
METRIC = re.compile(r"\b(?:gen_ai|clawdbot|process)_[a-z0-9_]+\b")
# what is not a metric name: label matchers, and the label lists of by/without/on/ignoring
LABELS = re.compile(r"\{[^}]*\}|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# the dashboard's variables, as Grafana would fill them in
VARIABLES = {"$__rate_interval": "1m", "$instance": ".*", "$model": ".*"}


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    # label_values(metric, label): the metric only
    exprs += [v["query"]["query"].split(",")[0] + ")" for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


class Prometheus:
    def __init__(self, tmp: Path, targets: dict[str, tuple[int, str | None]]) -> None:
        self.port = free_port()
        jobs = []
        for job, (port, key) in targets.items():
            auth = f"\n    authorization: {{credentials: {key}}}" if key else ""
            jobs.append(f"  - job_name: {job}\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]{auth}")
        conf = tmp / "prometheus.yml"
        conf.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
                        + "\n".join(jobs) + "\n")
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.wait(lambda: self._get("/-/ready") is not None, "ready")

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                data: bytes = r.read()
                return data
        except OSError:
            return None

    def query(self, expr: str) -> dict[str, Any]:
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert data is not None, f"query failed: {expr}"
        out: dict[str, Any] = json.loads(data)
        return out

    def value(self, expr: str) -> float | None:
        result = self.query(expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait(self, done: Any, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}"
            assert time.monotonic() < deadline, f"prometheus: not {what} after {timeout}s"
            time.sleep(0.2)  # polling the server's state, not synchronising on a guess

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory,
          openai_upstream: OpenAIUpstream) -> Iterator[tuple[GatewayProcess, Prometheus]]:
    assert shutil.which("prometheus"), "Debian's prometheus is missing: run scripts/ensure-services.sh"
    tmp = tmp_path_factory.mktemp("prometheus")
    metrics_port = free_port()
    gw = serve_config(tmp, config(openai_upstream), MASTER)
    gw.args += ["--metrics-port", str(metrics_port)]
    with gw:
        prom = Prometheus(tmp, {"clawdbot-port": (metrics_port, None), "clawdbot-auth": (gw.port, MASTER)})
        try:
            yield gw, prom
        finally:
            prom.stop()


def test_prometheus_scrapes_the_request_count(fleet: tuple[GatewayProcess, Prometheus]) -> None:
    gw, prom = fleet
    send_everything(gw)
    ok = 'model="chat-oa", status="200"'
    want = sum(v for (name, labels), v in samples(scrape_text(gw)).items()
               if name == "clawdbot_requests_total" and {("model", "chat-oa"), ("status", "200")} <= labels)
    assert want == 3  # the stream, the masked prompt, the tight key's first
    for job in ("clawdbot-port", "clawdbot-auth"):
        expr = f'sum(clawdbot_requests_total{{job="{job}", {ok}}})'
        prom.wait(lambda expr=expr: prom.value(expr) == want, f"showing {want} requests for {job}")
    targets = json.loads(prom._get("/api/v1/targets") or b"{}")["data"]["activeTargets"]
    assert {t["labels"]["job"]: t["health"] for t in targets} == {"clawdbot-port": "up", "clawdbot-auth": "up"}


def test_dashboard_queries_name_exported_metrics(fleet: tuple[GatewayProcess, Prometheus]) -> None:
    gw, _ = fleet
    send_everything(gw)  # every family has samples
    exported = {name for name, _ in samples(scrape_text(gw))}
    queries = dashboard_queries()
    assert len(queries) >= 20
    for expr in queries:
        names = set(METRIC.findall(LABELS.sub(" ", expr)))
        assert names, f"a dashboard query names no gateway metric: {expr}"
        assert names <= exported, f"not exported: {sorted(names - exported)} in {expr}"


def test_dashboard_queries_evaluate_on_prometheus(fleet: tuple[GatewayProcess, Prometheus]) -> None:
    gw, prom = fleet
    send_everything(gw)
    # two scrapes after the traffic: every rate() has two points in its window
    latest = 'max(timestamp(clawdbot_requests_total{job="clawdbot-port"}))'
    prom.wait(lambda: prom.value(latest) is not None, "scraping")
    start = prom.value(latest) or 0.0
    prom.wait(lambda: (prom.value(latest) or 0.0) >= start + 2, "two scrapes further")
    empty = []
    for q in dashboard_queries():
        if q.startswith("label_values("):
            continue  # Grafana's own function: checked above, not PromQL
        out = prom.query(fill(q))
        assert out["status"] == "success", (q, out)
        if not out["data"]["result"]:
            empty.append(q)
    # every panel shows data after that traffic, except the ones only failures fill
    assert all("clawdbot_service_errors_total" in q or "status=~\"5" in q for q in empty), empty
