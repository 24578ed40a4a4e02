"""What decoding untrusted JSON bytes (a client's body, an upstream's answer or stream event, a tool
call's arguments) can raise, besides a value: msgspec's errors (ValidationError is a DecodeError),
invalid UTF-8 inside a string (a lone surrogate in a str), and nesting deeper than the interpreter's
recursion limit. Only a
client's body is bounded before it is decoded (codecs/bounds.py); an upstream's bytes and JSON text
inside a string are not. Every decoder of such bytes catches all three and says who sent what."""

from __future__ import annotations

import msgspec

DECODE_ERRORS = (msgspec.DecodeError, UnicodeError, RecursionError)
