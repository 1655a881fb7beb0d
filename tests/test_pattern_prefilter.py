"""A pattern rule's literal filter skips only messages its expression cannot match."""

from __future__ import annotations

from pathlib import Path

import regex
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.detect.prefilter import required_literals

SHIPPED = [r["match"] for f in sorted(Path("rules").glob("*.yaml")) if "test" not in f.name
           for r in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("rules", [])
           if r.get("type") == "pattern"]
PATTERNS = SHIPPED + [
    "abc(?:def)?ghi", "(x)abc", "abcd{2}", "(?i)Kelvin sign", "(?i)servfail", "disk (full|gone)",
    r"timeout after \d+ ms", "(?i:NoCase)here", "^Started .* session", "a|bcd", r"\bOOM\b",
    "(?i)ſtatus", "上传失败|同步超时", "(?s)begin.end", "x{0}yyy", "(?P<code>E\\d+) failed",
]
# texts made of the patterns' own pieces, their case variants and characters Unicode folds
# onto ASCII letters (long s, Kelvin sign, dotless i)
PIECES = ["abc", "def", "ghi", "x", "d", "dd", "Kelvin sign", "KELVIN SIGN", "servfail", "SERVFAIL",
          "ſervfail", "\u212aelvin sign", "disk ", "full", "gone", "timeout after ", "12", " ms",
          "NoCase", "nocase", "here", "Started ", "session", "bcd", "a", "OOM", "ſtatus", "status",
          "上传失败", "同步超时", "begin", "\n", "end", "yyy", "E42", " failed", "Out of memory: ",
          "Killed process", "invoked oom-killer", "No space left on device", "I/O error",
          "connection refused", "Connection Timed Out", "certificate ", "expired", "ssl routines",
          "x509: ", "could not resolve", "invoice-upload.service", ": ", "Failed with result",
          "ı", "İ", " "]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(PATTERNS), st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_a_skipped_message_never_matches(pattern, text):
    literals = required_literals(pattern)
    if literals is not None and not literals.may_match(text):
        assert regex.search(pattern, text) is None


def test_the_shipped_patterns_get_filters_and_odd_ones_none():
    assert SHIPPED and all(required_literals(p) is not None for p in SHIPPED)
    oom = required_literals("Out of memory: Killed process|invoked oom-killer")
    assert oom is not None and oom.texts == ("Out of memory: Killed process", "invoked oom-killer")
    assert not oom.may_match("sshd[1]: session opened")
    assert oom.may_match("kernel: Out of memory: Killed process 42 (java)")
    folded = required_literals("(?i)servfail")
    assert folded is not None and folded.may_match("DNS SERVFAIL for x") \
        and folded.may_match("ſervfail")  # not ASCII: the expression decides
    for odd in ("a+b", r"\p{Han}+", "ab|c", "(?V1)abc", "[abc]+", "a(?=bcd)"):
        assert required_literals(odd) is None, odd
