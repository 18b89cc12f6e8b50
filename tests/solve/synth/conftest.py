"""Fixtures for the synthetic-corpus tests: the generator's data sources, loaded once per session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sources():
    from solve.synth.corpus import load_sources

    return load_sources()
