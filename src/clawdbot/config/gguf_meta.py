"""A GGUF file's metadata (its key/value header), read without llama.cpp: `clawdbot models show`
prints a local model's chat template and context length from it, and llama-cpp-python may not be
installed (it is an extra). Format: github.com/ggml-org/ggml docs/gguf.md (versions 2 and 3, little
endian). Arrays (the tokenizer's vocabulary) are skipped, not kept."""

from __future__ import annotations

import struct
from typing import IO, Any

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
MAX_STRING = 16 << 20  # a chat template is a few KB; a length beyond this is a damaged file


class GGUFError(Exception):
    pass


def read_metadata(path: str) -> dict[str, Any]:
    """Every scalar and string key of the header (arrays as their length). Raises GGUFError."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != MAGIC:
                raise GGUFError(f"{path} is not a GGUF file")
            version = _unpack(f, "<I")
            if version not in (2, 3):
                raise GGUFError(f"{path}: GGUF version {version} is not supported")
            _unpack(f, "<Q")  # tensor count
            count = _unpack(f, "<Q")
            out: dict[str, Any] = {}
            for _ in range(count):
                key = _string(f)
                out[key] = _value(f, _unpack(f, "<I"))
            return out
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (struct.error, UnicodeDecodeError) as exc:
        raise GGUFError(f"{path}: damaged GGUF header ({exc})") from None


def _unpack(f: IO[bytes], fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("the GGUF header ends early")
    return struct.unpack(fmt, data)[0]


def _string(f: IO[bytes]) -> str:
    n = _unpack(f, "<Q")
    if n > MAX_STRING:
        raise GGUFError(f"a header string of {n} bytes")
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("the GGUF header ends early")
    return data.decode("utf-8")


def _value(f: IO[bytes], kind: int) -> Any:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        item, n = _unpack(f, "<I"), _unpack(f, "<Q")
        if item in _SCALARS:
            f.seek(n * struct.calcsize(_SCALARS[item]), 1)
        else:
            for _ in range(n):
                _value(f, item)
        return {"array": n}
    raise GGUFError(f"unknown GGUF value type {kind}")


def summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What `models show` prints: the name, architecture, trained context and the chat template."""
    arch = meta.get("general.architecture")
    return {
        "name": meta.get("general.name"),
        "architecture": arch,
        "context": meta.get(f"{arch}.context_length") if arch else None,
        "file_type": meta.get("general.file_type"),
        "chat_template": meta.get("tokenizer.chat_template"),
    }
