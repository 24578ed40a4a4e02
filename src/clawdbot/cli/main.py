"""`clawdbot` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import os
import sys

from clawdbot import __version__
from clawdbot.cli import bench, cache_report, chat, config_cmd, doctor, init, keys, models, replay, serve, spend, tail


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clawdbot", description="A fast, lean AI gateway.")
    parser.add_argument("--version", action="version", version=f"clawdbot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)
    init.register(sub)
    config_cmd.register(sub)
    doctor.register(sub)
    chat.register(sub)
    keys.register(sub)
    spend.register(sub)
    cache_report.register(sub)
    tail.register(sub)
    replay.register(sub)
    models.register(sub)
    bench.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # grpc's C core (type: grpc services) writes connection events such as a server's GOAWAY to
    # stderr at INFO, outside the gateway's log format; the provider reports what matters itself
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
