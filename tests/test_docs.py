"""The shipped docs, rules and unit name only commands and files that exist."""

from __future__ import annotations

import re
from pathlib import Path

from agent.cli import build_parser

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
        *sorted((REPO / "rules").glob("*.yaml")),
        *sorted(p for p in (REPO / "config").rglob("*") if p.is_file())]


def commands() -> set[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_invoice_agent_command_the_docs_name_exists():
    known = commands()
    for doc in DOCS:
        for word in re.findall(r"invoice-agent ([a-z][a-z-]+)", doc.read_text(encoding="utf-8")):
            assert word in known, f"{doc.name} names {word!r}, not a command"


def test_every_repository_file_the_docs_cite_exists():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for path in re.findall(r"`((?:bench|tests|agent|rules|config|docs|models)/[\w./-]+)`",
                               text):
            assert (REPO / path).exists(), f"{doc.name} cites {path}, which is not there"


def test_the_unit_documents_nothing_that_is_never_installed():
    unit = (REPO / "config" / "invoice-agent.service").read_text(encoding="utf-8")
    for uri in re.findall(r"^Documentation=(.*)$", unit, re.M):
        assert uri.startswith(("http://", "https://")), uri
