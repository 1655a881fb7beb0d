"""The time quiet sources advance to follows the wall clock at the pace of the boot clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.eventclock import EventClock, boot_clock

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone(timedelta(hours=8)))
DAY = timedelta(days=1)


def test_an_honest_clock_is_followed():
    clock = EventClock()
    assert clock(T0, 100.0) == T0
    assert clock(T0 + timedelta(seconds=30), 130.0) == T0 + timedelta(seconds=30)
    # a little drift (NTP slewing) is followed as it is
    assert clock(T0 + timedelta(seconds=62), 160.0) == T0 + timedelta(seconds=62)
    assert not clock.diverged and clock.jumps == 0


def test_a_leap_ahead_and_back_moves_time_only_by_what_elapsed():
    clock = EventClock()
    clock(T0, 0.0)
    assert clock(T0 + DAY, 1.0) == T0 + timedelta(seconds=1)  # not a day of windows at once
    assert clock.diverged and clock.jumps == 1
    assert clock(T0 + DAY + timedelta(seconds=30), 31.0) == T0 + timedelta(seconds=31)
    # set right again: followed from there, no second jump counted
    assert clock(T0 + timedelta(seconds=61), 61.0) == T0 + timedelta(seconds=61)
    assert not clock.diverged and clock.jumps == 1


def test_lines_stamped_with_the_new_time_make_it_the_time():
    clock = EventClock()
    clock(T0, 0.0)
    later = T0 + timedelta(hours=3)  # the clock was three hours behind and got corrected
    assert clock(later, 1.0, lines=T0) == T0 + timedelta(seconds=1)
    assert clock(later + timedelta(seconds=5), 6.0, lines=later + timedelta(seconds=4)) \
        == later + timedelta(seconds=5)
    assert not clock.diverged


def test_a_lead_kept_long_enough_is_taken_as_the_time():
    clock = EventClock(settle=600)
    clock(T0, 0.0)
    ahead = timedelta(hours=2)
    assert clock(T0 + ahead, 1.0) == T0 + timedelta(seconds=1)
    assert clock(T0 + ahead + timedelta(seconds=300), 301.0) == T0 + timedelta(seconds=301)
    assert clock(T0 + ahead + timedelta(seconds=601), 601.0) == T0 + ahead + timedelta(seconds=601)
    assert not clock.diverged


def test_the_boot_clock_moves_forward():
    a = boot_clock()
    b = boot_clock()
    assert b >= a > 0
