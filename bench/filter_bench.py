"""Micro-benchmark of the content_filter plugin's hot path (pure CPU): microseconds per pre() on a
2,000-character message with 500 keywords (400 English, 100 Chinese) and 20 regexes, and per
on_chunk() on 10-character chunks of a streamed answer. The best of `--repeat` runs is printed.

    uv run --no-sync python bench/filter_bench.py [--number N] [--repeat R]
"""

# ruff: noqa: RUF001 (the Chinese text uses full-width punctuation)
from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Callable

import msgspec

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk, ChatRequest, Message
from clawdbot.plugins.content_filter import ContentFilter, ContentFilterSettings

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "xe", "zu", "bra", "cle", "dro", "fli", "gra",
             "ple", "qua", "sti", "tre", "wo"]
# common Han characters: Chinese prose is full of them, so nearly every position starts a keyword
HAN = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方"
       "后多定行学法所民得经")
FILLER_HAN = "天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏闰余成岁律吕调阳云腾致雨露结为霜"

REGEXES = [
    r"\b[\w.+-]+@(?:evil|spam)\.example\b", r"\b(?:\d[ -]?){13,16}\b", r"\b1[3-9]\d{9}\b",
    r"\bsk-[A-Za-z0-9]{32,}\b", r"\bAKIA[0-9A-Z]{16}\b", r"\b\d{17}[\dXx]\b",
    r"\bhttps?://(?:bit\.ly|tinyurl\.com)/\w+", r"\bpassword\s*[:=]\s*\S+",
    r"\b(?:ssn|social security number)\s*[:#]?\s*\d{3}-\d{2}-\d{4}\b", r"\bghp_[A-Za-z0-9]{36}\b",
    r"-----BEGIN (?:RSA )?PRIVATE KEY-----", r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b", r"\b(?:buy|cheap)\s+followers\b",
    r"\bcasino\s+bonus\s+code\b", r"\b\d{3}-\d{3}-\d{4}\b", r"\biban\s*[:=]?\s*[A-Z]{2}\d{2}[A-Z0-9]{10,30}\b",
    r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.", r"(?:加微信|加V信|薇信)\s*[:\uff1a]?\s*\w{5,}",
    r"\b(?:viagra|cialis)\b", r"(?:代开|代办)(?:发票|证件)",
]

ENGLISH = (
    "The quarterly report shows that the new onboarding flow reduced the time it takes a customer to "
    "reach their first successful request from eleven minutes to just under four. Most of the gain came "
    "from removing the manual approval step and from clearer error messages when an API key is missing "
    "a scope. Support tickets about authentication fell by a third over the same period, although "
    "tickets about billing went up slightly after the pricing page was redesigned. For the next quarter "
    "the team plans to add usage alerts, a sandbox environment with seeded data, and better examples "
    "for streaming responses in Python, JavaScript and Go. ")
CHINESE = (
    "本季度的报告显示，新的注册流程把客户完成第一次成功请求所需的时间从十一分钟缩短到不到四分钟。"
    "大部分改进来自取消人工审批步骤，以及在密钥缺少权限时给出更清楚的错误信息。同期关于身份验证的工单减少了三分之一，"
    "不过价格页面改版之后，关于账单的工单略有增加。下个季度团队计划增加用量提醒、带有示例数据的沙盒环境，"
    "以及更好的流式响应示例。")


def corpus(seed: int = 7) -> tuple[list[str], dict[str, str]]:
    """500 keywords (400 English-like, 100 Chinese) and the 2,000-character texts: `prose`
    (English and Chinese paragraphs) and `dense` (words made of the keywords' own letters and
    characters: nearly every position starts a partial match, the slow case); neither contains a
    keyword."""
    rnd = random.Random(seed)
    words: set[str] = set()
    while len(words) < 400:
        words.add("".join(rnd.choice(SYLLABLES) for _ in range(rnd.randint(2, 4))))
    han: set[str] = set()
    while len(han) < 100:
        han.add("".join(rnd.choice(HAN) for _ in range(rnd.randint(2, 4))))
    keywords = sorted(words) + sorted(han)
    other = ["am", "be", "co", "de", "el", "fo", "gi", "hu", "in", "jo", "mo", "pe", "so", "un", "ye"]
    latin = " ".join("".join(rnd.choice(other) for _ in range(rnd.randint(1, 4))) for _ in range(400))
    filler = "".join(rnd.choice(FILLER_HAN) for _ in range(900))
    prose = ((ENGLISH * 2)[:1100] + (CHINESE * 6))[:2000]
    return keywords, {"prose": prose, "dense": (latin[:1100] + "。" + filler)[:2000]}


class BenchHost:
    redis_url = None
    redis_prefix = "bench:"
    data_dir = "."
    config_dir = "."

    async def embed(self, model: str, inputs: list[str], ctx: RequestContext) -> list[list[float]]:
        raise NotImplementedError


def plugin(**settings: object) -> ContentFilter:
    return ContentFilter(msgspec.convert(settings, ContentFilterSettings), BenchHost())


def best(fn: Callable[[], object], number: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times) * 1e6


def pre_cost(p: ContentFilter, request: ChatRequest, number: int, repeat: int) -> float:
    ctx = RequestContext(request_id="bench")

    async def run() -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                await p.pre(request, ctx)
            times.append((time.perf_counter() - t0) / number)
        return min(times) * 1e6

    return asyncio.run(run())


def chunk_cost(p: ContentFilter, answer: str, size: int, repeat: int) -> tuple[float, int]:
    """us per on_chunk over the answer in `size`-character chunks, and the most characters held."""
    chunks = [ChatChunk(content=answer[i:i + size]) for i in range(0, len(answer), size)]
    times = []
    most = 0
    for _ in range(repeat):
        ctx = RequestContext(request_id="bench")
        t0 = time.perf_counter()
        for c in chunks:
            p.on_chunk(c, ctx)
        times.append((time.perf_counter() - t0) / len(chunks))
        most = max(most, len(p.state(ctx).content.held))
    return min(times) * 1e6, most


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--number", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    n, r = a.number, a.repeat
    keywords, texts = corpus()
    t0 = time.perf_counter()
    both = plugin(input={"keywords": keywords, "regex": REGEXES}, output={"keywords": keywords, "regex": REGEXES})
    print(f"compile 500 keywords + 20 regexes: {(time.perf_counter() - t0) * 1000 / 2:.1f} ms per rule set")
    kw_only = plugin(input={"keywords": keywords}, output={"keywords": keywords})
    redact = plugin(action="redact", input={"keywords": keywords, "regex": REGEXES})
    injection = plugin(injection=True)
    for name, text in texts.items():
        assert len(text) == 2000, len(text)
        assert both.input_rules is not None and both.input_rules.first(text) is None, "the text must be clean"
        request = ChatRequest(model="m", messages=[Message(role="user", content=text)])
        print(f"-- {name} text (2,000 characters)")
        print(f"pre(), block, 500 keywords + 20 regexes      {pre_cost(both, request, n, r):8.1f} us")
        print(f"pre(), block, 500 keywords                   {pre_cost(kw_only, request, n, r):8.1f} us")
        print(f"pre(), redact, 500 keywords + 20 regexes     {pre_cost(redact, request, n, r):8.1f} us")
        print(f"pre(), injection rule set only               {pre_cost(injection, request, n, r):8.1f} us")
        us, held = chunk_cost(both, text, 10, r)
        print(f"on_chunk(), 10-char chunks, kw + regexes     {us:8.1f} us  (held <= {held} chars)")
        us, held = chunk_cost(kw_only, text, 10, r)
        print(f"on_chunk(), 10-char chunks, keywords         {us:8.1f} us  (held <= {held} chars)")
        lower = text.lower
        print(f"(reference: str.lower() of the text          {best(lower, n, r):8.1f} us)")


if __name__ == "__main__":
    main()
