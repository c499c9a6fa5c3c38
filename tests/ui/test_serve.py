"""The dashboard deployed on Ray Serve (a real local Ray): pages under a route prefix, events delivered."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import ui_workflows
from conftest import TOKEN
from servers._process import free_port

from durably import workflow
from durably_ui.serve import deployment

pytestmark = pytest.mark.serve


@pytest.fixture
def served(ray_cluster: Any, storage: str) -> Iterator[str]:
    """The dashboard of ``storage`` as a Serve application at /durably; yields its base URL."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        app = deployment(storage, token=TOKEN, executor="local").bind()
        serve.run(app, name="durably-ui", route_prefix="/durably")
        yield f"http://127.0.0.1:{port}/durably"
    finally:
        serve.shutdown()


def test_a_serve_deployment_serves_pages_and_delivers_events(served: str) -> None:
    result = ui_workflows.greet.step(workflow.wait_for_event(workflow.ExternalEvent, "approval")).run_async(
        workflow_id="served"
    )
    with urllib.request.urlopen(served + "/", timeout=60) as response:
        page = response.read().decode()
    assert 'href="/durably/workflows/served"' in page  # links keep the route prefix
    request = urllib.request.Request(
        served + "/api/workflows/served/events/approval",
        data=json.dumps({"name": "Serve"}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
    assert result.result(timeout=60) == "hello Serve"
