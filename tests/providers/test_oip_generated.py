"""The shipped Open Inference Protocol messages are what scripts/gen-grpc.sh makes of the .proto today."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OIP = "clawdbot/providers/oip"


def test_generated_messages_match_the_proto(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts/gen-grpc.sh"), str(tmp_path)], check=True, timeout=120)
    for name in ("open_inference_pb2.py", "open_inference_pb2.pyi"):
        fresh = (tmp_path / OIP / name).read_text()
        shipped = (ROOT / "src" / OIP / name).read_text()
        assert fresh == shipped, f"{name} is stale: run `bash scripts/gen-grpc.sh`"
