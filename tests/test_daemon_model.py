"""The daemon with the anomaly model: built from the config, a model replaced on disk taken
without a restart, a broken one refused while the agent keeps running on its rules."""

from __future__ import annotations

import logging
import os
import shutil

from agent.daemon import Daemon
from agent.demo import prepare


def test_the_daemon_scores_with_the_configured_model_and_takes_a_new_one_without_restart(
        tmp_path, caplog):
    config, _ = prepare(tmp_path)  # the demo: its config names ../models/demo.skops
    model = tmp_path / "models" / "demo.skops"
    caplog.set_level(logging.INFO)
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            assert daemon.model is not None and daemon.model.path.resolve() == model
            assert "model_anomaly" in {r.name for r in daemon.rules}
            # a retrained model lands beside it (here: the same files, written anew)
            for f in sorted(model.parent.glob("demo.*")):
                data = f.read_bytes()
                f.write_bytes(data)
                os.utime(f, (f.stat().st_atime + 10, f.stat().st_mtime + 10))
            daemon._tend_model()
            assert "reloaded" in caplog.text
            # a broken one is refused once; the model in use stays
            (model.with_suffix(".json")).write_text("{not json", encoding="utf-8")
            caplog.clear()
            daemon._tend_model()
            daemon._tend_model()
            assert caplog.text.count("new model refused") == 1
            assert daemon.model.model is not None
        finally:
            daemon.shutdown()


def test_a_model_that_cannot_be_read_leaves_the_agent_on_its_rules(tmp_path, caplog):
    config, _ = prepare(tmp_path)
    shutil.rmtree(tmp_path / "models")
    caplog.set_level(logging.WARNING)
    with open(tmp_path / "console.txt", "w", encoding="utf-8") as console:
        daemon = Daemon(config, out=console)
        try:
            assert daemon.model is None
            assert "upload_outage" in {r.name for r in daemon.rules}
            assert "model not used, running on the rules alone" in caplog.text
        finally:
            daemon.shutdown()
