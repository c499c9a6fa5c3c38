"""Creates (once) the venv that holds ray 2.47.1, the last Ray with `ray.workflow`, next to the benchmarks."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# ray 2.47's cluster storage, which ray.workflow keeps its state in, imports pyarrow but does not
# depend on it. ray 2.47 ships wheels up to Python 3.12; 3.11 is the one the rest of the repo prefers.
RAY_WORKFLOW_REQUIREMENTS = ("ray==2.47.1", "pyarrow")
RAY_WORKFLOW_PYTHON = "3.11"


def _find_python(version: str) -> str:
    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))
    found = pyenv[-1] if pyenv else shutil.which(f"python{version}")
    if found is None:
        raise RuntimeError(f"ray.workflow needs Python {version}, and none was found (pyenv or PATH)")
    return found


def _python_in(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_ray_workflow_venv(venv: Path) -> tuple[Path, float | None]:
    """Return the venv's python and the seconds spent creating it (None when it was already there).

    A marker file names what was installed, so changing the requirements rebuilds the venv.
    """
    marker = venv / "durably-bench-requirements.txt"
    wanted = "\n".join(RAY_WORKFLOW_REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted and _python_in(venv).exists():
        return _python_in(venv), None
    started = time.perf_counter()
    shutil.rmtree(venv, ignore_errors=True)
    base = _find_python(RAY_WORKFLOW_PYTHON)
    uv = shutil.which("uv")
    # uv must use the interpreter on this machine, never download one.
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    if uv is not None:
        subprocess.run([uv, "venv", "--quiet", "--python", base, str(venv)], check=True, env=env)
        install = [uv, "pip", "install", "--quiet", "--python", str(_python_in(venv))]
    else:
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        install = [str(_python_in(venv)), "-m", "pip", "install", "--quiet"]
    subprocess.run([*install, *RAY_WORKFLOW_REQUIREMENTS], check=True, env=env)
    marker.write_text(wanted)
    return _python_in(venv), time.perf_counter() - started


if __name__ == "__main__":
    python, seconds = ensure_ray_workflow_venv(Path(__file__).parent / ".venvs" / "ray247")
    print(python, f"created in {seconds:.1f} s" if seconds is not None else "already there", file=sys.stderr)
