"""The `models:` long form and the `routing:` section: what loads, and errors naming file:line."""

from __future__ import annotations

import pytest

from clawdbot.config.loader import ConfigError, load_config_text
from clawdbot.config.schema import ModelEntry

SVCS = "services:\n  - {name: a, type: mock}\n  - {name: b, type: mock}\n"


def fails(text: str, line: int, *needles: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(SVCS + text, "c.yaml")
    msg = str(info.value)
    assert msg.startswith(f"c.yaml:{line}:"), msg
    for n in needles:
        assert n in msg, msg


def test_the_long_form_loads() -> None:
    config = load_config_text(SVCS + """\
routing: {timezone: Asia/Shanghai, windows: {peak: ["09:00-18:00"]}}
models:
  m:
    strategy: weighted
    deployments:
      - a/x
      - {service: b, model: y, weight: 3, priority: 1, tags: [canary], cost: {input: 0.1, output: 0.4}, max_inflight: 2}
    fallbacks: [n]
    rules: [{when: {priority: low, time: peak}, use: canary}]
  n: [a]
""")
    entry = config.models["m"]
    assert isinstance(entry, ModelEntry) and config.model_targets("m") == ["a/x", "b/y"]
    assert entry.all_deployments()[1].cost is not None


@pytest.mark.parametrize(("text", "line", "needle"), [
    ("models:\n  m: {deployments: [{service: c}]}\n", 5, "unknown service `c`"),
    ("models:\n  m: {deployments: [{service: a, weight: -1}]}\n", 5, "`weight` must be 0 or more"),
    ("models:\n  m: {targets: [a], strategy: rules}\n", 5, "needs `rules`"),
    ("models:\n  m: {targets: [a], strategy: fastest}\n", 5, "expected one of"),
    ("models:\n  m: {targets: [a], fallbacks: [zz]}\n", 5, "neither a model nor a service"),
    ("models:\n  m: {targets: [a], fallbacks: [m]}\n", 5, "itself"),
    ("models:\n  m: {targets: [a], hook: nocolon}\n", 5, "module:function"),
    ("models:\n  m:\n    targets: [a]\n    strategy: rules\n    rules: [{use: gpu}]\n", 8,
     "neither a tag nor a service"),
    ("models:\n  m:\n    targets: [a]\n    strategy: rules\n    rules: [{use: a, when: {time: lunch}}]\n", 8,
     "not defined in `routing.windows`"),
    ("routing: {timezone: Mars/Olympus}\n", 4, "unknown time zone"),
    ("routing: {windows: {peak: ['9-5']}}\n", 4, "time span"),
    ("models:\n  m: {targets: [a], explore: 2}\n", 5, "`explore` must be in 0..1"),
])
def test_errors_name_the_line(text: str, line: int, needle: str) -> None:
    fails(text, line, needle)


def test_service_resilience_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="error_rate"):
        load_config_text("services:\n  - {name: a, type: mock, breaker: {error_rate: 2}}\n")
    with pytest.raises(ConfigError, match="max_inflight"):
        load_config_text("services:\n  - {name: a, type: mock, limits: {max_inflight: 0}}\n")
    with pytest.raises(ConfigError, match="idle"):
        load_config_text("services:\n  - {name: a, type: mock, timeouts: {idle: 0}}\n")
