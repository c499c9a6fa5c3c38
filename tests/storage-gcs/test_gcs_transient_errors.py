"""Failures on the wire (503, 429, resets) are retried; one that lasts is a TransientStorageError."""

from __future__ import annotations

import pytest
from servers.http_fault_proxy import Fault, HttpFaultProxy

import durably_gcs._storage
from durably.storage import TransientStorageError
from durably_gcs import GCSStorage


def _outcomes(proxy: HttpFaultProxy, method: str, fragment: str) -> list[str]:
    return [seen.outcome for seen in proxy.requests if seen.method == method and fragment in seen.path]


def test_put_is_retried_through_503_answers(proxied_storage: GCSStorage, proxy: HttpFaultProxy) -> None:
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=3, method="POST", path_contains="/upload/")
    proxied_storage.put("wf/a", b"value")
    assert _outcomes(proxy, "POST", "/upload/") == ["503", "503", "503", "forwarded"]
    assert proxied_storage.get("wf/a") == b"value"


def test_get_is_retried_through_connection_resets(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.RESET, times=2, method="GET", path_contains="alt=media")
    assert proxied_storage.get("wf/a") == b"value"
    assert _outcomes(proxy, "GET", "alt=media") == ["reset", "reset", "forwarded"]


def test_get_is_retried_through_429_throttling(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.TOO_MANY_REQUESTS, times=2, method="GET", path_contains="alt=media")
    assert proxied_storage.get("wf/a") == b"value"
    assert _outcomes(proxy, "GET", "alt=media") == ["429", "429", "forwarded"]


def test_put_whose_answer_was_lost_is_retried_and_lands_once(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    proxy.inject(Fault.DROP_RESPONSE, method="POST", path_contains="/upload/")
    proxied_storage.put("wf/a", b"value")
    assert _outcomes(proxy, "POST", "/upload/") == ["drop-response", "forwarded"]
    assert proxied_storage.get("wf/a") == b"value"


def test_exists_is_retried_through_503_answers(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=2, method="GET", path_contains="/o/workflows%2Fwf%2Fa")
    assert proxied_storage.exists("wf/a") is True
    assert _outcomes(proxy, "GET", "/o/workflows%2Fwf%2Fa") == ["503", "503", "forwarded"]


def test_a_later_listing_page_is_retried_through_a_reset(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/{i:04d}" for i in range(1_200)]
    for key in keys:
        storage.put(key, b"1")
    proxy.inject(Fault.RESET, method="GET", path_contains="pageToken=")
    assert list(proxied_storage.list("wf")) == keys
    assert _outcomes(proxy, "GET", "pageToken=") == ["reset", "forwarded"]


def test_delete_prefix_is_retried_through_503_answers(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    for i in range(20):
        storage.put(f"wf/{i}", b"1")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=5, method="DELETE")
    assert proxied_storage.delete_prefix("wf") == 20
    assert list(storage.list("wf")) == []
    assert _outcomes(proxy, "DELETE", "").count("503") == 5


def test_failure_that_outlasts_the_retry_budget_is_a_transient_storage_error(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(durably_gcs._storage, "RETRY_TIMEOUT", 1.0)
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=1_000_000, method="POST", path_contains="/upload/")
    with pytest.raises(TransientStorageError, match="workflows/wf/a"):
        proxied_storage.put("wf/a", b"value")
    assert len(_outcomes(proxy, "POST", "/upload/")) > 1
