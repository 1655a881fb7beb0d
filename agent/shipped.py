"""Where the shipped rule files and example configs are, installed or in a checkout."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_dir(kind: str) -> Path:
    """The folder of shipped `rules` or `config` files."""
    try:
        path = Path(str(resources.files(f"agent.shipped_{kind}")))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / kind  # a source checkout
