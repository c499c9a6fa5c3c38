"""The s3:// URL: its options, its canonical form, and the durably plugin that serves the scheme."""

from __future__ import annotations

import pytest

from durably._plugins import get_registry
from durably._resolve import forget_storage, open_storage
from durably_s3 import S3Storage


def test_url_keeps_bucket_prefix_and_options_in_a_canonical_order() -> None:
    storage = S3Storage("s3://bucket/a/b/?region=eu-west-1&profile=dev&endpoint_url=http://127.0.0.1:9000/")
    assert storage.url == "s3://bucket/a/b?endpoint_url=http://127.0.0.1:9000&profile=dev&region=eu-west-1"


def test_url_rebuilds_an_equal_storage() -> None:
    url = "s3://bucket/wf/ünï?create_bucket=yes&addressing_style=path&region=us-east-1"
    assert S3Storage(S3Storage(url).url).url == S3Storage(url).url


def test_bucket_alone_is_a_storage_at_the_bucket_root() -> None:
    storage = S3Storage("s3://bucket")
    assert (storage.bucket, storage.prefix, storage.url) == ("bucket", "", "s3://bucket")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("gs://bucket/wf", "s3://bucket/prefix"),
        ("s3:///wf", "names no bucket"),
        ("s3://Bad_Bucket!/wf", "bucket name"),
        ("s3://bucket/wf?colour=blue", "unknown option 'colour'"),
        ("s3://bucket/wf?region=a&region=b", "twice"),
        ("s3://bucket/wf?create_bucket=maybe", "true or false"),
        ("s3://bucket/wf?addressing_style=sideways", "addressing_style"),
        ("s3://bucket/wf?endpoint_url=ftp://host", "endpoint_url"),
        ("s3://bucket/a/../b", "'..'"),
    ],
)
def test_bad_url_is_refused_with_what_is_wrong(url: str, complaint: str) -> None:
    with pytest.raises(ValueError) as caught:
        S3Storage(url)
    assert complaint in str(caught.value)


@pytest.mark.parametrize(
    ("url", "option"),
    [
        ("s3://bucket/wf?region=eu-west-1&region=eu-west-1", "region"),
        ("s3://bucket/wf?regoin=eu-west-1", "regoin"),
    ],
)
def test_a_repeated_or_unknown_option_is_refused_naming_the_option_and_the_url(url: str, option: str) -> None:
    # even with the same value twice: the rule of every backend (durably.storage.parse_storage_url)
    with pytest.raises(ValueError) as caught:
        S3Storage(url)
    assert f"'{option}'" in str(caught.value)
    assert url in str(caught.value)


def test_building_a_storage_makes_no_request() -> None:
    # nothing listens on port 9; a request would fail, so building must not send one
    storage = S3Storage("s3://bucket/wf?endpoint_url=http://127.0.0.1:9")
    assert storage.url.startswith("s3://bucket/wf")


def test_the_s3_scheme_is_served_by_the_installed_plugin() -> None:
    assert "s3" in get_registry().storage_backends()


def test_open_storage_builds_an_s3_storage_from_the_url(s3_url: str) -> None:
    try:
        storage = open_storage(s3_url)
        assert isinstance(storage, S3Storage)
        assert storage.url == s3_url
    finally:
        forget_storage(s3_url)
