"""Listing pages through GCS's 1,000-object pages; delete_prefix removes more than a page."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from durably.testing import HttpFaultProxy
from durably_gcs import GCSStorage
from durably_gcs._storage import LIST_PAGE_SIZE

# Thousands of keys through a proxy: about 20-50 s; run on the primary Python only (the paging
# code is the same on every Python, and the contract kit's page-crossing tests run on all of them).
pytestmark = pytest.mark.slow

MANY = 2_500


def _put_many(storage: GCSStorage, keys: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: storage.put(key, b"1"), keys))


def _list_requests(proxy: HttpFaultProxy) -> list[str]:
    return [seen.path for seen in proxy.requests if seen.method == "GET" and "/o?" in seen.path]


def test_list_follows_page_tokens_past_the_first_thousand_keys(
    storage: GCSStorage, proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/steps/{i}" for i in range(MANY)]
    _put_many(storage, keys)
    assert list(proxied_storage.list("wf/steps")) == sorted(keys)
    pages = _list_requests(proxy)
    assert len(pages) == -(-MANY // LIST_PAGE_SIZE)
    assert ["pageToken=" in page for page in pages] == [False, True, True]


def test_list_fetches_later_pages_only_as_the_caller_iterates(
    storage: GCSStorage, proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    _put_many(storage, [f"wf/steps/{i:04d}" for i in range(MANY)])
    keys = proxied_storage.list("wf/steps")
    assert len(_list_requests(proxy)) == 1  # the first page, fetched so that errors surface here
    assert next(keys) == "wf/steps/0000"
    assert len(_list_requests(proxy)) == 1


def test_delete_prefix_removes_more_than_a_listing_page_and_counts_them(
    storage: GCSStorage, proxied_storage: GCSStorage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/steps/{i}" for i in range(MANY)]
    _put_many(storage, keys)
    storage.put("wf/stepsibling", b"kept")
    assert proxied_storage.delete_prefix("wf/steps") == MANY
    assert list(storage.list("wf")) == ["wf/stepsibling"]
    deletes = [seen for seen in proxy.requests if seen.method == "DELETE"]
    assert len(deletes) == MANY + 1  # one per object, plus the probe for a key named "wf/steps"
