"""config/yaml_depth.py: a YAML text nested past MAX_DEPTH levels is refused, with its line, before
PyYAML (quadratic in the nesting: 2 s at 1,100 brackets) reads it; real configs are not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clawdbot.config.loader import ConfigError, check_depth, load_config_text
from clawdbot.config.yaml_depth import MAX_DEPTH, too_deep

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "line"), [
    ("server: {}\nx: " + "[" * 5000 + "]" * 5000 + "\n", 2),  # issue 14: seconds in PyYAML, then RecursionError
    ("server: {}\nx: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", 2),
    ("server: {}\nx:\n  " + "- " * 5000 + "x\n", 3),
    ("server: {}\nx: [\n" + "[\n" * 5000, 101),  # never closed, one a line
])
def test_a_deep_nesting_is_refused_naming_the_limit_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfigError) as err:
        load_config_text(text, "deep.yaml", {})
    assert err.value.line == line and f"nested more than {MAX_DEPTH} levels deep" in str(err.value)
    assert str(err.value).startswith(f"deep.yaml:{line}: ")


def test_a_deep_block_nesting_is_refused_at_its_line() -> None:
    text = "server: {}\nx:\n" + "".join("  " * (i + 1) + "-\n" for i in range(MAX_DEPTH + 5))
    with pytest.raises(ConfigError, match="levels deep") as err:
        check_depth(text, "deep.yaml")
    assert err.value.line is not None and MAX_DEPTH - 2 <= err.value.line <= MAX_DEPTH + 3


@pytest.mark.parametrize("text", [
    "a: '" + "[" * 500 + "'\nb: \"" + "{" * 300 + '\\" [["\n',  # quoted
    "a: 'it''s [[[[\n  " + "[" * 300 + "'\n",  # a quote over two lines
    "a: |\n  " + "[" * 500 + "\n  more {{{\nb: 1\n",  # a block scalar
    "a: >-\n  " + "[" * 500 + "\n",
    "a: x" + "[" * 500 + "\n",  # a plain scalar
    "a:[" + "[" * 500 + "\n",
    "a: it's " + "[" * 500 + "\n",
    "a: 1 # " + "[" * 500 + "\n",  # a comment
    "a: x # c: " + "[" * 500 + "\n",
    "# " + "{" * 500 + "\na: 1\n",
])
def test_brackets_that_open_nothing_are_not_counted(text: str) -> None:
    assert too_deep(text, 3) is None


def test_the_count_is_the_parsers_depth_for_valid_yaml() -> None:
    for depth in (1, 10, MAX_DEPTH - 1):
        text = "a: " + "[" * depth + "1" + "]" * depth + "\n"
        yaml.safe_load(text)
        assert too_deep(text, depth + 1) is None and too_deep(text, depth) == 1
    assert too_deep("a:\n  - - - x\n", 4) is None and too_deep("a:\n  - - - x\n", 3) == 2


def test_every_config_the_project_ships_is_far_from_the_limit() -> None:
    files = [*REPO.glob("src/clawdbot/cli/templates/*.yaml"), *REPO.glob("tests/fixtures/config/*.yaml"),
             REPO / "deploy" / "compose" / "clawdbot.yaml"]
    assert files
    for path in files:
        assert too_deep(path.read_text(), 12) is None, path
