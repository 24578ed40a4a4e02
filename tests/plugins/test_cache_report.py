"""`clawdbot cache report` against a real HTTP server speaking OpenAI's embeddings wire format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clawdbot.cli.main import main

from .cache_support import EmbeddingServer, angle_vector, toy_embed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "semantic_cache"

# Each pair's second text at a known angle from its first: the similarity is cos(angle).
SAME = {"s1": 5.0, "s2": 12.0, "s3": 20.0, "s4": 30.0, "s5": 40.0}  # .996 .978 .940 .866 .766
NOT_SAME = {"d1": 10.0, "d2": 33.0, "d3": 90.0}  # .985 .839 0
PROMPTS = {"q0": 0.0, "q3": 3.0, "q60": 60.0, "q62": 62.0, "q25": 25.0}


def angles(text: str) -> list[float]:
    name, _, side = text.partition(" ")
    if name in PROMPTS:
        return angle_vector(PROMPTS[name])
    return angle_vector(0.0 if side == "a" else {**SAME, **NOT_SAME}[name])


def write_pairs(path: Path) -> None:
    lines = [{"a": f"{n} a", "b": f"{n} b", "same": True} for n in SAME]
    lines += [{"a": f"{n} a", "b": f"{n} b", "same": False} for n in NOT_SAME]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


HEAD = ("8 pairs (5 same, 3 not same), embedded by emb-1\n"
        "hit rate: pairs labelled same at or above the threshold; false-hit rate: pairs labelled not same "
        "at or above it (a wrong answer served)\n\n")


def test_the_table_for_known_similarities(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs)
    monkeypatch.setenv("CLAWDBOT_API_KEY", "sk-test")
    with EmbeddingServer(angles, api_key="sk-test") as server:
        code = main(["cache", "report", "--pairs", str(pairs), "--model", "emb-1", "--url", server.url])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == HEAD + (
        "THRESHOLD  HITS  HIT RATE  FALSE HITS  FALSE-HIT RATE\n"
        "0.80        4/5     80.0%         2/3           66.7%\n"
        "0.85        4/5     80.0%         1/3           33.3%\n"
        "0.90        3/5     60.0%         1/3           33.3%\n"
        "0.95        2/5     40.0%         1/3           33.3%\n"
        "0.98        1/5     20.0%         1/3           33.3%\n")
    assert [r["model"] for r in server.requests] == ["emb-1"]
    assert len(server.requests[0]["input"]) == 16


def test_prompts_are_replayed_through_an_empty_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pairs, prompts = tmp_path / "pairs.jsonl", tmp_path / "prompts.txt"
    write_pairs(pairs)
    # q0 stored; q3 hits it (.999); q60 stored; q62 hits it (.999); q25 is .906 from q0; q0 again hits
    prompts.write_text("q0\nq3\n\nq60\nq62\nq25\nq0\n", encoding="utf-8")
    monkeypatch.delenv("CLAWDBOT_API_KEY", raising=False)
    with EmbeddingServer(angles, api_key="sk-master") as server:
        code = main(["cache", "report", "--pairs", str(pairs), "--model", "emb-1", "--url", server.url,
                     "--key", "sk-master", "--prompts", str(prompts), "--thresholds", "0.98", "0.9", "--batch", "5"])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out == HEAD + (
        "THRESHOLD  HITS  HIT RATE  FALSE HITS  FALSE-HIT RATE  PROMPT HIT RATE\n"
        "0.90        3/5     60.0%         1/3           33.3%      66.7% (4/6)\n"
        "0.98        1/5     20.0%         1/3           33.3%      50.0% (3/6)\n")
    inputs = [t for r in server.requests for t in r["input"]]
    assert len(inputs) == len(set(inputs)) == 16 + 5 and max(len(r["input"]) for r in server.requests) == 5

    with EmbeddingServer(angles) as server:
        code = main(["cache", "report", "--pairs", str(pairs), "--model", "emb-1", "--url", server.url,
                     "--prompts", str(prompts), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["pairs"] == 8 and out["same"] == 5 and out["not_same"] == 3
    assert [r["threshold"] for r in out["rows"]] == [0.8, 0.85, 0.9, 0.95, 0.98]
    assert out["rows"][0] == {"threshold": 0.8, "hits": 4, "same": 5, "false_hits": 2, "not_same": 3,
                              "prompt_hits": 4, "prompts": 6}


def test_failures_exit_1_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs)
    monkeypatch.setenv("CLAWDBOT_API_KEY", "wrong")
    with EmbeddingServer(angles, api_key="sk-test") as server:
        code = main(["cache", "report", "--pairs", str(pairs), "--model", "emb-1", "--url", server.url])
    err = capsys.readouterr().err
    assert code == 1 and "401 Incorrect API key provided." in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y", "same": true}\n{"a": "x", "same": "yes"}\n', encoding="utf-8")
    assert main(["cache", "report", "--pairs", str(bad), "--model", "e", "--url", "http://127.0.0.1:9"]) == 1
    assert "bad.jsonl:2: not a pair" in capsys.readouterr().err
    assert main(["cache", "report", "--pairs", str(tmp_path / "none"), "--model", "e"]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_the_shipped_labelled_set(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(line) for line in (FIXTURES / "pairs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100
    assert all(set(r) == {"a", "b", "same"} and isinstance(r["same"], bool) and r["a"] != r["b"] for r in rows)
    han = re.compile(r"[\u4e00-\u9fff]")
    chinese = [r for r in rows if han.search(r["a"]) and han.search(r["b"])]
    english = [r for r in rows if not han.search(r["a"] + r["b"])]
    for group in (chinese, english):
        assert sum(r["same"] for r in group) >= 20 and sum(not r["same"] for r in group) >= 20
    assert {"a": "What is the capital of France?", "b": "What is the capital of Germany?", "same": False} in rows
    assert len({(r["a"], r["b"]) for r in rows}) == len(rows)

    with EmbeddingServer(toy_embed) as server:
        code = main(["cache", "report", "--pairs", str(FIXTURES / "pairs.jsonl"), "--model", "toy",
                     "--url", server.url, "--prompts", str(FIXTURES / "prompts.txt")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"{len(rows)} pairs ({sum(r['same'] for r in rows)} same, ")
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].split("  ")[0] == "THRESHOLD" and len(table) == 6
    hit_rates = [float(line.split()[2].rstrip("%")) for line in table[1:]]
    false_rates = [float(line.split()[4].rstrip("%")) for line in table[1:]]
    assert hit_rates == sorted(hit_rates, reverse=True) and false_rates == sorted(false_rates, reverse=True)
    # at 0.98 the bag-of-words embedder serves the 3 repeats and "what is the capital of france"
    assert table[-1].endswith("20.0% (4/20)")
