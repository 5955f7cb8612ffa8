# SPDX-License-Identifier: MIT
"""The parts ``RequestHandler`` is made of, each holding its own state and testable alone.

* :mod:`.arguments`: checks of the handler's arguments, so that a wrong one fails where the handler is built;
* :mod:`.redaction`: request log lines with every secret masked;
* :mod:`.chain`: the state of one ``request()`` call across its attempts;
* :mod:`.attempt`: one attempt - sent (or answered by a cache), counted, its body read within the limit, its
  payload decoded, released;
* :mod:`.read_watch`: the default read time-out of attempts, kept with one timer per handler;
* :mod:`.transport`: the request of an aiohttp client middleware, sent on down its chain;
* :mod:`.gate`: the flow-control gate an attempt waits at (host pauses, then the host's rate-limit turn);
* :mod:`.retry`: the retry step between failed attempts (the retry timer's sleep, logging, hooks, stats).

None of them imports :mod:`aiorequestful.request`: the handler wires them together and they reach nothing of it
but what they are given.
"""
