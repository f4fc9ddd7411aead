"""Fuzzing `pipespec check`: mutated corpus specs (bench/fuzz_specs.py's mutators, driven by
hypothesis) only ever give pipespec diagnostics, never another exception, and quickly.

The suite runs a few hundred derandomized examples (the same ones every run, so the suite
stays deterministic); `python bench/fuzz_specs.py -n 10000` explores far more."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipespec.compiler.codes import CODES

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 5.0  # per check, warm; the bench measures it (p99 well under 0.1 s)


def _fuzz_module():
    spec = importlib.util.spec_from_file_location("fuzz_specs", ROOT / "bench" / "fuzz_specs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz_module()
CORPUS = fuzz.corpus()
TEXTS = {p: p.read_text(encoding="utf-8") for p in CORPUS}


@pytest.fixture(scope="module", autouse=True)
def warm():
    """Imports, estimator checks and schema inference happen once, before anything is timed."""
    for path in CORPUS:
        result = fuzz.check(path.read_bytes(), str(path.parent))
        assert result is not None and result.errors == [], path


def checked(m) -> None:
    started = time.perf_counter()
    result = fuzz.check(m.raw, str(m.source.parent), m.params)
    elapsed = time.perf_counter() - started
    assert elapsed < SECONDS, f"{m.source.name} ({m.how}) took {elapsed:.2f}s"
    if result is not None:
        assert all(d.code in CODES for d in result.diagnostics)
        assert (result.ir is None) == bool(result.errors)


FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(source=st.sampled_from(CORPUS), rng=st.randoms(use_true_random=False))
def test_mutated_specs_only_give_diagnostics(source, rng):
    checked(fuzz.mutate(TEXTS[source], rng, source))


@settings(FUZZ, max_examples=150)
@given(source=st.sampled_from(CORPUS), rng=st.randoms(use_true_random=False),
       token=st.sampled_from(fuzz.TOKENS))
def test_any_value_replaced_by_a_special_token_only_gives_diagnostics(source, rng, token):
    """The most productive mutation on its own: one `key: value` becomes `key: TOKEN`."""
    lines = TEXTS[source].split("\n")
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    i = rng.choice(candidates)
    lines[i] = lines[i].split(": ", 1)[0] + ": " + token
    raw = "\n".join(lines).encode("utf-8")
    checked(fuzz.Mutant(source, "token", raw, ()))


@settings(FUZZ, max_examples=60)
@given(source=st.sampled_from(CORPUS), rng=st.randoms(use_true_random=False))
def test_data_level_mutants_only_give_diagnostics(source, rng):
    raw = fuzz.data_mutant(TEXTS[source], rng).encode("utf-8", "surrogatepass")
    checked(fuzz.Mutant(source, "data", raw, ()))


def test_mutants_are_reproducible_from_seed_and_index():
    texts = dict(TEXTS)
    assert fuzz.mutant(3, 17, CORPUS, texts) == fuzz.mutant(3, 17, CORPUS, texts)
    assert fuzz.mutant(3, 17, CORPUS, texts) != fuzz.mutant(3, 18, CORPUS, texts)
