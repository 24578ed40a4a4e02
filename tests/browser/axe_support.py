"""axe-core in the browser tests (tests/browser/axe/, installed by scripts/ensure-services.sh with
`npm ci`): run on a page as it is, the serious and critical violations returned, the rest printed.
The `axe_page` fixture (conftest.py) gives a browser context that lets axe be injected: the page's
strict CSP forbids it, so that context bypasses the CSP for this check only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def run_axe(page: Page, where: str) -> list[dict[str, Any]]:
    """axe.run() on the page as it is; prints the minor and moderate findings, returns the
    serious and critical ones."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({target: n.target.join(' '), summary: n.failureSummary}))}));
    }""")
    for v in violations:
        if v["impact"] not in BLOCKING:
            targets = ", ".join(n["target"] for n in v["nodes"][:5])
            print(f"axe {where}: {v['impact']} {v['id']} ({v['help']}): {targets}")
    return [v for v in violations if v["impact"] in BLOCKING]
