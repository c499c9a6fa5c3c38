"""put_if_absent is an ifGenerationMatch=0 upload, and stays right when a retry meets its own write."""

from __future__ import annotations

import random

from servers.http_fault_proxy import Fault, HttpFaultProxy

from durably_gcs import GCSStorage
from durably_gcs._storage import RESUMABLE_THRESHOLD


def _uploads(proxy: HttpFaultProxy) -> list[tuple[str, int | None]]:
    return [(seen.outcome, seen.status) for seen in proxy.requests if seen.path.startswith("/upload/")]


def test_put_if_absent_sends_an_if_generation_match_zero_precondition(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    assert proxied_storage.put_if_absent("wf/lease", b"mine") is True
    assert proxied_storage.put_if_absent("wf/lease", b"theirs") is False
    uploads = [seen for seen in proxy.requests if seen.path.startswith("/upload/")]
    assert ["ifGenerationMatch=0" in seen.path for seen in uploads] == [True, True]
    assert [seen.status for seen in uploads] == [200, 412]
    assert proxied_storage.get("wf/lease") == b"mine"


def test_put_if_absent_whose_answer_was_lost_reports_its_own_creation(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    # The first upload reaches the server and creates the object, but the client never hears so;
    # its retry then gets 412, which must not be mistaken for losing to another writer.
    proxy.inject(Fault.DROP_RESPONSE, method="POST", path_contains="uploadType=multipart")
    assert proxied_storage.put_if_absent("wf/lease", b"mine") is True
    assert _uploads(proxy) == [("drop-response", 200), ("forwarded", 412)]
    assert proxied_storage.get("wf/lease") == b"mine"


def test_put_if_absent_retried_onto_another_writers_object_reports_false(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/lease", b"theirs")
    proxy.inject(Fault.SERVICE_UNAVAILABLE, method="POST", path_contains="uploadType=multipart")
    assert proxied_storage.put_if_absent("wf/lease", b"mine") is False
    assert _uploads(proxy) == [("503", 503), ("forwarded", 412)]
    assert storage.get("wf/lease") == b"theirs"


def test_large_put_if_absent_over_an_existing_key_uploads_nothing(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/big", b"already here")
    value = random.Random(1).randbytes(RESUMABLE_THRESHOLD + 1)
    assert proxied_storage.put_if_absent("wf/big", value) is False
    assert _uploads(proxy) == []
    assert storage.get("wf/big") == b"already here"
