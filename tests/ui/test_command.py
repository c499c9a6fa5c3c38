"""`durably ui` (registered through the CLI hook) and `python -m durably_ui`."""

from __future__ import annotations

import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import ui_workflows
from servers._process import ServerProcess, free_port

from durably import cli, workflow


def test_ui_is_a_durably_command_with_a_default_port_beside_the_ray_dashboard(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["ui", "--help"]) == 0
    assert "8275" in capsys.readouterr().out


def test_a_non_loopback_address_without_a_token_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_UI_TOKEN", raising=False)
    assert cli.main(["ui", "--storage", str(tmp_path), "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert "without a token" in error and "DURABLY_UI_TOKEN" in error


def test_a_generated_token_is_printed_and_is_the_one_required(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLY_UI_TOKEN", raising=False)
    ui_workflows.fetch.step(1).run(workflow_id="ok-1")
    port = free_port()
    log = tmp_path / "ui.log"
    server = ServerProcess(
        "durably-ui",
        [
            sys.executable,
            "-m",
            "durably_ui",
            "--storage",
            storage,
            "--port",
            str(port),
            "--executor",
            "local",
        ],
        log,
    )
    try:
        server.wait_for_port(port)
        token = re.search(r"token for actions and events .*: (\S+)", log.read_text())
        assert token, log.read_text()

        def delete(presented: str) -> int:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/workflows/ok-1",
                method="DELETE",
                headers={"Authorization": f"Bearer {presented}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return int(response.status)
            except urllib.error.HTTPError as error:
                return error.code

        assert (delete("x" * 43), delete(token.group(1))) == (401, 200)
        assert workflow.list_all() == []
    finally:
        server.stop()
