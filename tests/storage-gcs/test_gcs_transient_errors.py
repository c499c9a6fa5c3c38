"""Failures on the wire (503, 429, resets, lost or slow answers) are retried; one that lasts is transient.

The faults every backend must survive are durably's StorageFaultContract, run here through a
real HTTP proxy in front of fake-gcs-server; the tests after it are the GCS-specific ones.
"""

from __future__ import annotations

import pytest

from durably.storage import RETRY_DEADLINE_ENV, TransientStorageError
from durably.testing import Fault, HttpFaultInjector, HttpFaultProxy, HttpRoute, StorageFaultContract
from durably_gcs import GCSStorage

#: The request that carries each Storage operation, among those the operation sends.
GCS_ROUTES = {
    "put": HttpRoute("POST", "/upload/"),
    "put_if_absent": HttpRoute("POST", "/upload/"),
    "get": HttpRoute("GET", "alt=media"),
    "exists": HttpRoute("GET", "/o/"),
    "list": HttpRoute("GET", "/o?"),
    "delete_prefix": HttpRoute("DELETE"),
}


class TestGCSStorageFaults(StorageFaultContract):
    @pytest.fixture
    def faults(self, proxy: HttpFaultProxy) -> HttpFaultInjector:
        return HttpFaultInjector(proxy, GCS_ROUTES)

    @pytest.fixture
    def faulty_storage(self, proxied_storage: GCSStorage) -> GCSStorage:
        return proxied_storage


def _outcomes(proxy: HttpFaultProxy, method: str, fragment: str) -> list[str]:
    return [seen.outcome for seen in proxy.requests if seen.method == method and fragment in seen.path]


def test_a_later_listing_page_is_retried_through_a_reset(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/{i:04d}" for i in range(1_200)]
    for key in keys:
        storage.put(key, b"1")
    proxy.inject(Fault.RESET, method="GET", path_contains="pageToken=")
    assert list(proxied_storage.list("wf")) == keys
    assert _outcomes(proxy, "GET", "pageToken=") == ["reset", "forwarded"]


def test_failure_that_outlasts_the_retry_deadline_is_a_transient_storage_error_naming_it(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # google's retries of one request stop at core's deadline, not at a deadline of their own.
    monkeypatch.setenv(RETRY_DEADLINE_ENV, "1")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=1_000_000, method="POST", path_contains="/upload/")
    with pytest.raises(TransientStorageError, match=rf"workflows/wf/a .* for 1 s, .*{RETRY_DEADLINE_ENV}"):
        proxied_storage.put("wf/a", b"value")
    assert len(_outcomes(proxy, "POST", "/upload/")) > 1
