"""config/loader.py: any YAML document, any mutation of a valid config (its values replaced, its text
damaged, PyYAML's tags, anchors and merges, `${VAR}`s), and any bytes in a file load as a Config or
raise a ConfigError that names the file and a line of it; never another exception."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from clawdbot.config.loader import ConfigError, load_config, load_config_text
from clawdbot.config.schema import Config
from tests.property.strategies import ODD_STRINGS, any_text, big_ints, slots_of

ROOT = Path(__file__).resolve().parents[2]
FILE = "clawdbot.yaml"
VARS = ["CLAWDBOT_DATABASE_URL", "CLAWDBOT_HOST", "CLAWDBOT_KEY_SECRET", "CLAWDBOT_MASTER_KEY", "CLAWDBOT_REDIS_URL",
        "CLOUD_BASE_URL", "CLOUD_MODEL", "ENV_MODEL_API_KEY", "LLM_API_KEY", "LLM_BASE_URL", "LLM_MODEL",
        "OLLAMA_MODEL", "OLLAMA_URL", "OPENAI_API_KEY", "X"]
ENV = {name: f"value-of-{name.lower()}" for name in VARS} | {"CLAWDBOT_HOST": "127.0.0.1", "OLLAMA_URL":
                                                              "http://127.0.0.1:11434"}


def _valid(text: str) -> bool:
    try:
        load_config_text(text, FILE, ENV)
    except ConfigError:
        return False
    return True


def _seeds() -> list[str]:
    """The shipped templates, the seed document's services file and every whole config in docs/."""
    texts = [p.read_text() for p in sorted((ROOT / "src/clawdbot/cli/templates").glob("*.yaml"))]
    texts += [p.read_text() for p in sorted((ROOT / "tests/fixtures/config").glob("*.yaml"))]
    for doc in sorted((ROOT / "docs").glob("*.md")):
        texts += re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)
    return [t for t in texts if _valid(t)]


SEEDS = _seeds()
seeds = st.sampled_from(SEEDS)
# Snippets of YAML syntax and of what PyYAML's resolvers and constructors read specially.
SNIPPETS = [
    ":", ": ", "- ", "-", "[", "]", "{", "}", ",", "&a ", "*a", "*b", "!!binary ", "!!timestamp ", "!!int ",
    "!!float ", "!!bool ", "!!set ", "!!omap ", "!!str ", "!!map ", "!!python/name:os.system ", "!foo ", "<<: ",
    "<<: *a", "? ", "|", ">-", "'", '"', "#", "\t", "\n", "  ", "    ", "${X}", "${", "${NOPE}", "${X:-d}", "$${",
    "${1}", "%YAML 1.1\n---\n", "---\n", "...\n", "\x00", "\ufeff", "\x85", "\u2028", "\r", "2024-13-45",
    "2024-01-01", "2024-01-01T25:00:00", ".nan", ".inf", "-.inf", "0x1F", "0o17", "0b11", "1e400", "1_000", "~",
    "null", "yes", "off", "=", "@", "`", "%", "1" * 30, "\\", "\\u0000", "\udc80", "\U0001f600",
]
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), big_ints, st.floats(), st.sampled_from(SNIPPETS),
    st.text(max_size=16), st.sampled_from(ODD_STRINGS),
    st.dates(), st.datetimes(),
)
yaml_values = st.recursive(yaml_scalars, lambda kids: st.lists(kids, max_size=4) |
                           st.dictionaries(st.text(max_size=12) | st.sampled_from(
                               ["name", "type", "endpoint", "models", "targets", "services", "server", "port",
                                "routing", "rules", "windows", "timezone", "deployments", "weight", "auth", "key",
                                "timeouts", "breaker", "limits", "web", "plugins", "metadata", "fallbacks"]),
                               kids, max_size=4), max_leaves=12)


@st.composite
def changed_configs(draw: st.DrawFn) -> str:
    """A valid config with a few of its values replaced, removed or given a sibling, dumped again."""
    doc = copy.deepcopy(yaml.safe_load(draw(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        slots = slots_of(doc)
        if not slots:
            break
        node, key = draw(st.sampled_from(slots))
        op = draw(st.integers(0, 3))
        if op <= 1:
            node[key] = draw(yaml_values)
        elif op == 2:
            del node[key]
        elif isinstance(node, dict):
            node[draw(st.text(max_size=12) | st.sampled_from(SNIPPETS))] = draw(yaml_values)
        else:
            node.insert(key, draw(yaml_values))
    return yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.sampled_from(
        [False, True, None])), sort_keys=False)


@st.composite
def damaged_texts(draw: st.DrawFn) -> str:
    """A valid config's text with snippets of YAML syntax, odd characters or a deep nesting spliced
    in, or some of it cut out."""
    text = draw(seeds)
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.integers(0, 5))
        if op <= 2:
            text = text[:at] + draw(st.sampled_from(SNIPPETS) | any_text) + text[at:]
        elif op == 3:
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif op == 4:
            n = draw(st.one_of(st.integers(1, 60), st.integers(1, 60), st.integers(1, 60), st.just(1100)))
            text = text[:at] + "[" * n + "1" + "]" * n * draw(st.integers(0, 1)) + text[at:]
        else:
            text = text[:at]
    return text


documents = st.one_of(
    changed_configs(), changed_configs(), damaged_texts(), damaged_texts(),
    yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.text(st.sampled_from("abc:-[]{},&*!|>'\"#%@` \t\n\r\x00\x85\u2028$"), max_size=80),
)


def lines_of(text: str) -> int:
    head = text.replace("\r\n", "\n")
    return 1 + sum(head.count(c) for c in ("\n", "\r", "\x85", "\u2028", "\u2029"))


def check(text: str) -> Config | None:
    try:
        return load_config_text(text, FILE, ENV)
    except ConfigError as exc:
        assert exc.file == FILE and exc.line is not None, str(exc)
        assert 1 <= exc.line <= lines_of(text), (exc.line, lines_of(text), str(exc))
        assert str(exc).startswith(f"{FILE}:{exc.line}: ") and exc.message
        return None


@given(documents)
@example("a: 2020-99-99")  # a date's constructor: was ValueError
@example("server:\n  host: !!binary xx")  # was ConstructorError
@example("a: !!python/name:os.system x")
@example("<<: 1")  # a merge of a scalar: was ConstructorError
@example("a: !!bool x")  # was KeyError
@example("a: !!timestamp x")  # was AttributeError
@example("a: !!int x")
@example("x: " + "[" * 1100 + "]" * 1100)  # was RecursionError
@example("x: " + "[" * 5000 + "]" * 5000)  # 10 s in PyYAML: now refused before it reads
@example("a: \x00")  # a character YAML refuses: had no line
@example('services: "\\ud800"')  # a lone surrogate: was a UnicodeEncodeError (found by the nightly profile)
@example('"\\udfff": 1')
@example("server: {}\n\nrouting: {timezone: America}")  # a directory of tzdata: was IsADirectoryError
@example("routing: {timezone: '" + "a" * 5000 + "'}")  # was OSError (file name too long)
def test_any_document_loads_or_names_file_and_line(text: str) -> None:
    check(text)


def test_nested_aliases_stop_at_a_bound_with_a_line() -> None:
    """ "Billion laughs": each level repeats the one before ten times. Was minutes of building and
    gigabytes before any check ran."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(ConfigError, match="expands to more than") as info:
        load_config_text("\n".join(lines), FILE, ENV)
    assert info.value.line is not None


def test_the_seeds_are_valid_configs() -> None:
    assert len(SEEDS) >= 8  # the templates, the seed document's file and docs/ examples load as they are


@given(st.one_of(st.binary(max_size=200), seeds.map(str.encode).flatmap(
    lambda b: st.tuples(st.integers(0, len(b)), st.binary(min_size=1, max_size=3)).map(
        lambda cut: b[:cut[0]] + cut[1] + b[cut[0]:]))))
@example(b"server:\n  host: \xff\xfe\n")  # not UTF-8: had no line
def test_any_file_loads_or_names_file_and_line(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / FILE
    path.write_bytes(data)
    try:
        load_config(path, ENV)
    except ConfigError as exc:
        assert exc.file == str(path) and exc.line is not None and 1 <= exc.line <= data.count(b"\n") + 2, str(exc)
