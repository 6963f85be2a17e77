"""Every paper target composes the runs it composed before the config's redesign, with the same
run keys (and SCAN checkpoint names), so finished runs and cached models keep being found.

tests/fixtures/run_keys.json holds all 1,157 runs of the paper targets (`make -n`), pinned when
input fingerprints landed (the 4 runs of fig-clip-offline at the stand-in's own logit scale added with
`make paper`; the 121 CLIP runs' keys re-pinned when the stand-in's recipe left the run key for
the run's inputs); composing all takes 3 min, so this test composes the first seed's
runs of each target, up to PER_TARGET of them, spread over its sweep."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.paper_runs import PINNED, TARGETS, keys, runs

PER_TARGET = 6


def seed_of(overrides: list[str]) -> str:
    return next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "0")


@pytest.fixture(scope="module")
def pinned() -> dict[str, list[dict]]:
    by_target = defaultdict(list)
    for run in json.loads(PINNED.read_text()):
        by_target[run["target"]].append(run)
    return by_target


@pytest.fixture(scope="module")
def composed() -> dict[str, list[list[str]]]:
    by_target = defaultdict(list)
    for target, overrides in runs():
        by_target[target].append(overrides)
    return by_target


def test_every_paper_target_sweeps_as_many_runs_as_before(pinned, composed):
    assert {t: len(r) for t, r in composed.items()} == {t: len(r) for t, r in pinned.items()}
    assert len(pinned) == len(TARGETS) - 1  # fig-cnn-paper's runs are fig-cnn's (it depends on them)


@pytest.mark.parametrize("target", sorted({f"{t} {v}".strip() for t, v in TARGETS} - {"fig-cnn-paper"}))
def test_paper_target_runs_keep_their_keys(target, pinned, composed):
    before = [{k: v for k, v in run.items() if k not in ("target", "overrides")} for run in pinned[target]]
    first_seed = [o for o in composed[target] if seed_of(o) == seed_of(composed[target][0])]
    step = max(1, len(first_seed) // PER_TARGET)
    for overrides in first_seed[::step][:PER_TARGET]:
        assert keys(overrides) in before, (target, overrides)
