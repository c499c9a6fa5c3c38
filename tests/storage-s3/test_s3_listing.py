"""Listing pages through more than 1,000 keys, and delete_prefix deletes them 1,000 per request."""

from __future__ import annotations

import concurrent.futures

import pytest

from durably.testing import HttpFaultProxy
from durably_s3 import S3Storage

# Thousands of keys through a proxy: about 20-50 s; run on the primary Python only (the paging
# code is the same on every Python, and the contract kit's page-crossing tests run on all of them).
pytestmark = pytest.mark.slow


def _put_all(storage: S3Storage, keys: list[str]) -> None:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: storage.put(key, b"1"), keys))


def test_listing_more_than_1000_keys_reads_every_page(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/{i:05d}" for i in range(2_345)]
    _put_all(storage, keys)
    assert list(proxied_storage.list("wf")) == keys
    pages = [seen for seen in proxy.requests if seen.method == "GET" and "list-type=2" in seen.path]
    assert len(pages) == 3
    assert ["continuation-token=" in page.path for page in pages] == [False, True, True]


def test_delete_prefix_of_more_than_1000_keys_deletes_1000_per_request(
    proxied_storage: S3Storage, storage: S3Storage, proxy: HttpFaultProxy
) -> None:
    keys = [f"wf/{i:05d}" for i in range(2_345)]
    _put_all(storage, keys)
    assert proxied_storage.delete_prefix("wf") == len(keys)
    batches = [seen for seen in proxy.requests if seen.method == "POST" and "delete" in seen.path]
    assert len(batches) == 3
    assert list(storage.list("wf")) == []


def test_list_leaves_out_objects_outside_the_storage_prefix(s3_storage_url_factory: object) -> None:
    outer = S3Storage(s3_storage_url_factory())  # type: ignore[operator]
    inner = S3Storage(outer.url.replace(f"/{outer.prefix}?", f"/{outer.prefix}/inner?"))
    outer.put("outside", b"1")
    inner.put("wf/a", b"2")
    assert list(inner.list("")) == ["wf/a"]
    assert list(outer.list("")) == ["inner/wf/a", "outside"]
