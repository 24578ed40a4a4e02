"""A service's credentials, kept out of everything the gateway says about the service.

An upstream that refuses the gateway's key may quote it back ("Key rejected: Bearer sk-..."), and
what an upstream says becomes the client's error message, a log line, a request-log record and the
/readyz detail. So the text of every error from a service, and of every health probe of it, loses
the service's own credentials (the key, a secret-named header's value, a URL's password) before it
goes anywhere. docs/security.md."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from clawdbot.config.dump import is_secret_name
from clawdbot.config.schema import Service
from clawdbot.core.errors import GatewayError

REDACTED = "***"
MIN_CHARS = 8  # a shorter "credential" would redact ordinary words (and is no credential)


def credentials(svc: Service) -> tuple[str, ...]:
    """What the gateway presents to `svc`, longest first (a key that contains another goes whole)."""
    found = [svc.auth.key] if svc.auth is not None and svc.auth.key else []
    for name, value in svc.headers.items():
        if is_secret_name(name):
            found += [value, value.partition(" ")[2]]  # "Bearer <token>": the token alone too
    for url in (svc.endpoint, svc.proxy):
        try:
            password = urlsplit(url or "").password
        except ValueError:
            continue
        if password:
            found += [password, unquote(password)]
    forms = {f for s in found if len(s) >= MIN_CHARS for f in (s, quote(s, safe=""))}
    return tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, REDACTED)
    return text


def scrub(exc: GatewayError, secrets: tuple[str, ...]) -> None:
    """`exc` with `secrets` taken out of its message (in place: it is about to be raised on)."""
    if secrets and exc.message:
        clean = redact(exc.message, secrets)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)
