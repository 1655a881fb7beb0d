"""The shipped demo model (models/demo.skops) is what the documented command builds, and
fits the demo config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from agent.config import load_config
from agent.model.files import arrays_path, check_fits, load_model, meta_path
from agent.training import demo_model
from agent.training.commands import spec_of

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "demo.skops"


def test_the_documented_command_rebuilds_the_shipped_model(tmp_path: Path, capsys):
    assert "python -m agent.training.demo_model models/demo.skops" in (
        REPO / "models" / "README.md").read_text(encoding="utf-8")
    out = tmp_path / "demo.skops"
    assert demo_model.build(out, workdir=tmp_path / "work") == 0
    assert "invoice-agent train -c" in capsys.readouterr().out
    old = json.loads(meta_path(SHIPPED).read_text(encoding="utf-8"))
    new = json.loads(meta_path(out).read_text(encoding="utf-8"))
    for key in ("feature_version", "feature_names", "sources", "ledger", "model_inputs",
                "window_seconds", "timezone", "training", "options", "constant"):
        assert new[key] == old[key], key
    for key in ("threshold", "forest_norm", "deviation_norm"):
        assert abs(new[key] - old[key]) <= 1e-3 * abs(old[key]), key
    for key in ("center", "spread", "low", "high"):
        assert np.allclose(new["profile"][key], old["profile"][key], rtol=1e-3, atol=1e-6), key
    shipped, rebuilt = load_model(SHIPPED), load_model(out)
    x = np.array(old["probe"]["inputs"])
    assert np.allclose(rebuilt.forest.score(x), shipped.forest.score(x), atol=1e-3)


def test_the_shipped_model_fits_the_demo_config_and_stays_small():
    loaded = load_config(REPO / "config" / "agent.yaml")
    model = load_model(SHIPPED)
    check_fits(model, spec_of(loaded), loaded.config.window.total_seconds(),
               loaded.config.timezone, SHIPPED)
    assert sum(f.stat().st_size for f in (SHIPPED, arrays_path(SHIPPED),
                                          meta_path(SHIPPED))) < 500_000
