"""Missing buckets and refused credentials fail at once with errors a user can act on; no secret leaks."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from servers.seaweedfs import REGION, TEST_BUCKET, WRONG_PROFILE, SeaweedFS

from durably.storage import StoragePermanentError
from durably_s3 import S3Storage


def _secrets(credentials_file: Path) -> list[str]:
    """Every secret in the session's credentials file (the valid one and the wrong one)."""
    return [
        line.split("=", 1)[1].strip()
        for line in credentials_file.read_text().splitlines()
        if line.startswith("aws_secret_access_key")
    ]


def _url(seaweedfs: SeaweedFS, bucket: str, **options: str) -> str:
    extra = "".join(f"&{name}={value}" for name, value in options.items())
    return f"s3://{bucket}/wf?endpoint_url={seaweedfs.endpoint_url}&region={REGION}{extra}"


def test_missing_bucket_error_names_the_bucket(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, "no-such-bucket"))
    with pytest.raises(StoragePermanentError, match="'no-such-bucket' does not exist"):
        storage.put("k", b"1")


def test_missing_bucket_error_says_how_to_fix_it(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, "no-such-bucket"))
    with pytest.raises(StoragePermanentError) as caught:
        storage.get("k")
    assert "aws s3 mb s3://no-such-bucket" in str(caught.value)
    assert "create_bucket=true" in str(caught.value)


def test_missing_bucket_makes_exists_fail_rather_than_answer_false(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, "no-such-bucket"))
    with pytest.raises(StoragePermanentError, match="no-such-bucket"):
        storage.exists("k")


def test_missing_bucket_is_created_when_the_url_asks_for_it(seaweedfs: SeaweedFS) -> None:
    bucket = "durably-created-by-storage"
    storage = S3Storage(_url(seaweedfs, bucket, create_bucket="true"))
    storage.put("k", b"1")
    assert bucket in [entry["Name"] for entry in seaweedfs.client().list_buckets()["Buckets"]]
    assert storage.get("k") == b"1"


def test_missing_bucket_is_not_created_by_default(seaweedfs: SeaweedFS) -> None:
    with pytest.raises(StoragePermanentError):
        S3Storage(_url(seaweedfs, "durably-never-created")).put("k", b"1")
    assert "durably-never-created" not in [
        entry["Name"] for entry in seaweedfs.client().list_buckets()["Buckets"]
    ]


def test_wrong_credentials_are_refused_by_the_server(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, TEST_BUCKET, profile=WRONG_PROFILE))
    with pytest.raises(StoragePermanentError, match="refused"):
        storage.put("k", b"1")


def test_wrong_credentials_error_points_at_the_credential_chain(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, TEST_BUCKET, profile=WRONG_PROFILE))
    with pytest.raises(StoragePermanentError) as caught:
        storage.get("k")
    assert f"profile {WRONG_PROFILE!r}" in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_wrong_credentials_error_does_not_contain_a_secret(
    seaweedfs: SeaweedFS, s3_credentials: Path
) -> None:
    storage = S3Storage(_url(seaweedfs, TEST_BUCKET, profile=WRONG_PROFILE))
    with pytest.raises(StoragePermanentError) as caught:
        storage.get("k")
    text = f"{caught.value}\n{caught.value.__cause__}\n{caught.value!r}"
    assert [secret for secret in _secrets(s3_credentials) if secret in text] == []


def test_unknown_profile_is_a_clear_error(seaweedfs: SeaweedFS) -> None:
    storage = S3Storage(_url(seaweedfs, TEST_BUCKET, profile="nobody"))
    with pytest.raises(StoragePermanentError, match="profile 'nobody'"):
        storage.get("k")


def test_url_repr_and_pickle_of_a_used_storage_hold_no_secret(
    storage: S3Storage, s3_credentials: Path
) -> None:
    storage.put("k", b"1")  # builds the client, which holds the credentials
    exposed = f"{storage.url}\n{storage!r}\n{pickle.dumps(storage)!r}"
    assert [secret for secret in _secrets(s3_credentials) if secret in exposed] == []


def test_pickle_carries_the_url_not_the_client(storage: S3Storage) -> None:
    storage.put("k", b"1")
    assert b"botocore" not in pickle.dumps(storage)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIDEXAMPLE:TOPSECRET@bucket/wf",
        "s3://bucket/wf?aws_secret_access_key=TOPSECRET",
        "s3://bucket/wf?secret_key=TOPSECRET",
        "s3://bucket/wf?aws_session_token=TOPSECRET",
        "s3://bucket/wf?endpoint_url=http://AKIDEXAMPLE:TOPSECRET@127.0.0.1:9000",
    ],
)
def test_url_with_credentials_is_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(ValueError, match="credentials") as caught:
        S3Storage(url)
    assert "TOPSECRET" not in str(caught.value)
