"""Where the shipped rule files and example configs are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """The folder of shipped `rules`, `config` or `models` files.

    Installed, they are data inside the package (agent/shipped_rules, agent/shipped_config,
    agent/shipped_models); in a source checkout or an editable install, the top-level rules/,
    config/ and models/ folders.
    """
    installed = _PACKAGE / f"shipped_{kind}"
    return installed if installed.is_dir() else _PACKAGE.parent / kind
