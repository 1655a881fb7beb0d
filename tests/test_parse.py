"""Parsing log lines into canonical events: JSON, regex and syslog sources.

Golden samples live in tests/samples/: ``NAME.log`` (in the source's own encoding),
``NAME.spec.json`` (ParseSpec arguments, encoding and the clock) and
``NAME.expected.jsonl`` (one object per line: the event, or ``{"line": N, "failure": reason}``).
After an intended change, rewrite the expected files with ``python tests/test_parse.py --regen``
and review the diff line by line.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.parse import ParseSpec, build_parser
from agent.types import Event, ParseFailure, RawLine

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=timezone(timedelta(hours=8)))
CST = timezone(timedelta(hours=8))

UPLOAD = ParseSpec(
    name="upload",
    format="json",
    fields={
        "ts": "time",
        "event": "action",
        "invoice_no": "fphm",
        "status": "result",
        "latency_ms": "cost",
        "error_code": "code",
    },
    values={"status": {"成功": "ok", "失败": "failed", "超时": "timeout"}},
)
ERP_PATTERN = (
    r"^(?P<ts>\S+ \S+) (?P<level>\w+) (?P<event>\S+) 发票号码=(?P<invoice_no>\S+) "
    r"金额=(?P<amount>\S+) 结果=(?P<status>\S+) 耗时=(?P<latency_ms>\S+)"
    r"(?: 错误码=(?P<error_code>\S+))?"
)
ERP = ParseSpec(
    name="erp",
    format="regex",
    pattern=ERP_PATTERN,
    values={"event": {"同步": "sync"}, "status": {"成功": "ok", "失败": "failed"}},
)
SYSLOG = ParseSpec(name="system", format="syslog")


def parse(spec: ParseSpec, text: str, **raw: Any) -> Event | ParseFailure:
    parser = build_parser(spec, clock=lambda: NOW)
    return parser.parse(RawLine(spec.name, "/var/log/x.log", 7, text, **raw))


def event(spec: ParseSpec, text: str) -> Event:
    result = parse(spec, text)
    assert isinstance(result, Event), result
    return result


def failure(spec: ParseSpec, text: str, **raw: Any) -> str:
    result = parse(spec, text, **raw)
    assert isinstance(result, ParseFailure), result
    return result.reason


def upload_line(**fields: Any) -> str:
    line = {"time": "2026-11-02 09:00:03", "action": "upload", "fphm": "24312000000012345678"}
    line.update(fields)
    return json.dumps(line, ensure_ascii=False)


# --- JSON -------------------------------------------------------------------------------


def test_upload_line_becomes_a_canonical_event() -> None:
    line = (
        '{"time": "2026-11-02 09:00:03", "action": "upload", "fphm": "24312000000012345678", '
        '"amount": "1234.50", "result": "成功", "cost": 230, "code": null}'
    )
    ev = event(UPLOAD, line)
    assert ev.ts == datetime(2026, 11, 2, 9, 0, 3, tzinfo=CST)
    assert (ev.source, ev.event, ev.invoice_no) == ("upload", "upload", "24312000000012345678")
    assert (ev.amount, ev.status, ev.latency_ms, ev.error_code) == ("1234.50", "ok", 230.0, None)
    assert (ev.path, ev.line_no) == ("/var/log/x.log", 7)
    assert ev.extra == {}


def test_json_number_amount_keeps_its_trailing_zeros() -> None:
    assert event(UPLOAD, '{"time": "2026-11-02 09:00:03", "amount": 1234.50}').amount == "1234.50"


def test_amount_written_with_currency_and_thousands_separator_is_plain_decimal() -> None:
    assert event(UPLOAD, upload_line(amount="¥1,234.50")).amount == "1234.50"


def test_unreadable_amount_is_kept_in_extra_not_dropped() -> None:
    ev = event(UPLOAD, upload_line(amount="n/a"))
    assert ev.amount is None
    assert ev.extra["amount"] == "n/a"


def test_numeric_error_code_becomes_text() -> None:
    assert event(UPLOAD, upload_line(code=1001)).error_code == "1001"


def test_status_stays_unknown_when_only_an_error_code_is_logged() -> None:
    ev = event(UPLOAD, upload_line(code="E500"))
    assert (ev.status, ev.error_code) == (None, "E500")


@pytest.mark.parametrize(
    ("written", "status"),
    [
        ("失败", "failed"),  # mapped word
        ("OK", "ok"),  # canonical word in capitals
        ("Timeout", "timeout"),
        ("待更新", "待更新"),  # unmapped word passes through
    ],
)
def test_status_words_are_mapped_and_lower_cased(written: str, status: str) -> None:
    assert event(UPLOAD, upload_line(result=written)).status == status


def test_value_words_match_ignoring_case() -> None:
    spec = ParseSpec("upload", "json", fields={"ts": "time"}, values={"status": {"SUCCESS": "ok"}})
    assert event(spec, upload_line(status="success")).status == "ok"


def test_value_words_that_yaml_read_as_numbers_or_booleans_still_match() -> None:
    spec = ParseSpec(
        "upload", "json", fields={"ts": "time"}, values={"status": {0: "ok", True: "ok"}}
    )  # type: ignore[dict-item]
    assert event(spec, upload_line(status=0)).status == "ok"
    assert event(spec, upload_line(status="TRUE")).status == "ok"


@pytest.mark.parametrize(
    ("cost", "latency"),
    [(230, 230.0), (12.5, 12.5), ("120ms", 120.0), ("1.2s", 1200.0), ("3秒", 3000.0), ("45", 45.0)],
)
def test_latency_is_milliseconds_whatever_the_unit(cost: Any, latency: float) -> None:
    assert event(UPLOAD, upload_line(cost=cost)).latency_ms == pytest.approx(latency)


def test_unreadable_latency_is_kept_in_extra() -> None:
    ev = event(UPLOAD, upload_line(cost="slow"))
    assert ev.latency_ms is None
    assert ev.extra == {"cost": "slow"}


def test_canonical_keys_are_read_without_a_mapping() -> None:
    line = '{"ts": "2026-11-02 09:00:03", "invoice_no": "123", "level": "WARN", "host": "h1"}'
    ev = event(ParseSpec("upload", "json"), line)
    assert (ev.invoice_no, ev.level, ev.host) == ("123", "warning", "h1")


def test_unmapped_fields_go_to_extra_and_stay_serialisable() -> None:
    ev = event(UPLOAD, upload_line(retry=2, ratio=0.25, meta={"node": "up-2"}, gone=None))
    assert ev.extra == {"retry": 2, "ratio": 0.25, "meta": {"node": "up-2"}}
    json.dumps(ev.extra)  # no Decimal left over from exact number parsing


def test_a_canonical_key_remapped_elsewhere_is_kept_in_extra() -> None:
    ev = event(UPLOAD, upload_line(ts="local-clock"))
    assert ev.extra == {"ts": "local-clock"}


def test_dotted_field_names_reach_into_nested_objects() -> None:
    spec = ParseSpec("upload", "json", fields={"ts": "time", "latency_ms": "meta.cost"})
    ev = event(spec, '{"time": "2026-11-02 09:00:03", "meta": {"cost": 88}}')
    assert ev.latency_ms == 88.0


def test_issue_dates_are_written_the_same_way_for_every_source() -> None:
    for written in ("2026-11-02", "2026/11/2", "20261102", "2026年11月2日"):
        assert event(UPLOAD, upload_line(issue_date=written)).issue_date == "2026-11-02"


def test_constant_event_applies_unless_the_line_names_one() -> None:
    spec = ParseSpec("platform", "json", fields={"ts": "time"}, event="issue")
    assert event(spec, '{"time": "2026-11-02 09:00:03"}').event == "issue"
    assert event(spec, '{"time": "2026-11-02 09:00:03", "event": "void"}').event == "void"


def test_epoch_millisecond_timestamps_are_read() -> None:
    ev = event(UPLOAD, '{"time": 1793581203123}')
    assert ev.ts == datetime(2026, 11, 2, 9, 0, 3, 123000, tzinfo=CST)


def test_byte_order_mark_on_the_first_line_is_ignored() -> None:
    assert event(UPLOAD, "\ufeff" + upload_line()).invoice_no == "24312000000012345678"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("upload failed: connection reset", "not JSON: Expecting value at column 1"),
        ('{"time": "2026-11-02 09:00:03"', "not JSON: Expecting ',' delimiter at column 31"),
        ("", "not JSON: empty line"),
        ("[1, 2]", "JSON is not an object (got list)"),
        ("null", "JSON is not an object (got null)"),
        ("42", "JSON is not an object (got number)"),
        ('"text"', "JSON is not an object (got string)"),
        ('{"action": "upload"}', "no timestamp (no 'time' field)"),
        ('{"time": null}', "no timestamp (no 'time' field)"),
        ('{"time": "yesterday"}', "unreadable timestamp 'yesterday'"),
        ('{"time": {"s": 1}}', "unreadable timestamp \"{'s': 1}\""),
    ],
)
def test_unusable_json_lines_say_why(line: str, reason: str) -> None:
    assert failure(UPLOAD, line) == reason


def test_line_stamped_in_the_future_is_refused() -> None:
    reason = failure(UPLOAD, upload_line(time="2026-11-04 09:00:00"))
    assert reason.startswith("timestamp 2026-11-04T09:00:00+08:00 lies in the future")


def test_failure_of_a_truncated_line_says_it_was_truncated() -> None:
    assert failure(UPLOAD, '{"time": "2026-11-02 09:00:03", "fphm": "24', truncated=True) == (
        "not JSON: Unterminated string starting at column 41; the line was truncated"
    )


def test_failure_keeps_only_a_sample_of_a_huge_line() -> None:
    result = parse(UPLOAD, "x" * 1_000_000)
    assert isinstance(result, ParseFailure)
    assert len(result.text) < 2100


def test_decoding_damage_is_flagged_on_the_event() -> None:
    result = parse(UPLOAD, upload_line(result="\ufffd\ufffd"), replaced=True)
    assert isinstance(result, Event)
    assert result.extra["replaced"] is True


GARBAGE = [
    "\x00\x01\x02\xff",
    "{" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    '{"time": 1e999}',
    '{"time": NaN, "amount": Infinity, "cost": -Infinity}',
    '{"time": "2026-11-02 09:00:03", "amount": NaN, "cost": -5}',
    '{"time": -1}',
    '{"time": true}',
    '{"time": "' + "9" * 5000 + '"}',
    '{"time": ' + "9" * 5000 + "}",
    '{"time": "2026-11-02 09:00:03", "fphm": ["a"], "result": {"x": 1}, "code": false}',
    '{"time": "\ud800"}',
    "\ufffd" * 10_000,
]


@pytest.mark.parametrize("spec", [UPLOAD, ERP, SYSLOG], ids=["json", "regex", "syslog"])
def test_bad_input_is_reported_never_raised(spec: ParseSpec) -> None:
    parser = build_parser(spec, clock=lambda: NOW)
    rnd = random.Random(20261102)
    lines = GARBAGE + [
        rnd.randbytes(rnd.randint(0, 300)).decode("gbk", errors="replace") for _ in range(300)
    ]
    for number, text in enumerate(lines, 1):
        result = parser.parse(RawLine(spec.name, "x.log", number, text))
        assert isinstance(result, (Event, ParseFailure))
        if isinstance(result, ParseFailure):
            assert result.reason
            assert not result.reason.startswith("parser error"), result.reason


# --- regex --------------------------------------------------------------------------------


def test_erp_sync_success_line_is_read_with_the_operators_pattern() -> None:
    line = (
        "2026-11-02 09:00:05 INFO 同步 发票号码=24312000000012345678 金额=1234.50 "
        "结果=成功 耗时=120ms"
    )
    ev = event(ERP, line)
    assert ev.ts == datetime(2026, 11, 2, 9, 0, 5, tzinfo=CST)
    assert (ev.event, ev.invoice_no, ev.amount) == ("sync", "24312000000012345678", "1234.50")
    assert (ev.status, ev.latency_ms, ev.level, ev.error_code) == ("ok", 120.0, "info", None)


def test_erp_sync_failure_line_carries_its_error_code() -> None:
    line = (
        "2026-11-02 09:00:06 ERROR 同步 发票号码=24312000000012345678 金额=1234.50 "
        "结果=失败 耗时=80ms 错误码=E201"
    )
    ev = event(ERP, line)
    assert (ev.status, ev.error_code, ev.level, ev.latency_ms) == ("failed", "E201", "error", 80.0)


def test_line_not_matching_the_pattern_is_a_failure() -> None:
    assert failure(ERP, "2026-11-02 09:00:07 INFO 心跳 正常") == "does not match pattern"


def test_regex_groups_can_be_renamed_and_extra_groups_are_kept() -> None:
    spec = ParseSpec(
        "erp",
        "regex",
        pattern=r"(?P<time>\S+ \S+) (?P<fphm>\d+) (?P<worker>\w+)(?: (?P<note>.+))?",
        fields={"ts": "time", "invoice_no": "fphm"},
    )
    ev = event(spec, "2026-11-02 09:00:05 123456 w3")
    assert (ev.invoice_no, ev.extra) == ("123456", {"worker": "w3"})


def test_invalid_regex_is_refused_when_the_parser_is_built() -> None:
    with pytest.raises(ValueError, match=r"pattern: invalid regular expression: .* position"):
        build_parser(ParseSpec("erp", "regex", pattern=r"(?P<ts>\S+"))


def test_regex_without_a_timestamp_group_is_refused() -> None:
    with pytest.raises(ValueError, match=r"named group for the timestamp, \(\?P<ts>"):
        build_parser(ParseSpec("erp", "regex", pattern=r"(?P<invoice_no>\d+)"))


def test_field_mapped_to_a_missing_group_is_refused() -> None:
    spec = ParseSpec("erp", "regex", pattern=r"(?P<ts>\S+)", fields={"invoice_no": "fphm"})
    with pytest.raises(ValueError, match="fields: pattern has no group for invoice_no -> 'fphm'"):
        build_parser(spec)


# --- syslog -------------------------------------------------------------------------------


def test_rfc3164_line_gives_host_program_pid_and_message() -> None:
    ev = event(
        SYSLOG, "Nov  2 09:00:01 fp-host invoice-sync[1234]: connection to platform timed out"
    )
    assert ev.ts == datetime(2026, 11, 2, 9, 0, 1, tzinfo=CST)
    assert (ev.event, ev.host, ev.level) == ("system", "fp-host", None)
    assert ev.message == "connection to platform timed out"
    assert ev.extra == {"program": "invoice-sync", "pid": "1234"}


def test_syslog_priority_gives_the_level() -> None:
    ev = event(SYSLOG, "<11>Nov  2 09:00:02 fp-host kernel: EXT4-fs error")
    assert (ev.level, ev.extra["facility"], ev.extra["program"]) == ("error", "user", "kernel")


def test_rfc5424_line_with_structured_data() -> None:
    line = '<34>1 2026-11-02T09:00:03+08:00 fp-host sync 99 UP [m@1 fphm="243" q="a\\"b"] retry'
    ev = event(SYSLOG, line)
    assert (ev.host, ev.level, ev.message) == ("fp-host", "critical", "retry")
    assert ev.extra["sd"] == {"m@1": {"fphm": "243", "q": 'a"b'}}
    assert (ev.extra["program"], ev.extra["pid"], ev.extra["msgid"]) == ("sync", "99", "UP")


def test_rfc5424_line_without_priority_and_with_nil_values() -> None:
    ev = event(SYSLOG, "1 2026-11-02T01:00:04Z fp-host certmon - - - certificate expires")
    assert ev.ts == datetime(2026, 11, 2, 9, 0, 4, tzinfo=CST)
    assert ev.extra == {"program": "certmon"}


def test_december_syslog_read_in_january_belongs_to_last_year() -> None:
    parser = build_parser(SYSLOG, clock=lambda: datetime(2027, 1, 1, 0, 5, tzinfo=CST))
    ev = parser.parse(RawLine("system", "x", 1, "Dec 31 23:59:59 h cron[1]: rotate"))
    assert isinstance(ev, Event)
    assert ev.ts == datetime(2026, 12, 31, 23, 59, 59, tzinfo=CST)


def test_syslog_pattern_lifts_fields_out_of_the_message() -> None:
    spec = ParseSpec("system", "syslog", pattern=r"发票号码=(?P<invoice_no>\d+)", event="sync")
    ev = event(spec, "Nov  2 09:00:05 fp-host invoice-sync[1]: 上传失败 发票号码=2431")
    assert (ev.invoice_no, ev.event) == ("2431", "sync")


def test_text_that_is_not_syslog_is_a_failure() -> None:
    assert failure(SYSLOG, "-- Reboot --") == "not a syslog line"


# --- building -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ParseSpec("s", "csv"), "format: unknown format 'csv'; expected one of json, regex"),
        (ParseSpec("s", "json", fields={"fphm": "x"}), "fields: unknown event field(s) 'fphm'"),
        (ParseSpec("s", "json", values={"ts": {"a": "b"}}), "values.ts: timestamps cannot"),
        (ParseSpec("s", "json", timezone="Beijing"), "unknown timezone 'Beijing'"),
        (ParseSpec("s", "regex"), "pattern: required for format 'regex'"),
    ],
)
def test_unusable_spec_is_refused_with_a_clear_message(spec: ParseSpec, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_parser(spec)
    assert message in str(info.value)


# --- golden samples -----------------------------------------------------------------------


def event_as_dict(result: Event | ParseFailure) -> dict[str, Any]:
    """The expected-file form of a parse result: set fields only, time as ISO-8601."""
    if isinstance(result, ParseFailure):
        return {"line": result.line_no, "failure": result.reason}
    out: dict[str, Any] = {"line": result.line_no, "ts": result.ts.isoformat()}
    for name in Event._fields:
        value = getattr(result, name)
        if name not in ("ts", "path", "line_no") and value not in (None, {}):
            out[name] = dict(value) if name == "extra" else value
    return out


def run_sample(log: Path) -> list[dict[str, Any]]:
    setup = json.loads(log.with_suffix(".spec.json").read_text(encoding="utf-8"))
    spec = ParseSpec(**setup["spec"])
    now = datetime.fromisoformat(setup["now"])
    parser = build_parser(spec, clock=lambda: now)
    text = log.read_bytes().decode(setup["encoding"])
    return [
        event_as_dict(parser.parse(RawLine(spec.name, str(log), number, line)))
        for number, line in enumerate(text.splitlines(), 1)
    ]


@pytest.mark.parametrize("log", sorted(SAMPLES.glob("*.log")), ids=lambda p: p.stem)
def test_sample_log_parses_as_expected(log: Path) -> None:
    expected_file = log.with_suffix(".expected.jsonl")
    expected = [json.loads(line) for line in expected_file.read_text("utf-8").splitlines()]
    assert run_sample(log) == expected


def test_every_format_has_a_golden_sample() -> None:
    formats = {
        json.loads(p.read_text("utf-8"))["spec"]["format"] for p in SAMPLES.glob("*.spec.json")
    }
    assert formats == {"json", "regex", "syslog"}


if __name__ == "__main__" and sys.argv[1:] == ["--regen"]:
    for sample in sorted(SAMPLES.glob("*.log")):
        rows = run_sample(sample)
        sample.with_suffix(".expected.jsonl").write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), "utf-8"
        )
        print(f"wrote {sample.with_suffix('.expected.jsonl')} ({len(rows)} lines)")
