"""Fixtures for the durably-gcs tests: one real fake-gcs-server per session, a fresh bucket per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from servers.fake_gcs import FakeGCS, fake_gcs

from durably.testing import HttpFaultProxy
from durably_gcs import GCSStorage

__all__ = ["fake_gcs"]  # the session fixture, re-exported so that pytest finds it here

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


@pytest.fixture(scope="session", autouse=True)
def emulator_env(fake_gcs: FakeGCS) -> Iterator[str]:
    """STORAGE_EMULATOR_HOST names the emulator for the session, as a developer would set it.

    It is set in os.environ (not per test) so that spawned child processes inherit it.
    """
    previous = os.environ.get(EMULATOR_ENV)
    os.environ[EMULATOR_ENV] = fake_gcs.endpoint
    try:
        yield fake_gcs.endpoint
    finally:
        if previous is None:
            os.environ.pop(EMULATOR_ENV, None)
        else:
            os.environ[EMULATOR_ENV] = previous


@pytest.fixture
def bucket(fake_gcs: FakeGCS) -> str:
    """A new, empty bucket for one test."""
    return fake_gcs.create_bucket()


@pytest.fixture
def storage(bucket: str) -> GCSStorage:
    """A GCSStorage rooted below a prefix of a fresh bucket; it finds the emulator via the environment."""
    return GCSStorage(f"gs://{bucket}/workflows")


@pytest.fixture
def proxy(fake_gcs: FakeGCS) -> Iterator[HttpFaultProxy]:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of the emulator."""
    with HttpFaultProxy(fake_gcs.endpoint) as proxy:
        yield proxy


@pytest.fixture
def proxied_storage(proxy: HttpFaultProxy, bucket: str) -> GCSStorage:
    """A GCSStorage whose every request goes through ``proxy`` (named by the URL's emulator option)."""
    return GCSStorage(f"gs://{bucket}/workflows?emulator={proxy.url}")
