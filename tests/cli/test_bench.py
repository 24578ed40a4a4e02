"""`clawdbot bench`, run as a process against real gateways (`clawdbot serve` over a `type: mock`
service, which answers deterministically in-process); one run in a real terminal (tmux)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clawdbot.cli.bench_load import base_url
from clawdbot.cli.bench_plot import histogram
from clawdbot.cli.bench_stats import pct
from tests.e2e.harness import GatewayProcess, closed_port

MASTER = "sk-bench-test-master-0123456789"
CONFIG = """\
server:
  master_key: ${TEST_MASTER_KEY}
services:
  - name: toy
    type: mock
"""
ROOT = Path(__file__).resolve().parents[2]
SHORT = ("-d", "1", "--warmup", "0.2", "-c", "2")


def start_gateway(d: Path) -> GatewayProcess:
    d.mkdir(parents=True, exist_ok=True)
    (d / "clawdbot.yaml").write_text(CONFIG)
    return GatewayProcess(["serve", "--config", str(d / "clawdbot.yaml")], d / "gateway.log",
                          {"TEST_MASTER_KEY": MASTER}).start()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    d = tmp_path_factory.mktemp("bench")
    a = start_gateway(d / "a")
    try:
        b = start_gateway(d / "b")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


@pytest.fixture()
def gw(gateways: tuple[GatewayProcess, GatewayProcess]) -> GatewayProcess:
    return gateways[0]


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLAWDBOT_") and k != "NO_COLOR"}
    return {**base, "CLAWDBOT_MASTER_KEY": MASTER, **extra}


def bench(*args: str, environ: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clawdbot", "bench", *args], cwd=cwd,
                          env=environ if environ is not None else env(), capture_output=True, text=True, timeout=120)


def bench_json(*args: str) -> tuple[int, dict[str, Any], str]:
    r = bench(*args, "--json")
    return r.returncode, json.loads(r.stdout), r.stderr


def check_sane(t: dict[str, Any]) -> None:
    assert isinstance(t["requests"], int) and t["requests"] > 0
    assert t["errors"] == 0 and t["ok"] == t["requests"], t["first_error"]
    lat = t["latency_ms"]
    assert isinstance(lat, dict)
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert isinstance(t["rps"], float) and t["rps"] > 0
    assert isinstance(t["tokens_per_s"], float) and t["tokens_per_s"] > 0
    assert isinstance(t["elapsed_s"], float) and t["elapsed_s"] >= 0.9
    timeline = t["timeline"]
    assert isinstance(timeline, list) and sum(p["requests"] for p in timeline) == t["ok"]


def test_non_stream_json_has_every_number(gw: GatewayProcess) -> None:
    code, doc, err = bench_json("--url", gw.url, *SHORT)
    assert code == 0, err
    assert doc["ok"] is True and doc["stream"] is False and doc["concurrency"] == 2
    [t] = doc["targets"]
    check_sane(t)
    assert t["model"] == "toy"  # the first id of GET /v1/models
    assert t["ttft_ms"] is None and t["gap_ms"] is None
    # the mock answers "mock reply to: <prompt>", cut at max_tokens: one token a word
    assert t["completion_tokens"] == t["ok"] * 10
    assert doc["ratio"] is None
    assert MASTER not in json.dumps(doc)


def test_stream_measures_ttft_gaps_and_usage_tokens(gw: GatewayProcess) -> None:
    code, doc, err = bench_json("--url", gw.url + "/v1/", *SHORT, "--stream", "--prompt", "one two three",
                                "--max-tokens", "5")
    assert code == 0, err
    [t] = doc["targets"]
    check_sane(t)
    ttft, gap, lat = t["ttft_ms"], t["gap_ms"], t["latency_ms"]
    assert ttft["n"] == t["ok"] and 0 < ttft["p50"] <= ttft["p99"] <= lat["max"]
    assert gap["n"] == t["ok"] * 4  # five content chunks a stream (max_tokens 5): four gaps
    assert 0 <= gap["p50"] <= gap["p99"]
    assert t["completion_tokens"] == t["ok"] * 5  # from the usage chunk


def test_piped_output_is_a_plain_table(gw: GatewayProcess) -> None:
    r = bench("--url", gw.url, *SHORT, "--stream", "--model", "toy")
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("TARGET"))
    assert header.split() == ["TARGET", "REQUESTS", "ERRORS", "RPS", "P50", "P90", "P99", "TOK/S"]
    row = lines[lines.index(header) + 1].split()
    assert row[0] == f"127.0.0.1:{gw.port}" and int(row[1]) > 0 and row[2] == "0"
    assert float(row[3]) > 0 and float(row[4]) <= float(row[6]) and float(row[7]) > 0
    streams = next(line for line in lines if line.startswith("TARGET") and "TTFT" in line)
    assert streams.split() == ["TARGET", "OK", "TTFT", "P50", "TTFT", "P99", "GAP", "P50", "GAP", "P99"]
    row = lines[lines.index(streams) + 1].split()
    assert row[0] == f"127.0.0.1:{gw.port}" and float(row[2]) <= float(row[3])


def test_key_option_overrides_the_environment(tmp_path: Path) -> None:
    """On a gateway of its own: it locks an address out after a run of invalid keys."""
    gw = start_gateway(tmp_path)
    try:
        r = bench("--url", gw.url, *SHORT, "--key", "sk-wrong")
        assert r.returncode == 1
        assert "HTTP 401" in r.stderr and "Traceback" not in r.stderr
        r = bench("--url", gw.url, *SHORT, "--key", "sk-wrong", "--model", "toy", "--json")
    finally:
        gw.stop()
    assert r.returncode == 1
    [t] = json.loads(r.stdout)["targets"]
    assert t["ok"] == 0 and t["errors"] == t["requests"] > 0 and t["first_error"].startswith("HTTP 4")
    # nothing ever succeeded: the run stops early instead of hammering a refusal for the whole duration
    assert t["gave_up"] is True and t["requests"] < 400 and "stopped early" in r.stderr


def test_an_unreachable_url_counts_errors_and_exits_1() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    r = bench("--url", url, "-d", "1", "--warmup", "0", "--model", "m", "--json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    [t] = doc["targets"]
    assert doc["ok"] is False and t["ok"] == 0 and t["errors"] == t["requests"] > 0
    assert "could not connect" in t["first_error"]
    assert f"{url}: {t['errors']} of {t['errors']} requests failed" in r.stderr
    assert "Traceback" not in r.stderr
    # without --model the model list is asked first: the same clear message, no load
    r = bench("--url", url, "-d", "1", "--warmup", "0")
    assert r.returncode == 1 and r.stdout == ""
    assert f"cannot reach {url}: could not connect" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "127.0.0.1:18789", "file:///etc/passwd"])
def test_refuses_a_url_that_is_not_http(url: str) -> None:
    r = bench("--url", url, "-d", "1")
    assert r.returncode == 2 and "http" in r.stderr and "Traceback" not in r.stderr
    r = bench("--compare", url, "-d", "1")
    assert r.returncode == 2


def test_compare_gives_two_rows_and_their_ratio(gateways: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = gateways
    code, doc, err = bench_json("--url", a.url, "--compare", b.url, "-d", "1", "--round", "0.5",
                                "--warmup", "0.2", "-c", "2", "--stream")
    assert code == 0, err
    ta, tb = doc["targets"]
    assert (ta["url"], tb["url"]) == (a.url, b.url)
    check_sane(ta)
    check_sane(tb)
    ratio = doc["ratio"]
    assert isinstance(ratio, dict)
    assert ratio["rps"] == pytest.approx(tb["rps"] / ta["rps"])
    assert ratio["latency_p50"] == pytest.approx(tb["latency_ms"]["p50"] / ta["latency_ms"]["p50"])
    assert ratio["ttft_p50"] is not None and ratio["tokens_per_s"] is not None
    r = bench("--url", a.url, "--compare", b.url, "-d", "1", "--round", "0.5", "--warmup", "0", "-c", "2")
    assert r.returncode == 0, r.stderr
    assert f"A: {a.url} (toy) vs B: {b.url} (toy)" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines() if line.startswith(("A ", "B ", "ratio B/A"))]
    assert [row[0] for row in rows] == ["A", "B", "ratio"]
    assert int(rows[0][1]) > 0 and int(rows[1][1]) > 0 and rows[0][2] == rows[1][2] == "0"
    assert rows[2][2].endswith("x") and float(rows[2][2][:-1]) > 0  # the RPS ratio


def test_plot_html_is_self_contained_svg(gw: GatewayProcess, tmp_path: Path) -> None:
    out = tmp_path / "bench.html"
    r = bench("--url", gw.url, *SHORT, "--plot", str(out))
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    svgs = re.findall(r"<svg.*?</svg>", text, re.S)
    assert len(svgs) == 3 and "<rect" in svgs[0] and "<polyline" in svgs[1] and "<polyline" in svgs[2]
    for svg in svgs:  # well-formed XML, as a browser's SVG parser needs
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script" not in text and "src=" not in text and "href=" not in text
    assert f"plot: {out}" in r.stdout


def test_plot_png(gw: GatewayProcess, tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed (the `plot` extra)")
    out = tmp_path / "bench.png"
    r = bench("--url", gw.url, *SHORT, "--plot", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_plot_refuses_an_unknown_format_before_loading(tmp_path: Path) -> None:
    r = bench("--url", f"http://127.0.0.1:{closed_port()}", "--plot", str(tmp_path / "out.svg"))
    assert r.returncode == 2 and ".html" in r.stderr and ".png" in r.stderr
    assert not (tmp_path / "out.svg").exists()


def test_helpers() -> None:
    assert base_url("http://h:1/v1/") == "http://h:1" and base_url("https://h/p/v1") == "https://h/p"
    with pytest.raises(ValueError):
        base_url("unix:///tmp/sock")
    assert [pct([1.0, 2.0, 3.0, 4.0], p) for p in (25, 50, 99, 100)] == [1.0, 2.0, 4.0, 4.0]
    assert histogram([0.0, 0.5, 1.0, 9.99, 10.0], 0.0, 10.0, bins=10) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]


def test_in_a_terminal_draws_a_progress_bar_and_a_table(gw: GatewayProcess) -> None:
    socket = f"clawdbot-bench-{os.getpid()}"
    cmd = " ".join(shlex.quote(a) for a in [
        "env", "-u", "NO_COLOR", "-u", "CLAWDBOT_URL", "-u", "COLUMNS", "-u", "LINES",
        f"CLAWDBOT_MASTER_KEY={MASTER}", "TERM=xterm-256color",
        sys.executable, "-m", "clawdbot", "bench", "--url", gw.url, "-d", "2", "--warmup", "0.5", "-c", "2",
        "--stream"])
    # the pane stays open after the run (read waits for input that never comes) so its screen can be read
    script = f"cd {shlex.quote(str(ROOT))} && {cmd}; echo BENCH-EXIT=$?; read never"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10).stdout

    subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", "100",
                    "-y", "40", script], check=True, timeout=10)
    screens: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screens.append(tmux("capture-pane", "-p", "-t", "bench"))
            if "BENCH-EXIT=" in screens[-1]:
                break
            time.sleep(0.05)  # polling the screen, with a deadline
        final = screens[-1]
        assert "BENCH-EXIT=0" in final, final
    finally:
        tmux("kill-server")
    # the bar, while it ran or as it was left at the end: rich's bar glyphs and the phase's counts
    drawn = [s for s in screens if "━" in s and " ok, 0 errors" in s]
    assert drawn, screens[-1]
    assert "100%" in final, final
    tables = final.split("REQUESTS", 1)[1]
    for col in ("ERRORS", "RPS", "P50", "P99", "TOK/S", "TTFT P50", "GAP P99"):
        assert col in tables, final
    assert f"127.0.0.1:{gw.port}" in tables and "…" not in tables  # nothing cut at 100 columns
