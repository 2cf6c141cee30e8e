"""Every Corefile of the corpus (tests/corefiles/, each from a real cluster or tool, its source on its
first line) loads as its second line says: ``# kdns: loads``, or ``# kdns: refused: PLUGIN (why)`` with
a message that names the plugin and says it is not supported, at its FILE:LINE."""

from __future__ import annotations

import re

import pytest

from kdns.corefile import CorefileError, load
from tests.support.paths import COREFILES

ENV = {"POD_IP": "10.1.2.3", "KUBERNETES_SERVICE_HOST": "10.96.0.1"}  # what a pod's environment holds
CORPUS = sorted(COREFILES.glob("*.Corefile"))
EXPECTED = re.compile(r"# kdns: (loads|refused: (\S+))")


def expectation(path) -> tuple[str, str | None]:
    second = path.read_text().splitlines()[1]
    found = EXPECTED.match(second)
    assert found, f"{path.name}: line 2 says neither '# kdns: loads' nor '# kdns: refused: PLUGIN'"
    return found[1].split(":")[0], found[2]


def import_dir(path):
    """Where the example files a Corefile's imports name live (tests/corefiles/imports/<name>/...)."""
    mounted = COREFILES / "imports" / path.stem
    found = [d for d in mounted.rglob("*") if d.is_dir()] if mounted.is_dir() else []
    return found[0] if found else None


def test_the_corpus_is_large_enough_and_each_file_names_its_source():
    assert len(CORPUS) >= 40
    for path in CORPUS:
        assert path.read_text().startswith("# Source: "), path.name


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_corefile_loads_or_is_refused_for_its_plugin(path):
    outcome, plugin = expectation(path)
    if outcome == "loads":
        config, _ = load(path, environ=ENV, import_dir=import_dir(path))
        assert config.servers
        return
    with pytest.raises(CorefileError) as error:
        load(path, environ=ENV, import_dir=import_dir(path))
    named = [p for p in error.value.problems if f"plugin {plugin} " in p or f"directive {plugin!r}" in p]
    assert named, error.value.problems
    assert all(re.match(rf"{re.escape(str(path))}:\d+: ", p) for p in error.value.problems)
