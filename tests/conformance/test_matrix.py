"""Every cell of the matrix (matrix.py) held to its declared outcome: a pass is a check that must
pass, a refusal a check that the gateway answers 400, an xfail a known gateway bug (strict: the day
it is fixed the cell fails until it is declared a pass). n/a cells are not run; docs/conformance.md
lists them with their reasons."""

from __future__ import annotations

import pytest

from tests.conformance.checks import CHECKS, Cell, Refused
from tests.conformance.clients import Driver
from tests.conformance.matrix import CellId, cells, outcome
from tests.conformance.replay import ReplayUpstream
from tests.e2e.harness import GatewayProcess, http_call


def _params() -> list[object]:
    out: list[object] = []
    for cell in cells():
        o = outcome(cell.scenario.key, cell.inbound, cell.upstream)
        if o.kind == "n/a":
            continue
        marks = [pytest.mark.xfail(strict=True, reason=o.note)] if o.kind == "xfail" else []
        out.append(pytest.param(cell, id=cell.id, marks=marks))
    return out


@pytest.mark.parametrize("cell", _params())
def test_cell(cell: CellId, gateway: GatewayProcess, replays: dict[str, ReplayUpstream],
              drivers: dict[str, Driver]) -> None:
    o = outcome(cell.scenario.key, cell.inbound, cell.upstream)
    c = Cell(cell, drivers[cell.inbound], replays.get(cell.upstream), o.kind == "refused")
    if c.refused:
        with pytest.raises(Refused):
            CHECKS[cell.scenario.key](c)
    else:
        CHECKS[cell.scenario.key](c)
    status, _ = http_call(gateway, "GET", "/healthz")
    assert status == 200
