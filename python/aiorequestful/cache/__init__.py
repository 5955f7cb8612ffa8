# SPDX-License-Identifier: MIT
"""Response caching: repositories of stored responses, their backends, and the session that uses them.

api.md §0: a package only; import from ``aiorequestful.cache.backend``, ``.session`` and ``.response``.
"""
