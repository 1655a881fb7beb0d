"""A big RFC 3164 syslog file for benchmarks, its hand-written baseline parser, and the
fail2ban-regex filter for it.

    python bench/syslog_log.py OUT --lines 1000000 [--seed N]

The file is what the `system` source of config/agent.yaml reads: `Nov  2 09:00:01 host
prog[pid]: message`, a host's routine traffic (cron, sshd, systemd, the kernel, postfix,
chrony, the invoice services' own lines) with about 1% of lines that the shipped
rules/system.yaml matches (OOM kills, full disks, I/O errors, refused and timed-out
connections, TLS and DNS failures, invoice units exiting with an error). Timestamps increase
by about 10 lines a second and end a few minutes before now, in `zone`. The trouble comes in
incidents, as it does on a real host: every 20,000 lines one of them (a kind in turn) takes
up half of 400 lines, so the rules fire and resolve.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HOST = "fapiao-app01"
PLATFORM = "10.12.0.8:443"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# (weight, program, message template); {pid} {n} {up} {user} {ip} {port} filled per line
ROUTINE = (
    (20, "invoice-sync[4321]", "sync heartbeat ok, worker alive"),
    (10, "invoice-sync[4321]", "synced batch {n}: 50 invoices in {port} ms"),
    (6, "invoice-upload[4390]", f"token refreshed for platform {PLATFORM}"),
    (8, "CRON[{pid}]", "(root) CMD (cd / && run-parts --report /etc/cron.hourly)"),
    (8, "sshd[{pid}]", "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 "
                       "SHA256:p8YVGq3Rk1aXx0cS6w2bT5mNQvZ4L7hJ9uEd1oYfKsA"),
    (8, "sshd[{pid}]", "pam_unix(sshd:session): session opened for user {user}(uid=1001) by "
                       "(uid=0)"),
    (8, "systemd[1]", "Started Session {n} of User {user}."),
    (5, "systemd[1]", "Starting Daily apt download activities..."),
    (6, "kernel", "[{up}] e1000e: eth0 NIC Link is Up 1000 Mbps Full Duplex, Flow Control: "
                  "None"),
    (6, "postfix/smtpd[{pid}]", "connect from localhost[127.0.0.1]"),
    (5, "chronyd[811]", "Selected source 10.0.0.{n}"),
    (5, "dbus-daemon[702]", "[system] Successfully activated service "
                            "'org.freedesktop.nm_dispatcher'"),
    (3, "rsyslogd[640]", "imjournal: journal files changed, reloading...  [v8.2102.0]"),
)
TROUBLE = (  # (program, message), each matched by a rule of rules/system.yaml
    ("kernel", "[{up}] Out of memory: Killed process 4321 (invoice-sync) total-vm:2318840kB, "
               "anon-rss:1843220kB"),
    ("kernel", "[{up}] invoice-sync invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), "
               "order=0, oom_score_adj=0"),
    ("invoice-sync[4321]", "write /var/lib/invoice/spool/batch-{n}.json: No space left on device"),
    ("kernel", "[{up}] blk_update_request: I/O error, dev sdb, sector {n} op 0x1:(WRITE)"),
    ("invoice-upload[4390]", f"connection to platform {PLATFORM} timed out"),
    ("invoice-upload[4390]", f"connect to platform {PLATFORM} failed: Connection refused"),
    ("invoice-upload[4390]", "SSL: certificate verify failed: unable to get local issuer "
                             "certificate"),
    ("invoice-upload[4390]", "client certificate will expire in 6 days"),
    ("invoice-sync[4321]", "getaddrinfo(erp.example.cn): Temporary failure in name resolution"),
    ("systemd[1]", "invoice-sync.service: Main process exited, code=exited, status=1/FAILURE"),
    ("systemd[1]", "invoice-sync.service: Failed with result 'exit-code'."),
)
INCIDENT_EVERY, INCIDENT_LINES = 20_000, 400

# The baseline: what a careful hand-written parser does with each line. The year-less
# stamp gets the current year before strptime (as the agent's reader does), since "Feb 29"
# alone is not a date.
HEADER = re.compile(r"(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) "
                    r"(?P<program>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)")

# fail2ban-regex: one `%` per field (with `%%` it would match no date at all); the failregex
# finds the lines the shipped system rules are about
F2B_DATEPATTERN = "{^LN-BEG}%b %d %H:%M:%S"
F2B_FAILREGEX = (r"^\s*\S+ <F-ID>[\w/.-]+</F-ID>(?:\[\d+\])?: .*(?:Out of memory|"
                 r"invoked oom-killer|No space left on device|I/O error|Connection refused|"
                 r"timed out|certificate verify failed|certificate will expire|"
                 r"Temporary failure in name resolution|Main process exited, code=exited|"
                 r"Failed with result)")


def baseline(path: Path) -> int:
    """Lines read, each split by HEADER (`groupdict()`) and its date parsed by strptime."""
    year = f"{datetime.now().year} "
    strptime = datetime.strptime
    match = HEADER.match
    n = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = match(line)
            if m is not None:
                fields = m.groupdict()
                strptime(year + fields["ts"], "%Y %b %d %H:%M:%S")
            n += 1
    return n


def write_syslog(path: Path, lines: int, seed: int = 7, zone: str = "Asia/Shanghai",
                 rate: float = 10.0) -> int:
    """Write `lines` syslog lines about `rate` a second, the last a few minutes before now."""
    rng = random.Random(seed)
    tz = ZoneInfo(zone)
    end = datetime.now(tz) - timedelta(minutes=5)
    t = end.timestamp() - lines / rate
    routine = [(p, m) for w, p, m in ROUTINE for _ in range(w)]
    users = ("deploy", "ops", "finance")
    stamps: dict[int, str] = {}
    boot = t - 86400 * 3
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            t += rng.expovariate(rate)
            sec = int(t)
            stamp = stamps.get(sec)
            if stamp is None:
                d = datetime.fromtimestamp(sec, tz)
                stamp = f"{MONTHS[d.month - 1]} {d.day:2d} {d:%H:%M:%S}"
                stamps = {sec: stamp}
            if i % INCIDENT_EVERY < INCIDENT_LINES and rng.random() < 0.5:
                program, message = TROUBLE[i // INCIDENT_EVERY % len(TROUBLE)]
            else:
                program, message = rng.choice(routine)
            text = f"{program}: {message}"
            if "{" in text:
                text = text.format(pid=rng.randrange(2000, 60000), n=i % 1000 + 1,
                                   up=f"{t - boot:12.6f}", user=rng.choice(users),
                                   ip=f"10.0.3.{rng.randrange(2, 250)}",
                                   port=rng.randrange(1024, 65000))
            f.write(f"{stamp} {HOST} {text}\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="file to write (overwritten)")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    write_syslog(args.out, args.lines, args.seed)
    print(f"wrote {args.lines:,} lines, {args.out.stat().st_size / 1e6:.1f} MB to {args.out} in "
          f"{time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
