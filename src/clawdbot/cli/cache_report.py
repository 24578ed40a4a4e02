"""`clawdbot cache report`: how a `semantic_cache` threshold would behave, measured on a labelled
set of prompt pairs embedded by a running gateway (POST /v1/embeddings, with the embedding model the
plugin would use).

    clawdbot cache report --pairs pairs.jsonl --model EMBEDDING_MODEL [--prompts sample.txt]

`--pairs`: JSON lines {"a": prompt, "b": prompt, "same": true|false} (tests/fixtures/semantic_cache/
pairs.jsonl is a start: English and Chinese paraphrases and near-misses). For each threshold
(default 0.80 0.85 0.90 0.95 0.98) it prints the hit rate (pairs labelled same whose similarity
reaches the threshold: a paraphrase served from the cache) and the false-hit rate (pairs labelled
not same that reach it: each one a wrong answer served). `--prompts`: a sample of real prompts, one
per line, replayed in order through an empty cache (a prompt that hits is not stored, one that
misses is) to estimate the hit rate over that traffic.

The key: --key, else CLAWDBOT_API_KEY, else CLAWDBOT_MASTER_KEY (any key allowed the model)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from array import array
from collections.abc import Sequence
from typing import Any

from clawdbot.cli.admin_http import DEFAULT_URL, Client, CliError
from clawdbot.cli.output import table

THRESHOLDS = (0.80, 0.85, 0.90, 0.95, 0.98)
MAX_PROMPTS = 2000  # the replay compares every prompt with every earlier one: O(n^2) dot products

# Pure Python: the report needs no numpy (the plugin's `semantic` extra); the plugin computes the
# same similarity in float32 (plugins/vector_store.py), equal to these to about 1e-7.
Vector = tuple[float, ...]


def normalise(vector: Sequence[float]) -> Vector | None:
    """The unit vector, or None for a zero, empty or non-finite vector."""
    if not vector:
        return None
    try:
        norm = math.sqrt(math.fsum(x * x for x in vector))
    except (TypeError, OverflowError):
        return None
    if not norm or not math.isfinite(norm):
        return None
    return tuple(x / norm for x in vector)


def cosine(a: Vector, b: Vector) -> float:
    """Of two unit vectors (normalise()): 1 - |a - b|^2 / 2, computed by math.dist in C (5x faster
    than sum(map(mul, a, b)) on tuples of floats); 0.0 when their dimensions differ."""
    if len(a) != len(b):
        return 0.0
    d = math.dist(a, b)
    return 1.0 - d * d / 2.0


def register(sub: Any) -> None:
    p = sub.add_parser("cache", help="cache tools (report: semantic-cache thresholds on a labelled set)",
                       description="Tools for the cache plugins (docs/plugin-cache.md).")
    p.set_defaults(func=lambda a: _usage(p))
    cs = p.add_subparsers(dest="cache_command")
    r = cs.add_parser(
        "report", help="hit and false-hit rates of semantic-cache thresholds on labelled prompt pairs",
        description="Embeds labelled prompt pairs through a running gateway's /v1/embeddings and prints, per "
                    "threshold, the hit rate (pairs labelled same at or above it) and the false-hit rate (pairs "
                    "labelled not same at or above it).")
    r.add_argument("--pairs", required=True, metavar="FILE", help='JSON lines: {"a": ..., "b": ..., "same": bool}')
    r.add_argument("--model", required=True, help="the embedding model (the plugin's embedding_model)")
    r.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS), metavar="T",
                   help="cosine thresholds (default: %(default)s)")
    r.add_argument("--prompts", metavar="FILE", help="a sample of prompts, one per line, replayed to estimate the "
                                                     "hit rate over it")
    r.add_argument("--max-prompts", type=int, default=MAX_PROMPTS, help="read at most this many (default %(default)s)")
    r.add_argument("--batch", type=int, default=64, help="inputs per embeddings request (default %(default)s)")
    r.add_argument("--url", default=os.environ.get("CLAWDBOT_URL", DEFAULT_URL), help=f"gateway URL ({DEFAULT_URL})")
    r.add_argument("--key", help="API key (default: CLAWDBOT_API_KEY, else CLAWDBOT_MASTER_KEY)")
    r.add_argument("--json", action="store_true", help="print the numbers as JSON instead of a table")
    r.set_defaults(func=report)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def load_pairs(path: str) -> list[tuple[str, str, bool]]:
    pairs: list[tuple[str, str, bool]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    a, b, same = item["a"], item["b"], item["same"]
                except (ValueError, KeyError, TypeError):
                    raise CliError(f"{path}:{n}: not a pair {{\"a\": str, \"b\": str, \"same\": bool}}") from None
                if not (isinstance(a, str) and isinstance(b, str) and isinstance(same, bool) and a and b):
                    raise CliError(f"{path}:{n}: not a pair {{\"a\": str, \"b\": str, \"same\": bool}}")
                pairs.append((a, b, same))
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    if not pairs:
        raise CliError(f"{path}: no pairs")
    return pairs


def load_prompts(path: str, limit: int) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            prompts = [line.strip() for line in f if line.strip()]
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    return prompts[:limit]


def embed_all(client: Client, model: str, texts: list[str], batch: int) -> dict[str, Vector | None]:
    """Each distinct text's unit vector (None: the model returned a zero vector)."""
    unique = list(dict.fromkeys(texts))
    out: dict[str, Vector | None] = {}
    for start in range(0, len(unique), max(1, batch)):
        chunk = unique[start:start + max(1, batch)]
        body = client.call("POST", "/v1/embeddings", {"model": model, "input": chunk})
        try:
            data = sorted(body["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (KeyError, TypeError):
            raise CliError("the embeddings response is not in OpenAI's format") from None
        if len(vectors) != len(chunk) or not all(isinstance(v, list) for v in vectors):
            raise CliError(f"asked for {len(chunk)} embeddings, got {len(vectors)} (float lists expected)")
        for text, vec in zip(chunk, vectors, strict=True):
            out[text] = normalise(vec)
    return out


def similarity(a: Vector | None, b: Vector | None) -> float:
    return cosine(a, b) if a is not None and b is not None else 0.0


def replay(vectors: list[Vector | None], thresholds: list[float]) -> dict[float, int]:
    """Hits per threshold when the prompts go in order through an empty cache: a prompt hits when an
    entry stored earlier is at least that similar; a miss is stored."""
    sims = [array("f", (similarity(vectors[i], vectors[j]) for j in range(i))) for i in range(len(vectors))]
    hits: dict[float, int] = {}
    for t in thresholds:
        stored: list[int] = []
        n = 0
        for i, row in enumerate(sims):
            if any(row[j] >= t for j in stored):
                n += 1
            else:
                stored.append(i)
        hits[t] = n
    return hits


def _rate(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "-"


def measure(pairs: list[tuple[str, str, bool]], vectors: dict[str, Vector | None], thresholds: list[float],
            prompts: list[str] | None) -> dict[str, Any]:
    sims = [(similarity(vectors[a], vectors[b]), same) for a, b, same in pairs]
    n_same = sum(1 for _, same in sims if same)
    n_diff = len(sims) - n_same
    replayed = replay([vectors[p] for p in prompts], thresholds) if prompts else None
    rows = []
    for t in thresholds:
        hits = sum(1 for s, same in sims if same and s >= t)
        false = sum(1 for s, same in sims if not same and s >= t)
        row: dict[str, Any] = {"threshold": t, "hits": hits, "same": n_same, "false_hits": false, "not_same": n_diff}
        if replayed is not None and prompts:
            row["prompt_hits"] = replayed[t]
            row["prompts"] = len(prompts)
        rows.append(row)
    return {"pairs": len(pairs), "same": n_same, "not_same": n_diff, "rows": rows}


def render(out: dict[str, Any], model: str) -> str:
    columns: tuple[str, ...] = ("threshold", "hits", "hit rate", "false hits", "false-hit rate")
    cells = []
    for r in out["rows"]:
        c = {"threshold": f"{r['threshold']:.2f}", "hits": f"{r['hits']}/{r['same']}",
             "hit rate": _rate(r["hits"], r["same"]), "false hits": f"{r['false_hits']}/{r['not_same']}",
             "false-hit rate": _rate(r["false_hits"], r["not_same"])}
        if "prompts" in r:
            c["prompt hit rate"] = f"{_rate(r['prompt_hits'], r['prompts'])} ({r['prompt_hits']}/{r['prompts']})"
        cells.append(c)
    if cells and "prompt hit rate" in cells[0]:
        columns += ("prompt hit rate",)
    head = (f"{out['pairs']} pairs ({out['same']} same, {out['not_same']} not same), embedded by {model}\n"
            "hit rate: pairs labelled same at or above the threshold; false-hit rate: pairs labelled not same "
            "at or above it (a wrong answer served)")
    right = tuple(c for c in columns if c != "threshold")
    return head + "\n\n" + table(cells, columns, right=right)


def report(args: argparse.Namespace) -> int:
    """Prints the table (or --json). Exit status: 0 done, 1 a file or the gateway failed."""
    key = args.key or os.environ.get("CLAWDBOT_API_KEY") or os.environ.get("CLAWDBOT_MASTER_KEY") or ""
    try:
        pairs = load_pairs(args.pairs)
        prompts = load_prompts(args.prompts, args.max_prompts) if args.prompts else None
        texts = [t for a, b, _ in pairs for t in (a, b)] + (prompts or [])
        vectors = embed_all(Client(args.url, key), args.model, texts, args.batch)
        out = measure(pairs, vectors, sorted(args.thresholds), prompts)
    except CliError as exc:
        print(f"clawdbot cache report: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2) if args.json else render(out, args.model))
    return 0
