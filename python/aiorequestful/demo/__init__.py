# SPDX-License-Identifier: MIT
"""``python -m aiorequestful.demo``: a bounded crawl of a bundled local API through RequestHandler."""
