"""The session-end leak scan, as a pytest plugin (tests/conftest.py loads it; `-p no:tests.secrets.plugin`
turns it off). From the start of the session it collects (tests/secrets/collect.py, taps.py,
gateways.py); when the session finishes it searches everything collected for every secret the
session used (scan.py) and fails the run, naming each leak's source and line, if anything matched.
The report also goes to test-artifacts/secrets-leaks.txt (`--secrets-report`)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.secrets import taps
from tests.secrets.collect import Collector, activated
from tests.secrets.scan import Checker, Leak, report

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class _Session:
    def __init__(self) -> None:
        self.collector = Collector(Path(tempfile.mkdtemp(prefix="clawdbot-secrets-")))
        self.records = taps.LogRecords()
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(activated(self.collector))
        self.stack.callback(taps.install(self.records))
        self.leaks: list[Leak] = []
        self.scanned = False


_KEY = pytest.StashKey[_Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--secrets-keep", action="store_true",
                     help="keep what the leak scan collected (its directory is printed) even without leaks")
    parser.addoption("--secrets-report", default=str(ARTIFACTS / "secrets-leaks.txt"),
                     help="where the leak scan writes its findings when there are any")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = _Session()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    s = item.config.stash[_KEY]
    s.collector.test = item.nodeid
    try:
        return (yield)
    finally:
        s.records.flush_to(s.collector, item.nodeid)
        s.collector.test = ""


def scan(collector: Collector) -> list[Leak]:
    taps.flush()
    checker = Checker(collector.secrets.values())
    return list(checker.scan_all(collector.sources()))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    s = session.config.stash.get(_KEY, None)
    if s is None:
        return
    s.records.flush_to(s.collector, "")
    s.leaks = scan(s.collector)
    s.scanned = True
    if s.leaks:
        out = Path(session.config.getoption("secrets_report"))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report(s.leaks, limit=10_000) + "\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    s = terminalreporter.config.stash.get(_KEY, None)
    if s is None or not s.scanned:
        return
    if s.leaks:
        terminalreporter.section("secret leaks", sep="=", red=True, bold=True)
        terminalreporter.write_line(report(s.leaks))
        terminalreporter.write_line(f"(all of them: {terminalreporter.config.getoption('secrets_report')}; "
                                    f"what was collected: {s.collector.root})")
    if taps.failures():
        terminalreporter.write_line(f"secrets scan: {len(taps.failures())} recording(s) failed, so the scan saw less: "
                                    f"{taps.failures()[0]!r}", yellow=True)
    if not s.leaks:
        kept = f"; kept in {s.collector.root}" if terminalreporter.config.getoption("secrets_keep") else ""
        terminalreporter.write_line(f"secrets scan: no leaks ({s.collector.summary()}{kept})")


def pytest_unconfigure(config: pytest.Config) -> None:
    s = config.stash.get(_KEY, None)
    if s is None:
        return
    s.stack.close()
    if not s.leaks and not config.getoption("secrets_keep"):  # kept for a look when something leaked
        shutil.rmtree(s.collector.root, ignore_errors=True)
