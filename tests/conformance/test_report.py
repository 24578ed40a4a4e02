"""docs/conformance.md is what the matrix renders (regenerate: python -m tests.conformance.report)."""

from __future__ import annotations

from tests.conformance.matrix import SCENARIOS, cells, outcome
from tests.conformance.report import DOC, render


def test_doc_is_current() -> None:
    stale = "docs/conformance.md is stale: uv run --frozen python -m tests.conformance.report"
    assert DOC.read_text() == render(), stale


def test_every_declared_outcome_says_why() -> None:
    for c in cells():
        o = outcome(c.scenario.key, c.inbound, c.upstream)
        assert o.kind in ("pass", "refused", "n/a", "xfail")
        assert o.kind == "pass" or o.note, f"{c.id}: a {o.kind} cell needs its reason"
    assert len({s.key for s in SCENARIOS}) == len(SCENARIOS)
