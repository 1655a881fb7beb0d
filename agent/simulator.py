"""A seeded simulator of one business day of an e-invoice (fapiao) system's logs.

Every invoice flows issued (platform.log) -> uploaded (upload.log, possibly retried) -> synced
into the ERP (erp_sync.log, GBK), while the host's syslog carries routine and incident lines.
Incidents (platform outage, slow platform, error-code burst) are injected at known times and
returned as data, so the demo, the tests and the benchmarks can check what the agent reports;
so are invoice faults (agent/simfaults.py: invoices missing, late or wrong in the ERP), when
asked for. The same seed always produces the same bytes.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np

from agent.ledger.numbers import uscc_check_char
from agent.simfaults import FaultPlan, InvoiceFault, default_faults

TZ = timezone(timedelta(hours=8))
PLATFORM_ADDR = "10.1.2.3:443"
HOST = "fp-host"
SYNC_PID = 1234
INCIDENT_NAMES = ("outage", "latency", "error_burst")

# The one upload-line writer, shared by simulate() and write_upload_lines(): `UPLOAD_LINE % (time,
# fphm, amount, result, cost, code, retry)` with cost/code already JSON ("null", 240, '"1001"').
# It renders what json.dumps(..., ensure_ascii=False) would, several times faster.
UPLOAD_LINE = (
    '{"time": "%s", "action": "upload", "fphm": "%s", "amount": "%s", "result": "%s", '
    '"cost": %s, "code": %s, "retry": %s}'
)
_FAIL_CODES = ("1001", "1002", "2001", "2103", "3004", "9999")  # rare, assorted, when healthy
_SYNC_CODES = ("E201", "E305", "E410")
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_Next = tuple[float, str | None] | None  # (when, parked-by) of an invoice's next upload try
_HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


@dataclass(frozen=True)
class Incident:
    """An injected fault: `name` is one of INCIDENT_NAMES, active on [start, end)."""

    name: str
    start: datetime
    end: datetime
    description: str


@dataclass(frozen=True)
class Simulation:
    """What simulate() wrote: file paths, incidents, lines per file, garbled lines, invoices."""

    files: dict[str, Path]  # "platform" | "upload" | "erp_sync" | "syslog" -> path
    incidents: list[Incident]
    lines: dict[str, int]  # lines written per file key (garbled ones included)
    garbled: int  # unparseable lines in upload.log
    invoices: int  # invoices issued
    faults: list[InvoiceFault] = field(default_factory=list)  # with their invoice numbers


def default_incidents(day: date = date(2026, 11, 2)) -> list[Incident]:
    """The three incidents of the default day, at 10:00, 14:00 and 16:30 (+08:00)."""

    def at(hh: int, mm: int) -> datetime:
        return datetime.combine(day, time(hh, mm), TZ)

    return [
        Incident("outage", at(10, 0), at(10, 30),
                 f"platform {PLATFORM_ADDR} unreachable: uploads time out (NET_TIMEOUT), ERP "
                 "sync stops, the backlog is uploaded and synced afterwards"),
        Incident("latency", at(14, 0), at(15, 0),
                 "platform responds slowly: upload cost 3000-9000 ms, uploads still succeed"),
        Incident("error_burst", at(16, 30), at(16, 50),
                 "about half the upload attempts rejected with code 1001, retries exhausted; "
                 "rejected invoices are resubmitted afterwards"),
    ]


def _rate_per_min(minute: np.ndarray) -> np.ndarray:
    """Invoices issued per minute of the day: office hours, a lunch dip, quiet nights."""
    h = minute / 60.0
    ramp_in = np.clip((h - 7.5) / 1.0, 0, 1)  # 07:30 -> 08:30
    ramp_out = np.clip((20.0 - h) / 2.0, 0, 1)  # 18:00 -> 20:00
    office = 8.0 + 1.5 * np.sin((h - 8.5) * np.pi / 4.75)  # 6.5-9.5 through the day
    lunch = 1.0 - 0.6 * np.exp(-(((h - 12.75) / 0.55) ** 2))
    return 0.2 + office * ramp_in * ramp_out * lunch


class _Clock:
    """Formats seconds since the simulated day's midnight in each file's timestamp style."""

    def __init__(self, day: date) -> None:
        self.day = day
        self._days: dict[int, date] = {}

    def _split(self, s: float) -> tuple[date, str]:
        d, sod = divmod(int(s), 86400)
        if d not in self._days:
            self._days[d] = self.day + timedelta(days=d)
        return self._days[d], _HMS[sod]

    def plain(self, s: float) -> str:  # 2026-11-02 09:00:03
        d, hms = self._split(s)
        return f"{d.isoformat()} {hms}"

    def iso(self, s: float) -> str:  # 2026-11-02T09:00:01+08:00
        d, hms = self._split(s)
        return f"{d.isoformat()}T{hms}+08:00"

    def syslog(self, s: float) -> str:  # Nov  2 09:00:01
        d, hms = self._split(s)
        return f"{_MONTHS[d.month - 1]} {d.day:2d} {hms}"


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class _Day:
    """The simulation state of one day; run() fills the per-file (time, line) lists."""

    def __init__(self, day: date, rng: np.random.Generator, incidents: list[Incident],
                 plan: FaultPlan) -> None:
        self.rng, self.clock, self.plan = rng, _Clock(day), plan
        midnight = datetime.combine(day, time(0), TZ)
        self.spans = [(i.name, (i.start - midnight).total_seconds(),
                       (i.end - midnight).total_seconds()) for i in incidents]
        self.drained = {name: 0 for name, _, _ in self.spans}  # backlog drain counters
        self.platform: list[tuple[float, str]] = []
        self.upload: list[tuple[float, str]] = []
        self.erp: list[tuple[float, str]] = []
        self.syslog: list[tuple[float, str]] = []

    def incident_at(self, s: float) -> tuple[str, float] | None:
        for name, start, end in self.spans:
            if start <= s < end:
                return name, end
        return None

    def issue(self, rate_scale: float) -> list[tuple[float, str, int, str]]:
        """Issue times, invoice numbers, amounts and taxpayer ids for the whole day."""
        rng = self.rng
        counts = rng.poisson(_rate_per_min(np.arange(1440)) * rate_scale)
        minutes = np.repeat(np.arange(1440) * 60.0, counts)
        times = np.sort(minutes + rng.uniform(0, 60, counts.sum()))
        n = len(times)
        cents = np.clip(rng.lognormal(np.log(150000), 1.1, n), 100, 99_999_999).astype(np.int64)
        # unified social credit codes with a valid check character (the tenth draw is unused:
        # drawing ten keeps the day's random stream as it was)
        pool = ["91440300" + "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRTUWXY"), 10)[:9])
                for _ in range(3)]
        pool = [tid + uscc_check_char(tid) for tid in pool]
        who = rng.choice(3, n, p=[0.7, 0.2, 0.1])
        prefix = f"{self.clock.day.year % 100:02d}44{int(rng.integers(10**7, 10**8))}"
        first = int(rng.integers(10**7, 5 * 10**7))
        return [(float(t), f"{prefix}{first + i:08d}", int(c), pool[w])
                for i, (t, c, w) in enumerate(zip(times.tolist(), cents.tolist(), who.tolist(),
                                                  strict=True))]

    def run(self, rate_scale: float) -> int:
        """Simulate issue, upload (with retries and backlogs) and sync of every invoice."""
        rng, clock = self.rng, self.clock
        invoices = self.issue(rate_scale)
        self.faults = self.plan.assign([t for t, *_ in invoices], [i[1] for i in invoices])
        kprq = clock.day.isoformat()
        heap: list[tuple[float, int, int, int]] = []  # (attempt time, seq, invoice, retry)
        for k, (t, no, cents, tax) in enumerate(invoices):
            self.platform.append((t, (
                f'{{"time": "{clock.iso(t)}", "action": "issue", "fphm": "{no}", '
                f'"amount": "{_amount(cents)}", "kprq": "{kprq}", "nsrsbh": "{tax}", '
                '"result": "成功"}')))
            heap.append((t + rng.uniform(1.5, 8.0), k, k, 0))
        heapq.heapify(heap)
        seq = len(heap)
        while heap:
            t, _, k, retry = heapq.heappop(heap)
            _, no, cents, _ = invoices[k]
            result, cost, code, again = self.attempt(t, retry)
            self.upload.append((t, UPLOAD_LINE % (
                clock.plain(t), no, _amount(cents), result,
                "null" if cost is None else cost, "null" if code is None else f'"{code}"', retry)))
            if again is not None:
                when, parked = again
                seq += 1
                heapq.heappush(heap, (when, seq, k, 0 if parked else retry + 1))
                if parked == "error_burst":
                    self.log(t + 0.5, f"upload of invoice {no} rejected: code 1001, "
                             "retries exhausted, queued for resubmission")
            elif result == "成功" and cost is not None:
                when = t + cost / 1000 + rng.lognormal(np.log(15), 0.6)
                fault = self.plan.hit.get(k)
                self.sync(self.plan.sync_time(k, invoices[k][0], when), no, cents, fault)
        return len(invoices)

    def attempt(self, t: float, retry: int) -> tuple[str, int | None, str | None, _Next]:
        """One upload attempt at `t`: result, cost ms, code, and the next try if any.

        The next try is (time, parked): parked names the incident whose backlog the invoice
        joins when its retries are exhausted ("" for a healthy-time give-up, None for a retry).
        """
        rng = self.rng
        inc = self.incident_at(t)
        name = inc[0] if inc else None
        if name == "outage" or (name is None and rng.random() < 0.002):
            again = (t + rng.uniform(60, 120), None) if retry < 1 else self.backlog(inc, t)
            return "超时", None, "NET_TIMEOUT", again
        if name == "error_burst" and rng.random() < 0.5:
            again = (t + rng.uniform(2, 6), None) if retry < 2 else self.backlog(inc, t)
            return "失败", int(rng.lognormal(np.log(150), 0.4)), "1001", again
        if name == "latency":
            cost = int(np.clip(rng.lognormal(np.log(4500), 0.3), 3000, 9000))
        else:
            cost = int(np.clip(rng.lognormal(np.log(240), 0.45), 25, 2500))
        if name is None and rng.random() < 0.01:
            again = (t + rng.uniform(5, 15), None) if retry < 2 else self.backlog(None, t)
            return "失败", cost, str(rng.choice(_FAIL_CODES)), again
        return "成功", cost, None, None

    def backlog(self, inc: tuple[str, float] | None, t: float) -> tuple[float, str]:
        """When a parked invoice is resubmitted: drained in order after its incident ends."""
        if inc is None:
            return t + 600, ""
        name, end = inc
        self.drained[name] += 1
        return end + 20 + self.drained[name] * 1.5 + self.rng.uniform(0, 1), name

    def sync(self, t: float, no: str, cents: int, fault: str | None = None) -> None:
        """One ERP sync of an uploaded invoice, retried a minute later when it fails. A
        missing invoice's lines are drawn but never written: the rest of the day stays as it
        is without faults."""
        rng, clock = self.rng, self.clock
        ms = int(rng.lognormal(np.log(110), 0.4))
        amount = _amount(cents * 10 if fault == "mismatch" else cents)
        head = f"{clock.plain(t)} %s 同步 发票号码={no} 金额={amount}"
        out = self.erp if fault != "missing" else []
        if rng.random() < 0.005:
            code = str(rng.choice(_SYNC_CODES))
            out.append((t, head % "ERROR" + f" 结果=失败 耗时={ms}ms 错误码={code}"))
            self.sync(t + rng.uniform(50, 70), no, cents, fault)
        else:
            out.append((t, head % "INFO" + f" 结果=成功 耗时={ms}ms"))

    def log(self, t: float, message: str, ident: str = f"invoice-sync[{SYNC_PID}]") -> None:
        self.syslog.append((t, f"{self.clock.syslog(t)} {HOST} {ident}: {message}"))

    def host_log(self) -> None:
        """Routine syslog traffic plus the lines each incident makes the sync service write."""
        rng = self.rng
        for h in range(24):
            base = h * 3600.0
            self.log(base + 17 * 60, "(root) CMD (cd / && run-parts --report /etc/cron.hourly)",
                     f"CRON[{int(rng.integers(2000, 30000))}]")
            for m in (0, 15, 30, 45):
                self.log(base + m * 60 + 2, "sync heartbeat ok, worker alive")
            for m in (5, 35):
                self.log(base + m * 60 + 9, f"token refreshed for platform {PLATFORM_ADDR}")
        for name, start, end in self.spans:
            t = start + rng.uniform(0, 3)
            while t < end:
                if name == "outage":
                    self.log(t, f"connection to platform {PLATFORM_ADDR} timed out"
                             if rng.random() < 0.6 else
                             f"connect to platform {PLATFORM_ADDR} failed: Connection refused")
                    t += rng.uniform(3, 8)
                elif name == "latency":
                    slow = int(np.clip(rng.lognormal(np.log(4500), 0.3), 3000, 9000))
                    self.log(t, f"slow response from platform {PLATFORM_ADDR}: {slow} ms")
                    t += rng.uniform(90, 180)
                else:
                    break
            if name == "outage":
                self.log(end + 19, f"connection to platform {PLATFORM_ADDR} restored, "
                         f"resubmitting {self.drained[name]} queued invoices")


def _garble(rng: np.random.Generator, lines: list[bytes], n: int) -> None:
    """Insert n unparseable lines (plain text, binary junk, truncated JSON) at random spots."""
    spots = sorted(rng.choice(len(lines), n, replace=False).tolist(), reverse=True)
    for j, at in enumerate(spots):
        kind = j % 3
        if kind == 0:
            bad = b"upload worker restarted: Traceback (most recent call last):"
        elif kind == 1:
            junk = rng.integers(0, 256, int(rng.integers(12, 40)), dtype=np.uint8).tobytes()
            bad = junk.replace(b"\n", b"\x00").replace(b"\r", b"\x00")
        else:
            bad = lines[at][: len(lines[at]) // 2]
        lines.insert(at, bad)


def _encode_sorted(entries: list[tuple[float, str]], encoding: str) -> list[bytes]:
    entries.sort(key=lambda e: e[0])  # stable: same-instant lines keep their causal order
    return [text.encode(encoding) for _, text in entries]


def simulate(out_dir: Path, day: date = date(2026, 11, 2), seed: int = 7, *,
             incidents: bool | Iterable[Incident] = True, rate_scale: float = 1.0,
             faults: bool | Iterable[InvoiceFault] = False) -> Simulation:
    """Write one simulated day of logs into `out_dir` and describe what was written.

    `incidents`: True for default_incidents(day), False for a healthy day, or your own
    Incident list (names from INCIDENT_NAMES, any times). `rate_scale` multiplies traffic.
    `faults`: True for default_faults(day) (invoices missing, late, mismatched), or a list.
    """
    if incidents is True:
        chosen = default_incidents(day)
    elif incidents is False:
        chosen = []
    else:
        chosen = sorted(incidents, key=lambda i: i.start)
    for inc in chosen:
        if inc.name not in INCIDENT_NAMES or inc.end <= inc.start:
            raise ValueError(f"bad incident {inc.name!r}: name must be one of {INCIDENT_NAMES} "
                             "and end after start")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    wanted = default_faults(day) if faults is True else list(faults or [])
    sim = _Day(day, rng, chosen, FaultPlan(wanted, datetime.combine(day, time(0), TZ), seed))
    invoices = sim.run(rate_scale)
    sim.host_log()
    data = {
        "platform": ("platform.log", _encode_sorted(sim.platform, "utf-8")),
        "upload": ("upload.log", _encode_sorted(sim.upload, "utf-8")),
        "erp_sync": ("erp_sync.log", _encode_sorted(sim.erp, "gbk")),
        "syslog": ("syslog", _encode_sorted(sim.syslog, "utf-8")),
    }
    garbled = min(6, len(data["upload"][1]))
    _garble(rng, data["upload"][1], garbled)
    files, lines = {}, {}
    for key, (name, encoded) in data.items():
        files[key] = out_dir / name
        files[key].write_bytes(b"".join(line + b"\n" for line in encoded))
        lines[key] = len(encoded)
    return Simulation(files, chosen, lines, garbled, invoices, sim.faults)


def write_upload_lines(path: Path, lines: int, seed: int = 7,
                       start: datetime = datetime(2026, 11, 2, tzinfo=TZ)) -> int:
    """Write a steady upload log of exactly `lines` lines (about 5 a second) for benchmarks.

    Every 200,000 lines carry a 1,000-line outage (timeouts), a 1,000-line slow stretch, a
    500-line burst of code 1001 and two unparseable lines. Returns the lines written.
    """
    rng = np.random.default_rng(seed)
    day0 = start.date()
    sod0 = start.hour * 3600 + start.minute * 60 + start.second
    chunk = 200_000
    written, fphm = 0, int(rng.integers(10**15, 5 * 10**15))  # 16 digits
    offset = float(sod0)
    dates: dict[int, str] = {}
    with open(path, "wb") as f:
        while written < lines:
            n = min(chunk, lines - written)
            idx = np.arange(n)
            secs = (offset + np.cumsum(rng.exponential(0.2, n))).astype(np.int64)
            offset = float(secs[-1])
            outage = (idx >= 50_000) & (idx < 51_000)
            slow = (idx >= 100_000) & (idx < 101_000)
            burst = (idx >= 150_000) & (idx < 150_500)
            u = rng.random(n)
            res = np.where(u < 0.01, 1, np.where(u < 0.012, 2, 0))  # 0 ok, 1 failed, 2 timeout
            res[outage] = 2
            res[burst & (u < 0.5)] = 1
            cost = np.clip(rng.lognormal(np.log(240), 0.45, n), 25, 2500).astype(np.int64)
            cost[slow] = np.clip(rng.lognormal(np.log(4500), 0.3, slow.sum()), 3000, 9000)
            code = rng.integers(0, len(_FAIL_CODES), n)
            code[burst] = 0
            cents = np.clip(rng.lognormal(np.log(150000), 1.1, n), 100, 99_999_999)
            uniq, at = np.unique(secs, return_inverse=True)
            stamps = []
            for sec in uniq.tolist():
                d, sod = divmod(sec, 86400)
                if d not in dates:
                    dates[d] = (day0 + timedelta(days=d)).isoformat()
                stamps.append(f"{dates[d]} {_HMS[sod]}")
            words = ("成功", "失败", "超时")  # by res: 0 ok, 1 failed, 2 timeout
            codes = [f'"{c}"' for c in _FAIL_CODES]
            out = [
                UPLOAD_LINE % (
                    stamps[j], f"2644{fphm + i}", f"{c // 100}.{c % 100:02d}", words[r],
                    "null" if r == 2 else ms,
                    "null" if r == 0 else ('"NET_TIMEOUT"' if r == 2 else codes[k]), 0)
                for i, j, r, ms, k, c in zip(
                    idx.tolist(), at.tolist(), res.tolist(), cost.tolist(), code.tolist(),
                    cents.astype(np.int64).tolist(), strict=True)
            ]
            if n > 20_000:  # two unparseable lines per chunk
                out[7_777] = "upload worker restarted: Traceback (most recent call last):"
                out[17_777] = out[17_777][:40]
            fphm += n
            f.write(("\n".join(out) + "\n").encode("utf-8"))
            written += n
    return written
