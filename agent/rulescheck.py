"""`invoice-agent rules check [FILE...] [-c CONFIG]`: rule files checked before they go live.

The files (default: the config's `rules:`) are loaded as the agent loads them, against the
config's sources, window, ledger and timezone; every problem is printed as
`file:line: key: message`, or, when there is none, the rules loaded. Without a config at the
default path the shipped demo config stands in (and the command says so). Exit 0 ok, 1
problems, 2 usage error (a file that is not there, a config that cannot be loaded).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path
from typing import TextIO

from agent.config import LoadedConfig, load_config
from agent.detect.base import Detector
from agent.detect.loader import load_rules, rule_files
from agent.rulesinput import shipped_config
from agent.yamlfile import FileProblems

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
TEST_SUFFIX = ".test.yaml"  # rule test files live beside the rules; they are not rules


def cmd_check(args: argparse.Namespace) -> int:
    from agent import DEFAULT_CONFIG

    return check(args.config, args.files, default_config=args.config == DEFAULT_CONFIG)


def check(config: str, files: list[str], default_config: bool = False,
          out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Check `files` (or the config's rule files) against `config`; print what was found."""
    out, err = out or sys.stdout, err or sys.stderr
    me = "invoice-agent rules check"
    missing = [f for f in files if not Path(f).is_file()]
    for f in missing:
        print(f"{me}: {f}: no such file", file=err)
    if missing:
        return EXIT_USAGE
    loaded = _config(config, default_config, err)
    if loaded is None:
        return EXIT_USAGE
    if files:
        for f in files:
            if f.endswith(TEST_SUFFIX):
                print(f"{me}: {f}: skipped, a rule test file (invoice-agent rules test)",
                      file=err)
        globs = [glob.escape(f) for f in files if not f.endswith(TEST_SUFFIX)]
        if not globs:
            print(f"{me}: no rule file to check", file=err)
            return EXIT_USAGE
    else:
        globs = loaded.rule_globs()
    checked = rule_files(globs)
    c = loaded.config
    try:
        rules = load_rules(globs, [s.name for s in c.sources], c.window, ledger=c.ledger,
                           timezone=c.timezone)
    except FileProblems as exc:
        print(f"{len(exc.problems)} problem(s) in {len(checked)} rule file(s):", file=err)
        for p in exc.problems:
            print(f"  {p}", file=err)
        return EXIT_PROBLEMS
    print(f"ok: {len(rules)} rule(s) in {len(checked)} file(s), against the sources of "
          f"{loaded.path}", file=out)
    for f in checked:
        print(f"  file {f}", file=out)
    for row in _table(rules):
        print(f"  {row}", file=out)
    return EXIT_OK


def _config(path: str, default: bool, err: TextIO) -> LoadedConfig | None:
    """The config the rules are checked against; None (after saying why) when unusable."""
    me = "invoice-agent rules check"
    if not Path(path).is_file():
        if not default:
            print(f"{me}: config {path}: no such file", file=err)
            return None
        loaded = shipped_config()
        print(f"{me}: no config at {path}: checking against the shipped demo config "
              f"{loaded.path} (its sources: "
              f"{', '.join(s.name for s in loaded.config.sources)})", file=err)
        return loaded
    try:
        return load_config(path)
    except FileProblems as exc:
        print(f"{me}: the config cannot be loaded, {len(exc.problems)} problem(s):", file=err)
        for p in exc.problems:
            print(f"  {p}", file=err)
        return None


def _table(rules: list[Detector]) -> list[str]:
    """Name, type, severity and source of each rule, in columns."""
    rows = [("NAME", "TYPE", "SEVERITY", "SOURCE")]
    for r in rules:
        source = ", ".join(r.config.source_names()) or ("ledger" if r.kind == "ledger" else "-")
        rows.append((r.name, r.config.type, r.severity, source))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip()
            for a, b, c, d in rows]
