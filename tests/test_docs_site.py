# SPDX-License-Identifier: MIT
"""The documentation site stays whole: the API reference covers every public module, the guide pages stand
alone, the docs toolchain is declared once, and the example runner catches a wrong example.

Fast checks that need no Sphinx; ``make docs`` builds the site itself.
"""

from __future__ import annotations

import pkgutil
import re
import shlex
import tomllib
from pathlib import Path

import pytest

import aiorequestful

from . import test_docs_examples as runner

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    not (DOCS / "index.md").is_file() or not (ROOT / "Makefile").is_file(),
    reason="no docs/ and Makefile beside tests/ (not a checkout)",
)

#: Public modules left out of the reference on purpose: the demo is a program, not an API.
NOT_IN_REFERENCE = {"aiorequestful.demo", "aiorequestful.demo.crawl", "aiorequestful.demo.server"}


def public_modules() -> set[str]:
    names = {"aiorequestful"}
    for module in pkgutil.walk_packages(aiorequestful.__path__, "aiorequestful."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            names.add(module.name)
    return names - NOT_IN_REFERENCE


def documented_modules() -> set[str]:
    text = "\n".join(p.read_text(encoding="utf-8") for p in (DOCS / "api").glob("*.md"))
    return set(re.findall(r"^\.\. automodule:: (\S+)$", text, flags=re.M))


def test_reference_covers_every_public_module() -> None:
    missing = public_modules() - documented_modules()
    assert not missing, f"public modules without an API reference section: {sorted(missing)}"
    unknown = documented_modules() - public_modules()
    assert not unknown, f"the reference documents modules that do not exist (or are private): {sorted(unknown)}"


def test_reference_includes_the_modules_users_reach_for() -> None:
    wanted = {
        "aiorequestful.request",
        "aiorequestful.timer",
        "aiorequestful.flow",
        "aiorequestful.stats",
        "aiorequestful.shared",
        "aiorequestful.security",
        "aiorequestful.limits",
        "aiorequestful.cache.backend.sqlite",
        "aiorequestful.auth.oauth2",
    }
    assert wanted <= documented_modules()


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_guide_pages_stand_alone(page: str) -> None:
    """Users cannot read the project's internal contract: no references to it, nor to its defect numbers."""
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "api" + ".md" not in text
    assert not re.search(r"\bD-\d+\b", text), "a defect id leaked into a user page"
    assert not re.search(r"\bissue \d+\b", text, flags=re.I)


def test_docs_toolchain_is_declared_once() -> None:
    """`make docs` installs exactly the `docs` extra of pyproject.toml."""
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    line = re.search(r"^DOCS_DEPS := (.*)$", makefile, flags=re.M)
    assert line is not None
    assert shlex.split(line.group(1)) == extra["docs"]


def test_every_page_is_in_the_table_of_contents() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([\w/-]+)$", index.split("```{toctree}", 1)[1], flags=re.M))
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages <= listed | {"api/index"}


def _page(tmp_path: Path, text: str) -> runner.Page:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return runner.parse_page(path)


def test_runner_reads_markers_and_outputs(tmp_path: Path) -> None:
    page = _page(
        tmp_path,
        "# T\n\n<!-- docs-test: env api -->\n\n```python\nprint(1 + 1)\n```\n\n<!-- docs-test: output -->\n"
        "```text\n2\n```\n\n<!-- docs-test: skip needs a real browser -->\n```python\nraise SystemExit\n```\n"
        "\n```sh\nmake docs\n```\n",
    )
    assert page.envs == {"api"}
    assert [b.language for b in page.blocks] == ["python", "python", "sh"]
    first, skipped, _ = page.blocks
    assert first.expected_output == "2\n" and first.line == 6
    assert skipped.marker == ("skip", "needs a real browser")


def test_runner_catches_a_wrong_output_and_a_failing_example(tmp_path: Path) -> None:
    page = _page(tmp_path, "```python\nprint('yes')\n```\n<!-- docs-test: output -->\n```text\nno\n```\n")
    printed = runner.run_block(page.blocks[0], {"__name__": "__main__"})
    assert runner._normalise(printed) != runner._normalise(page.blocks[0].expected_output or "")

    broken = _page(tmp_path, "# T\n\ntext\n\n```python\nx = 1\nraise ValueError('from the page')\n```\n")
    with pytest.raises(ValueError, match="from the page") as info:
        runner.run_block(broken.blocks[0], {"__name__": "__main__"})
    # the traceback points at the page's own line
    assert info.traceback[-1].lineno + 1 == 7


def test_an_unclosed_fence_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="unclosed code fence"):
        _page(tmp_path, "```python\nprint(1)\n")
