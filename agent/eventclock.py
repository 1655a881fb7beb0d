"""How far the daemon lets event time run when no line moves it.

Lines move event time (agent/pipeline.py); between them the daemon advances it with the wall
clock, so that windows of quiet sources close and silence is noticed. A wall clock is not to
be trusted blindly: stepped a day ahead by mistake (a bad NTP server, a typo in `date -s`) and
back, it would close a day of empty windows at once and then make every line stamped with the
right time late, blinding the rules for a day.

So the wall clock is followed at the pace of the boot clock (CLOCK_BOOTTIME: it counts time
asleep too, unlike CLOCK_MONOTONIC, so a resumed laptop or VM is not a "jump"): a reading that
lies more than `tolerance` ahead of the last one plus the time really elapsed is a jump, and
event time then moves only by the elapsed time. The wall clock is followed again as soon as it
agrees (set right again), or the lines agree with it (they are stamped with the new time: the
jump was a correction), or it has kept the same lead for `settle` (a deliberate change). Going
back needs nothing: event time never moves back, and the lines' own times move it on.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

TOLERANCE = 5.0  # seconds the wall clock may drift from the boot clock between two readings
SETTLE = 600.0  # seconds a constant lead must last before it is taken as the new time


def boot_clock() -> float:
    """Seconds since boot, counting suspend (monotonic where CLOCK_BOOTTIME does not exist)."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


class EventClock:
    """Turns wall-clock readings into the time quiet sources are advanced to."""

    def __init__(self, tolerance: float = TOLERANCE, settle: float = SETTLE) -> None:
        self.tolerance = tolerance
        self.settle = settle
        self._time: datetime | None = None  # what the last call returned
        self._mono = 0.0  # the boot clock at that call
        self._lead_since: float | None = None  # boot clock when the wall clock leapt ahead
        self._lead = 0.0  # by how much, in seconds
        self.jumps = 0  # leaps ahead not followed (for status and metrics)

    @property
    def diverged(self) -> bool:
        """The wall clock is ahead of the time followed."""
        return self._lead_since is not None

    def __call__(self, wall: datetime, mono: float, lines: datetime | None = None) -> datetime:
        """The time to advance to, given the wall clock, the boot clock and the newest line
        time (None if no line was read yet)."""
        last = self._time
        if last is None:
            return self._follow(wall, mono)
        expected = last + timedelta(seconds=max(0.0, mono - self._mono))
        lead = (wall - expected).total_seconds()
        if lead <= self.tolerance:
            if self._lead_since is not None:
                log.warning("the wall clock agrees with the elapsed time again (%s): "
                            "following it", wall.isoformat(timespec="seconds"))
            return self._follow(wall, mono)
        if lines is not None and (wall - lines).total_seconds() <= self.tolerance:
            log.warning("the lines are stamped with the wall clock's time (%s): following it",
                        wall.isoformat(timespec="seconds"))
            return self._follow(wall, mono)
        if self._lead_since is None or abs(lead - self._lead) > self.tolerance:
            if self._lead_since is None:
                self.jumps += 1
                log.warning("the wall clock jumped %s ahead of the time elapsed (%s, expected "
                            "%s): event time follows the elapsed time until the clock or the "
                            "lines agree", _span(lead), wall.isoformat(timespec="seconds"),
                            expected.isoformat(timespec="seconds"))
            self._lead_since, self._lead = mono, lead
        elif mono - self._lead_since >= self.settle:
            log.warning("the wall clock has kept a lead of %s for %s: taking it as the time",
                        _span(lead), _span(mono - self._lead_since))
            return self._follow(wall, mono)
        self._time, self._mono = expected, mono
        return expected

    def _follow(self, wall: datetime, mono: float) -> datetime:
        self._time, self._mono, self._lead_since, self._lead = wall, mono, None, 0.0
        return wall


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
