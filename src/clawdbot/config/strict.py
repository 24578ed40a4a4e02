"""The base of every config section: unknown keys are errors (a typo is never ignored), and a dump
leaves out what is left at its default."""

from __future__ import annotations

import msgspec


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass
