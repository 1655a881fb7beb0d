"""Property tests of the timestamp reader: any value read gives an aware time in the source's
zone or a TimestampError (the documented failure, counted as an unparsed line), and a time
written in a recognised form reads back as the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.parse.timestamps import TimestampError, TimestampReader

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=SHANGHAI)
FAST = settings(max_examples=300, deadline=None, database=None)


def reader(fmt: str | None = None, zone: ZoneInfo = SHANGHAI) -> TimestampReader:
    return TimestampReader(zone, fmt, timedelta(days=1), clock=lambda: NOW)


def read_or_refuse(r: TimestampReader, value: object) -> datetime | None:
    """The time read, or None for a TimestampError; any other exception fails the test."""
    try:
        ts = r.read(value)
    except TimestampError as exc:
        assert str(exc)  # the reason shown next to the unparsed line
        assert len(str(exc)) < 300  # a huge value is not repeated whole
        return None
    assert ts.tzinfo is not None and ts.utcoffset() == r.zone.utcoffset(ts.replace(tzinfo=None))
    assert ts <= NOW + timedelta(days=1)  # max_future
    return ts


TEXTS = st.one_of(
    st.text(max_size=60),
    st.from_regex(r"\A\d{1,30}(\.\d{0,12})?\Z"),
    st.from_regex(r"\A\d{4}[-/.年]\d{1,2}[-/.月]\d{1,2}日?[ T]\d{1,2}:\d{1,2}(:\d{1,2})?\Z"),
    st.from_regex(r"\A[A-Z][a-z]{2} +\d{1,2} \d{1,2}:\d\d:\d\d(\.\d{1,7})?( \d{4})?\Z"),
    st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)?\Z"),
)
NUMBERS = st.one_of(
    st.integers(), st.integers(min_value=10**300, max_value=10**5000), st.floats(),
    st.decimals(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(),
                                                         max_size=2),
)


@FAST
@given(value=st.one_of(TEXTS, NUMBERS))
def test_any_value_is_a_time_or_a_timestamp_error(value):
    ts = read_or_refuse(reader(), value)  # any other exception fails the test
    assert ts is None or ts.tzinfo is not None


@settings(max_examples=200, deadline=None, database=None)
@given(fmt=st.one_of(st.text(max_size=15),
                     st.lists(st.sampled_from(["%Y", "%m", "%d", "%H", "%M", "%S", "%f", "%z",
                                               "%b", "%j", "%s", "%%", "%", "%Q", "-", " ",
                                               "T", "年"]), max_size=8).map("".join)),
       value=TEXTS)
def test_any_timestamp_format_is_refused_at_build_or_reads_or_refuses_every_value(fmt, value):
    try:
        r = reader(fmt)
    except ValueError as exc:  # shown by `check` next to the source's key
        assert str(exc).startswith(f"timestamp_format: {fmt!r} cannot be used"), exc
        return
    read_or_refuse(r, value)


@settings(max_examples=20, deadline=None, database=None)
@given(fmt=st.sampled_from(["%A%A", "%Q", "%", "%Y-%m-%d %", "%d%d"]))
def test_a_timestamp_format_strptime_cannot_use_is_refused_at_build(fmt):
    try:
        reader(fmt)
    except ValueError as exc:
        assert str(exc).startswith(f"timestamp_format: {fmt!r} cannot be used"), exc
    else:
        raise AssertionError(f"{fmt!r} was accepted")


# -- round trips ---------------------------------------------------------------------------

PAST = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2026, 11, 1),
                    timezones=st.sampled_from([UTC, SHANGHAI, ZoneInfo("Europe/Berlin"),
                                               ZoneInfo("America/New_York")]))


@FAST
@given(ts=PAST, sep=st.sampled_from(["T", " "]), spec=st.sampled_from(["auto", "seconds",
                                                                      "milliseconds"]))
def test_an_iso_time_with_its_offset_reads_back_as_the_same_instant(ts, sep, spec):
    if spec != "auto":
        ts = ts.replace(microsecond=0 if spec == "seconds" else ts.microsecond // 1000 * 1000)
    got = reader().read(ts.isoformat(sep=sep, timespec=spec))
    # compared in UTC: Python never calls a time in a DST fold equal to one in another zone
    assert got.astimezone(UTC) == ts.astimezone(UTC) and got.tzinfo == SHANGHAI


@FAST
@given(ts=PAST, zone=st.sampled_from(["Asia/Shanghai", "UTC", "Asia/Tokyo"]),
       form=st.sampled_from(["%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y年%m月%d日 %H:%M:%S",
                             "%Y%m%d%H%M%S", "%d/%b/%Y:%H:%M:%S %z"]))
def test_a_local_time_written_in_a_common_form_reads_back(ts, zone, form):
    # through UTC: a generated time may not exist in the zone (Shanghai kept DST 1986-1991)
    local = ts.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(microsecond=0)
    got = reader(zone=ZoneInfo(zone)).read(local.strftime(form))
    assert got == local


@FAST
# from 2002: earlier epochs in milliseconds have 12 digits, read as a compact date (documented)
@given(ts=st.datetimes(min_value=datetime(2002, 1, 1), max_value=datetime(2026, 11, 1),
                       timezones=st.just(UTC)),
       unit=st.sampled_from([1, 1_000, 1_000_000, 1_000_000_000]),
       as_text=st.booleans())
def test_an_epoch_number_in_any_unit_reads_back_as_the_same_instant(ts, unit, as_text):
    ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000 if unit > 1 else 0)
    number = (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * unit \
        // 1_000_000
    value: object = str(number) if as_text else number
    assert reader().read(value) == ts


@FAST
@given(ago=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=330)),
       fraction=st.booleans())
def test_a_year_less_syslog_time_from_the_last_months_reads_back(ago, fraction):
    ts = (NOW - ago).replace(microsecond=(NOW - ago).microsecond if fraction else 0)
    text = f"{ts:%b} {ts.day:2d} {ts:%H:%M:%S}"  # "Nov  2 09:00:01"
    if fraction:
        text += f".{ts.microsecond:06d}"
    assert reader().read(text) == ts


@FAST
@given(value=st.decimals(min_value=Decimal(10**9), max_value=Decimal(1.7e9), places=3))
def test_epoch_seconds_with_a_fraction_keep_their_milliseconds(value):
    got = reader().read(str(value))
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(value))
    assert abs(got - expected) < timedelta(milliseconds=1)
