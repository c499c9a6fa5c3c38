"""The backend workload's S3 (SeaweedFS) and GCS (fake-gcs-server) servers, started with the tests' helpers.

The servers start on first use and stop (by PID) when the bench ends; every cell gets a fresh
prefix (S3) or bucket (GCS), named in the storage URL its subprocess receives.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: Storage URL keywords of ``--storage-url`` that make the bench start a server.
SERVED = ("s3", "gcs")


class Services:
    """Starts a server the first time a storage URL of its kind is asked for; stops them all on exit."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.env: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self._seaweedfs: Any = None
        self._fake_gcs: Any = None

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.close()

    def storage_url(self, given: str) -> str:
        """The URL a cell's subprocess gets: a fresh location on a served backend, else ``given``."""
        if given == "s3":
            return self._s3_url()
        if given == "gcs":
            return self._gcs_url()
        return given

    def _import_servers(self) -> None:
        # tests/servers is the one place that knows how to start these servers; it is not a package
        # of the repo's distributions, so it is imported from the tests folder.
        if str(REPO / "tests") not in sys.path:
            sys.path.insert(0, str(REPO / "tests"))

    def _s3_url(self) -> str:
        self._import_servers()
        from servers.seaweedfs import REGION, TEST_BUCKET, running_seaweedfs

        if self._seaweedfs is None:
            folder = self.work_dir / "seaweedfs"
            folder.mkdir(parents=True, exist_ok=True)
            self._seaweedfs = self._stack.enter_context(running_seaweedfs(folder))
            self._seaweedfs.create_bucket(TEST_BUCKET)
            # The cells' subprocesses (and their Ray workers) find the key in the environment, as the
            # tests' do; nothing from the developer's own AWS settings may leak in.
            self.env.update(
                AWS_ACCESS_KEY_ID=self._seaweedfs.access_key,
                AWS_SECRET_ACCESS_KEY=self._seaweedfs.secret_key,
                AWS_EC2_METADATA_DISABLED="true",
            )
        endpoint = self._seaweedfs.endpoint_url
        return f"s3://{TEST_BUCKET}/{uuid.uuid4().hex}?endpoint_url={endpoint}&region={REGION}"

    def _gcs_url(self) -> str:
        self._import_servers()
        from servers.fake_gcs import running_fake_gcs

        if self._fake_gcs is None:
            self._fake_gcs = self._stack.enter_context(running_fake_gcs(self.work_dir / "fake-gcs"))
        return f"gs://{self._fake_gcs.create_bucket()}/durably?emulator={self._fake_gcs.endpoint}"

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        """``base`` with the served backends' settings, and no AWS settings of the developer's."""
        if not self.env:
            return base
        kept = {name: value for name, value in base.items() if not name.startswith("AWS_")}
        return {**kept, **self.env}
