"""The ``durably`` command: plugins found, and the stored workflows of a storage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _plugins(_: argparse.Namespace) -> int:
    from durably._plugins import get_registry

    registry = get_registry()
    for info in registry.plugins:
        origin = "built-in" if info.builtin else f"{info.distribution or '?'} {info.version or '?'}"
        print(f"{info.name}  ({origin}, {info.module})")
        if info.error:
            print(f"    FAILED to load: {info.error}")
            continue
        for kind, names in registry.provides(info).items():
            if names:
                print(f"    {kind}: {', '.join(names)}")
        observed = [hook for hook in info.hooks if hook.startswith(("durably_workflow_", "durably_step_"))]
        if observed:
            print(f"    lifecycle hooks: {', '.join(observed)}")
    return 0


def _init(args: argparse.Namespace) -> None:
    from durably import workflow

    workflow.init(storage=args.storage, executor=args.executor)


def _list(args: argparse.Namespace) -> int:
    from durably import workflow

    _init(args)
    for workflow_id, status in workflow.list_all(args.status):
        print(f"{workflow_id}\t{status.value}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from durably import workflow

    _init(args)
    print(workflow.get_status(args.workflow_id).value)
    return 0


def _resume(args: argparse.Namespace) -> int:
    from durably import workflow

    _init(args)
    print(repr(workflow.resume(args.workflow_id)))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from durably import workflow

    _init(args)
    workflow.cancel(args.workflow_id)
    return 0


def _delete(args: argparse.Namespace) -> int:
    from durably import workflow

    _init(args)
    workflow.delete(args.workflow_id)
    return 0


def _codecs_rewrite(args: argparse.Namespace) -> int:
    import os

    from durably._resolve import build_codecs, configured_codec_names, open_raw_storage
    from durably.codecs import LEGACY_ENV, rewrite_store

    if args.allow_unsigned_legacy:
        os.environ[LEGACY_ENV] = "1"  # this one-shot process reads records written before codecs
    names = configured_codec_names()
    if not names:
        raise ValueError(
            "no codec is configured: set DURABLY_SIGNING_KEY and/or DURABLY_ENCRYPTION_KEY "
            "(or DURABLY_CODECS) to the keys the store should be written with"
        )
    count = rewrite_store(open_raw_storage(args.storage), build_codecs(names))
    print(f"re-encoded {count} records with {', '.join(names)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="durably", description="Durable workflows for Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("plugins", help="list the plugins found, their distribution and what they provide")
    for name, help_text, handler in (
        ("list", "list stored workflows and their status", _list),
        ("status", "print a workflow's status", _status),
        ("resume", "resume a workflow and print its output", _resume),
        ("cancel", "cancel a workflow", _cancel),
        ("delete", "delete a workflow that is not running", _delete),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.set_defaults(handler=handler)
        sub.add_argument(
            "--storage", help="storage path or URL (default: $DURABLY_STORAGE or ~/.durably/storage)"
        )
        sub.add_argument("--executor", default="local", help="executor for resume (default: local)")
        if name == "list":
            sub.add_argument("--status", default=None, help="only workflows with this status")
        else:
            sub.add_argument("workflow_id")
    commands.choices["plugins"].set_defaults(handler=_plugins)
    codecs = commands.add_parser("codecs", help="manage the codecs of stored records").add_subparsers(
        dest="codecs_command", required=True
    )
    rewrite = codecs.add_parser(
        "rewrite",
        help="re-encode every record of a storage with the configured codecs and first keys "
        "(crash-safe: run it again to finish; stop workflows first)",
    )
    rewrite.add_argument("--storage", required=True, help="storage path or URL")
    rewrite.add_argument(
        "--allow-unsigned-legacy",
        action="store_true",
        help="also re-encode records written before codecs were configured",
    )
    rewrite.set_defaults(handler=_codecs_rewrite)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``durably`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except Exception as error:
        print(f"durably: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
