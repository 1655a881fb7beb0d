"""Loading the operator config: relative paths, layering, ${ENV} secrets, and errors that name
the file, the key path and the line, all of them at once."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from agent.config import check_canonical, load_config, parse_duration
from agent.yamlfile import FileProblems

VALID = """\
state_dir: state
timezone: Asia/Shanghai
window: 5m
sources:
  - name: upload
    paths: ["logs/upload*.log"]
    format: json
    encoding: gbk
    fields: {ts: time, status: result}
    values: {status: {成功: ok, 失败: failed}}
rules: ["rules/*.yaml"]
notify:
  urls: ["json://localhost:9/hook"]
  language: en
"""


def write(folder: Path, text: str, name: str = "agent.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    write(tmp_path / "rules", "rules: []\n", "upload.yaml")
    return tmp_path


def problems_of(path: Path) -> list:
    with pytest.raises(FileProblems) as info:
        load_config(path)
    return info.value.problems


def only_problem(path: Path):
    found = problems_of(path)
    assert len(found) == 1, [str(p) for p in found]
    return found[0]


def test_valid_config_resolves_relative_paths_against_its_folder(conf_dir, monkeypatch):
    path = write(conf_dir, VALID)
    monkeypatch.chdir("/")  # the working directory must not matter
    loaded = load_config(path)
    cfg = loaded.config
    assert cfg.window == timedelta(minutes=5)
    assert cfg.timezone == "Asia/Shanghai"
    assert cfg.notify.language == "en"
    assert loaded.state_dir == conf_dir / "state"
    src = cfg.sources[0]
    assert (src.name, src.format, src.encoding) == ("upload", "json", "gbk")
    assert src.values == {"status": {"成功": "ok", "失败": "failed"}}
    assert loaded.source_globs(src) == [str(conf_dir / "logs" / "upload*.log")]
    assert loaded.rule_globs() == [str(conf_dir / "rules" / "*.yaml")]


def test_unknown_key_names_file_dotted_key_and_line(conf_dir):
    path = write(conf_dir, VALID.replace("    format: json", "    formatt: json"))
    p = only_problem(path)
    assert p.file == str(path)
    assert p.key == "sources.0.formatt"
    assert p.line == 7
    assert "unknown key" in p.message
    assert f"{path}:7: sources.0.formatt: unknown key" in str(p)


def test_wrong_type_for_a_duration_says_what_was_expected(conf_dir):
    path = write(conf_dir, VALID.replace("window: 5m", 'window: "five minutes"'))
    p = only_problem(path)
    assert (p.key, p.line) == ("window", 3)
    assert "30s, 5m, 2h or 1d" in p.message and "five minutes" in p.message


def test_bad_regex_pattern_is_reported_with_the_regex_error(conf_dir):
    text = VALID.replace("    format: json", "    format: regex\n    pattern: '(?P<ts>[0-9'")
    p = only_problem(write(conf_dir, text))
    assert p.key == "sources.0.pattern"
    assert p.line == 8
    assert "invalid regular expression" in p.message


def test_unknown_encoding_is_rejected(conf_dir):
    p = only_problem(write(conf_dir, VALID.replace("encoding: gbk", "encoding: klingon")))
    assert (p.key, p.line) == ("sources.0.encoding", 8)
    assert "klingon" in p.message and "gb18030" in p.message


def test_gb18030_and_utf8_encodings_are_accepted(conf_dir):
    for enc in ("gb18030", "utf-8"):
        loaded = load_config(write(conf_dir, VALID.replace("encoding: gbk", f"encoding: {enc}")))
        assert loaded.config.sources[0].encoding == enc


def test_regex_format_without_pattern_is_an_error(conf_dir):
    p = only_problem(write(conf_dir, VALID.replace("format: json", "format: regex")))
    assert p.key == "sources.0"
    assert p.line == 5
    assert "pattern" in p.message


def test_missing_log_folder_is_a_warning_naming_the_folder_and_the_agent_still_loads(conf_dir):
    # an error here made systemd's Restart=on-failure a restart loop until the folder appeared
    loaded = load_config(write(conf_dir, VALID.replace("logs/upload", "logz/upload")))
    (p,) = loaded.warnings
    assert (p.file, p.key, p.line) == (str(conf_dir / "agent.yaml"), "sources.0.paths.0", 6)
    assert str(conf_dir / "logz") in p.message and "does not exist" in p.message


def test_a_valid_config_has_no_warnings(conf_dir):
    assert load_config(write(conf_dir, VALID)).warnings == []


def test_no_sources_is_a_warning(conf_dir):
    text = VALID[:VALID.index("sources:")] + VALID[VALID.index("rules:"):]
    (p,) = load_config(write(conf_dir, text)).warnings
    assert p.key == "sources" and "no sources" in p.message


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(.*)*x", r"^(\w+\s?)*$", r"(?:[a-z]{1,9})+"])
def test_pattern_with_nested_quantifiers_is_a_warning(conf_dir, pattern):
    text = VALID.replace("    format: json",
                         f"    format: regex\n    pattern: '(?P<ts>\\S+) (?P<message>{pattern})'")
    (p,) = load_config(write(conf_dir, text)).warnings
    assert (p.key, p.line) == ("sources.0.pattern", 8)
    assert pattern.lstrip("^").rstrip("$x") in p.message and "exponential" in p.message


@pytest.mark.parametrize("pattern", [r"(a+)?b", r"(\d{4})-(\d\d)", r"[(a+)+]", r"\(a+\)+",
                                     r"(?:ab)+", r"(a{1})+"])
def test_pattern_without_nested_quantifiers_loads_without_warning(conf_dir, pattern):
    text = VALID.replace("    format: json",
                         f"    format: regex\n    pattern: '(?P<ts>\\S+) {pattern}'")
    assert load_config(write(conf_dir, text)).warnings == []


def test_yaml_syntax_error_names_its_line(conf_dir):
    path = write(conf_dir, VALID.replace('paths: ["logs/upload*.log"]', 'paths: ["logs/x.log"'))
    p = only_problem(path)
    assert p.file == str(path)
    assert "YAML syntax error" in p.message
    assert p.line == 7  # where the parser noticed the unclosed list


def test_several_problems_are_reported_together(conf_dir):
    text = (VALID.replace("window: 5m", "window: soon")
            .replace("encoding: gbk", "encoding: klingon")
            .replace("language: en", "language: fr")
            + "colour: blue\n")
    found = problems_of(write(conf_dir, text))
    keys = {p.key for p in found}
    assert keys == {"window", "sources.0.encoding", "notify.language", "colour"}
    assert all(p.line for p in found)


def test_missing_config_file_is_a_problem_not_a_traceback(tmp_path):
    p = only_problem(tmp_path / "nope.yaml")
    assert "not found" in p.message


def test_top_level_list_is_rejected(conf_dir):
    p = only_problem(write(conf_dir, "- a\n- b\n"))
    assert "mapping" in p.message


def test_conf_d_layers_override_in_sorted_order_and_lists_replace(conf_dir):
    path = write(conf_dir, VALID)
    (conf_dir / "other").mkdir()
    write(conf_dir / "conf.d", "window: 1m\nnotify: {language: zh}\n", "20-late.yaml")
    write(conf_dir / "conf.d", """\
        window: 2h
        sources:
          - name: erp
            paths: ["other/erp.log"]
        """, "10-early.yaml")
    write(conf_dir / "conf.d", "window: 1d\n", "ignored.yml")  # only *.yaml
    loaded = load_config(path)
    cfg = loaded.config
    assert cfg.window == timedelta(minutes=1)  # 20-late wins over 10-early and the main file
    assert [s.name for s in cfg.sources] == ["erp"]  # the list replaced, not appended
    assert cfg.notify.language == "zh"
    assert cfg.notify.urls == ["json://localhost:9/hook"]  # mappings merge key by key
    assert loaded.files == [str(path), str(conf_dir / "conf.d" / "10-early.yaml"),
                            str(conf_dir / "conf.d" / "20-late.yaml")]


def test_problem_in_a_layer_names_that_layer(conf_dir):
    path = write(conf_dir, VALID.replace("language: en", "language: fr"))
    write(conf_dir / "conf.d", "notify:\n  urls: []\n", "10.yaml")
    late = write(conf_dir / "conf.d",
                 "sources:\n  - name: erp\n    paths: [logs/erp.log]\n    format: xml\n",
                 "20.yaml")
    found = {p.key: p for p in problems_of(path)}
    # the bad language is in the main file even though a layer also sets `notify`
    assert (found["notify.language"].file, found["notify.language"].line) == (str(path), 14)
    assert (found["sources.0.format"].file, found["sources.0.format"].line) == (str(late), 4)


def test_env_variables_are_expanded_in_notify_urls(conf_dir, monkeypatch):
    text = VALID.replace('urls: ["json://localhost:9/hook"]',
                         'urls: ["wecombot://${WECOM_KEY}", {url: "mailtos://u:${MAIL_PW}@x.cn",'
                         ' tags: [oncall]}]')
    monkeypatch.setenv("WECOM_KEY", "k-123")
    monkeypatch.setenv("MAIL_PW", "s3cret")
    loaded = load_config(write(conf_dir, text))
    assert loaded.notify_urls() == [
        "wecombot://k-123", {"url": "mailtos://u:s3cret@x.cn", "tags": ["oncall"]}]


def test_unset_env_variable_is_a_clear_error_naming_it(conf_dir, monkeypatch):
    text = VALID.replace('"json://localhost:9/hook"', '"json://localhost:9/hook", '
                                                      '"wecombot://${WECOM_KEY_UNSET}"')
    monkeypatch.delenv("WECOM_KEY_UNSET", raising=False)
    path = write(conf_dir, text)
    loaded = load_config(path)  # secrets resolve only where they are used
    with pytest.raises(FileProblems) as info:
        loaded.notify_urls()
    (p,) = info.value.problems
    assert (p.file, p.key, p.line) == (str(path), "notify.urls.1", 13)
    assert "WECOM_KEY_UNSET" in p.message and "not set" in p.message


@pytest.mark.parametrize("glob", ["rules.d/*.yaml", "rules/*.yml", "**/nothing-*.yaml"])
def test_rules_glob_matching_no_file_is_an_error_naming_the_glob_and_folder(conf_dir, glob):
    # silently fine before: `check` passed a config that loaded no rule at all
    path = write(conf_dir, VALID.replace('rules: ["rules/*.yaml"]', f'rules: ["{glob}"]'))
    p = only_problem(path)
    assert (p.file, p.key, p.line) == (str(path), "rules.0", 11)
    folder = conf_dir / glob.split("/")[0] if "*" not in glob.split("/")[0] else conf_dir
    assert glob in p.message and f"looked in {folder}" in p.message


def test_a_rules_glob_matching_a_file_among_others_loads(conf_dir):
    text = VALID.replace('rules: ["rules/*.yaml"]', 'rules: ["rules/*.yaml", "rules/up*"]')
    assert load_config(write(conf_dir, text)).config.rules == ["rules/*.yaml", "rules/up*"]


def test_explicit_rules_file_that_is_missing_is_an_error(conf_dir):
    path = write(conf_dir, VALID.replace('rules: ["rules/*.yaml"]',
                                         'rules: ["rules/*.yaml", "my-rules.yaml"]'))
    p = only_problem(path)
    assert (p.key, p.line) == ("rules.1", 11)
    assert "my-rules.yaml" in p.message


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (90, 90),
])
def test_durations_accept_the_documented_units(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "5x", "", "-5m", True])
def test_durations_reject_other_spellings(text):
    with pytest.raises(ValueError, match="30s, 5m, 2h or 1d"):
        parse_duration(text)


def test_a_key_given_twice_is_an_error_not_a_silent_override(conf_dir):
    path = write(conf_dir, VALID.replace("    format: json", "    format: json\n    format: regex"))
    p = only_problem(path)
    assert (p.file, p.key, p.line) == (str(path), "sources.0.format", 8)
    assert "twice" in p.message and "line 7" in p.message


@pytest.mark.parametrize("key, value, says", [
    ("poll_interval", "0s", "more than 0"),  # 0 would spin the daemon at full CPU
    ("retention", "0s", "more than 0"),
    ("max_future", "0s", "more than 0"),
    ("lateness", "-5", "negative"),
    ("window", "99999999999d", "too large"),
])
def test_unsafe_durations_are_refused(conf_dir, key, value, says):
    text = VALID.replace("window: 5m\n", "") + f"{key}: {value}\n"
    p = only_problem(write(conf_dir, text))
    assert p.key == key and says in p.message


@pytest.mark.parametrize("setting", [
    'notify:\n  urls: "mailto://user:pass@host"',  # a string where a list belongs
    'notify:\n  urls: [{url: "mailto://user:pass@host", tags: oops}]',
    'notify:\n  repeat_interval: "mailto://user:pass@host"',
    'notify:\n  language: "mailto://user:pass@host"',
])
def test_config_errors_under_notify_never_echo_the_value(conf_dir, setting):
    text = VALID[:VALID.index("notify:")] + setting + "\n"
    for p in problems_of(write(conf_dir, text)):
        assert p.key.startswith("notify")
        assert "pass" not in str(p) and "user" not in str(p)
        assert "hidden" in p.message


def test_wecom_key_given_where_a_list_belongs_is_not_echoed(conf_dir):
    text = VALID.replace('urls: ["json://localhost:9/hook"]', 'urls: "wecombot://k-9f8e7d"')
    p = only_problem(write(conf_dir, text))
    assert p.key == "notify.urls" and "k-9f8e7d" not in str(p)


def test_credentials_in_urls_are_masked_in_any_config_error(conf_dir):
    text = VALID.replace("timezone: Asia/Shanghai", 'timezone: "mailtos://ops:hunter2@smtp.x.cn"')
    p = only_problem(write(conf_dir, text))
    assert p.key == "timezone"
    assert "hunter2" not in str(p) and "ops" not in str(p)
    assert "mailtos://****:****@smtp.x.cn" in p.message


def test_check_canonical_names_the_unknown_fields():
    assert check_canonical(["ts", "status", "fphm", "cost"]) == ["cost", "fphm"]
    assert check_canonical(["ts", "invoice_no"]) == []
