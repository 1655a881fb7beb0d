"""Rule expressions and message templates cannot be made to cost gigabytes or minutes.

simpleeval bounds `**` but not string formatting, field widths or integer growth through `*`;
a rule file is operator input, and values such as the top error code come from the logs.
"""

from __future__ import annotations

import pytest

from agent.detect.expr import MAX_RENDERED, ExprError, Expression, Template

KNOWN = {"count", "failed", "failure_rate", "latency_count", "top_error_code", "error_codes"}
QUIET = {"count": 0, "failed": 0, "failure_rate": 0.0, "latency_count": 0,
         "top_error_code": "", "error_codes": {}}


# --- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["{count:>999999999}", "rate {failure_rate:.100f}",
                                  "{count:0999}", "{top_error_code:x^65}"])
def test_template_with_a_huge_field_width_or_precision_is_refused_at_load(text):
    # "{count:>999999999}" passed load and allocated 5.7 GB at the first alert
    with pytest.raises(ExprError, match=r"width or precision \d+ .* too large \(at most 64\)"):
        Template(text, KNOWN)


def test_ordinary_widths_and_precisions_still_render():
    t = Template("{count:>6} failed {failure_rate:.1%} {top_error_code:*<6}", KNOWN)
    assert t.render({"count": 81, "failure_rate": 0.5625, "top_error_code": "1001"}) == \
        "    81 failed 56.2% 1001**"


def test_rendered_text_is_cut_to_a_sendable_length():
    t = Template("codes: {error_codes}", KNOWN)
    text = t.render({"error_codes": {f"E{i}": i for i in range(5000)}})
    assert len(text) == MAX_RENDERED and text.endswith("…")
    assert text.startswith("codes: {'E0': 0")


class _Hostile:
    def __format__(self, spec: str) -> str:
        raise RuntimeError("cannot format")

    def __str__(self) -> str:
        raise RuntimeError("cannot print")


def test_render_never_raises_whatever_the_value():
    t = Template("{count} lines, top {top_error_code}", KNOWN)
    assert t.render({"count": _Hostile(), "top_error_code": "1001"}) == \
        "{count} lines, top {top_error_code}"
    # a value of the wrong type for its spec still falls back to plain text
    assert Template("{count:d}", KNOWN).render({"count": "many"}) == "many"


# --- expressions: refused at load -------------------------------------------------------------


@pytest.mark.parametrize("when, says", [
    # allocated 1 GB at every evaluation
    ("'%999999999s' % top_error_code != ''", "'%' string formatting is not allowed"),
    (r"b'%999999999s' % count != ''", "'%' string formatting is not allowed"),
    # 25 s at every evaluation
    ("(9**3999999)*(9**3999999)*(9**3999999) > count", "exponent 3999999 is too large"),
    ("count ** -99999 > 0", "exponent -99999 is too large"),
    ("count > 10000000000000000", "integer literal is too large"),
    ("count > 0x" + "f" * 1500, "integer literal is too large"),
    ("f'{top_error_code:>999999999}' != ''", "f-strings are not allowed"),
    ("top_error_code.ljust(999999999) != ''", "method 'ljust' is not allowed"),
    ("'{:>999999999}'.format(count) != ''", "method 'format' is not allowed"),
])
def test_costly_expressions_are_refused_at_load(when, says):
    with pytest.raises(ExprError) as info:
        Expression(when, KNOWN)
    assert says in str(info.value)
    assert repr(when) in str(info.value)


@pytest.mark.parametrize("when, names, expected", [
    ("failure_rate > 0.3 and count >= 5", {"failure_rate": 0.5, "count": 8}, True),
    ("count % 2 == 0 and count ** 2 > 10", {"count": 8}, True),
    ("failed * 100 > count * 30", {"failed": 4, "count": 10}, True),
    ("top_error_code.startswith('E1') and error_codes.get('E100', 0) >= 2",
     {"top_error_code": "E100", "error_codes": {"E100": 3}}, True),
    ("round(failure_rate, 2) == 0.33", {"failure_rate": 1 / 3}, True),
])
def test_ordinary_expressions_still_work(when, names, expected):
    assert Expression(when, KNOWN)({**QUIET, **names}) is expected


# --- expressions: refused when the values would make them costly ------------------------------


def test_an_error_code_from_the_log_is_never_used_as_a_format_string():
    # top_error_code comes from the log: "%9999999s" % ... allocated what the log asked for
    check = Expression("top_error_code % count != ''", KNOWN)
    with pytest.raises(ExprError, match="'%' string formatting is not allowed"):
        check({**QUIET, "top_error_code": "%9999999s", "count": 3})


@pytest.mark.parametrize("when, count", [
    ("count ** count > 1", 100_000),  # 1.6 million bits
    ("count * count * count * count * count * count > 1", 10**15),
    ("count << count > 1", 10_000),
])
def test_integer_results_beyond_256_bits_are_refused_when_evaluated(when, count):
    check = Expression(when, KNOWN)
    with pytest.raises(ExprError, match="would exceed 256 bits"):
        check({**QUIET, "count": count})


def test_round_to_a_huge_number_of_digits_is_refused():
    # round(1, -10**7) takes seconds of CPU
    check = Expression("round(count, -failed) == 0", KNOWN)
    with pytest.raises(ExprError, match="round.. to -100 digits is refused"):
        check({**QUIET, "count": 5, "failed": 100})
