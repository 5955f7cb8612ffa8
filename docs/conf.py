# SPDX-License-Identifier: MIT
"""Sphinx configuration: MyST Markdown pages, an autodoc API reference from the docstrings, the furo theme.

Built by ``make docs`` with ``-W --keep-going`` (every warning is an error). The package is imported from the
checkout (the editable install in .venv), so the reference documents exactly the code the tests run.
"""

from __future__ import annotations

import aiorequestful

project = "aiorequestful"
author = "aiorequestful developers"
copyright = "aiorequestful developers, MIT licence"  # the name Sphinx reads
release = aiorequestful.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The reference follows the source order, shows signatures without the module path, and keeps type hints in the
# signature (they are 1.0.20's public API).
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# Signatures name the package's own type aliases (see aiorequestful.types) instead of spelling them out.
autodoc_type_aliases = {
    "HostKey": "HostKey",
    "RateLimitInput": "RateLimitInput",
    "URLInput": "URLInput",
    "Headers": "Headers",
    "Number": "Number",
    "MethodInput": "MethodInput",
}
autodoc_default_options = {"show-inheritance": True}
add_module_names = False
python_use_unqualified_type_names = True

# No intersphinx inventories are fetched: the build must not need the network. Cross-references to the stdlib
# and aiohttp therefore stay plain text, which nitpicky mode is not on to complain about.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "furo"
html_title = f"aiorequestful {release}"
html_static_path: list[str] = []
