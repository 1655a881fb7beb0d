"""Operator YAML with aliases: ordinary anchors load, expansion bombs are refused at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.config import load_config
from agent.detect.loader import load_rules
from agent.yamlfile import MAX_ALIASES, FileProblems, read_yaml


def billion_laughs(levels: int = 9) -> str:
    """`a: &a [lol x9]`, `b: &b [*a x9]`, ...: 9**levels values once expanded."""
    lines = ["a: &a [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def only_problem(path: Path):
    with pytest.raises(FileProblems) as info:
        read_yaml(path)
    (p,) = info.value.problems
    return p


def test_billion_laughs_is_refused_naming_file_and_line(tmp_path):
    # took minutes (safe_load, then the duplicate-key walk through every alias)
    path = tmp_path / "rules.yaml"
    path.write_text(billion_laughs(9), encoding="utf-8")
    p = only_problem(path)
    assert p.file == str(path)
    assert p.line == 6  # f: the first level whose expansion passes 100,000 values
    assert "expands to more than 100000 values" in p.message


def test_billion_laughs_rules_file_is_a_load_problem(tmp_path):
    (tmp_path / "bomb.yaml").write_text("rules: []\n" + billion_laughs(9), encoding="utf-8")
    with pytest.raises(FileProblems) as info:
        load_rules([str(tmp_path / "*.yaml")], ["upload"])
    (p,) = info.value.problems
    assert p.file == str(tmp_path / "bomb.yaml") and "expands to more than" in p.message


def test_billion_laughs_config_is_a_load_problem(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(billion_laughs(9), encoding="utf-8")
    with pytest.raises(FileProblems) as info:
        load_config(path)
    (p,) = info.value.problems
    assert (p.file, p.line) == (str(path), 6)


def test_too_many_aliases_are_refused(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text("x: &x 1\nall: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n",
                    encoding="utf-8")
    p = only_problem(path)
    assert p.line == 2 and f"more than {MAX_ALIASES} aliases" in p.message


def test_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &loop\n  - 1\n  - *loop\n", encoding="utf-8")
    p = only_problem(path)
    assert p.line == 3 and "*loop" in p.message and "contains it" in p.message


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent("""\
        defaults: &defaults {type: threshold, source: upload, severity: warning}
        rules:
          - <<: *defaults
            name: a
          - <<: *defaults
            name: b
            severity: critical
        """), encoding="utf-8")
    data = read_yaml(path).data
    assert [r["severity"] for r in data["rules"]] == ["warning", "critical"]
    assert data["rules"][0]["source"] == "upload"


def test_a_key_repeated_inside_an_aliased_mapping_is_reported_once(tmp_path):
    path = tmp_path / "dupes.yaml"
    path.write_text("base: &base\n  a: 1\n  a: 2\nx: *base\ny: *base\n", encoding="utf-8")
    p = only_problem(path)
    assert (p.key, p.line) == ("base.a", 3)
