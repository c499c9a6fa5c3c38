"""put_if_absent is an ifGenerationMatch=0 upload, also when retried after a lost answer.

What the caller sees after lost answers (True for its own creation, False for another writer's)
is StorageFaultContract's, in test_gcs_transient_errors.py.
"""

from __future__ import annotations

import random

from durably.testing import Fault, HttpFaultProxy
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


def test_the_retry_after_a_lost_answer_is_still_conditional_and_refused(
    proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    # The first upload creates the object but its answer is lost; the retry must not overwrite it.
    proxy.inject(Fault.DROP_RESPONSE, method="POST", path_contains="uploadType=multipart")
    proxied_storage.put_if_absent("wf/lease", b"mine")
    assert _uploads(proxy) == [("drop-response", 200), ("forwarded", 412)]


def test_large_put_if_absent_over_an_existing_key_uploads_nothing(
    proxied_storage: GCSStorage, storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    storage.put("wf/big", b"already here")
    value = random.Random(1).randbytes(RESUMABLE_THRESHOLD + 1)
    assert proxied_storage.put_if_absent("wf/big", value) is False
    assert _uploads(proxy) == []
    assert storage.get("wf/big") == b"already here"
