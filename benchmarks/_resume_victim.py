"""The driver that the `resume` workload kills: runs an N-step chain that stops half-way and waits there.

Step ``i`` of the chain returns ``i + 1``. The step whose input is N // 2 creates ``<control>/stopped``
and sleeps the first time it runs (the parent then SIGKILLs this process group); when it runs again,
in the resumed workflow, it writes the time it started to ``<control>/resumed`` and goes on.
"""

# durably's step decorator is untyped where mypy runs.
# mypy: disable-error-code="untyped-decorator"

from __future__ import annotations

import argparse
import os
import time


def _stop_or_go(x: int, stop_at: int, control: str) -> int:
    if x == stop_at:
        started = time.time()
        stopped = os.path.join(control, "stopped")
        if not os.path.exists(stopped):
            _write(stopped, str(started))
            time.sleep(3600)  # killed here, with everything after it not run yet
        else:
            _write(os.path.join(control, "resumed"), str(started))
    return x + 1


def _write(path: str, text: str) -> None:
    # Written beside, then renamed: the parent polls for the file and reads it at once.
    with open(path + ".part", "w", encoding="ascii") as handle:
        handle.write(text)
    os.replace(path + ".part", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage-url", required=True)
    parser.add_argument("--executor", choices=("ray", "local"), required=True)
    parser.add_argument("--workflow-id", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--control", required=True, help="folder for the stopped/resumed files")
    args = parser.parse_args()
    if args.executor == "ray":
        import ray
        from _harness import init_ray

        # A cluster of its own, which dies with this process: the crash takes the engine down too.
        init_ray(ray)
    from durably import workflow

    workflow.init(storage=args.storage_url, executor=args.executor)
    step = workflow.step(_stop_or_go)
    stop_at = args.n // 2
    output = step.step(0, stop_at, args.control)
    for _ in range(args.n - 1):
        output = step.step(output, stop_at, args.control)
    output.run(workflow_id=args.workflow_id)


if __name__ == "__main__":
    main()
