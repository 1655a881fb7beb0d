"""Property tests of the operator config: any YAML document, any text and any bytes in the main
file or a conf.d layer give a LoadedConfig or FileProblems whose every problem names one of
the files, never another exception."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import LoadedConfig, load_config
from agent.yamlfile import FileProblems, YamlDoc, read_yaml

PROPERTY = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

KEYS = st.sampled_from([
    "state_dir", "timezone", "window", "lateness", "retention", "poll_interval", "max_future",
    "batch_lines", "sources", "rules", "notify", "ledger", "model", "http", "inhibit",
    "maintenance", "name", "paths", "format", "encoding", "fields", "values", "pattern",
    "timestamp_format", "max_line_bytes", "journald", "start_at", "event", "urls", "language",
    "repeat_interval", "templates", "listen", "ts", "status", "stages", "source", "<<"])
SCALARS = st.one_of(
    st.sampled_from(["5m", "0s", "-1s", "1e400d", "Asia/Shanghai", "Mars/Olympus", "utf-8",
                     "utf-16", "gbk", "\x00", "json", "regex", "syslog", "journald",
                     "(?P<ts>\\S+)", "(a+)+$", "[", "*.log", "logs/*.log", "../../x",
                     "json://127.0.0.1:1/x", "mailto://u:secret@host", "${NOT_SET_H8}",
                     "127.0.0.1:0", "zh", "en", "beginning", "%Y", "%A%A"]),
    st.text(max_size=20), st.integers(), st.floats(), st.booleans(), st.none(),
)
TREES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(KEYS, st.text(max_size=8)), inner, max_size=5)), max_leaves=20)
SOURCES = st.lists(st.dictionaries(KEYS, TREES, max_size=6), max_size=3)
DOCUMENTS = st.one_of(
    TREES,
    st.dictionaries(KEYS, TREES, max_size=8),
    st.dictionaries(KEYS, TREES, max_size=4).map(lambda d: {**d, "rules": []}),
    SOURCES.map(lambda s: {"sources": s, "rules": []}),
)


def clean(root: Path) -> Path:
    """An empty config folder (hypothesis reuses the test's tmp_path for every example)."""
    folder = root / "etc"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder / "agent.yaml"


def assert_config_or_problems(main: Path, layers: list[Path]) -> None:
    try:
        loaded = load_config(main)
    except FileProblems as exc:
        files = {str(main.absolute()), *(str(p.absolute()) for p in layers)}
        assert exc.problems
        for p in exc.problems:
            assert p.file in files and p.message, p
            assert str(p).startswith(p.file)
        return
    assert isinstance(loaded, LoadedConfig)
    assert all(w.file and w.message for w in loaded.warnings)


@PROPERTY
@given(doc=DOCUMENTS, layer=st.one_of(st.none(), DOCUMENTS))
def test_any_yaml_document_gives_a_config_or_problems_naming_a_file(tmp_path, doc, layer):
    main = clean(tmp_path)
    main.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    layers = []
    if layer is not None:
        (main.parent / "conf.d").mkdir()
        layers.append(main.parent / "conf.d" / "10-local.yaml")
        layers[0].write_text(yaml.safe_dump(layer, allow_unicode=True), encoding="utf-8")
    assert_config_or_problems(main, layers)


TEXTS = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["sources:\n", "  - name: a\n", "    paths: [x.log]\n", "a: &x [1]\n",
                              "b: *x\n", "c: *nope\n", "d: !!python/object:os.system x\n",
                              "e: !!binary aGk=\n", "<<: {x: 1}\n", "f: {a: 1, a: 2}\n",
                              "\t", "- [\n", "'", "%YAML 1.1\n---\n", "---\n", "? [a]\n: b\n",
                              "rules: []\n", "window: 0s\n", "timezone: \n"]),
             max_size=10).map("".join),
)


@PROPERTY
@given(text=TEXTS)
def test_any_text_gives_a_config_or_problems_naming_the_file(tmp_path, text):
    main = clean(tmp_path)
    main.write_text(text, encoding="utf-8")
    assert_config_or_problems(main, [])


@PROPERTY
@given(data=st.binary(max_size=200))
def test_any_bytes_give_a_config_or_problems_naming_the_file(tmp_path, data):
    main = clean(tmp_path)
    main.write_bytes(data)
    assert_config_or_problems(main, [])


@PROPERTY
@given(text=TEXTS, loc=st.lists(st.one_of(st.integers(-2, 5), st.text(max_size=4), KEYS),
                                max_size=4))
def test_read_yaml_gives_a_document_or_problems_and_any_key_path_a_line(tmp_path, text, loc):
    path = tmp_path / "any.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        doc = read_yaml(path)
    except FileProblems as exc:
        assert exc.problems and all(p.file == str(path) and p.message for p in exc.problems)
        return
    assert isinstance(doc, YamlDoc)
    line = doc.line_of(loc)
    # YAML breaks lines at \r, \x85, \u2028 and \u2029 too, as editors do
    assert line is None or 1 <= line <= len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))
    assert isinstance(doc.has(loc), bool)


@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(100, 5000), kind=st.sampled_from(["[", "{a: ", "- "]))
def test_deeply_nested_yaml_is_a_problem_naming_the_file(tmp_path, depth, kind):
    main = clean(tmp_path)
    text = kind * depth if kind != "- " else "".join(" " * (2 * i) + "-\n" for i in range(depth))
    main.write_text(text, encoding="utf-8")
    assert_config_or_problems(main, [])
