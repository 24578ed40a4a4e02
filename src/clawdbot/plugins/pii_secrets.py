"""The SECRET detector: well-known key formats (sk-, ghp_, AKIA, ...), private key blocks, values
given to secret-named keys (password=..., 密码:...), URL credentials, and long random-looking
tokens (entropy, pii_checks.looks_random). Each pattern runs only when what it needs occurs in the
text at all: the `in` checks run in C, a regex that cannot start with a literal tries every
position."""

from __future__ import annotations

import re
from collections.abc import Iterator

from clawdbot.plugins.pii_checks import looks_random
from clawdbot.plugins.pii_scan import Scan, Span

# Well-known key formats. Each is specific enough that no validation beyond the shape is needed.
_KEY_PREFIXES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"  # Anthropic, OpenAI
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret and restricted keys
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}"  # GitHub
    r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}"  # AWS access key ids
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|LTAI[0-9A-Za-z]{12,24}|AKID[0-9A-Za-z]{13,40}"  # Alibaba Cloud, Tencent Cloud key ids
    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"  # JWTs
    r")(?![A-Za-z0-9_\-])"
)
# What must occur for _KEY_PREFIXES to find anything: one literal alternation (sre skips in C
# to the positions that start one) before the scan.
_KEY_HINTS = re.compile("k-|k_|gh|glpat-|xox|AKI|ASIA|ABIA|ACCA|AIza|hf_|LTAI|eyJ")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]{16,8192}?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
)
# A value given to a secret-named key: password=..., "api_key": "...", 密码:..., Bearer ...
# Group 1 is the secret itself; the key word must not end a longer word (checked after the match).
# Tried only where one of _KEY_ANCHORS occurs (a scan of its own would test every position).
_KEY_VALUE = re.compile(
    r"(?:(?i:passw(?:or)?d|pwd|pass|secret|api[_\-]?key|access[_\-]?key|"
    r"(?:access|auth|refresh|api)[_\-]?token|client[_\-]?secret|private[_\-]?key)"
    r"[\"']?\s*(?:[:=\uff1a]|\s(?i:is)\s)\s*[\"']?|(?:密码|口令|密钥|秘钥)(?:是|为)?\s*[:=\uff1a]?\s*"
    r"|(?i:bearer)\s+)"
    # ASCII only (a password is typed on a keyboard): "密码错误次数过多" is not one.
    r"([A-Za-z0-9!#$%&*+\-./:=?@^_|~\[\]{}]{6,256})"
)
# The first word of each key name above, lower case, searched in the lower-cased text (an
# IGNORECASE alternation would try every position; this one skips in C to its first letters).
_KEY_ANCHORS = re.compile("pass|pwd|secret|api|access|auth|refresh|client|private|bearer|密码|口令|密钥|秘钥")
# scheme://user:password@host (the password may itself hold an '@': the last one ends it).
_URL_CREDENTIAL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/:@]{1,64}:([^\s/]{1,128})@")
# A long token of key characters: a candidate only, kept if it looks random (pii_checks).
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{24,256}={0,2}(?![A-Za-z0-9+/=_\-])")


def _key_values(sc: Scan) -> Iterator[re.Match[str]]:
    t, low = sc.t, sc.lower()
    if len(low) != len(t):  # lower() changed the length (a rare letter): offsets would not match
        yield from _KEY_VALUE.finditer(t)
        return
    end = -1
    a = _KEY_ANCHORS.search(low)
    while a is not None:
        i = a.start()
        if i >= end:  # not inside the last match ("password: pass1234")
            m = _KEY_VALUE.match(t, i)
            if m:
                end = m.end()
                yield m
        a = _KEY_ANCHORS.search(low, i + 1)  # from the next character: anchors may overlap


def find_secrets(sc: Scan) -> Iterator[Span]:
    t = sc.t
    if _KEY_HINTS.search(t):
        for m in _KEY_PREFIXES.finditer(t):
            # A real key has digits somewhere; "sk-learn-compatible-estimators" does not.
            if any(c.isdigit() for c in m.group()):
                yield sc.span("SECRET", m.start(), m.end())
    if "PRIVATE KEY-----" in t:
        for m in _PRIVATE_KEY.finditer(t):
            yield sc.span("SECRET", m.start(), m.end())
    if "://" in t:
        for m in _URL_CREDENTIAL.finditer(t):
            yield sc.span("SECRET", m.start(1), m.end(1))
    for m in _key_values(sc):
        k = m.start()
        if k and t[k - 1].isascii() and t[k - 1].isalnum():
            continue  # "bypass: ...", "monkey = ..."
        s, e = m.span(1)
        while e > s and t[e - 1] in ".:":  # the sentence's full stop, not the password's
            e -= 1
        v = t[s:e]
        # "password is required", "password: ********": short and letters only is a word,
        # and masked values are not secrets.
        if len(v) < 6 or not (len(v) >= 12 or not v.isalpha()) or set(v) <= {"*", "x", "X"}:
            continue
        yield sc.span("SECRET", s, e)
    if len(t) < 24 or max(map(len, t.split()), default=0) < 24:
        return  # no word long enough to be a random token (the split runs in C; the scan would not)
    for m in _TOKEN.finditer(t):
        if looks_random(m.group()):
            yield sc.span("SECRET", m.start(), m.end())
