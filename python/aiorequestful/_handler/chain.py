# SPDX-License-Identifier: MIT
"""The state of one ``request()`` call across its attempts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..timer import Timer

__all__ = ("Chain",)


class Chain:
    """Per-``request()`` state: kept local so concurrent requests never share it, and a failed request leaves
    nothing behind for the next one.

    :param retry_timer: the handler's retry timer; the call's own fresh copy of it is made on first use (a
        request that succeeds at once, with no status handler or gate to consult, never needs one).
    :param handlers_get_timer: whether status handlers and the gate get that copy (False when the retry policy
        does not retry the method: a 429 is then not waited out, and a host pause has no budget to wait with).
    """

    __slots__ = (
        "_handlers_get_timer",
        "_made",
        "_source",
        "_timer",
        "handled",
        "pause_accepted",
        "reauthorised",
        "warned",
    )

    def __init__(self, retry_timer: Timer | None = None, handlers_get_timer: bool = True) -> None:
        #: The retry WARNING was logged for this call (once per call).
        self.warned = False
        #: Re-authorisations after a 401 in this call (at most one).
        self.reauthorised = 0
        #: Resends a status handler asked for in this call (bounded).
        self.handled = 0
        #: The end (loop clock) of the longest host pause this call has already judged worth waiting for:
        #: waiting it out costs no retry budget, so it is not judged again at the next gate.
        self.pause_accepted = -math.inf
        self._source = retry_timer
        self._handlers_get_timer = handlers_get_timer
        self._timer: Timer | None = None
        self._made = retry_timer is None

    def retry_timer(self) -> Timer | None:
        """This call's fresh copy of the retry timer (the same one on every call), or None without one."""
        if not self._made:
            assert self._source is not None
            # The same fresh copy as RequestHandler.retry_timer gives, without copy.deepcopy's generic machinery.
            self._timer, self._made = self._source._fresh(), True
        return self._timer

    def handler_timer(self) -> Timer | None:
        """The retry timer status handlers and the gate judge waits by: this call's copy, or None (see above)."""
        return self.retry_timer() if self._handlers_get_timer else None
