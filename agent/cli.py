"""The `invoice-agent` command line. Exit codes: 0 ok, 1 findings or failed checks, 2 usage or
config error."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from agent import DEFAULT_CONFIG, __version__

if TYPE_CHECKING:
    from agent.yamlfile import FileProblems

# Each command imports what it needs inside its function: `--help` and the quick commands
# (`check`, `status`) do not pay for numpy, scikit-learn, Apprise or Jinja2 they never use.

EXIT_OK, EXIT_FINDINGS, EXIT_CONFIG = 0, 1, 2


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                   help=f"agent config file (default {DEFAULT_CONFIG})")


def _print_problems(exc: FileProblems) -> None:
    print(f"invoice-agent: {len(exc.problems)} problem(s) in the configuration:", file=sys.stderr)
    for p in exc.problems:
        print(f"  {p}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    from agent.wiring import load_all, model_problems, warnings
    from agent.yamlfile import FileProblems

    # the same loading as `run`: rules, parsers, notify targets and ${ENV} secrets; the
    # model's file is checked against the config from its metadata only
    try:
        loaded, rules = load_all(args.config, model=False)
    except FileProblems as exc:
        _print_problems(exc)
        return EXIT_FINDINGS  # a failed check (a config `run` would refuse)
    print(f"ok: {args.config}: {len(loaded.config.sources)} source(s), {len(rules)} rule(s)")
    for r in rules:
        print(f"  rule {r.name} ({r.config.type}, {r.severity})")
    if loaded.config.model is not None:
        print(f"  model {loaded.resolve(loaded.config.model.path)}")
    for w in warnings(loaded, rules) + model_problems(loaded):
        print(f"warning: {w}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from agent.daemon import Daemon
    from agent.pipeline import tune_gc
    from agent.store.guard import StateLocked, StateUnwritable

    tune_gc()
    try:
        daemon = Daemon(args.config, signals=True)
    except StateLocked as exc:
        print(f"invoice-agent run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StateUnwritable as exc:  # full or read-only: systemd tries again later
        print(f"invoice-agent run: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    return daemon.run()


def show_notices(result: Any, language: str, fmt: str, timezone: str) -> None:
    """The messages a replay's alerts make (grouped, muted ones named), as `run` sends them."""
    from zoneinfo import ZoneInfo

    from agent.notify.console import print_notice
    from agent.routing.router import digest

    for n in result.notices:
        if fmt == "jsonl":
            print(json.dumps(digest(n), ensure_ascii=False))
        else:
            print_notice(n, language, sys.stdout, ZoneInfo(timezone))
    for m in result.muted if fmt == "text" else ():
        print(f"not sent: {m.ts.isoformat()} {m.rule} {m.state} ({m.why} by {m.by})")


def cmd_replay(args: argparse.Namespace) -> int:
    from agent.alerts import REPEAT
    from agent.notify.console import print_transition
    from agent.notify.render import jsonl_record
    from agent.pipeline import tune_gc
    from agent.replay import (
        NoSourceForFile,
        UnreadableFile,
        configured_files,
        match_files,
        progress_bar,
        replay,
    )
    from agent.wiring import load_all

    loaded, rules = load_all(args.config, notify=False, batch=True, model_path=args.model)
    language = args.language or loaded.config.notify.language
    try:
        pairs = (match_files(loaded, args.files, args.source) if args.files
                 else configured_files(loaded))
    except NoSourceForFile as exc:
        print(f"invoice-agent replay: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for _, path in pairs:
        if not Path(path).is_file():
            print(f"invoice-agent replay: {path}: no such file", file=sys.stderr)
            return EXIT_CONFIG

    bar = progress_bar([p for _, p in pairs], "replay", args.quiet)
    # transitions on the terminal the bar is drawn on are printed with the bar set aside
    aside = bar.aside if bar is not None and sys.stdout.isatty() else None

    def write(tr: Any) -> None:
        if args.format == "jsonl":
            print(json.dumps(jsonl_record(tr, language), ensure_ascii=False), flush=False)
        else:
            print_transition(tr, language, sys.stdout)

    def show(tr: Any) -> None:
        if tr.reason == REPEAT or args.notifications:
            return  # a reminder, not a transition; or the messages are shown instead
        if aside is not None:
            with aside():
                write(tr)
        else:
            write(tr)

    tune_gc(freeze=True)
    try:
        result = replay(loaded, rules, pairs, show, progress=bar)
    except UnreadableFile as exc:
        print(f"invoice-agent replay: cannot read {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        if bar is not None:
            bar.close()
    if args.notifications:
        show_notices(result, language, args.format, loaded.config.timezone)
    sys.stdout.flush()
    rate = result.lines / result.seconds if result.seconds else 0.0
    print(f"replayed {len(pairs)} file(s): lines {result.lines} unparsed {result.unparsed} "
          f"late {result.late} windows {result.windows} alerts {result.fired} "
          f"in {result.seconds:.2f}s "
          f"({rate:,.0f} lines/s)", file=sys.stderr)
    if result.ledger is not None:
        print(result.ledger.line(), file=sys.stderr)
    for name, codec in sorted(result.encoding_hints.items()):
        declared = next(s.encoding for s in loaded.config.sources if s.name == name)
        print(f"source {name}: most lines do not decode as {declared}; they decode as "
              f"{codec} (set `encoding: {codec}` for this source)", file=sys.stderr)
    return EXIT_FINDINGS if result.fired else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    return run_demo(Path(args.dir) if args.dir else None, args.language, seed=args.seed)


@contextmanager
def _sqlite_utils_without_numpy() -> Iterator[None]:
    """sqlite-utils imports numpy, when it is installed, only to add numpy's scalar types to
    the column types it infers for new tables; the agent's tables are created with Python
    types, and `status` only reads them, so it imports sqlite-utils without paying for
    numpy. Nothing changes when either is already imported."""
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        yield
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # "import numpy" fails
    try:
        yield
    finally:
        if sys.modules.get("numpy", ...) is None:
            del sys.modules["numpy"]


def cmd_status(args: argparse.Namespace) -> int:
    with _sqlite_utils_without_numpy():
        from agent.status import collect, format_status

    data = collect(args.config)
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print(format_status(data))
    return EXIT_OK


def cmd_notify_test(args: argparse.Namespace) -> int:
    from agent.wiring import build_sender, load_all

    loaded, _ = load_all(args.config)  # a sender that cannot be built is a config problem
    sender = build_sender(loaded)
    if not sender.has_targets:
        print("no notification target configured: alerts are printed to the console")
        return EXIT_OK
    failed = 0
    for target, d in sender.test_all(loaded.config.notify.language):
        print(f"{'ok    ' if d.ok else 'FAILED'} {target}: {d.detail}")
        failed += not d.ok
    return EXIT_FINDINGS if failed else EXIT_OK


class JournalFormatter(logging.Formatter):
    """Under systemd, journald stamps each line itself and reads a `<N>` syslog priority
    prefix, so `journalctl -p warning` shows warnings and worse."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        prio = self.PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="invoice-agent",
        description="Watch an e-invoice upload/sync system through its logs and alert the "
                    "on-call sysadmin when invoices stop flowing, slow down or fail.")
    parser.add_argument("--version", action="version", version=f"invoice-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    # -v also after the command (`invoice-agent run -v`); SUPPRESS keeps the one given first
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "run", parents=[common], help="run the daemon (systemd: Type=notify)",
                       description="Tail the configured logs and alert until SIGTERM. SIGHUP "
                                   "reloads config and rules.")
    _config_arg(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "replay", parents=[common], help="run the rules over log files, as fast as possible",
                       description="Replay files from their start in event time; print alert "
                                   "transitions. Exit 1 when alerts fired. Uses no stored state.")
    _config_arg(p)
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="log files (matched to sources by the configured globs); default: "
                        "every configured source")
    p.add_argument("--source", metavar="NAME",
                   help="read every FILE as this source (e.g. a rotated upload.log.1)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text",
                   help="jsonl: one JSON object per alert transition on stdout")
    p.add_argument("--language", choices=["zh", "en"], help="summary language (default: config)")
    p.add_argument("--model", metavar="PATH",
                   help="score with this model file instead of the config's model.path")
    p.add_argument("--notifications", action="store_true",
                   help="print the messages the alerts make (grouped, after inhibitions, "
                        "silences and maintenance windows) instead of each transition")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line (shown only when stderr is a terminal)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "demo", parents=[common], help="simulate a day of invoice logs with incidents and watch it",
                       description="Generate a simulated day (platform, upload, ERP sync in GBK, "
                                   "syslog) with an outage, a latency degradation and an error "
                                   "burst, run the real pipeline over it and print the alerts.")
    p.add_argument("--dir", help="where to write the demo files (default: a temporary folder)")
    p.add_argument("--language", choices=["zh", "en"], default="zh",
                   help="language of the alerts and the summary (default zh)")
    p.add_argument("--seed", type=int, default=7, help="simulator seed")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "check", parents=[common], help="validate config and rules",
                       description="Exit 0 when config and rules are valid (warnings are "
                                   "printed), 1 otherwise, "
                                   "printing every problem with file, key and line.")
    _config_arg(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "status", parents=[common], help="sources, offsets, parse failures, alerts, outbox",
                       description="Read the agent's state: per source files, offsets, lines "
                                   "and unparsed lines; firing alerts; outbox depth.")
    _config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "notify", parents=[common], help="notification tools",
                       description="Notification tools.")
    nsub = p.add_subparsers(dest="notify_command", metavar="ACTION", required=True)
    t = nsub.add_parser(
        "test", parents=[common], help="send a test alert to every target",
                        description="Send a test message to each configured target and report "
                                    "each result; exit 1 if any failed.")
    _config_arg(t)
    t.set_defaults(func=cmd_notify_test)

    from agent.invoices import add_commands  # invoices, reconcile: the invoice ledger
    from agent.rulestest import add_commands as add_rules_commands  # rules check, rules test
    from agent.silences_cli import add_commands as add_silence_commands  # silence ...
    from agent.training.commands import add_commands as add_model_commands  # train, evaluate

    add_commands(sub, common, _config_arg)
    add_model_commands(sub, common, _config_arg)
    add_rules_commands(sub, common, _config_arg)
    add_silence_commands(sub, common, _config_arg)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    from agent.yamlfile import FileProblems

    # Apprise's own log lines (which can quote tokens) are owned by agent.notify.sender: what
    # a delivery did reaches this log through the sender's scrubbed details
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except FileProblems as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `invoice-agent replay ... | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
