"""A quick start: `--help`, `status` and `check` import only what they use, seen in the
module list of the real command (`python -X importtime -m agent ...`). No timings: which
libraries load is what makes the difference, and it does not depend on the machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.daemon import Daemon
from tests.test_daemon import append, layout, upload_line

HEAVY = ("numpy", "sklearn", "scipy", "skops", "apprise", "jinja2")


def run(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `invoice-agent ARGS`; the process and the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "agent" in imported  # the importtime report was read
    return proc, imported


@pytest.mark.parametrize("args", [["--help"], ["replay", "--help"], ["train", "--help"],
                                  ["rules", "test", "--help"]])
def test_help_loads_no_numpy_sklearn_apprise_or_jinja2(args):
    proc, imported = run(*args)
    assert proc.returncode == 0, proc.stderr
    assert "usage: invoice-agent" in proc.stdout
    assert imported.isdisjoint(HEAVY), imported & set(HEAVY)
    assert "pydantic" not in imported and "sqlite_utils" not in imported


def test_status_reads_the_state_without_numpy_sklearn_or_apprise(tmp_path):
    config = layout(tmp_path)
    append(tmp_path / "logs" / "upload.log",
           "".join(upload_line("失败", "1001") for _ in range(4)))
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            daemon.step()
            cfg = daemon.loaded.config
            daemon.step(now=max(daemon.engine.watermarks.values()) + cfg.window + cfg.lateness)
        finally:
            daemon.shutdown()
    proc, imported = run("status", "-c", str(config), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # the state read in full, as before
    assert data["sources"]["upload"]["lines"] == 4
    assert [a["rule"] for a in data["firing"]] == ["upload_failed"]
    assert {"numpy", "sklearn", "apprise"}.isdisjoint(imported), imported


def test_check_loads_apprise_only_for_a_config_with_targets(tmp_path):
    console_only = layout(tmp_path)
    proc, imported = run("check", "-c", str(console_only))
    assert proc.returncode == 0, proc.stderr
    assert "apprise" not in imported and "sklearn" not in imported

    # targets are still checked as `run` loads them: a refused URL is named
    bad = layout(tmp_path, urls=["nosuchservice://example"])
    proc, imported = run("check", "-c", str(bad))
    assert proc.returncode == 1
    assert "notify.urls.0" in proc.stderr and "nosuchservice" in proc.stderr
    assert "apprise" in imported
