"""sd_notify without a dependency: READY, WATCHDOG, RELOADING, STOPPING, STATUS.

A datagram to $NOTIFY_SOCKET (a leading '@' means the abstract namespace). Outside systemd
there is no socket and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd or the socket refused it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError:
        return False


def reloading() -> bool:
    # systemd >= 253 wants the monotonic time with RELOADING=1 (Type=notify-reload)
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd expects pings within, or None if there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1e6 / 2
    except ValueError:
        return None
