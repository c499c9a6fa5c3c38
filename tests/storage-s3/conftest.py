"""Fixtures for the durably-s3 tests: one real SeaweedFS S3 server per session, a fresh prefix per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from servers.seaweedfs import (
    REGION,
    TEST_BUCKET,
    SeaweedFS,
    s3_credentials,
    s3_storage_url_factory,
    seaweedfs,
)

from durably.testing import HttpFaultProxy
from durably_s3 import S3Storage

# the session fixtures, re-exported so that pytest finds them here
__all__ = ["s3_credentials", "s3_storage_url_factory", "seaweedfs"]


@pytest.fixture(autouse=True)
def _aws_environment(s3_credentials: Path) -> None:
    """Every test here runs with boto3's chain pointed at the server's key."""


@pytest.fixture
def s3_url(s3_storage_url_factory: Callable[[], str]) -> str:
    """The URL of a fresh, empty prefix in the test bucket."""
    return s3_storage_url_factory()


@pytest.fixture
def storage(s3_url: str) -> S3Storage:
    return S3Storage(s3_url)


@pytest.fixture
def proxy(seaweedfs: SeaweedFS) -> Iterator[HttpFaultProxy]:
    """A fault-injecting HTTP proxy on 127.0.0.1 in front of the S3 server."""
    with HttpFaultProxy(seaweedfs.endpoint_url) as proxy:
        yield proxy


@pytest.fixture
def proxied_storage(proxy: HttpFaultProxy, storage: S3Storage) -> S3Storage:
    """An S3Storage on the same prefix as ``storage``, whose every request goes through ``proxy``."""
    return S3Storage(f"s3://{TEST_BUCKET}/{storage.prefix}?endpoint_url={proxy.url}&region={REGION}")
