"""Precision, recall and F1 of the pii plugin's detectors on the labelled set
(tests/fixtures/pii/labelled.jsonl), per type and overall, for Chinese and English separately, and
the cost of detection per call on a typical 500-character message. The "dev" lines are the ones the
detectors were developed against; the "holdout" lines were written after and measured once, so
their numbers are the honest estimate of what unseen text gets.

    uv run --no-sync python bench/pii_eval.py [--errors] [--number N]

A found span counts as right when its type and its boundaries are exactly those of a labelled span
("strict"); the "overlap" columns also count a span of the right type that overlaps a labelled one
(what matters for leaking: a partly masked value is partly leaked, so strict is the one to watch).
tests/plugins/test_pii_eval.py asserts floors on the strict numbers."""

from __future__ import annotations

import argparse
import json
import timeit
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clawdbot.plugins.pii_detect import TYPES, Span, detect
from clawdbot.plugins.pii_mask import Masker, StreamRestorer

LABELLED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pii" / "labelled.jsonl"

# A typical support message of about 500 characters: some PII, mostly prose and numbers that are not.
TYPICAL = (
    "Hi team, following up on ticket #48213 from 2024-03-12 14:22. The customer (sarah.connor@example.com, "
    "+1 415-555-0132) says order A10293847 was charged twice: $49.99 on the card ending 3234 and again "
    "after the 3.2.1 app update. Their account shows IBAN DE89 3704 0044 0532 0130 00 for refunds. Logs "
    "from 10.24.3.17 show request 3f1c2b9e-8d4a-4e7b-9c1a-5b6d7e8f9a0b failing with 502 at 14:22:31. "
    "客户电话13812345678，订单号202403151234567890。Please refund and reply before Friday, thanks!"  # noqa: RUF001
)


# About 500 characters of prose with nothing to find (the common case).
PROSE = (
    "Thanks for getting back to me so quickly. I tried the steps you suggested yesterday evening and "
    "the export now finishes, but the report still shows last month's totals instead of this month's. "
    "Could it be a caching issue on your side? I cleared the browser cache and logged out and in again, "
    "which did not change anything. The same happens in the desktop app. It is not urgent, but our "
    "finance team needs the numbers before the end of the week, so any pointer would help a lot. "
    "Have a good day!"
)


def load(path: Path = LABELLED) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_overlap: int = 0  # found spans of the right type that overlap a labelled one
    gold_overlap: int = 0  # labelled spans that some found span of the right type overlaps

    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def f1(self) -> float:
        p, r = self.precision(), self.recall()
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class Result:
    by_type: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    errors: list[str] = field(default_factory=list)

    def overall(self) -> Counts:
        total = Counts()
        for c in self.by_type.values():
            total.tp += c.tp
            total.fp += c.fp
            total.fn += c.fn
            total.tp_overlap += c.tp_overlap
            total.gold_overlap += c.gold_overlap
        return total


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate(rows: list[dict[str, Any]], lang: str, split: str | None = None) -> Result:
    """`split`: "dev" (the lines the detectors were developed against), "holdout" (written after
    they were frozen and measured once), None for both."""
    res = Result()
    for row in rows:
        if row["lang"] != lang or (split is not None and row.get("split") != split):
            continue
        text: str = row["text"]
        gold = {(s["type"], s["start"], s["end"]) for s in row["spans"]}
        found: list[Span] = detect(text)
        got = {(s.type, s.start, s.end) for s in found}
        for t, s, e in got:
            c = res.by_type[t]
            if (t, s, e) in gold:
                c.tp += 1
            else:
                c.fp += 1
                res.errors.append(f"{row['id']} FP {t} {text[s:e]!r}")
            if any(g[0] == t and _overlaps((s, e), (g[1], g[2])) for g in gold):
                c.tp_overlap += 1
        for t, s, e in gold:
            c = res.by_type[t]
            if (t, s, e) not in got:
                c.fn += 1
                res.errors.append(f"{row['id']} FN {t} {text[s:e]!r}")
            if any(g[0] == t and _overlaps((s, e), (g[1], g[2])) for g in got):
                c.gold_overlap += 1
    return res


def table(res: Result, title: str) -> str:
    lines = [f"### {title}", "",
             "| type | labelled | found | precision | recall | F1 | precision (overlap) | recall (overlap) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [(t, res.by_type[t]) for t in TYPES if t in res.by_type] + [("overall", res.overall())]
    for name, c in rows:
        labelled, found = c.tp + c.fn, c.tp + c.fp
        po = c.tp_overlap / found if found else 1.0
        ro = c.gold_overlap / labelled if labelled else 1.0
        label = f"**{name}**" if name == "overall" else name
        lines.append(f"| {label} | {labelled} | {found} | {c.precision():.3f} | {c.recall():.3f} | {c.f1():.3f} "
                     f"| {po:.3f} | {ro:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--errors", action="store_true", help="list every false positive and negative")
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    rows = load()
    for lang, title in (("en", "English"), ("zh", "Chinese")):
        n = sum(1 for r in rows if r["lang"] == lang)
        res = evaluate(rows, lang)
        print(table(res, f"{title} ({n} lines)"), end="\n\n")
        for split in ("dev", "holdout"):
            c = evaluate(rows, lang, split).overall()
            k = sum(1 for r in rows if r["lang"] == lang and r.get("split") == split)
            print(f"{title}, {split} lines only ({k}): precision {c.precision():.3f}, recall {c.recall():.3f}, "
                  f"F1 {c.f1():.3f} ({c.tp + c.fn} labelled, {c.tp + c.fp} found)")
        print()
        if args.errors:
            print("\n".join(res.errors) or "(no errors)", end="\n\n")
    for label, text in (("a typical", TYPICAL), ("a PII-free", PROSE)):
        best = min(timeit.repeat(lambda t=text: detect(t), number=args.number, repeat=5)) / args.number
        print(f"detect() on {label} {len(text)}-character message ({len(detect(text))} spans): "
              f"{best * 1e6:.1f} us per call (best of 5 x {args.number})")
    # The stream hook's cost per chunk when the request had something masked (a mapping exists).
    masker = Masker()
    masker.placeholder("EMAIL", "a@b.co")
    r = StreamRestorer(masker)
    best = min(timeit.repeat(lambda: r.feed(" the next few tokens"), number=args.number * 10, repeat=5))
    print(f"StreamRestorer.feed() on a chunk without '<': {best / (args.number * 10) * 1e6:.2f} us per call")


if __name__ == "__main__":
    main()
