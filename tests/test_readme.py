"""Every Python block of the README runs as pasted, or says why it does not.

A fenced ``python`` block is run unless an HTML comment right above its fence
says otherwise:

- ``<!-- not run: why -->``: an illustration (a backend of the reader's own,
  names it leaves for the reader to fill in);
- ``<!-- run with: STATEMENT -->``: run after ``STATEMENT``, which binds the
  names the block leaves to the reader (``MyStore``) to the reference
  backend's, so what the block shows of the plugin's API still runs.

A block that defines tests (``test_*`` functions or ``Test*`` names) is a test
module: pytester runs it with ``-p quantum_p1 --p1-target=reference`` and
warnings as errors, and every test in it must pass. Any other block is
executed as a script.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"

# A fence opens with ``` and a language, closes with a bare ```. The comment
# rules above it may be separated from it by blank lines only.
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>\S.*?)\s*-->$")
_RUN_WITH = re.compile(r"^<!--\s*run with:\s*(?P<setup>\S.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a markdown text."""

    #: 1-based line of the opening fence.
    line: int
    lang: str
    code: str
    #: Why the block is not run (``<!-- not run: … -->``), or ``None``.
    not_run: str | None = None
    #: The statement run before the block (``<!-- run with: … -->``), or ``""``.
    setup: str = ""

    @property
    def defines_tests(self) -> bool:
        """Whether the block is a test module (defines ``test_*`` or ``Test*`` names)."""
        return bool(self.tests)

    @property
    def tests(self) -> list[str]:
        """The test names the block binds (``test_*`` functions, ``Test*`` names)."""
        return [name for name in _bound_names(ast.parse(self.code)) if _is_test_name(name)]


def _bound_names(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
    return names


def _is_test_name(name: str) -> bool:
    return name.startswith(("test_", "Test"))


def code_blocks(markdown: str) -> list[Block]:
    """The fenced blocks of ``markdown`` with their language and the comment rules above them."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README line {index + 1}: the code block is never closed")
        above = _comment_above(lines, index)
        not_run = _NOT_RUN.match(above)
        run_with = _RUN_WITH.match(above)
        blocks.append(
            Block(
                line=index + 1,
                lang=opening["lang"],
                code="\n".join(lines[index + 1 : end]) + "\n",
                not_run=None if not_run is None else not_run["why"],
                setup="" if run_with is None else run_with["setup"],
            )
        )
        index = end + 1
    return blocks


def _comment_above(lines: list[str], fence: int) -> str:
    above = fence - 1
    while above >= 0 and not lines[above].strip():
        above -= 1
    return lines[above].strip() if above >= 0 else ""


def _python_blocks() -> list[Block]:
    return [block for block in code_blocks(README.read_text()) if block.lang == "python"]


def _run_block(block: Block, pytester: pytest.Pytester) -> None:
    """Runs ``block`` as the README presents it; fails with the block's line if it does not work."""
    source = f"{block.setup}\n{block.code}" if block.setup else block.code
    if not block.defines_tests:
        # A plain snippet: executed as a script, in a namespace of its own.
        exec(compile(source, f"README.md:{block.line}", "exec"), {"__name__": "__readme__"})
        return
    pytester.makepyfile(test_readme_block=source)
    result = pytester.runpytest(
        "-p", "quantum_p1", "--p1-target=reference", "-W", "error", "-p", "no:cacheprovider"
    )
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, (
        f"README.md:{block.line} does not run as pasted:\n" + str(result.stdout)
    )
    assert outcomes.get("passed", 0) >= 1, outcomes


_RUN = [block for block in _python_blocks() if block.not_run is None]


# Ids name the block's first test (stable while the prose around it changes).
@pytest.mark.parametrize(
    "block", _RUN, ids=[(block.tests or [f"line{block.line}"])[0] for block in _RUN]
)
def test_readme_python_block_runs_as_pasted(block: Block, pytester: pytest.Pytester) -> None:
    _run_block(block, pytester)


def test_the_readme_runs_its_fixture_examples_and_says_why_it_skips_the_rest() -> None:
    blocks = _python_blocks()
    run = [block for block in blocks if block.not_run is None]
    # The p1_events and policy_cluster examples, and the machine (with MyStore bound).
    assert len(run) >= 3, [block.line for block in run]
    assert all(block.defines_tests for block in run)
    for block in blocks:
        if block.not_run is not None:
            # A reason a reader can act on, not a bare marker.
            assert len(block.not_run.split()) >= 3, (block.line, block.not_run)


def test_code_blocks_reads_languages_and_the_comment_rules_above_a_fence() -> None:
    markdown = textwrap.dedent(
        """\
        Intro.

        ```python
        x = 1
        ```

        <!-- not run: your own backend -->
        ```python
        import mybackend
        ```
        <!-- run with: MyStore = dict -->

        ```python
        store = MyStore()
        ```

        ```
        a tree, not code
        ```
        """
    )
    blocks = code_blocks(markdown)
    assert [(block.line, block.lang) for block in blocks] == [
        (3, "python"),
        (8, "python"),
        (13, "python"),
        (17, ""),
    ]
    assert blocks[0] == Block(3, "python", "x = 1\n")
    assert blocks[1].not_run == "your own backend"
    assert blocks[2].setup == "MyStore = dict"
    assert blocks[2].not_run is None


def test_an_unclosed_fence_is_an_error_naming_its_line() -> None:
    with pytest.raises(ValueError, match="README line 2: the code block is never closed"):
        code_blocks("text\n```python\nx = 1\n")


# The p1_events example as it stood: `manager` undefined, `asyncio` never imported.
_BROKEN_EXAMPLE = """\
from pytest_quantum_p1 import ANY

def test_mode_change_is_observable(p1_events):
    asyncio.run(manager.set_mode("defensive"))
    p1_events.assert_published("ai.hfos.mode_changed", new_mode="defensive", timestamp=ANY)
"""


def test_an_example_that_does_not_run_as_pasted_fails_naming_its_readme_line(
    pytester: pytest.Pytester,
) -> None:
    block = Block(180, "python", _BROKEN_EXAMPLE)
    with pytest.raises(AssertionError, match=r"README.md:180 does not run as pasted") as caught:
        _run_block(block, pytester)
    assert "NameError: name 'asyncio' is not defined" in str(caught.value)


def test_a_plain_snippet_is_executed_and_its_error_names_its_readme_line(
    pytester: pytest.Pytester,
) -> None:
    _run_block(Block(7, "python", "from pytest_quantum_p1 import ANY\nassert ANY == 1\n"), pytester)
    with pytest.raises(NameError) as caught:
        _run_block(Block(9, "python", "manager.set_mode('defensive')\n"), pytester)
    assert "README.md:9" in {entry.frame.code.raw.co_filename for entry in caught.traceback}


def test_a_setup_line_binds_the_names_a_block_leaves_to_the_reader(
    pytester: pytest.Pytester,
) -> None:
    block = Block(5, "python", "store = MyStore()\nassert store == {}\n", setup="MyStore = dict")
    _run_block(block, pytester)
    with pytest.raises(NameError, match="MyStore"):
        _run_block(Block(5, "python", block.code), pytester)


CI_RUN = README.parent / ".ci" / "run"


def readme_commands(markdown: str) -> list[str]:
    """The commands of the README's "Two commands" block (its ``bash`` lines that are not comments)."""
    start = markdown.index("## Two commands")
    (block, *_) = [b for b in code_blocks(markdown[start:]) if b.lang == "bash"]
    return [line for line in block.code.splitlines() if line.strip() and not line.startswith("#")]


def ci_mismatch(commands: list[str], ci_script: str) -> str | None:
    """Why the CI script does not run the README's command 2 verbatim, or ``None``."""
    if len(commands) != 2:
        return f"the README shows {len(commands)} commands, not two"
    if commands[1] not in ci_script.splitlines():
        return f".ci/run does not run command 2 verbatim: {commands[1]}"
    if " -c " in commands[1]:
        return f"command 2 pins versions (current releases are what it must test): {commands[1]}"
    return None


def test_ci_runs_the_readmes_command_2_verbatim_on_current_releases() -> None:
    assert ci_mismatch(readme_commands(README.read_text()), CI_RUN.read_text()) is None


def test_a_ci_script_running_another_or_a_pinned_command_is_named() -> None:
    commands = ["pip install . && pytest --p1", "pip install -e '.[test]' && pytest"]
    assert ci_mismatch(commands, "set -e\npip install -e '.[test]' && pytest\n") is None
    assert ci_mismatch(commands, "pip install -e '.[test]' && pytest -x\n") == (
        ".ci/run does not run command 2 verbatim: pip install -e '.[test]' && pytest"
    )
    pinned = [commands[0], "pip install -e '.[test]' -c constraints.txt && pytest"]
    assert ci_mismatch(pinned, pinned[1] + "\n") == (
        "command 2 pins versions (current releases are what it must test): " + pinned[1]
    )
    assert ci_mismatch(commands[:1], "") == "the README shows 1 commands, not two"
