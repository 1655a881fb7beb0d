"""Invoice numbers and taxpayer ids: well-formed ones pass, malformed ones say why, never raise."""

from __future__ import annotations

import pytest

from agent.ledger.numbers import invoice_key, same_value, taxpayer_problem, uscc_check_char

# a real-shaped unified social credit code: its check character computed per GB 32100-2015
GOOD_ID = "91440300" + "MA5FXT3K2" + uscc_check_char("91440300MA5FXT3K2")


@pytest.mark.parametrize("number, code, key", [
    ("26442421750640306006", None, "26442421750640306006"),  # all-electronic: 20 digits
    (" 26442421750640306006 ", None, "26442421750640306006"),  # padded in the log
    ("12345678", "044001900111", "044001900111-12345678"),  # legacy: 12-digit code + number
    ("12345678", "4400191130", "4400191130-12345678"),  # legacy: 10-digit code
    ("044001900111-12345678", None, "044001900111-12345678"),  # legacy written as one text
])
def test_well_formed_invoice_numbers_have_a_key(number, code, key):
    assert invoice_key(number, code) == (key, "")


@pytest.mark.parametrize("number, code, why", [
    ("", None, "no invoice number"),
    ("2644242175064030600", None, "expected 20 digits"),  # one digit short
    ("2644242175064030600X", None, "expected 20 digits"),
    ("12345678", None, "without its code"),  # a legacy number alone is not unique
    ("12345678", "04400", "expected 10 or 12 digits"),
    ("1234567", "044001900111", "expected 8 digits"),
    ("发票" * 500, None, "expected 20 digits"),  # a whole line of garbage: shown cut short
])
def test_malformed_invoice_numbers_say_why(number, code, why):
    key, message = invoice_key(number, code)
    assert key is None and why in message
    assert len(message) < 200


def test_unchecked_numbers_are_their_own_key():
    assert invoice_key("INV-2026-0001", check=False) == ("INV-2026-0001", "")


def test_a_valid_unified_social_credit_code_passes():
    assert taxpayer_problem(GOOD_ID) == ""
    # a code published by a real company (its check character is the last one)
    assert taxpayer_problem("91110000802100433B") == ""


@pytest.mark.parametrize("tid, why", [
    (GOOD_ID[:17] + ("0" if GOOD_ID[17] != "0" else "1"), "check character"),  # one typo
    (GOOD_ID[:-1], "expected 18 characters"),
    ("91440300MA5FXT3KIO", "cannot occur"),  # I and O are not in the alphabet
    ("91ABCDEFMA5FXT3K2X", "region"),
    ("440301199001011234", "check character"),  # an ID card number is not a USCC
])
def test_malformed_taxpayer_ids_say_why(tid, why):
    assert why in taxpayer_problem(tid)


def test_amounts_compare_as_numbers_and_other_fields_as_written():
    assert same_value("amount", "1234.5", "1234.50")
    assert not same_value("amount", "123.45", "1234.50")
    assert same_value("amount", "n/a", "n/a")  # unreadable on both sides: equal as text
    assert not same_value("issue_date", "2026-11-02", "2026-11-03")
