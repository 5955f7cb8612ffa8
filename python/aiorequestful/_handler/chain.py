# SPDX-License-Identifier: MIT
"""The state of one ``request()`` call across its attempts."""

from __future__ import annotations

import math

__all__ = ("Chain",)


class Chain:
    """Per-``request()`` state: kept local so concurrent requests never share it, and a failed request leaves
    nothing behind for the next one."""

    __slots__ = ("handled", "pause_accepted", "reauthorised", "warned")

    def __init__(self) -> None:
        #: The retry WARNING was logged for this call (once per call).
        self.warned = False
        #: Re-authorisations after a 401 in this call (at most one).
        self.reauthorised = 0
        #: Resends a status handler asked for in this call (bounded).
        self.handled = 0
        #: The end (loop clock) of the longest host pause this call has already judged worth waiting for:
        #: waiting it out costs no retry budget, so it is not judged again at the next gate.
        self.pause_accepted = -math.inf
