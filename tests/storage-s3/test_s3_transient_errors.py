"""Failures on the wire (503, 429, resets, lost or slow answers) are retried; lasting ones and refusals not.

The faults every backend must survive are durably's StorageFaultContract, run here through a
real HTTP proxy in front of SeaweedFS; the tests after it are the S3-specific ones (the bucket
check, listing pages, multipart uploads, the retry budget, refusals).
"""

from __future__ import annotations

import pytest
from servers.seaweedfs import TEST_BUCKET, WRONG_PROFILE

import durably_s3._storage
from durably.storage import KeyNotFound, StoragePermanentError, TransientStorageError
from durably.testing import Fault, HttpFaultInjector, HttpFaultProxy, HttpRoute, StorageFaultContract
from durably_s3 import S3Storage

#: The request that carries each Storage operation, among those the operation sends.
S3_ROUTES = {
    "put": HttpRoute("PUT"),
    "put_if_absent": HttpRoute("PUT"),
    "get": HttpRoute("GET"),
    "exists": HttpRoute("HEAD"),
    "list": HttpRoute("GET", "list-type=2"),
    "delete_prefix": HttpRoute("POST", "delete"),
}


class TestS3StorageFaults(StorageFaultContract):
    @pytest.fixture
    def faults(self, proxy: HttpFaultProxy) -> HttpFaultInjector:
        return HttpFaultInjector(proxy, S3_ROUTES)

    @pytest.fixture
    def faulty_storage(self, proxied_storage: S3Storage) -> S3Storage:
        return proxied_storage


def _outcomes(proxy: HttpFaultProxy, method: str, fragment: str = "") -> list[str]:
    return [seen.outcome for seen in proxy.requests if seen.method == method and fragment in seen.path]


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
