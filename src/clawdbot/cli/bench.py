"""`clawdbot bench`: load an OpenAI-compatible server (the gateway by default) with N concurrent
chat completions for S seconds, then report RPS, latency percentiles, TTFT, inter-chunk gaps,
tokens/s and errors. `--compare URL2` loads two targets in alternating rounds and gives the ratio;
`--plot FILE` draws latency histograms and throughput per second.

The load is bench_load.py, the numbers bench_stats.py, the plots bench_plot.py; this module is
the command: options, the progress bar, the table or the JSON document. Exit status 0: every
request succeeded; 1: some failed, or the target could not be asked for a model; 2: usage."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

from clawdbot.cli import bench_load as load
from clawdbot.cli import bench_plot
from clawdbot.cli.admin_http import DEFAULT_URL
from clawdbot.cli.bench_stats import RATIO_KEYS, ratios, report
from clawdbot.cli.output import Output

DEFAULT_PROMPT = "Write one short sentence about the sea."
TICK = 0.1  # seconds between progress bar updates


def _number(kind: type[int] | type[float], least: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least:g}")
        return value
    parse.__name__ = kind.__name__
    return parse


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="load a gateway with chat completions; report latency, TTFT, throughput",
                       description="Load an OpenAI-compatible server (default: the local gateway) with "
                                   "concurrent chat completions, then print RPS, latency p50/p90/p99, TTFT, "
                                   "inter-chunk gap, tokens/s and errors. Exit status 1 when any request failed.")
    p.add_argument("--url", default=os.environ.get("CLAWDBOT_URL", DEFAULT_URL),
                   help=f"the server (env CLAWDBOT_URL; default {DEFAULT_URL}); /v1 is appended")
    p.add_argument("--key", help="bearer key (default: CLAWDBOT_MASTER_KEY; none when unset)")
    p.add_argument("--model", help="model to ask (default: the first id of GET /v1/models)")
    p.add_argument("-c", "--concurrency", type=_number(int, 1), default=8, metavar="N", help="requests in flight (8)")
    p.add_argument("-d", "--duration", type=_number(float, 0.1), default=10.0, metavar="S",
                   help="seconds of measured load per target (10)")
    p.add_argument("--warmup", type=_number(float, 0), default=1.0, metavar="S",
                   help="unrecorded seconds first, per target (1)")
    p.add_argument("--stream", action="store_true", help="streamed completions: TTFT and inter-chunk gaps too")
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help="the user message sent")
    p.add_argument("--max-tokens", type=_number(int, 1), default=64, metavar="N",
                   help="max_tokens of each request (64)")
    p.add_argument("--max-requests", type=_number(int, 1), default=100_000, metavar="N",
                   help="stop a target after this many requests, whatever the duration (100000)")
    p.add_argument("--timeout", type=_number(float, 0.1), default=30.0, metavar="S",
                   help="seconds for one request (30)")
    p.add_argument("--compare", metavar="URL2", help="a second server, loaded in alternating rounds")
    p.add_argument("--round", dest="round_s", type=_number(float, 0.1), default=1.0, metavar="S",
                   help="with --compare: seconds per round (1)")
    p.add_argument("--plot", metavar="FILE", help="latency histograms and throughput: FILE.html or FILE.png")
    p.add_argument("--json", action="store_true", help="one JSON document with every number")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Output(args.json)
    key = args.key if args.key is not None else os.environ.get("CLAWDBOT_MASTER_KEY")
    if key and any(c in key for c in "\r\n"):
        return _usage("the key contains a line break")
    problem = bench_plot.check(args.plot) if args.plot else None
    if problem:
        return _usage(problem)
    urls = [args.url] if not args.compare else [args.url, args.compare]
    try:
        targets = [load.Target(name, url, key or None, args.concurrency, args.timeout)
                   for name, url in zip("AB", urls, strict=False)]
    except ValueError as exc:
        return _usage(f"{exc}: --url and --compare take http:// or https:// URLs")
    plan = load.Plan(args.concurrency, args.duration, args.warmup, args.round_s, args.max_requests, args.timeout)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_bench(args, out, targets, plan))
    except KeyboardInterrupt:
        print("clawdbot bench: interrupted", file=sys.stderr)
        return 130


def _usage(message: str) -> int:
    print(f"clawdbot bench: {message}", file=sys.stderr)
    return 2


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _bench(args: argparse.Namespace, out: Output, targets: list[load.Target], plan: load.Plan) -> int:
    try:
        for t in targets:
            try:
                model = args.model or await t.first_model()
            except load.FAILURES as exc:
                why = load.describe(exc, plan.timeout)
                verb = "cannot reach" if not isinstance(exc, load.BenchError) else "cannot get a model from"
                return _failed(out, f"{verb} {t.url}: {why}")
            t.prepare(model, args.prompt, args.max_tokens, args.stream)
        if not out.json:
            out.line(_heading(args, targets), style="bold")
        status = load.Status()
        async with _progress(out, status):
            results = await load.run(targets, plan, status)
    finally:
        for t in targets:
            t.close()
    reports = [report(t.name, t.url, t.model, s, args.stream) for t, s in zip(targets, results, strict=True)]
    ratio = ratios(reports[0], reports[1]) if len(reports) == 2 else None
    plotted = True
    if args.plot:
        names = [f"{t.name}: {t.url}" if len(targets) > 1 else t.url for t in targets]
        mode = "streamed" if args.stream else "non-stream"
        title = f"clawdbot bench: {args.concurrency} concurrent {mode} requests, {args.duration:g} s per target"
        try:
            bench_plot.write(args.plot, list(zip(names, results, strict=True)), title)
        except OSError as exc:
            print(f"clawdbot bench: cannot write {args.plot}: {exc}", file=sys.stderr)
            args.plot = None
            plotted = False
    ok = plotted and all(r["errors"] == 0 and r["ok"] > 0 for r in reports)
    if out.json:
        out.data({"ok": ok, "error": None, "stream": args.stream, "concurrency": plan.concurrency,
                  "duration_s": plan.duration, "warmup_s": plan.warmup,
                  "round_s": plan.round_s if ratio is not None else None, "max_tokens": args.max_tokens,
                  "prompt": args.prompt, "targets": reports, "ratio": ratio, "plot": args.plot})
    else:
        _print_table(out, reports, ratio, targets, args.stream)
        if args.plot:
            out.line(f"plot: {args.plot}")
    for r in reports:
        if r["errors"]:
            stopped = " (stopped early: none succeeded)" if r["gave_up"] else ""
            print(f"clawdbot bench: {r['url']}: {r['errors']} of {r['requests']} requests failed{stopped}; "
                  f"first: {r['first_error']}", file=sys.stderr)
    return 0 if ok else 1


def _failed(out: Output, message: str) -> int:
    if out.json:
        out.data({"ok": False, "error": message, "targets": []})
    print(f"clawdbot bench: {message}", file=sys.stderr)
    return 1


def _label(t: load.Target, n: int) -> str:
    return t.name if n > 1 else t.url.split("://", 1)[1]


def _heading(args: argparse.Namespace, targets: list[load.Target]) -> str:
    what = " vs ".join(f"{t.name}: {t.url} ({t.model})" if len(targets) > 1 else f"{t.url} ({t.model})"
                       for t in targets)
    rounds = f" in rounds of {args.round_s:g} s" if len(targets) > 1 else ""
    mode = "streamed" if args.stream else "non-stream"
    return (f"clawdbot bench: {what}; {args.concurrency} concurrent {mode} requests, "
            f"{args.duration:g} s per target{rounds} after {args.warmup:g} s warm-up")


class _NoProgress:
    """Piped or --json: nothing drawn while the load runs."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class _RichProgress:
    """A rich progress bar over the planned seconds, with the phase and its counts."""

    def __init__(self, out: Output, status: load.Status) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.status = status
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                            TimeRemainingColumn(), console=out.console)
        self.task = self.bar.add_task("starting", total=1.0)
        self.ticker: asyncio.Task[None] | None = None

    def _update(self) -> None:
        st = self.status
        now = asyncio.get_running_loop().time()
        self.bar.update(self.task, total=st.total_s or 1.0, completed=st.completed(now),
                        description=f"{st.label}: {st.samples.ok} ok, {st.samples.errors} errors")

    async def _tick(self) -> None:
        while True:
            self._update()
            await asyncio.sleep(TICK)

    async def __aenter__(self) -> None:
        self.bar.start()
        self.ticker = asyncio.create_task(self._tick())

    async def __aexit__(self, *exc: object) -> None:
        if self.ticker is not None:
            self.ticker.cancel()
        self._update()
        self.bar.stop()


def _progress(out: Output, status: load.Status) -> _RichProgress | _NoProgress:
    return _RichProgress(out, status) if out.rich else _NoProgress()


# table column -> bench_stats.RATIO_KEYS: two tables, so that each fits an 80-column terminal
REQUEST_COLUMNS = {"rps": "rps", "p50": "latency_p50", "p90": "latency_p90", "p99": "latency_p99",
                   "tok/s": "tokens_per_s"}
STREAM_COLUMNS = {"ttft p50": "ttft_p50", "ttft p99": "ttft_p99", "gap p50": "gap_p50", "gap p99": "gap_p99"}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"


def _value(r: dict[str, Any], key: str) -> float | None:
    field, *sub = RATIO_KEYS[key]
    v = r[field]
    return (v[sub[0]] if v else None) if sub else v


def _rows(reports: list[dict[str, Any]], ratio: dict[str, float | None] | None, targets: list[load.Target],
          counts: tuple[str, ...], metrics: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for t, r in zip(targets, reports, strict=True):
        rows.append({"target": _label(t, len(targets)), **{c: str(r[c]) for c in counts},
                     **{c: _fmt(_value(r, k)) for c, k in metrics.items()}})
    if ratio is not None:
        ratios_ = {c: "-" if ratio[k] is None else f"{ratio[k]:.2f}x" for c, k in metrics.items()}
        rows.append({"target": "ratio B/A", **dict.fromkeys(counts, ""), **ratios_})
    return rows


def _print_table(out: Output, reports: list[dict[str, Any]], ratio: dict[str, float | None] | None,
                 targets: list[load.Target], stream: bool) -> None:
    secs = " and ".join(f"{r['elapsed_s']:.1f} s" for r in reports)
    columns = ("target", "requests", "errors", *REQUEST_COLUMNS)
    out.table(_rows(reports, ratio, targets, ("requests", "errors"), REQUEST_COLUMNS), columns,
              right=columns[1:], title=f"latency in ms; rps and tok/s over {secs} of load")
    if stream:
        columns = ("target", "ok", *STREAM_COLUMNS)
        out.table(_rows(reports, ratio, targets, ("ok",), STREAM_COLUMNS), columns, right=columns[1:],
                  title="streams: time to first token and gap between content chunks, in ms")
