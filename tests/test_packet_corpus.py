"""The packet corpus in CI: inputs that once found defects and a coverage-distilled set of the rest,
replayed through the rules of the packet oracle (``tests/support/oracle.py``); and a few seconds of fresh fuzzing.

``python -m bench.fuzz --atheris-runs N --distill`` rewrites the distilled set; files named
``defect-*`` are kept: each is the packet that showed a defect, fixed since.
"""

from __future__ import annotations

import random

import pytest

from tests.support.fuzz_targets import make_targets
from tests.support.generator import fuzz
from tests.support.oracle import ANSWER, CORPUS, Defect, Target, check_packet, verdict


@pytest.fixture(scope="module")
def targets() -> list[Target]:
    return make_targets(cache_size=200)


def test_the_corpus_is_small_and_varied():
    files = sorted(CORPUS.iterdir())
    assert 100 <= len(files) <= 400
    assert all(path.stat().st_size <= 1024 for path in files)
    actions = {verdict(path.read_bytes()).action for path in files}
    assert actions == {"drop", "error", "badvers", ANSWER}


def test_every_corpus_packet_is_answered_by_the_rules(targets):
    failures = []
    for path in sorted(CORPUS.iterdir()):
        try:
            check_packet(targets, path.read_bytes())
        except Defect as exc:
            failures.append(f"{path.name}: {exc}")
    assert not failures, "\n".join(failures)


def test_defects_found_stay_fixed(targets):
    found = sorted(CORPUS.glob("defect-*"))
    assert found
    for path in found:
        check_packet(targets, path.read_bytes())


@pytest.mark.slow
def test_a_short_fuzz_run():
    """A few seconds of the generator ``make fuzz`` runs for a million packets, from a new seed."""
    seed = random.randrange(2**32)
    tally = fuzz(1_000_000, seed=seed, seconds=4)
    assert tally.packets >= 1000
    assert not tally.defects, f"seed {seed}: {tally.defects[0][1]} for {tally.defects[0][0]!r}"
