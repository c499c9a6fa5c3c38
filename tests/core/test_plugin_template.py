"""templates/plugin, copied and installed into a fresh venv, is found at run time and passes its own tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
TEMPLATE = REPO / "templates" / "plugin"
CORE = REPO / "packages" / "core"
DISTRIBUTION = "durably-example-storage"

RUN_A_WORKFLOW = """
import json, sys
from pathlib import Path
from durably import workflow

workflow.init(storage="example://" + sys.argv[1], executor="local")

@workflow.step
def add(a, b):
    return a + b

output = add.step(1, add.step(2, 3)).run(workflow_id="templated")
import durably_example_storage  # only now: durably found the scheme through the entry point
print(json.dumps({"output": output, "plugin_file": durably_example_storage.__file__}))
"""


def _environment() -> dict[str, str]:
    """This process's environment without what would leak the dev venv or filter plugins."""
    dropped = {"PYTHONPATH", "VIRTUAL_ENV", "DURABLY_LOAD_PLUGINS", "PYTHONHOME"}
    return {name: value for name, value in os.environ.items() if name not in dropped} | {
        "UV_PYTHON_DOWNLOADS": "never"
    }


@pytest.fixture(scope="module")
def template_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template, copied where a user would copy it (outside this repo)."""
    copy = tmp_path_factory.mktemp("template") / DISTRIBUTION
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return copy


@pytest.fixture(scope="module")
def venv_python(template_copy: Path) -> Path:
    """A fresh venv with durably (editable, from this repo) and the copied template with its test extra."""
    venv = template_copy.parent / "venv"
    env = _environment()
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    packages = ["-e", f"{CORE}[testing]", f"{template_copy}[test]"]
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(python), *packages],
        check=True,
        env=env,
    )
    return python


def test_installed_template_serves_its_scheme_and_stores_into_its_folder(
    venv_python: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "example-data"
    completed = subprocess.run(
        [str(venv_python), "-c", RUN_A_WORKFLOW, str(folder)],
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=tmp_path,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.splitlines()[-1])
    assert result["output"] == 6
    assert Path(result["plugin_file"]).is_relative_to(venv_python.parents[1]), "not the installed copy"
    stored = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert "index/templated" in stored
    assert any(key.startswith("workflows/templated/steps/") for key in stored)


def test_plugins_command_lists_the_installed_template(venv_python: Path) -> None:
    completed = subprocess.run(
        [str(venv_python.parent / "durably"), "plugins"],
        capture_output=True,
        text=True,
        env=_environment(),
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"{DISTRIBUTION} 0.1.0" in completed.stdout
    assert "storage: example" in completed.stdout


def test_template_passes_its_own_contract_tests(
    venv_python: Path, template_copy: Path, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    completed = subprocess.run(
        [str(venv_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        capture_output=True,
        text=True,
        env=_environment(),
        cwd=template_copy,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-5000:] + completed.stderr[-2000:]
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
    counts = {name: int(suite.get(name, "0")) for name in ("tests", "failures", "errors", "skipped")}
    assert counts["tests"] > 0
    assert counts == {"tests": counts["tests"], "failures": 0, "errors": 0, "skipped": 0}
    classes = {case.get("classname", "").rsplit(".", 1)[-1] for case in suite.iter("testcase")}
    assert {"TestExampleStorage", "TestExampleStorageWorkflows"} <= classes
