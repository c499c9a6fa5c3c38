"""docs/plugins.md documents every hook of hookspecs.py, under its own heading, with its exact signature."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import durably.hookspecs

REPO = Path(__file__).parents[2]
GUIDE = REPO / "docs" / "plugins.md"
HOOKSPECS = Path(durably.hookspecs.__file__)

_HEADING = re.compile(r"^(#{2,6}) +`?(\w+)`? *$", re.MULTILINE)
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def hookspecs(source: str) -> dict[str, ast.FunctionDef]:
    """The ``durably_*`` functions decorated with ``@hookspec`` in the source of hookspecs.py."""
    specs = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.FunctionDef)
            and node.name.startswith("durably_")
            and any(isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list)
        ):
            specs[node.name] = node
    return specs


def sections(markdown: str) -> dict[str, str]:
    """Heading name -> the text under it, up to the next heading of the same or a higher level."""
    headings = list(_HEADING.finditer(markdown))
    found = {}
    for index, heading in enumerate(headings):
        level = len(heading.group(1))
        end = len(markdown)
        for later in headings[index + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        found[heading.group(2)] = markdown[heading.end() : end]
    return found


def documented_signature(markdown: str, hook: str) -> ast.FunctionDef | None:
    """The first ``def hook(...)`` in a python block of the section headed by the hook's name."""
    section = sections(markdown).get(hook)
    if section is None:
        return None
    for block in _PYTHON_BLOCK.findall(section):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.FunctionDef) and node.name == hook:
                return node
    return None


def signature_text(node: ast.FunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns is not None else ""
    return f"{node.name}({ast.unparse(node.args)}){returns}"


def parameter_names(node: ast.FunctionDef) -> list[str]:
    args = node.args
    return [arg.arg for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]]


def problems(markdown: str, specs: dict[str, ast.FunctionDef]) -> list[str]:
    """Every way the guide fails to document the hookspecs; empty when it is right."""
    found = []
    for hook, spec in specs.items():
        documented = documented_signature(markdown, hook)
        if documented is None:
            found.append(f"{hook}: no '### `{hook}`' section with a python block defining it")
            continue
        if parameter_names(documented) != parameter_names(spec):
            found.append(f"{hook}: parameters {parameter_names(documented)} != {parameter_names(spec)}")
        if signature_text(documented) != signature_text(spec):
            found.append(f"{hook}: signature {signature_text(documented)} != {signature_text(spec)}")
    for name in sections(markdown):
        if name.startswith("durably_") and name not in specs:
            found.append(f"{name}: documented, but hookspecs.py defines no such hook")
    return found


SPECS = hookspecs(HOOKSPECS.read_text())


def test_hookspecs_parsed_from_source_are_the_hooks_pluggy_sees() -> None:
    registered = {
        name
        for name in dir(durably.hookspecs)
        if name.startswith("durably_") and hasattr(getattr(durably.hookspecs, name), "durably_spec")
    }
    assert set(SPECS) == registered
    assert len(SPECS) >= 9


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_hook_has_a_section_with_its_exact_signature(hook: str) -> None:
    documented = documented_signature(GUIDE.read_text(), hook)
    assert documented is not None, f"docs/plugins.md has no '### `{hook}`' section with `def {hook}(...)`"
    assert signature_text(documented) == signature_text(SPECS[hook])


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_documented_parameter_names_are_the_hookspecs(hook: str) -> None:
    documented = documented_signature(GUIDE.read_text(), hook)
    assert documented is not None
    assert parameter_names(documented) == parameter_names(SPECS[hook])


def test_guide_documents_every_hook_and_no_other() -> None:
    assert problems(GUIDE.read_text(), SPECS) == []


# The checker itself: each way of getting the guide wrong is reported.


def test_checker_reports_a_hook_without_a_section() -> None:
    guide = GUIDE.read_text().replace("### `durably_step_failed`", "### step failures")
    assert problems(guide, SPECS) == [
        "durably_step_failed: no '### `durably_step_failed`' section with a python block defining it"
    ]


def test_checker_reports_a_renamed_parameter() -> None:
    finished = "def durably_step_finished(\n    workflow_id: str, step_id: str, name: str, duration: float,"
    guide = GUIDE.read_text().replace(finished, finished.replace("duration", "seconds"))
    reported = problems(guide, SPECS)
    assert len(reported) == 2
    assert reported[0].startswith("durably_step_finished: parameters [")
    assert "'seconds'" in reported[0] and "'duration'" in reported[0]


def test_checker_reports_a_changed_annotation() -> None:
    guide = GUIDE.read_text().replace("workflow_id: str, status: str,", "workflow_id: str, status: int,")
    assert [problem.split(":")[0] for problem in problems(guide, SPECS)] == ["durably_workflow_finished"]


def test_checker_reports_a_hook_added_to_the_hookspecs_but_not_to_the_guide() -> None:
    source = HOOKSPECS.read_text() + '\n\n@hookspec\ndef durably_new_hook(x: int) -> None:\n    """New."""\n'
    assert [problem.split(":")[0] for problem in problems(GUIDE.read_text(), hookspecs(source))] == [
        "durably_new_hook"
    ]


def test_checker_reports_a_documented_hook_that_does_not_exist() -> None:
    guide = GUIDE.read_text() + "\n### `durably_gone`\n\n```python\ndef durably_gone() -> None: ...\n```\n"
    assert problems(guide, SPECS) == ["durably_gone: documented, but hookspecs.py defines no such hook"]
