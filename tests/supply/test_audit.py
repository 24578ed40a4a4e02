"""scripts/audit.sh: a known vulnerability fails it, an accepted one (scripts/audit-ignore.txt, with a
reason and an expiry) does not, an expired or malformed acceptance fails it, and an audit that could
not be done (the advisory feed unreachable, a package it could not look up) fails it: never a pass.
Reports are pip-audit's JSON format (`--from-json`); the network cases point pip-audit (and the
fallback to PyPI's project JSON, scripts/audit_newest.py) at a closed port, the fallback reading saved
project documents (tests/fixtures/pypi/) where it must answer."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from pathlib import Path

from tests.e2e.harness import closed_port

ROOT = Path(__file__).resolve().parents[2]
AUDIT = ROOT / "scripts" / "audit.sh"
TODAY = datetime.date.today()

VULN = {"id": "PYSEC-2099-1", "fix_versions": [], "aliases": ["CVE-2099-0001", "GHSA-aaaa-bbbb-cccc"],
        "description": "a planted advisory"}


def report(tmp: Path, deps: list[dict[str, object]]) -> Path:
    path = tmp / "report.json"
    path.write_text(json.dumps({"dependencies": deps, "fixes": []}))
    return path


def audit(tmp: Path, *args: str, ignore: str = "",
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    ignore_file = tmp / "ignore.txt"
    ignore_file.write_text(ignore)
    return subprocess.run(["bash", str(AUDIT), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUDIT_IGNORE_FILE": str(ignore_file), **(env or {})})


def closed_feed() -> dict[str, str]:
    """An environment in which pip-audit's feed (and PyPI) cannot be reached: a proxy on a port
    nothing listens on, so every request to the feed is refused."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": "", "no_proxy": ""}


def entry(vuln: str = "PYSEC-2099-1", package: str = "somepkg", reviewed: datetime.date = TODAY,
          days: int = 90) -> str:
    expires = reviewed + datetime.timedelta(days=days)
    return (f"{vuln} {package} reviewed={reviewed} expires={expires} no fix released; the parser it affects is "
            "never given untrusted input by clawdbot (reviewed by the tests)\n")


def test_a_clean_report_passes(tmp_path: Path) -> None:
    r = audit(tmp_path, "--from-json", str(report(tmp_path, [{"name": "somepkg", "version": "1.0", "vulns": []}])))
    assert r.returncode == 0, r.stderr
    assert "no known vulnerabilities in 1 packages" in r.stdout


def test_a_known_vulnerability_fails_and_is_named(tmp_path: Path) -> None:
    deps = [{"name": "somepkg", "version": "1.0", "vulns": [{**VULN, "fix_versions": ["1.1"]}]}]
    r = audit(tmp_path, "--from-json", str(report(tmp_path, deps)))
    assert r.returncode == 1
    assert "somepkg 1.0: PYSEC-2099-1 (aliases CVE-2099-0001,GHSA-aaaa-bbbb-cccc); fixed in: 1.1" in r.stderr


def test_an_accepted_vulnerability_passes_by_id_or_alias_and_is_still_shown(tmp_path: Path) -> None:
    deps = [{"name": "somepkg", "version": "1.0", "vulns": [VULN]}]
    for vuln_id in ("PYSEC-2099-1", "CVE-2099-0001"):
        r = audit(tmp_path, "--from-json", str(report(tmp_path, deps)), ignore=entry(vuln_id))
        assert r.returncode == 0, r.stderr
        assert "accepted until" in r.stdout and "somepkg 1.0 PYSEC-2099-1" in r.stdout and "no fix" in r.stdout


def test_an_acceptance_is_for_its_package_only(tmp_path: Path) -> None:
    deps = [{"name": "otherpkg", "version": "2.0", "vulns": [VULN]}]
    r = audit(tmp_path, "--from-json", str(report(tmp_path, deps)), ignore=entry())
    assert r.returncode == 1 and "otherpkg 2.0: PYSEC-2099-1" in r.stderr


def test_an_expired_acceptance_fails(tmp_path: Path) -> None:
    deps = [{"name": "somepkg", "version": "1.0", "vulns": [VULN]}]
    old = TODAY - datetime.timedelta(days=100)
    r = audit(tmp_path, "--from-json", str(report(tmp_path, deps)), ignore=entry(reviewed=old, days=90))
    assert r.returncode == 2 and "expired on" in r.stderr and "review it again" in r.stderr


def test_an_acceptance_needs_a_reason_and_a_short_expiry(tmp_path: Path) -> None:
    clean = str(report(tmp_path, [{"name": "somepkg", "version": "1.0", "vulns": []}]))
    no_reason = f"PYSEC-2099-1 somepkg reviewed={TODAY} expires={TODAY + datetime.timedelta(days=30)}\n"
    for bad in (no_reason, entry(days=365), "PYSEC-2099-1 somepkg forever\n"):
        r = audit(tmp_path, "--from-json", clean, ignore=bad)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)


def test_an_acceptance_nothing_needs_is_pointed_out(tmp_path: Path) -> None:
    clean = str(report(tmp_path, [{"name": "somepkg", "version": "1.0", "vulns": []}]))
    r = audit(tmp_path, "--from-json", clean, ignore=entry())
    assert r.returncode == 0 and "which no locked package has any more" in r.stderr


def test_a_package_that_could_not_be_audited_fails(tmp_path: Path) -> None:
    deps = [{"name": "somepkg", "version": "1.0", "vulns": []},
            {"name": "ghost", "skip_reason": "Dependency not found on PyPI and could not be audited: ghost (9.9)"}]
    r = audit(tmp_path, "--from-json", str(report(tmp_path, deps)))
    assert r.returncode == 3 and "not audited: ghost" in r.stderr


def test_an_unreadable_report_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    r = audit(tmp_path, "--from-json", str(tmp_path / "bad.json"))
    assert r.returncode == 3 and "nothing was audited" in r.stderr


def test_the_committed_ignore_list_is_well_formed(tmp_path: Path) -> None:
    clean = str(report(tmp_path, [{"name": "somepkg", "version": "1.0", "vulns": []}]))
    r = subprocess.run(["bash", str(AUDIT), "--from-json", clean], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_an_unreachable_advisory_feed_fails_loudly(tmp_path: Path) -> None:
    r = audit(tmp_path, env=closed_feed())
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "FAILED" in r.stderr and "not a pass" in r.stderr


# -- the fallback: PyPI's project JSON, where pip-audit's per-release feed cannot be reached --------

PYPI_DOCS = ROOT / "tests" / "fixtures" / "pypi"  # diskcache 5.6.3 (two advisories), msgspec 0.23.0, uvicorn 0.55.0


def fallback(tmp: Path, pins: str, ignore: str = "", docs: Path = PYPI_DOCS) -> subprocess.CompletedProcess[str]:
    (tmp / "requirements.txt").write_text(pins)
    return audit(tmp, ignore=ignore, env={**closed_feed(), "AUDIT_REQUIREMENTS": str(tmp / "requirements.txt"),
                                          "AUDIT_PYPI_DIR": str(docs)})


def test_the_fallback_audits_pins_at_the_newest_release(tmp_path: Path) -> None:
    r = fallback(tmp_path, "msgspec==0.23.0\nuvicorn==0.55.0 ; python_full_version >= '3.11'\n")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "falling back to PyPI's project JSON" in r.stderr
    assert "no known vulnerabilities in 2 packages" in r.stdout


def test_the_fallback_finds_the_advisories_of_the_newest_release(tmp_path: Path) -> None:
    r = fallback(tmp_path, "diskcache==5.6.3\nmsgspec==0.23.0\n")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "diskcache 5.6.3: GHSA-w8v5-vhqr-4h9v (aliases CVE-2025-69872,PYSEC-2026-2447); fixed in: no fix" in r.stderr
    accepted = entry("CVE-2025-69872", "diskcache", days=30)  # one acceptance covers both records by their alias
    r = fallback(tmp_path, "diskcache==5.6.3\nmsgspec==0.23.0\n", ignore=accepted)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.count("accepted until") == 2


def test_an_older_pin_is_not_audited_by_the_fallback_and_a_finding_still_fails(tmp_path: Path) -> None:
    r = fallback(tmp_path, "uvicorn==0.54.0\nmsgspec==0.23.0\n")
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "not audited: uvicorn: locked 0.54.0, the newest release is 0.55.0" in r.stderr
    assert "1 of 2 package(s) could not be audited" in r.stderr
    r = fallback(tmp_path, "uvicorn==0.54.0\ndiskcache==5.6.3\n")
    assert r.returncode == 1, (r.stdout, r.stderr)  # a known vulnerability outranks the packages left out
    assert "GHSA-w8v5-vhqr-4h9v" in r.stderr and "and 1 package(s) could not be audited" in r.stderr


def test_the_fallback_skips_withdrawn_advisories_and_names_packages_it_cannot_find(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    doc = json.loads((PYPI_DOCS / "diskcache.json").read_text())
    for v in doc["vulnerabilities"]:
        v["withdrawn"] = "2026-12-01T00:00:00Z"
    (docs / "diskcache.json").write_text(json.dumps(doc))
    r = fallback(tmp_path, "diskcache==5.6.3\nDisk_Cache2==1.0\n", docs=docs)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "GHSA" not in r.stderr
    assert "not audited: disk-cache2: could not be looked up" in r.stderr
    r = fallback(tmp_path, "ghost==1.0\n", docs=docs)  # nothing could be looked up: nothing was audited
    assert r.returncode == 3 and "nothing was audited" in r.stderr


def test_the_fallback_says_when_the_newest_release_cannot_run_on_this_python(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    doc = json.loads((PYPI_DOCS / "uvicorn.json").read_text())
    doc["info"]["requires_python"] = ">=3.99"  # as numpy 2.5 needs 3.12: the lock keeps an older one for 3.11
    (docs / "uvicorn.json").write_text(json.dumps(doc))
    r = fallback(tmp_path, "uvicorn==0.54.0\n", docs=docs)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "locked 0.54.0, the newest release is 0.55.0 (it needs Python >=3.99)" in r.stderr
    doc["info"]["requires_python"] = ">=3.8"  # one that runs here: no such note
    (docs / "uvicorn.json").write_text(json.dumps(doc))
    r = fallback(tmp_path, "uvicorn==0.54.0\n", docs=docs)
    assert "the newest release is 0.55.0: PyPI's" in r.stderr
