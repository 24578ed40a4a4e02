"""Where the SECRET detector's thresholds for long unprefixed tokens come from (pii_detect.looks_random).

A random token's Shannon entropy (bits/char) grows with its length, a name's does not. This prints,
per length, the entropy of generated keys (random base62 and base64url, the alphabets API keys are
drawn from) against the threshold (pii_detect.entropy_min), the share of them the whole filter
keeps (entropy and the word-likeness cap), and the same for long names from real code that pass the
cheap filters (24+ chars with upper, lower and a digit, not hex: the only tokens the thresholds
decide). The names are the identifiers in the .py files of this environment's site-packages and
standard library; some of them are base64 blobs (certificates in tests), which are random and
rightly kept. Seeded: the same numbers every run.

    uv run --no-sync python bench/pii_entropy.py
"""

from __future__ import annotations

import random
import re
import string
import sysconfig
from pathlib import Path

from clawdbot.plugins.pii_checks import entropy_min, looks_random, shannon_entropy

B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"


def mixed(s: str) -> bool:
    return any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def random_tokens(rng: random.Random, alphabet: str, n: int, count: int) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        tok = "".join(rng.choice(alphabet) for _ in range(n))
        if mixed(tok):
            out.append(tok)
    return out


def code_names(limit: int = 6000) -> list[str]:
    """Long mixed-case-and-digit identifiers from real Python source."""
    names: set[str] = set()
    rx = re.compile(r"[A-Za-z0-9_]{24,}")
    files: list[Path] = []
    for key in ("stdlib", "purelib"):
        files.extend(sorted(Path(sysconfig.get_paths()[key]).rglob("*.py")))
    for path in files[:limit]:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for m in rx.finditer(text):
            tok = m.group()
            if mixed(tok) and not re.fullmatch(r"[0-9a-fA-F_]+", tok):  # hex: excluded before
                names.add(tok)
    return sorted(names)


def main() -> None:
    rng = random.Random(20261204)
    names = code_names()
    print("| length | entropy min | random base62 p1 | base62 kept | random base64url p1 | base64url kept "
          "| code names | names: entropy only | names: whole filter |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lo, hi in ((24, 31), (32, 47), (48, 79), (80, 256)):
        n = lo
        cols: list[str] = []
        for alphabet in (B62, B64URL):
            toks = random_tokens(rng, alphabet, n, 2000)
            ent = [shannon_entropy(t) for t in toks]
            cols += [f"{pct(ent, 1):.2f}", f"{sum(map(looks_random, toks)) / len(toks):.1%}"]
        bucket = [t for t in names if lo <= len(t) <= hi]
        by_entropy = sum(shannon_entropy(t) >= entropy_min(len(t)) for t in bucket)
        kept = sum(map(looks_random, bucket))
        share = (f"{by_entropy / len(bucket):.1%} | {kept / len(bucket):.1%}" if bucket else "- | -")
        print(f"| {lo}-{hi} (random at {n}) | {entropy_min(n):.2f} | {' | '.join(cols)} | {len(bucket)} | {share} |")
    kept_names = [t for t in names if looks_random(t)]
    print(f"\n{len(kept_names)} of {len(names)} code names are kept, e.g.: {', '.join(kept_names[:6])}")

if __name__ == "__main__":
    main()
