"""Objects above the multipart limit go up in a resumable session, chunk by chunk, and come back whole."""

from __future__ import annotations

import math
import random

from durably.testing import Fault, HttpFaultProxy, SeenRequest
from durably_gcs import GCSStorage
from durably_gcs._storage import RESUMABLE_CHUNK_SIZE, RESUMABLE_THRESHOLD

LARGE = 20 * 1024 * 1024


def _uploads(proxy: HttpFaultProxy) -> list[SeenRequest]:
    return [seen for seen in proxy.requests if seen.path.startswith("/upload/")]


def test_large_value_goes_up_in_a_resumable_session_and_reads_back_byte_exact(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    value = random.Random(20).randbytes(LARGE)
    proxied_storage.put("wf/big", value)
    start, *chunks = _uploads(proxy)
    assert (start.method, "uploadType=resumable" in start.path) == ("POST", True)
    assert [chunk.method for chunk in chunks] == ["PUT"] * math.ceil(LARGE / RESUMABLE_CHUNK_SIZE)
    assert all(chunk.body_size <= RESUMABLE_CHUNK_SIZE for chunk in chunks)
    assert sum(chunk.body_size for chunk in chunks) == LARGE
    assert proxied_storage.get("wf/big") == value


def test_value_at_the_threshold_goes_up_in_one_multipart_request(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    value = random.Random(8).randbytes(RESUMABLE_THRESHOLD)
    proxied_storage.put("wf/medium", value)
    assert [(seen.method, "uploadType=multipart" in seen.path) for seen in _uploads(proxy)] == [
        ("POST", True)
    ]
    assert proxied_storage.get("wf/medium") == value


def test_failed_chunk_is_sent_again_alone(proxied_storage: GCSStorage, proxy: HttpFaultProxy) -> None:
    value = random.Random(21).randbytes(LARGE)
    proxy.inject(Fault.SERVICE_UNAVAILABLE, method="PUT", path_contains="upload_id=", skip=1)
    proxied_storage.put("wf/big", value)
    chunks = [seen for seen in _uploads(proxy) if seen.method == "PUT"]
    assert [seen.outcome for seen in chunks][:2] == ["forwarded", "503"]
    # every byte was accepted exactly once: the first chunk was not uploaded again
    assert sum(seen.body_size for seen in chunks if seen.outcome == "forwarded") == LARGE
    assert [seen.method for seen in _uploads(proxy)].count("POST") == 1
    assert proxied_storage.get("wf/big") == value


def test_large_put_if_absent_creates_through_a_resumable_session(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    value = random.Random(22).randbytes(LARGE)
    assert proxied_storage.put_if_absent("wf/big", value) is True
    start = _uploads(proxy)[0]
    assert "uploadType=resumable" in start.path and "ifGenerationMatch=0" in start.path
    assert proxied_storage.get("wf/big") == value
