"""`invoice-agent train` and `invoice-agent evaluate`: the model's commands.

agent.cli adds them with `add_commands(sub, common)`. Nothing here imports scikit-learn at
module level: `--help` and `check` stay fast. Exit codes as everywhere: 0 ok, 1 findings or a
failed check (model alerts in `evaluate`, training refused), 2 usage or config error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from agent.detect.model import ModelDetector
    from agent.model.config import ModelConfig
    from agent.model.features import FeatureSpec
    from agent.types import Transition

DEFAULT_CONFIG = "/etc/invoice-agent/agent.yaml"
EXIT_OK, EXIT_FINDINGS, EXIT_CONFIG = 0, 1, 2


def add_commands(sub: Any, common: argparse.ArgumentParser,
                 config_arg: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Add `train` and `evaluate` to the `invoice-agent` subparsers. `config_arg` adds the
    usual -c option (agent.cli._config_arg); by default an equivalent one."""
    add_config = config_arg or _config_arg
    p = sub.add_parser(
        "train", parents=[common], help="learn normal traffic: train the anomaly model",
        description="Train the IsolationForest model on normal traffic: from LOGFILEs "
                    "(plain or .gz, replayed in event time, matched to sources by the "
                    "configured globs) or, with none, from the windows the running agent "
                    "stored. Windows inside alerts and --exclude ranges are left out. Writes "
                    "the model and its metadata, keeping the previous pair as .prev.")
    add_config(p)
    p.add_argument("files", nargs="*", metavar="LOGFILE",
                   help="historical log files; default: the stored windows of the last "
                        "model.retrain_days days")
    p.add_argument("--out", metavar="PATH",
                   help="model file to write (default: model.path of the config)")
    p.add_argument("--exclude", action="append", default=[], metavar="FROM..TO",
                   help="leave out a time range, e.g. 2026-10-01..2026-10-08 (repeatable)")
    p.add_argument("--source", metavar="NAME",
                   help="read every LOGFILE as this source (e.g. a rotated upload.log.1.gz)")
    p.add_argument("--days", type=float, metavar="N",
                   help="without LOGFILEs: days of stored windows (default model.retrain_days)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress line (shown only when stderr is a terminal)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "evaluate", parents=[common], help="show what the model would have alerted on",
        description="Run the model (and the rules) over LOGFILEs or the stored windows and "
                    "print each model alert with its explanation, whether a rule alerted "
                    "at the same time, and the alerts per week. Exit 1 when the model "
                    "alerted.")
    add_config(p)
    p.add_argument("files", nargs="*", metavar="LOGFILE",
                   help="log files to score; default: the stored windows of the last "
                        "model.retrain_days days")
    p.add_argument("--model", metavar="PATH", help="model file (default: model.path)")
    p.add_argument("--source", metavar="NAME", help="read every LOGFILE as this source")
    p.add_argument("--days", type=float, metavar="N",
                   help="without LOGFILEs: days of stored windows to score")
    p.add_argument("--language", choices=["zh", "en"], help="message language (default: config)")
    p.set_defaults(func=cmd_evaluate)


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                   help=f"agent config file (default {DEFAULT_CONFIG})")


# -- what the commands share with wiring ----------------------------------------------------
def model_config(loaded: Any) -> "ModelConfig":
    """The config's `model:` section, or the defaults when it has none."""
    from agent.model.config import ModelConfig

    cfg = loaded.config.model
    return cfg if cfg is not None else ModelConfig.model_validate({})


def spec_of(loaded: Any) -> "FeatureSpec":
    """The model's features for a loaded config: its sources, and the ledger's when the
    config has a ledger."""
    from agent.model.features import FeatureSpec

    return FeatureSpec.for_sources([s.name for s in loaded.config.sources],
                                   ledger=loaded.config.ledger is not None)


def model_path(loaded: Any, cfg: "ModelConfig", override: str | None = None) -> Path:
    """A path given on the command line is the user's (relative to the working directory);
    the configured one is relative to the config file, like every path in it."""
    return Path(override).absolute() if override else Path(loaded.resolve(cfg.path))


def _err(command: str, message: object) -> None:
    print(f"invoice-agent {command}: {message}", file=sys.stderr)


# -- train ---------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from agent.model.features import slots_from_windows
    from agent.model.files import arrays_path, meta_path, previous_path, save_model
    from agent.model.train import TrainingRefused, fit_model
    from agent.replay import NoSourceForFile
    from agent.store import DB_NAME
    from agent.training.history import Progress, alert_spans, parse_range, windows_from_logs
    from agent.training.retrain import train_from_store
    from agent.wiring import load_all

    loaded, rules = load_all(args.config, notify=False, batch=True)
    cfg = model_config(loaded)
    window, zone = loaded.config.window, loaded.config.timezone
    spec = spec_of(loaded)
    pending = {r.name: r.pending_for for r in rules}
    try:
        exclude = [parse_range(r, ZoneInfo(zone)) for r in args.exclude]
    except ValueError as exc:
        _err("train", f"--exclude {exc}")
        return EXIT_CONFIG
    out = model_path(loaded, cfg, args.out)
    # a status line on a terminal (Progress draws nothing on a file or a pipe)
    progress = None if args.quiet else Progress()
    try:
        if args.files:
            windows, transitions = windows_from_logs(loaded, rules, spec.watched, args.files,
                                                     args.source, progress, args.quiet)
            end = max((w.end for w in windows), default=None)
            spans = alert_spans(transitions, pending, window, end)
            slots = slots_from_windows(windows, spec)
            if progress is not None:
                progress.show(f"fitting the model on {len(slots):,} time slots", force=True)
            try:
                model, report = fit_model(slots, spec, cfg, window, zone, spans + exclude)
            finally:
                if progress is not None:
                    progress.done()
        else:
            model, report = train_from_store(loaded.state_dir / DB_NAME, spec, cfg, window,
                                             zone, pending, datetime.now(ZoneInfo(zone)),
                                             args.days, exclude)
    except (NoSourceForFile, FileNotFoundError) as exc:
        _err("train", exc)
        return EXIT_CONFIG
    except TrainingRefused as exc:
        _err("train", f"training refused: {exc}")
        return EXIT_FINDINGS
    had = out.exists()
    save_model(model, out)
    for line in report.lines():
        print(line)
    print(f"wrote {out}, {arrays_path(out).name} and {meta_path(out).name}"
          + (f"; the previous model is kept as {previous_path(out).stem}.*" if had else ""))
    return EXIT_OK


# -- evaluate ------------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    from agent.detect.base import BuildContext
    from agent.detect.model import build_model_detector
    from agent.model.files import ModelRefused
    from agent.replay import NoSourceForFile, match_files, replay
    from agent.store import DB_NAME
    from agent.training.evaluate import run_windows
    from agent.training.history import stored_history
    from agent.wiring import load_all

    loaded, rules = load_all(args.config, notify=False, batch=True)
    cfg = model_config(loaded)
    conf = loaded.config
    language = args.language or conf.notify.language
    context = BuildContext(tuple(s.name for s in conf.sources), conf.window, batch=True,
                           ledger=conf.ledger, timezone=conf.timezone)
    try:
        det = build_model_detector(cfg, context, loaded.base,
                                   path=model_path(loaded, cfg, args.model))
    except ModelRefused as exc:
        _err("evaluate", exc)
        return EXIT_CONFIG
    try:
        if args.files:
            pairs = match_files(loaded, args.files, args.source)
            transitions = replay(loaded, [*rules, det], pairs).transitions
        else:
            now = datetime.now(ZoneInfo(conf.timezone))
            windows, _ = stored_history(loaded.state_dir / DB_NAME,
                                        args.days or cfg.retrain_days, now, {}, conf.window)
            transitions = run_windows([det], windows)
    except (NoSourceForFile, FileNotFoundError) as exc:
        _err("evaluate", exc)
        return EXIT_CONFIG
    return _report(det, transitions, language, conf.window)


def _report(det: "ModelDetector", transitions: "list[Transition]", language: str,
            window: timedelta) -> int:
    mine = [t for t in transitions if t.rule == det.name and t.reason != "repeat interval elapsed"]
    others = [t for t in transitions if t.rule != det.name and t.state == "firing"]
    fired = [t for t in mine if t.state == "firing"]
    for t in mine:
        line = f"{t.ts.isoformat(timespec='minutes')} {t.state:<8} {t.summary.get(language, '')}"
        if t.state == "firing":
            near = sorted({o.rule for o in others if abs(o.ts - t.ts) <= 3 * window})
            line += (f"  [rules too: {', '.join(near)}]" if near else "  [model only]")
        print(line)
    span = (det.last_end - det.first_end) if det.first_end and det.last_end else timedelta(0)
    weeks = span.total_seconds() / (7 * 86400)
    rate = f", {len(fired) / weeks:.2f} per week" if weeks >= 1 else ""
    print(f"model: {det.scored} time slots scored, {len(fired)} alert(s){rate}; "
          f"threshold {det.model.threshold:.3f} (trained "
          f"{det.model.meta.get('training', {}).get('start', '?')[:10]} .. "
          f"{det.model.meta.get('training', {}).get('end', '?')[:10]})", file=sys.stderr)
    return EXIT_FINDINGS if fired else EXIT_OK

