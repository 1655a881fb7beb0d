"""The simulated day: realistic, deterministic, incidents visible exactly where they are said to be.

Window statistics are computed straight from the generated files with json + statistics, the
way an operator would check them by hand, so these tests need nothing else from the agent.
"""

from __future__ import annotations

import importlib.util
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from agent.simulator import (
    TZ,
    Incident,
    default_incidents,
    simulate,
    write_upload_lines,
)

DAY = date(2026, 11, 2)
FIVE_MIN = timedelta(minutes=5)


def at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, 2, hh, mm, ss, tzinfo=TZ)


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    return simulate(tmp_path_factory.mktemp("day"))


def read_upload(path):
    """Parsed upload records (with an aware `ts`) and the number of unparseable lines."""
    records, bad = [], 0
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            bad += 1
            continue
        rec["ts"] = datetime.fromisoformat(rec["time"]).replace(tzinfo=TZ)
        records.append(rec)
    return records, bad


def window_stats(records):
    """Per 5-minute window: count, timeout_rate, latency_p95, top error code and its count."""
    windows = defaultdict(list)
    for rec in records:
        ts = rec["ts"]
        windows[ts.replace(minute=ts.minute - ts.minute % 5, second=0)].append(rec)
    stats = {}
    for start, recs in windows.items():
        costs = sorted(r["cost"] for r in recs if r["cost"] is not None)
        if len(costs) >= 2:
            p95 = statistics.quantiles(costs, n=20, method="inclusive")[18]
        else:
            p95 = costs[0] if costs else 0
        codes = Counter(r["code"] for r in recs if r["code"] is not None)
        top_code, top_count = codes.most_common(1)[0] if codes else (None, 0)
        stats[start] = {
            "count": len(recs),
            "timeout_rate": sum(r["result"] == "超时" for r in recs) / len(recs),
            "failure_rate": sum(r["result"] != "成功" for r in recs) / len(recs),
            "latency_p95": p95,
            "top_error_code": top_code,
            "top_error_code_count": top_count,
        }
    return stats


def inside(start, incident):
    return incident.start <= start and start + FIVE_MIN <= incident.end


def outside_all(start, incidents):
    return all(start + FIVE_MIN <= i.start or start >= i.end for i in incidents)


@pytest.fixture(scope="module")
def windows(day):
    records, _ = read_upload(day.files["upload"])
    return window_stats(records)


def incident(day, name):
    return next(i for i in day.incidents if i.name == name)


def fires(name, w):
    """The thresholds the default rules are expected to use for each incident."""
    if name == "outage":
        return w["timeout_rate"] > 0.5 and w["count"] >= 5
    if name == "latency":
        return w["latency_p95"] > 3000 and w["count"] >= 5
    return w["top_error_code_count"] >= 5 and w["top_error_code"] == "1001"


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path):
    a, b, c = simulate(tmp_path / "a"), simulate(tmp_path / "b"), simulate(tmp_path / "c", seed=8)
    for key in a.files:
        assert a.files[key].read_bytes() == b.files[key].read_bytes(), key
        assert a.files[key].read_bytes() != c.files[key].read_bytes(), key
    assert a.lines == b.lines and a.invoices == b.invoices


def test_default_incidents_are_returned_with_their_times(day):
    assert [(i.name, i.start, i.end) for i in day.incidents] == [
        ("outage", at(10, 0), at(10, 30)),
        ("latency", at(14, 0), at(15, 0)),
        ("error_burst", at(16, 30), at(16, 50)),
    ]
    assert all(i.description for i in day.incidents)
    assert day.incidents == default_incidents(DAY)


def test_reported_line_counts_match_the_files(day):
    assert set(day.files) == {"platform", "upload", "erp_sync", "syslog"}
    for key, path in day.files.items():
        assert path.read_bytes().count(b"\n") == day.lines[key], key
    assert day.lines["platform"] == day.invoices
    assert 3000 < day.invoices < 8000


@pytest.mark.parametrize("name", ["outage", "latency", "error_burst"])
def test_every_window_of_an_incident_trips_its_rule(day, windows, name):
    inc = incident(day, name)
    starts = [s for s in windows if inside(s, inc)]
    assert len(starts) == (inc.end - inc.start) // FIVE_MIN
    for start in starts:
        assert fires(name, windows[start]), (start, windows[start])


@pytest.mark.parametrize("name", ["outage", "latency", "error_burst"])
def test_no_window_outside_the_incidents_trips_any_rule(day, windows, name):
    quiet = [s for s in windows if outside_all(s, day.incidents)]
    assert len(quiet) > 200  # the whole day is covered, nights included
    for start in quiet:
        assert not fires(name, windows[start]), (start, windows[start])
        assert windows[start]["top_error_code_count"] < 5, (start, windows[start])


def test_failure_rate_stays_low_outside_incidents(day, windows):
    quiet = [windows[s] for s in windows if outside_all(s, day.incidents)]
    busy = [w for w in quiet if w["count"] >= 20]
    assert len(busy) > 80
    assert max(w["failure_rate"] for w in busy) <= 0.15
    failed = sum(w["failure_rate"] * w["count"] for w in quiet)
    assert 0.003 < failed / sum(w["count"] for w in quiet) < 0.03  # about 1 %


def test_normal_latency_is_a_few_hundred_ms(day):
    records, _ = read_upload(day.files["upload"])
    costs = [r["cost"] for r in records if r["cost"] is not None
             and not any(i.start <= r["ts"] < i.end for i in day.incidents)]
    assert 180 < statistics.median(costs) < 320
    assert statistics.quantiles(costs, n=20)[18] < 1000


def test_outage_uploads_time_out_without_cost_and_are_retried(day):
    records, _ = read_upload(day.files["upload"])
    during = [r for r in records if at(10, 0) <= r["ts"] < at(10, 30)]
    assert {(r["result"], r["cost"], r["code"]) for r in during} == {("超时", None, "NET_TIMEOUT")}
    assert any(r["retry"] > 0 for r in during)
    per_invoice = Counter(r["fphm"] for r in during)
    assert max(per_invoice.values()) <= 2  # volume stays within a small multiple


def test_erp_sync_stops_during_outage_and_every_invoice_syncs_by_evening(day):
    synced_at, quiet = {}, 0
    for line in day.files["erp_sync"].read_text(encoding="gbk").splitlines():
        ts = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=TZ)
        if at(10, 5) <= ts < at(10, 30):
            quiet += 1
        if "结果=成功" in line:
            synced_at[re.search(r"发票号码=(\d{20})", line).group(1)] = ts
    assert quiet == 0
    issued = {}
    for line in day.files["platform"].read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        issued[rec["fphm"]] = datetime.fromisoformat(rec["time"])
    assert set(synced_at) == set(issued)
    backlog = [n for n, t in issued.items() if at(10, 0) <= t < at(10, 30)]
    assert len(backlog) > 100
    assert all(at(10, 30) <= synced_at[n] < at(10, 50) for n in backlog)


def test_erp_sync_log_is_gbk_encoded(day):
    raw = day.files["erp_sync"].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("gbk")
    assert "同步" in text and "发票号码=" in text
    pattern = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|ERROR) 同步 发票号码=\d{20} "
                         r"金额=\d+\.\d\d 结果=(成功|失败) 耗时=\d+ms( 错误码=E\d{3})?$")
    lines = text.splitlines()
    assert all(pattern.match(line) for line in lines)
    assert any("错误码=" in line and line[20:25] == "ERROR" for line in lines)


def test_amounts_agree_across_the_three_stages(day):
    issued = {}
    for line in day.files["platform"].read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        issued[rec["fphm"]] = rec["amount"]
        assert re.fullmatch(r"\d{20}", rec["fphm"]) and len(rec["nsrsbh"]) == 18
        assert rec["kprq"] == "2026-11-02" and rec["time"].endswith("+08:00")
    records, _ = read_upload(day.files["upload"])
    assert all(issued[r["fphm"]] == r["amount"] for r in records)
    for line in day.files["erp_sync"].read_text(encoding="gbk").splitlines():
        no, amount = re.search(r"发票号码=(\d+) 金额=([\d.]+)", line).groups()
        assert issued[no] == amount


def test_each_file_is_in_time_order(day):
    def stamps(key, encoding, parse):
        text = day.files[key].read_bytes().decode(encoding, errors="replace")
        return [parse(line) for line in text.splitlines()]

    platform = stamps("platform", "utf-8", lambda s: json.loads(s)["time"])
    erp = stamps("erp_sync", "gbk", lambda s: s[:19])
    syslog = stamps("syslog", "utf-8", lambda s: s[:15])  # one day: "Nov  2 HH:MM:SS" sorts
    records, _ = read_upload(day.files["upload"])
    upload = [r["ts"] for r in records]
    for seq in (platform, erp, syslog, upload):
        assert seq == sorted(seq)


def test_garbled_upload_lines_are_counted(day):
    records, bad = read_upload(day.files["upload"])
    assert bad == day.garbled >= 3
    assert len(records) + bad == day.lines["upload"]
    raw = day.files["upload"].read_bytes().splitlines()
    assert any(not line.startswith(b"{") for line in raw)  # plain text or junk
    assert any(line.startswith(b"{") and not line.endswith(b"}") for line in raw)  # truncated


def test_syslog_shows_platform_unreachable_only_during_the_outage(day):
    lines = day.files["syslog"].read_text(encoding="utf-8").splitlines()
    rfc3164 = re.compile(r"^Nov  2 \d\d:\d\d:\d\d fp-host [\w-]+\[\d+\]: .+$")
    assert all(rfc3164.match(line) for line in lines)
    alarms = [datetime.strptime("2026 " + line[:15], "%Y %b %d %H:%M:%S").replace(tzinfo=TZ)
              for line in lines if "timed out" in line or "Connection refused" in line]
    assert all(at(10, 0) <= t < at(10, 30) for t in alarms)
    assert len(alarms) > 200  # every few seconds for half an hour
    assert max(b - a for a, b in pairwise(alarms)) < timedelta(seconds=10)
    routine = [line for line in lines if line[7:9] in ("03", "21")]  # quiet hours
    assert 2 <= len(routine) / 2 <= 12  # a few per hour


def test_traffic_follows_office_hours(day):
    per_hour = Counter()
    for line in day.files["platform"].read_text(encoding="utf-8").splitlines():
        per_hour[int(json.loads(line)["time"][11:13])] += 1
    night = sum(per_hour[h] for h in (0, 1, 2, 3, 4, 5)) / 360
    morning = sum(per_hour[h] for h in (9, 10, 11)) / 180
    assert 0.05 < night < 0.5
    assert 6 <= morning <= 10
    assert per_hour[12] < 0.7 * per_hour[10]  # lunch dip


def test_healthy_day_has_no_incident_traces(tmp_path):
    sim = simulate(tmp_path, incidents=False)
    assert sim.incidents == []
    records, _ = read_upload(sim.files["upload"])
    stats = window_stats(records)
    assert not any(fires(n, w) for w in stats.values() for n in ("outage", "latency", "burst"))
    assert "timed out" not in sim.files["syslog"].read_text(encoding="utf-8")


def test_custom_incident_times_move_the_outage(tmp_path):
    moved = Incident("outage", at(11, 0), at(11, 20), "moved")
    sim = simulate(tmp_path, incidents=[moved])
    assert sim.incidents == [moved]
    stats = window_stats(read_upload(sim.files["upload"])[0])
    fired = sorted(s for s, w in stats.items() if fires("outage", w))
    assert fired == [at(11, 0), at(11, 5), at(11, 10), at(11, 15)]


def test_unknown_incident_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="disk_full"):
        simulate(tmp_path, incidents=[Incident("disk_full", at(9, 0), at(9, 5), "")])


def test_rate_scale_scales_traffic(tmp_path, day):
    sim = simulate(tmp_path, rate_scale=0.5)
    assert 0.4 < sim.invoices / day.invoices < 0.6


def test_bulk_upload_log_has_exact_lines_and_visible_incidents(tmp_path):
    path = tmp_path / "big.log"
    assert write_upload_lines(path, 160_000, seed=3) == 160_000
    records, bad = read_upload(path)
    assert bad == 2 and len(records) == 159_998
    assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)
    assert len({r["fphm"] for r in records}) == len(records)
    stats = window_stats(records)
    assert any(fires("outage", w) for w in stats.values())
    assert any(fires("latency", w) for w in stats.values())
    assert any(fires("burst", w) for w in stats.values())
    noisy = sum(fires("outage", w) or fires("latency", w) for w in stats.values())
    assert noisy < 0.05 * len(stats)


def test_bulk_upload_log_is_deterministic(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    write_upload_lines(a, 30_000, seed=5)
    write_upload_lines(b, 30_000, seed=5)
    assert a.read_bytes() == b.read_bytes()


def test_make_log_cli_writes_the_requested_lines(tmp_path, capsys):
    script = Path(__file__).parents[1] / "bench" / "make_log.py"
    spec = importlib.util.spec_from_file_location("make_log", script)
    make_log = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_log)
    out = tmp_path / "upload.log"
    assert make_log.main([str(out), "--lines", "1000", "--seed", "1"]) == 0
    assert out.read_bytes().count(b"\n") == 1000
    assert "wrote 1000 lines" in capsys.readouterr().err
