"""Shared-state fixtures: a Redis from ``PINFACTORY_TEST_REDIS_URL`` (scripts/redis.sh).

Without one the Redis tests skip, except in CI (``CI=true``), where it is a failure.
Each test gets its own key namespace, so tests (and helpers sharing the server) never
see each other's counters.
"""

from __future__ import annotations

import os
import uuid

import pytest

from tests.ledger.conftest import pg_location

__all__ = ["pg_location"]


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("PINFACTORY_TEST_REDIS_URL", "")
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but PINFACTORY_TEST_REDIS_URL is not set: run scripts/redis.sh")
        pytest.skip("PINFACTORY_TEST_REDIS_URL not set (scripts/redis.sh prints one)")
    return url


@pytest.fixture
def namespace() -> str:
    return "t" + uuid.uuid4().hex[:12]
