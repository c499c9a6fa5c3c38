"""How a gs:// URL is read, how the plugin is found, and what travels when a GCSStorage is pickled."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
from servers.fake_gcs import FakeGCS

from durably._resolve import forget_storage, open_storage
from durably.storage import StoragePermanentError
from durably_gcs import GCSStorage


def test_url_is_made_canonical() -> None:
    storage = GCSStorage("gcs://my-bucket/runs/prod/?project=acme")
    assert storage.url == "gs://my-bucket/runs/prod?project=acme"
    assert (storage.location.bucket, storage.location.prefix) == ("my-bucket", "runs/prod")


def test_url_without_a_prefix_uses_the_bucket_root() -> None:
    assert GCSStorage("gs://my-bucket").location.prefix == ""


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("gs:///prefix", "names no bucket"),
        ("gs://bucket/a//b", "empty"),
        ("gs://bucket/p?projekt=acme", "projekt"),
        ("gs://bucket/p?create_bucket=maybe", "create_bucket"),
        ("gs://bucket/p?emulator=localhost:4443", "emulator"),
        ("s3://bucket/p", "gs://"),
    ],
)
def test_bad_url_is_refused_with_the_reason(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        GCSStorage(url)


@pytest.mark.parametrize(
    ("url", "option"),
    [("gs://bucket/p?project=acme&project=other", "project"), ("gs://bucket/p?projekt=acme", "projekt")],
)
def test_a_repeated_or_unknown_option_is_refused_naming_the_option_and_the_url(url: str, option: str) -> None:
    # GCS used to keep the last of a repeated option; now the rule of every backend (parse_storage_url)
    with pytest.raises(ValueError) as caught:
        GCSStorage(url)
    assert f"'{option}'" in str(caught.value)
    assert url in str(caught.value)


def test_url_with_credentials_is_refused_without_repeating_them() -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        GCSStorage("gs://someone:TOPSECRET@bucket/p")
    assert "TOPSECRET" not in str(caught.value)


def test_an_empty_option_is_left_unset() -> None:
    storage = GCSStorage("gs://bucket/p?create_bucket=&project=")
    assert (storage.location.create_bucket, storage.location.project) == (False, None)
    assert storage.url == "gs://bucket/p"


def test_the_prefix_is_percent_decoded_and_encoded_again_in_the_canonical_url() -> None:
    storage = GCSStorage("gs://bucket/runs%20of%20today/x")
    assert storage.location.prefix == "runs of today/x"
    assert storage.url == "gs://bucket/runs%20of%20today/x"


@pytest.mark.parametrize("scheme", ["gs", "gcs"])
def test_open_storage_finds_the_backend_through_the_entry_point(scheme: str, bucket: str) -> None:
    url = f"{scheme}://{bucket}/found"
    try:
        storage = open_storage(url)
        assert isinstance(storage, GCSStorage)
        assert storage.url == f"gs://{bucket}/found"
    finally:
        forget_storage(url)


def test_loading_the_plugin_does_not_import_google_cloud_storage() -> None:
    # Every process that loads durably's plugins (each Ray worker) would pay ~0.5 s for it.
    code = (
        "import sys\n"
        "from durably._plugins import get_registry\n"
        "backends = get_registry().storage_backends()\n"
        "assert {'gs', 'gcs'} <= set(backends), sorted(backends)\n"
        "print('google.cloud.storage' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_pickle_carries_only_the_url_not_the_client(storage: GCSStorage) -> None:
    storage.put("wf/a", b"1")  # builds the client, the bucket check state, the retry policy
    assert pickle.dumps(storage) == pickle.dumps(GCSStorage(storage.url))


def test_keys_are_objects_below_the_url_prefix(storage: GCSStorage, bucket: str, fake_gcs: FakeGCS) -> None:
    storage.put("wf/1/output", b"1")
    storage.put_if_absent("wf/1/lease", b"2")
    assert sorted(fake_gcs.object_names(bucket)) == ["workflows/wf/1/lease", "workflows/wf/1/output"]


def test_listing_skips_objects_that_are_not_valid_keys(
    storage: GCSStorage, bucket: str, fake_gcs: FakeGCS
) -> None:
    storage.put("wf/1/output", b"1")
    fake_gcs.put_object(bucket, "workflows/wf/folder/", b"")  # a console-made folder placeholder
    fake_gcs.put_object(bucket, "workflows/wf//double", b"")
    fake_gcs.put_object(bucket, "elsewhere/wf/x", b"")
    assert list(storage.list("wf")) == ["wf/1/output"]


def test_emulator_named_in_the_url_is_used_without_the_environment_variable(
    fake_gcs: FakeGCS, bucket: str
) -> None:
    url = f"gs://{bucket}/workflows?emulator={fake_gcs.endpoint}"
    GCSStorage(url).put("wf/a", b"written with the variable set")
    code = (
        "import os, sys\n"
        "from durably_gcs import GCSStorage\n"
        "assert 'STORAGE_EMULATOR_HOST' not in os.environ\n"
        "sys.stdout.write(GCSStorage(sys.argv[1]).get('wf/a').decode())\n"
    )
    env = {name: value for name, value in os.environ.items() if name != "STORAGE_EMULATOR_HOST"}
    result = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "written with the variable set"


def test_missing_google_credentials_raise_a_permanent_error_naming_adc(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/durably-test-key.json")
    with pytest.raises(StoragePermanentError, match="Application Default Credentials"):
        GCSStorage(f"gs://{bucket}/workflows").get("wf/a")
