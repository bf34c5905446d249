"""Fixtures of the snippet tests: the harness of each language, and the stack they forward to."""

from collections.abc import Iterator

import pytest

from tests.conftest import Deployment
from tests.forwarding import ForwardingStack, forwarding_stack
from tests.snippets.runtimes import Harness, Harnesses


@pytest.fixture(scope="session")
def harnesses(tmp_path_factory: pytest.TempPathFactory) -> Harnesses:
    return Harnesses(tmp_path_factory.mktemp("snippet-harnesses"))


@pytest.fixture
def harness(language: str, harnesses: Harnesses) -> Harness:
    """The language's harness; the test skips here, before any stack starts, when its runtime is missing."""
    harnesses.command(language)
    return Harness(language, harnesses)


@pytest.fixture
def stack(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardingStack]:
    with forwarding_stack(deployment, monkeypatch) as built:
        yield built
