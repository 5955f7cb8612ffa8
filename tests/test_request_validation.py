# SPDX-License-Identifier: MIT
"""RequestHandler refuses wrong arguments where it is built, saying what was expected, instead of failing at the
first request (or never)."""

from __future__ import annotations

import aiohttp
import pytest

from aiorequestful.auth.basic import BasicAuthoriser
from aiorequestful.request import RequestHandler
from aiorequestful.response.payload import JSONPayloadHandler
from aiorequestful.response.status import RateLimitStatusHandler
from aiorequestful.timer import GeometricCountTimer, StepCeilingTimer, StepCountTimer, TimerScheduleWarning


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"retry_timer": 3}, TypeError, r"retry_timer must be a Timer \(e.g. StepCountTimer.*\) or None, not int 3"),
        ({"wait_timer": 0.5}, TypeError, "wait_timer must be a Timer .* not float 0.5"),
        ({"retry_timer": StepCountTimer}, TypeError, r"not the class StepCountTimer \(an instance was expected"),
        (
            {"payload_handler": JSONPayloadHandler},
            TypeError,
            r"not the class JSONPayloadHandler .*\(",
        ),
        ({"payload_handler": "json"}, TypeError, "payload_handler must be a PayloadHandler instance"),
        ({"response_handlers": [RateLimitStatusHandler]}, TypeError, "not the class RateLimitStatusHandler"),
        ({"response_handlers": RateLimitStatusHandler()}, TypeError, "a sequence of StatusHandler instances"),
        ({"response_handlers": [404]}, TypeError, "must hold StatusHandler instances, not int 404"),
        ({"authoriser": BasicAuthoriser}, TypeError, "authoriser must be an Authoriser instance or None"),
        ({"authoriser": {"Authorization": "x"}}, TypeError, "authoriser must be an Authoriser instance or None"),
    ],
)
def test_wrong_types_fail_at_construction(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        RequestHandler.create(**kwargs)
    with pytest.raises(error, match=message):
        RequestHandler(connector=aiohttp.ClientSession, **kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: StepCountTimer(initial=-1, step=-1), "initial=-1 is negative or NaN"),
        (lambda: GeometricCountTimer(factor=0), "factor=0 makes every wait after the first 0 s"),
        (lambda: StepCeilingTimer(initial=5, final=1), "final=1 is below initial=5"),
    ],
)
@pytest.mark.parametrize("name", ["retry_timer", "wait_timer"])
def test_timers_that_cannot_be_waits_are_refused(build, message: str, name: str) -> None:
    with pytest.warns(TimerScheduleWarning):
        timer = build()
    with pytest.raises(ValueError, match=f"{name} cannot be used as a schedule of waits: .*{message}"):
        RequestHandler.create(**{name: timer})


def test_the_setters_check_too() -> None:
    handler = RequestHandler.create()
    with pytest.raises(TypeError, match="retry_timer must be a Timer"):
        handler.retry_timer = 3  # type: ignore[assignment]
    with pytest.raises(TypeError, match="payload_handler must be a PayloadHandler instance"):
        handler.payload_handler = JSONPayloadHandler  # type: ignore[assignment]
    with pytest.raises(TypeError, match="StatusHandler instances"):
        handler.response_handlers = ["nope"]  # type: ignore[list-item]


def test_a_session_instead_of_a_connector_is_refused() -> None:
    with pytest.raises(TypeError, match=r"connector must be a callable that returns a new aiohttp\.ClientSession"):
        RequestHandler(connector=None)  # type: ignore[arg-type]


def test_good_arguments_still_work() -> None:
    handler = RequestHandler.create(
        authoriser=BasicAuthoriser(login="a", password="b"),
        payload_handler=JSONPayloadHandler(),
        response_handlers=(RateLimitStatusHandler(),),
        retry_timer=StepCountTimer(0.5, 3, 0.5),
        wait_timer=StepCeilingTimer(0, 0.05, 0.01),
    )
    assert isinstance(handler.payload_handler, JSONPayloadHandler)
    assert list(handler.response_handlers) == [429]
