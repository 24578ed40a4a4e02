"""One check per scenario: it asks through the inbound dialect's driver, asserts what the client
saw, and (for a replay upstream) what the upstream received in its own dialect."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace

from tests.conformance import expected, received
from tests.conformance.asks import Ask, Reply, Result, Said, Turn, User
from tests.conformance.clients import Driver
from tests.conformance.conftest import ANTHROPIC_KEY
from tests.conformance.expected import Expected
from tests.conformance.matrix import CellId
from tests.conformance.replay import ReplayUpstream

SAY_HELLO = User("Say hello")
WEATHER = User("What is the weather in Paris?")
CALL_ONE = User(WEATHER.text + " call get_weather")
# The status and error type each dialect gives an upstream's failure before the first byte (502).
GATEWAY_ERROR = {"openai": "upstream_error", "anthropic": "api_error", "ollama": "error",
                 "responses": "upstream_error"}
CALL_IDS = {"openai": "call_Wb3kLm9Qx2TnR7vYp4Hs1dGe", "anthropic": "toolu_01A09q90qw90lq917835lq9", "ollama": "",
            "responses": "call_Wb3kLm9Qx2TnR7vYp4Hs1dGe"}


class Refused(Exception):
    """A cell declared `refused` got its 400 (raised by `Cell.send` to end the check there)."""


@dataclass
class Cell:
    id: CellId
    driver: Driver
    replay: ReplayUpstream | None  # None for the in-process mock
    refused: bool = False  # the gateway must answer this cell's request with a 400, before any upstream

    @property
    def upstream(self) -> str:
        return self.id.upstream

    def ask(self, *turns: Turn, capture: str | None = None, **options: object) -> Ask:
        name = capture or self.id.scenario.capture
        model = "mock-any" if self.upstream == "mock" else f"{self.upstream}-{name}"
        return Ask(model, turns, self.id.stream, **options)  # type: ignore[arg-type]

    def send(self, ask: Ask) -> Reply:
        sent = self.replay.count() if self.replay is not None else 0
        reply = self.driver.send(ask)
        if self.refused:
            assert reply.failure is not None and reply.failure.status == 400, f"not refused: {reply}"
            assert (self.replay.count() if self.replay is not None else 0) == sent, "the upstream was asked"
            raise Refused(reply.failure.message)
        if self.id.scenario.key not in ("error_before", "error_after"):
            assert reply.failure is None, f"the client saw an error: {reply.failure}"
        return reply

    def expect(self, ask: Ask, capture: str | None = None) -> Expected:
        if self.upstream == "mock":
            last = next(t.text for t in reversed(ask.turns) if isinstance(t, User))
            words = sum(len(t.text.split()) for t in ask.turns if isinstance(t, User | Said | Result))
            return expected.mock(last, ask.max_tokens, words + len((ask.system or "").split()))
        return expected.of(self.upstream, capture or self.id.scenario.capture, self.id.stream)

    def received(self) -> received.Received | None:
        if self.replay is None:
            return None
        seen = received.read(self.upstream, self.replay.last.body)
        assert seen.stream == self.id.stream, "the upstream was not asked for the mode the client asked for"
        return seen


def _answer(reply: Reply, exp: Expected) -> None:
    assert reply.text == exp.text
    assert reply.finish == exp.finish


def text(c: Cell) -> None:
    ask = c.ask(SAY_HELLO)
    _answer(c.send(ask), c.expect(ask))
    if (seen := c.received()) is not None:
        assert seen.turns == [("user", "Say hello")] and seen.system == ""
    if c.upstream == "anthropic":  # the service's key, as the API wants it
        assert c.replay is not None
        headers = {k.lower(): v for k, v in c.replay.last.headers.items()}
        assert headers.get("x-api-key") == ANTHROPIC_KEY and headers.get("anthropic-version")


def multi_turn(c: Cell) -> None:
    ask = c.ask(User("Hi"), Said("Hello! How can I help?"), User("Say hello"))
    _answer(c.send(ask), c.expect(ask))
    if (seen := c.received()) is not None:
        assert seen.turns == [("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Say hello")]


def system(c: Cell) -> None:
    ask = c.ask(SAY_HELLO, system="Be brief.")
    _answer(c.send(ask), c.expect(ask))
    if (seen := c.received()) is not None:
        assert seen.system == "Be brief." and seen.turns == [("user", "Say hello")]


def image(c: Cell) -> None:
    ask = c.ask(User("Say hello", image=True))
    _answer(c.send(ask), c.expect(ask))
    if (seen := c.received()) is not None:
        assert seen.images == 1 and seen.turns == [("user", "Say hello")]


def stop(c: Cell) -> None:
    ask = c.ask(SAY_HELLO, stop=("END", "\n\n"))
    _answer(c.send(ask), c.expect(ask))
    if (seen := c.received()) is not None:
        assert seen.stop == ["END", "\n\n"]


def length(c: Cell) -> None:
    ask = c.ask(SAY_HELLO, max_tokens=4)
    reply = c.send(ask)
    _answer(reply, c.expect(ask))
    assert reply.finish == "length"
    if (seen := c.received()) is not None:
        assert seen.max_tokens == 4


def usage(c: Cell) -> None:
    ask = c.ask(SAY_HELLO)
    reply, exp = c.send(ask), c.expect(ask)
    assert exp.usage is not None
    assert (reply.prompt_tokens, reply.completion_tokens) == exp.usage


def _calls(c: Cell, reply: Reply, exp: Expected) -> None:
    assert [(x.name, x.arguments) for x in reply.calls] == list(exp.calls)
    assert reply.finish == "tool_calls" and reply.text == exp.text
    if c.id.inbound != "ollama":  # Ollama's clients get no call ids
        assert all(x.id for x in reply.calls) and len({x.id for x in reply.calls}) == len(reply.calls)
    if c.id.stream:  # fragments as the upstream streamed them; Ollama's clients get each call whole
        want = len(exp.calls) if c.id.inbound == "ollama" or c.upstream == "mock" else exp.fragments
        assert reply.fragments == want
    if (seen := c.received()) is not None:
        assert seen.tools == ["get_weather", "get_time"]


def tool_call(c: Cell) -> None:
    ask = c.ask(CALL_ONE, tools=True)
    exp = c.expect(ask)
    if c.upstream == "mock":  # the mock calls the tool its prompt names, with no arguments
        exp = replace(exp, text="", calls=(("get_weather", {}),), finish="tool_calls")
    _calls(c, c.send(ask), exp)


def tool_calls(c: Cell) -> None:
    ask = c.ask(User("Weather and time in Paris?"), tools=True)
    _calls(c, c.send(ask), c.expect(ask))


def tool_result(c: Cell) -> None:
    call_id = CALL_IDS[c.id.inbound]
    ask = c.ask(WEATHER, Said(calls=((call_id, "get_weather", {"location": "Paris"}),)),
                Result(call_id, "get_weather", "sunny, 21 C"), tools=True)
    exp = expected.mock(WEATHER.text) if c.upstream == "mock" else c.expect(ask)
    reply = c.send(ask)
    assert reply.text == exp.text and reply.finish == "stop"
    if (seen := c.received()) is not None:
        assert seen.turns == [("user", WEATHER.text), ("tool", "sunny, 21 C")]
        assert seen.calls == [("get_weather", {"location": "Paris"})] and seen.linked


def json_mode(c: Cell) -> None:
    ask = c.ask(User("Answer in JSON: what is 6 times 7?"), json_mode=True)
    reply = c.send(ask)
    assert json.loads(reply.text) == {"answer": 42} and reply.finish == "stop"
    if (seen := c.received()) is not None:
        assert seen.json_mode


def reasoning(c: Cell) -> None:
    ask = c.ask(User("What is 6 times 7?"))
    reply, exp = c.send(ask), c.expect(ask)
    _answer(reply, exp)
    assert reply.reasoning == exp.reasoning
    assert (reply.prompt_tokens, reply.completion_tokens) == exp.usage


def error_before(c: Cell) -> None:
    reply = c.send(c.ask(SAY_HELLO))
    assert reply.failure is not None, "the client saw no error"
    assert (reply.failure.status, reply.failure.kind) == (502, GATEWAY_ERROR[c.id.inbound])
    assert expected.ERROR_WORDS[c.upstream] in reply.failure.message and reply.text == ""


def error_after(c: Cell) -> None:
    reply = c.send(c.ask(SAY_HELLO))
    assert reply.failure is not None and reply.failure.status is None, f"no in-stream error: {reply}"
    assert expected.STREAM_ERROR_WORDS[c.upstream] in reply.failure.message
    assert reply.text == "Partial answer"  # what came before the error reached the client
    assert reply.finish is None


def abort(c: Cell) -> None:
    assert c.replay is not None
    before = len(c.replay.disconnects())
    assert c.driver.abort(c.ask(SAY_HELLO))
    assert c.replay.wait_disconnect(before), "the upstream connection stayed open after the client left"
    after = c.send(c.ask(SAY_HELLO, capture="text"))  # the gateway still answers
    assert after.text == expected.of(c.upstream, "text", True).text


CHECKS: dict[str, Callable[[Cell], None]] = {f.__name__: f for f in (
    text, multi_turn, system, image, stop, length, usage, tool_call, tool_calls, tool_result, json_mode,
    reasoning, error_before, error_after, abort)}
