"""Bad input fails early, with a message that names what was wrong and how to fix it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from durably import workflow


@workflow.step
def echo(value: Any, other: Any = None) -> Any:
    return value


def test_unpicklable_positional_argument_is_named_at_step() -> None:
    with pytest.raises(TypeError, match=r"positional argument 0 of step 'echo' \(lock\)"):
        echo.step(threading.Lock())


def test_unpicklable_keyword_argument_is_named_at_step() -> None:
    with pytest.raises(TypeError, match=r"keyword argument 'other' of step 'echo'"):
        echo.step(1, other=threading.Lock())


@pytest.mark.parametrize("bad_id", ["", "   ", "a/b", "a\\b", "..", "x" * 201, "tab\there"])
def test_bad_workflow_ids_are_rejected(wf: Any, bad_id: str) -> None:
    with pytest.raises(ValueError, match="workflow_id"):
        echo.step(1).run(workflow_id=bad_id)


def test_non_string_workflow_id_is_a_type_error(wf: Any) -> None:
    with pytest.raises(TypeError, match="workflow_id must be a str"):
        echo.step(1).run(workflow_id=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "package"), [("s3://bucket/prefix", "durably-s3"), ("gs://bucket/x", "durably-gcs")]
)
def test_unknown_storage_scheme_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, package: str
) -> None:
    from durably._plugins import reset_registry
    from durably._resolve import forget_storage

    monkeypatch.setenv("DURABLY_LOAD_PLUGINS", "")  # as on a machine without the plugin
    reset_registry()
    forget_storage()
    try:
        with pytest.raises(ValueError, match=rf"pip install {package}"):
            workflow.init(storage=url, executor="local")
    finally:
        monkeypatch.delenv("DURABLY_LOAD_PLUGINS")
        reset_registry()


def test_scheme_that_no_package_serves_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'nosuch' scheme .*Schemes available now: .*file.*memory"):
        workflow.init(storage="nosuch://x", executor="local")


def test_an_unknown_scheme_can_be_caught_on_its_own() -> None:
    with pytest.raises(workflow.UnknownStorageSchemeError) as raised:
        workflow.init(storage="nosuch://x", executor="local")
    assert isinstance(raised.value, ValueError) and raised.value.scheme == "nosuch"


def test_storage_and_workflow_errors_share_one_root() -> None:
    from durably import DurablyError, StorageError

    assert issubclass(StorageError, DurablyError) and issubclass(workflow.WorkflowError, DurablyError)


def test_unknown_executor_is_rejected_with_the_known_ones(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match=r"unknown durably executor 'threads'.*local.*ray"):
        workflow.init(storage=str(tmp_path), executor="threads")


def test_metadata_must_be_json(wf: Any) -> None:
    with pytest.raises(ValueError, match="JSON-serialisable"):
        echo.step(1).run(metadata={"when": object()})


def test_running_something_that_is_not_a_step_future(wf: Any) -> None:
    from durably._launch import run

    with pytest.raises(TypeError, match="step future"):
        run(lambda: 1)  # type: ignore[arg-type]


def test_empty_storage_location_is_rejected() -> None:
    with pytest.raises(ValueError, match="storage must be a non-empty path or URL"):
        from durably._resolve import normalize_storage_url

        normalize_storage_url("")


UNSTORABLE_STEP_NAMES = ["..", ".", "two\nlines", ".durably-tmp-x", "é" * 150, "x" * 256]


@pytest.mark.parametrize("name", UNSTORABLE_STEP_NAMES)
def test_an_unstorable_step_name_is_refused_at_decoration(name: str) -> None:
    with pytest.raises(ValueError, match="step name"):
        workflow.step(name=name)


@pytest.mark.parametrize("name", UNSTORABLE_STEP_NAMES)
def test_an_unstorable_step_name_is_refused_by_options(name: str) -> None:
    with pytest.raises(ValueError, match="step name"):
        echo.options(name=name)


def test_a_function_whose_own_name_is_unstorable_is_refused_at_step() -> None:
    def function() -> None:
        pass

    function.__name__ = ".."
    with pytest.raises(ValueError, match=r"step name '\.\.' is reserved"):
        workflow.step(function).step()


@pytest.mark.parametrize(
    "bad_id", ["é" * 130, "right\u202eto-left", "line\u2028separator", "zero\u200bwidth"]
)
def test_workflow_ids_too_long_in_bytes_or_with_invisible_characters_are_rejected(
    wf: Any, bad_id: str
) -> None:
    with pytest.raises(ValueError, match="workflow_id"):
        echo.step(1).run(workflow_id=bad_id)


def test_init_with_an_empty_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="storage must not be empty"):
        workflow.init(storage="", executor="local")
