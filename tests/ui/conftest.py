"""Fixtures for the durably-ui tests: stored workflows, the dashboard as a real server, Chromium."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import ui_workflows
from servers._process import ServerProcess, free_port

from durably import workflow

# The dashboard's own process resumes these workflows: their steps must unpickle there.
cloudpickle.register_pickle_by_value(ui_workflows)

TOKEN = "test-token-0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]
#: Screenshots for people to look at (gitignored).
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def storage(tmp_path: Path) -> str:
    """A fresh file storage, with this test process configured on it (local executor: no Ray)."""
    url = str(tmp_path / "storage")
    workflow.init(storage=url, executor="local")
    return url


def wait_for_status(
    workflow_id: str, wanted: workflow.WorkflowStatus, polls: int = 600
) -> workflow.WorkflowStatus:
    """Poll the workflow's status until it is ``wanted`` (a resume runs in the background); the last seen."""
    status = workflow.get_status(workflow_id)
    for _ in range(polls):
        if status == wanted:
            break
        time.sleep(0.1)
        status = workflow.get_status(workflow_id)
    return status


class Dashboard:
    """A `python -m durably_ui` process serving one storage, and a small HTTP client for it."""

    def __init__(self, storage: str, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = ServerProcess(
            "durably-ui",
            [
                sys.executable,
                "-m",
                "durably_ui",
                "--storage",
                storage,
                "--port",
                str(self.port),
                "--executor",
                "local",
                *extra,
            ],
            log,
            env={"DURABLY_UI_TOKEN": TOKEN},
        )
        self.process.wait_for_port(self.port)

    def request(self, method: str, path: str, body: Any = None, token: str | None = TOKEN) -> tuple[int, Any]:
        """(status, decoded JSON body) of one request to the dashboard."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def shared_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One storage for a whole test module (tests there use distinct workflow ids)."""
    return str(tmp_path_factory.mktemp("shared") / "storage")


@pytest.fixture(scope="module")
def dashboard(shared_storage: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """The dashboard of ``shared_storage``, outputs shown; one per module (starting one takes seconds)."""
    server = Dashboard(shared_storage, tmp_path_factory.mktemp("ui-log") / "ui.log", "--show-outputs")
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def ui(shared_storage: str, dashboard: Dashboard) -> Dashboard:
    """The dashboard, with this test process configured on its storage (local executor)."""
    workflow.init(storage=shared_storage, executor="local")
    return dashboard


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session", autouse=True)
def _artifacts_folder() -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
