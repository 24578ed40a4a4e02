"""Hypothesis profiles for the property suite (README.md beside this file).

`ci` (the default): derandomized, so a run is reproducible and a failure in CI is a failure on any
machine; no example database. `nightly` (CLAWDBOT_HYPOTHESIS_PROFILE=nightly): random, 3,000
examples per test (over 100,000 in all), failures kept in test-artifacts/hypothesis so the next
run on that machine replays them first. `dev`: like ci but random, for a quick local look."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE_VAR = "CLAWDBOT_HYPOTHESIS_PROFILE"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hypothesis"
# Hypothesis keeps caches (its Unicode tables) in ./.hypothesis by default: in the ignored
# test-artifacts/ instead, so a run leaves nothing to commit.
set_hypothesis_home_dir(str(ARTIFACTS))
# Generation of big JSON or YAML documents is slow by design on a shared 2-core machine: not a
# problem with the test. `deadline=None`: the timing of one example says nothing about correctness.
_RELAXED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "ci", max_examples=40, derandomize=True, database=None, deadline=None, print_blob=True,
    suppress_health_check=_RELAXED,
)
settings.register_profile(
    "dev", max_examples=40, database=None, deadline=None, print_blob=True, suppress_health_check=_RELAXED,
)
settings.register_profile(
    "nightly", max_examples=3_000, database=DirectoryBasedExampleDatabase(str(ARTIFACTS / "examples")),
    deadline=None, print_blob=True, suppress_health_check=_RELAXED,
)
settings.load_profile(os.environ.get(PROFILE_VAR, "ci"))
