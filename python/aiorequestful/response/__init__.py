# SPDX-License-Identifier: MIT
"""Response handling: payload handlers, status handlers and their exceptions (api.md §5-§6).

The package itself exports nothing; import from ``aiorequestful.response.payload``,
``aiorequestful.response.status`` and ``aiorequestful.response.exception``.
"""
