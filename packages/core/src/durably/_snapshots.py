"""Code snapshots: a workflow's Ray runtime_env, captured once, its code folders kept in storage.

``capture`` zips ``working_dir`` and each of ``py_modules`` (deterministically: the same files
give the same bytes), stores each zip once under its sha256 (``_store.save_code_package``) and
returns the record a workflow keeps (``WorkflowStore.save_runtime_env``): package hashes, the
folders they came from, and the specs Ray installs itself (pip, uv, conda, env_vars, config) as
given. ``CodeSnapshot.ray_env`` turns a record into the runtime_env of every step task: each
package as a ``gcs://`` URI, uploaded from storage to the cluster's GCS when the cluster does not
have it (a new cluster, or one that evicted it), so steps run the recorded code whatever the
cluster's or the driver's folders hold now.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import stat
import threading
import time
import types
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from durably._errors import WorkflowError
from durably._store import code_package_key, load_code_package, save_code_package
from durably.storage import KeyNotFound, Storage

#: Folders zipped into storage.
PACKAGED_KEYS = ("working_dir", "py_modules")
#: Specs recorded as given; Ray installs them on each node when a step first needs them.
RECORDED_KEYS = ("pip", "uv", "conda", "env_vars", "config")
SUPPORTED_KEYS = (*PACKAGED_KEYS, "excludes", *RECORDED_KEYS)
#: ``resume(..., runtime_env=UPGRADE)`` captures the recorded folders again, as they are now.
UPGRADE = "current"
#: Never packed: caches and version control, which Ray's own packaging leaves out too.
ALWAYS_EXCLUDED = ("__pycache__", "*.pyc", ".git")
#: How often a running workflow checks that the cluster still has its packages (seconds); Ray
#: pins an uploaded package for 10 minutes, and each check pins it again.
RECHECK_SECONDS = 60.0
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can hold: file times do not change the hash


def check_runtime_env(
    runtime_env: Mapping[str, Any] | None, where: str = "runtime_env"
) -> dict[str, Any] | None:
    """A validated copy of ``runtime_env`` with absolute folders; raises before anything is written."""
    if runtime_env is None:
        return None
    if not isinstance(runtime_env, Mapping):
        raise TypeError(
            f"{where} must be a dict such as {{'working_dir': './src'}}, got {type(runtime_env).__name__}"
        )
    unknown = sorted(set(runtime_env) - set(SUPPORTED_KEYS))
    if unknown:
        raise ValueError(
            f"{where} has keys durably cannot snapshot: {', '.join(map(repr, unknown))}; "
            f"supported: {', '.join(SUPPORTED_KEYS)}"
        )
    checked: dict[str, Any] = {}
    for key, value in runtime_env.items():
        if value is None:
            continue
        if key == "working_dir":
            checked[key] = _folder(value, f"{where}['working_dir']")
        elif key == "py_modules":
            if isinstance(value, (str, os.PathLike, types.ModuleType)) or not isinstance(
                value, (list, tuple)
            ):
                raise TypeError(f"{where}['py_modules'] must be a list of folders or modules, got {value!r}")
            checked[key] = [
                _module_folder(item, f"{where}['py_modules'][{i}]") for i, item in enumerate(value)
            ]
        elif key == "excludes":
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise TypeError(f"{where}['excludes'] must be a list of glob patterns, got {value!r}")
            checked[key] = list(value)
        else:
            checked[key] = value
    if "excludes" in checked and not any(key in checked for key in PACKAGED_KEYS):
        raise ValueError(f"{where}['excludes'] applies to working_dir and py_modules; {where} has neither")
    return checked


def _folder(value: Any, where: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{where} must be a local folder, got {value!r}")
    text = os.fspath(value)
    if "://" in text:
        raise ValueError(
            f"{where} is a URI ({text!r}); durably snapshots local folders only (a URI's content can "
            "change under a workflow): pass the folder itself"
        )
    folder = Path(text).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"{where} {text!r} is not an existing folder ({folder} does not exist or is a file)")
    return str(folder)


def _module_folder(value: Any, where: str) -> str:
    if isinstance(value, types.ModuleType):
        file = getattr(value, "__file__", None)
        if file is None or Path(file).name != "__init__.py":
            raise ValueError(f"{where}: module {value.__name__!r} is not a package folder; pass its folder")
        return str(Path(file).parent.resolve())
    return _folder(value, where)


# -- capturing ----------------------------------------------------------------------------------
def _files(folder: Path, excludes: list[str]) -> Iterator[Path]:
    """Every file under ``folder`` that is packed, in a fixed order."""
    patterns = [*ALWAYS_EXCLUDED, *excludes]

    def excluded(path: Path) -> bool:
        relative = path.relative_to(folder).as_posix()
        return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(relative, p) for p in patterns)

    for root, dirs, names in os.walk(folder):
        base = Path(root)
        dirs[:] = sorted(d for d in dirs if not excluded(base / d))
        for name in sorted(names):
            if not excluded(base / name):
                yield base / name


def pack(folder: str, excludes: list[str], include_parent: bool) -> bytes:
    """The folder as a zip whose bytes depend only on file names, contents and modes.

    ``include_parent`` puts the files under the folder's name (how Ray unpacks ``py_modules``);
    a ``working_dir`` zip holds the folder's content at its top.
    """
    root = Path(folder)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root, excludes):
            name = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(f"{root.name}/{name}" if include_parent else name, _FIXED_TIME)
            info.external_attr = (stat.S_IMODE(path.stat().st_mode) | stat.S_IFREG) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def _store_folder(storage: Storage, folder: str, excludes: list[str], include_parent: bool) -> dict[str, Any]:
    data = pack(folder, excludes, include_parent)
    digest = hashlib.sha256(data).hexdigest()
    save_code_package(storage, digest, data)
    return {"sha256": digest, "size": len(data), "source": folder}


def capture(storage: Storage, runtime_env: Mapping[str, Any]) -> dict[str, Any]:
    """Store the folders of a checked ``runtime_env`` (``check_runtime_env``); returns its record."""
    excludes = list(runtime_env.get("excludes", []))
    record: dict[str, Any] = {"captured_at": time.time()}
    if "working_dir" in runtime_env:
        record["working_dir"] = _store_folder(storage, runtime_env["working_dir"], excludes, False)
    if "py_modules" in runtime_env:
        record["py_modules"] = [
            _store_folder(storage, folder, excludes, True) for folder in runtime_env["py_modules"]
        ]
    if excludes:
        record["excludes"] = excludes
    for key in RECORDED_KEYS:
        if key in runtime_env:
            record[key] = runtime_env[key]
    return record


def recapture(storage: Storage, record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Capture again the folders ``record`` was taken from, as they are now (an upgrade)."""
    runtime_env: dict[str, Any] = {key: record[key] for key in ("excludes", *RECORDED_KEYS) if key in record}
    if "working_dir" in record:
        runtime_env["working_dir"] = record["working_dir"]["source"]
    if "py_modules" in record:
        runtime_env["py_modules"] = [module["source"] for module in record["py_modules"]]
    checked = check_runtime_env(runtime_env, where)
    assert checked is not None
    return capture(storage, checked)


# -- running under a snapshot -------------------------------------------------------------------
def package_uri(digest: str) -> str:
    """The cluster (GCS) URI of a stored package: Ray's own naming, so Ray fetches it as its own."""
    return f"gcs://_ray_pkg_durably_{digest}.zip"


def _pin(uri: str) -> None:
    """Keep a package in the cluster's GCS for Ray's pin period (10 minutes), whoever uploaded it."""
    from ray._private.runtime_env import packaging

    pin = getattr(packaging, "pin_runtime_env_uri", None)
    if pin is not None:  # Ray 2.x
        pin(uri)


def ensure_on_cluster(storage: Storage, digest: str) -> None:
    """Upload the package from storage if the cluster lacks it (a new cluster); pin it either way."""
    from ray._private.runtime_env import packaging

    uri = package_uri(digest)
    if not packaging.package_exists(uri):
        try:
            data = load_code_package(storage, digest)
        except KeyNotFound:
            raise WorkflowError(
                f"the code snapshot package {code_package_key(digest)!r} is missing from storage; "
                "resume with runtime_env='current' (or a runtime_env dict) to capture the code again"
            ) from None
        packaging.upload_package_to_gcs(uri, data)
    _pin(uri)  # keeps it from being evicted between steps


class _AtMostOncePerRecheck:
    """Calls ``action`` at its first call and then at most once per ``RECHECK_SECONDS`` (thread-safe):
    what keeps a run's packages on the cluster while its steps are submitted."""

    def __init__(self, action: Callable[[], None]) -> None:
        self._action = action
        self._done_at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            now = time.monotonic()
            if self._done_at is None or now - self._done_at >= RECHECK_SECONDS:
                self._action()
                self._done_at = now


class CodeSnapshot:
    """A workflow's recorded runtime_env, as Ray needs it for the step tasks of one run."""

    def __init__(self, storage: Storage, record: Mapping[str, Any]) -> None:
        self.storage = storage
        self.record = dict(record)
        self.digests = [self.record["working_dir"]["sha256"]] if "working_dir" in self.record else []
        self.digests += [module["sha256"] for module in self.record.get("py_modules", [])]
        env: dict[str, Any] = {key: self.record[key] for key in RECORDED_KEYS if key in self.record}
        if "working_dir" in self.record:
            env["working_dir"] = package_uri(self.record["working_dir"]["sha256"])
        if "py_modules" in self.record:
            env["py_modules"] = [package_uri(module["sha256"]) for module in self.record["py_modules"]]
        self._env = env
        self._ensure_packages = _AtMostOncePerRecheck(self._put_packages_on_cluster)

    def _put_packages_on_cluster(self) -> None:
        for digest in self.digests:
            ensure_on_cluster(self.storage, digest)

    def ray_env(self) -> dict[str, Any]:
        """The runtime_env for ``.options(runtime_env=...)``; the same dict each time (so it caches).

        The first call of a run, and one a minute after, makes sure the cluster has the packages.
        """
        self._ensure_packages()
        return self._env


class InheritedEnv:
    """The runtime_env of the Ray job that asked for a run, which its steps inherit
    (``StepTask.inherited_env``) when the workflow has no code snapshot.

    Its packages (``gcs://`` URIs) were uploaded by that job, and Ray deletes them once the job
    has ended and nothing pins them; while steps are submitted under it they are pinned again
    (at most once a minute), so a workflow that outlives its driver keeps its code.
    """

    def __init__(self, runtime_env: Mapping[str, Any]) -> None:
        self._env = dict(runtime_env)
        packages = [self._env.get("working_dir"), *self._env.get("py_modules", [])]
        self._uris = [uri for uri in packages if isinstance(uri, str) and uri.startswith("gcs://")]
        self._pin_packages = _AtMostOncePerRecheck(self._pin_uris)

    def _pin_uris(self) -> None:
        for uri in self._uris:
            _pin(uri)

    def ray_env(self) -> dict[str, Any]:
        """The runtime_env, the same dict each time (so it caches); its packages pinned."""
        self._pin_packages()
        return self._env
