"""Failures on the wire (503, 429, resets, lost answers) are retried; lasting ones and refusals are not."""

from __future__ import annotations

import pytest
from servers.http_fault_proxy import Fault, HttpFaultProxy
from servers.seaweedfs import TEST_BUCKET, WRONG_PROFILE

import durably_s3._storage
from durably.storage import KeyNotFound, StoragePermanentError, TransientStorageError
from durably_s3 import S3Storage


def _outcomes(proxy: HttpFaultProxy, method: str, fragment: str = "") -> list[str]:
    return [seen.outcome for seen in proxy.requests if seen.method == method and fragment in seen.path]


def test_put_is_retried_through_503_answers(proxied_storage: S3Storage, proxy: HttpFaultProxy) -> None:
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=3, method="PUT")
    proxied_storage.put("wf/a", b"value")
    assert _outcomes(proxy, "PUT") == ["503", "503", "503", "forwarded"]
    assert proxied_storage.get("wf/a") == b"value"


def test_get_is_retried_through_connection_resets(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.RESET, times=2, method="GET", path_contains="/wf/a")
    assert proxied_storage.get("wf/a") == b"value"
    assert _outcomes(proxy, "GET", "/wf/a") == ["reset", "reset", "forwarded"]


def test_get_is_retried_through_429_throttling(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.TOO_MANY_REQUESTS, times=2, method="GET", path_contains="/wf/a")
    assert proxied_storage.get("wf/a") == b"value"
    assert _outcomes(proxy, "GET", "/wf/a") == ["429", "429", "forwarded"]


def test_exists_is_retried_through_503_answers(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=2, method="HEAD", path_contains="/wf/a")
    assert proxied_storage.exists("wf/a") is True
    assert _outcomes(proxy, "HEAD", "/wf/a") == ["503", "503", "forwarded"]


def test_the_bucket_check_is_retried_through_connection_resets(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/a", b"value")
    proxy.inject(Fault.RESET, times=2, method="HEAD")  # the first HEAD is the bucket check
    assert proxied_storage.get("wf/a") == b"value"
    assert _outcomes(proxy, "HEAD") == ["reset", "reset", "forwarded"]


def test_a_later_listing_page_is_retried_through_a_reset(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/{i:04d}" for i in range(1_200)]
    for key in keys:
        storage.put(key, b"1")
    proxy.inject(Fault.RESET, method="GET", path_contains="continuation-token=")
    assert list(proxied_storage.list("wf")) == keys
    assert _outcomes(proxy, "GET", "continuation-token=") == ["reset", "forwarded"]


def test_delete_prefix_is_retried_through_503_answers(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    for i in range(20):
        storage.put(f"wf/{i}", b"1")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=2, method="POST", path_contains="delete")
    assert proxied_storage.delete_prefix("wf") == 20
    assert list(storage.list("wf")) == []
    assert _outcomes(proxy, "POST", "delete") == ["503", "503", "forwarded"]


def test_put_if_absent_whose_answer_was_lost_reports_that_it_created_the_key(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    proxy.inject(Fault.DROP_RESPONSE, method="PUT", path_contains="/wf/lease")
    assert proxied_storage.put_if_absent("wf/lease", b"owner-1") is True
    # the retry was refused (412) because the first attempt had created the object
    assert [(seen.outcome, seen.status) for seen in proxy.requests if seen.method == "PUT"] == [
        ("drop-response", 200),
        ("forwarded", 412),
    ]
    assert storage.get("wf/lease") == b"owner-1"


def test_put_if_absent_whose_answer_was_lost_still_loses_to_an_equal_value_written_before(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    # the same bytes, from another writer: only the writer token in the metadata tells them apart
    assert storage.put_if_absent("wf/lease", b"same value") is True
    proxy.inject(Fault.DROP_RESPONSE, method="PUT", path_contains="/wf/lease")
    assert proxied_storage.put_if_absent("wf/lease", b"same value") is False
    assert _outcomes(proxy, "PUT") == ["drop-response", "forwarded"]


def test_large_put_if_absent_whose_answer_was_lost_reports_that_it_created_the_key(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    value = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    # the completion of the multipart upload is the POST that names an uploadId
    proxy.inject(Fault.DROP_RESPONSE, method="POST", path_contains="uploadId=")
    assert proxied_storage.put_if_absent("wf/big", value) is True
    assert _outcomes(proxy, "POST", "uploadId=")[0] == "drop-response"
    assert storage.get("wf/big") == value


def test_a_part_of_a_multipart_upload_is_retried_on_its_own(
    proxied_storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    value = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    proxy.inject(Fault.RESET, method="PUT", path_contains="partNumber=2")
    proxied_storage.put("wf/big", value)
    assert _outcomes(proxy, "PUT", "partNumber=2") == ["reset", "forwarded"]
    assert _outcomes(proxy, "PUT", "partNumber=1") == ["forwarded"]
    assert proxied_storage.get("wf/big") == value


def test_a_lasting_failure_raises_transient_storage_error_after_every_attempt(
    proxied_storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    attempts = durably_s3._storage.ATTEMPTS
    proxy.inject(Fault.SERVICE_UNAVAILABLE, times=attempts, method="PUT")
    with pytest.raises(TransientStorageError, match="wf/a"):
        proxied_storage.put("wf/a", b"value")
    assert _outcomes(proxy, "PUT") == ["503"] * attempts


def test_a_missing_key_is_asked_for_once(proxied_storage: S3Storage, proxy: HttpFaultProxy) -> None:
    with pytest.raises(KeyNotFound):
        proxied_storage.get("wf/missing")
    assert [(seen.outcome, seen.status) for seen in proxy.requests if seen.method == "GET"] == [
        ("forwarded", 404)
    ]


def test_a_refused_request_is_not_retried(proxy: HttpFaultProxy) -> None:
    storage = S3Storage(
        f"s3://{TEST_BUCKET}/wf?endpoint_url={proxy.url}&region=us-east-1&profile={WRONG_PROFILE}"
    )
    with pytest.raises(StoragePermanentError):
        storage.put("wf/a", b"value")
    assert [(seen.method, seen.status) for seen in proxy.requests] == [("HEAD", 403)]


def test_a_missing_bucket_is_not_retried(proxy: HttpFaultProxy) -> None:
    storage = S3Storage(f"s3://no-such-bucket-here/wf?endpoint_url={proxy.url}&region=us-east-1")
    with pytest.raises(StoragePermanentError):
        storage.get("wf/a")
    assert [(seen.method, seen.status) for seen in proxy.requests] == [("HEAD", 404)]
