"""`limits.fair_share`: what loads, its defaults, and errors naming file:line."""

from __future__ import annotations

import pytest

from clawdbot.config.loader import ConfigError, load_config_text
from clawdbot.routing.fair import ONE_QUEUE, fair_share


def limits(text: str) -> str:
    return f"services:\n  - name: a\n    type: mock\n    limits:\n{text}"


def test_on_by_key_by_default() -> None:
    config = load_config_text("services:\n  - {name: a, type: mock, limits: {max_inflight: 2}}\n")
    fair = config.services[0].limits.fair_share
    assert fair.enabled and fair.by == "key" and fair.weights == {} and fair.default_weight == 1.0
    assert fair.max_queue_per_tenant is None
    assert fair_share(fair).by == "key"


def test_the_full_form_loads_and_weights_become_quanta() -> None:
    config = load_config_text(limits("""\
      max_inflight: 4
      max_queue: 32
      fair_share:
        by: team
        weights: {t_gold: 3, t_batch: 0.5, master: 2}
        default_weight: 1
        max_queue_per_tenant: 16
"""))
    policy = fair_share(config.services[0].limits.fair_share)
    assert policy.by == "team" and policy.max_per_tenant == 16
    # the smallest weight (0.5) is one slot per turn
    assert [policy.quantum(t) for t in ("t_gold", "t_batch", "master", "t_other")] == [6.0, 1.0, 4.0, 2.0]


def test_off_is_one_queue() -> None:
    config = load_config_text(limits("      fair_share: {enabled: false, by: team}\n"))
    assert fair_share(config.services[0].limits.fair_share) is ONE_QUEUE


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("      fair_share:\n        weights: {k_a: 0}\n", 6, "fair_share.weights.k_a: a weight must be a positive number"),
    ("      fair_share:\n        weights:\n          k_a: -2\n", 7, "got -2.0"),
    ("      fair_share: {default_weight: .inf}\n", 5, "fair_share.default_weight: a weight must be a positive"),
    ("      fair_share: {default_weight: .nan}\n", 5, "got nan"),
    ("      fair_share: {weights: {'': 1}}\n", 5, "needs a tenant id"),
    ("      fair_share: {weights: {k_a: many}}\n", 5, "expected `float`, got `str`"),
    ("      fair_share: {by: tenant}\n", 5, "expected one of: key, user, team, did you mean `team`?"),
    ("      fair_share: {weight: {k_a: 2}}\n", 5, "unknown key `weight`, did you mean `weights`?"),
    ("      max_queue: 8\n      fair_share: {max_queue_per_tenant: 9}\n", 6,
     "`max_queue_per_tenant` must be in 1..max_queue (8), got 9"),
    ("      fair_share: {max_queue_per_tenant: 0}\n", 5, "must be in 1..max_queue"),
    ("      fair_share: true\n", 5, "expected `object`"),
])
def test_errors_name_the_line(text: str, line: int, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(limits(text), "c.yaml")
    msg = str(info.value)
    assert msg.startswith(f"c.yaml:{line}: services[0].limits"), msg
    assert needle in msg, msg
