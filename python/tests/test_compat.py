"""The original interface, GPUCredit (SPEC sections 8 and 9)."""

from __future__ import annotations

import numpy as np
import pytest

from gpucredit import GPUCredit, InputError


def test_seed_example_1():
    credit = GPUCredit()
    credit.addCredit("microsoft", 10, 10, 30)
    assert credit.getBalance("microsoft", 0) is None
    assert credit.getBalance("microsoft", 10) == 10
    assert credit.getBalance("microsoft", 40) == 10
    assert credit.getBalance("microsoft", 41) is None


def test_seed_example_2():
    credit = GPUCredit()
    credit.addCredit("acct", 40, 10, 50)  # amazon
    credit.useCredit("acct", 30, 30)
    assert credit.getBalance("acct", 40) == 10
    credit.addCredit("acct", 20, 60, 10)  # google
    assert credit.getBalance("acct", 60) == 30
    assert credit.getBalance("acct", 61) == 20
    assert credit.getBalance("acct", 70) == 20
    assert credit.getBalance("acct", 71) is None


def test_seed_example_2_with_the_credit_names_as_accounts():
    # SPEC section 8's calls taken literally: the first argument names the account, so
    # amazon and google are two accounts whose balances add up to the one-account figures.
    credit = GPUCredit()
    credit.addCredit("amazon", 40, 10, 50)
    credit.useCredit("amazon", 30, 30)
    assert credit.getBalance("amazon", 40) == 10
    credit.addCredit("google", 20, 60, 10)
    both = {t: (credit.getBalance("amazon", t) or 0) + (credit.getBalance("google", t) or 0) for t in (60, 61, 70, 71)}
    assert both == {60: 30, 61: 20, 70: 20, 71: 0}
    assert credit.getBalance("google", 59) is None and credit.getBalance("amazon", 60) == 10


def test_seed_edge_case():
    credit = GPUCredit()
    credit.addCredit("openai", 10, 10, 30)
    credit.useCredit("openai", 10, 100000000)
    assert credit.getBalance("openai", 10) is None
    credit.addCredit("openai", 10, 20, 10)
    assert credit.getBalance("openai", 20) == 10


def test_answers_from_history():
    credit = GPUCredit()
    credit.addCredit("a", 100, 0, 1000)
    credit.useCredit("a", 30, 60)
    assert credit.getBalance("a", 20) == 100  # as it was at 20
    assert credit.getBalance("a", 30) == 40
    credit.useCredit("a", 10, 50)  # a late use is placed at its time
    assert credit.getBalance("a", 20) == 50
    assert credit.getBalance("a", 30) is None


def test_accounts_do_not_interact():
    credit = GPUCredit()
    credit.addCredit("a", 5, 0, 10)
    credit.useCredit("b", 1, 5)
    assert credit.getBalance("a", 1) == 5
    assert credit.getBalance("b", 1) is None
    assert credit.getBalance("nobody", 1) is None


def test_reject_policy():
    credit = GPUCredit(policy="reject")
    credit.addCredit("a", 5, 0, 10)
    credit.useCredit("a", 1, 6)  # more than there is: changes nothing
    assert credit.getBalance("a", 1) == 5
    drain = GPUCredit()
    drain.addCredit("a", 5, 0, 10)
    drain.useCredit("a", 1, 6)
    assert drain.getBalance("a", 1) is None


def test_numpy_integers_and_keywords():
    credit = GPUCredit()
    credit.addCredit(creditId="a", amount=np.int64(7), timestamp=np.int32(1), expiration=np.uint8(9))
    assert credit.getBalance("a", np.int64(10)) == 7
    assert isinstance(credit.getBalance("a", 10), int)


@pytest.mark.parametrize(
    "call, reason",
    [
        (lambda c: c.addCredit("a", -1, 0, 10), "negative amount"),
        (lambda c: c.addCredit("a", 1, 0, -10), "negative expiration"),
        (lambda c: c.addCredit("a", 1, 2**63 - 1, 1), "timestamp + expiration beyond int64"),
        (lambda c: c.addCredit("a", 2**63, 0, 1), "amount out of int64 range"),
        (lambda c: c.useCredit("a", 5, -3), "negative amount"),
        (lambda c: c.addCredit("a", 2**63 - 1, 0, 10), "balance beyond int64 at 0"),
        (lambda c: c.addCredit("", 1, 0, 10), "missing account"),
        (lambda c: c.useCredit("", 1, 1), "missing account"),
        (lambda c: c.addCredit("a\0b", 1, 0, 10), "NUL byte in account"),
    ],
)
def test_bad_calls_raise_and_change_nothing(call, reason):
    credit = GPUCredit()
    credit.addCredit("a", 5, 0, 10)
    with pytest.raises(InputError) as info:
        call(credit)
    assert info.value.reason == reason
    assert info.value.source in ("addCredit", "useCredit")
    assert info.value.row is None
    assert credit.getBalance("a", 0) == 5 and credit.getBalance("a", 10) == 5
    credit.useCredit("a", 1, 2)  # still usable
    assert credit.getBalance("a", 1) == 3


def test_wrong_types():
    credit = GPUCredit()
    with pytest.raises(TypeError):
        credit.addCredit("a", 1.5, 0, 10)
    with pytest.raises(TypeError):
        credit.addCredit(7, 1, 0, 10)
    with pytest.raises(ValueError):
        GPUCredit(policy="borrow")


def test_a_late_call_that_would_overflow_a_later_balance_is_refused():
    # Under reject, the late use at 3 would make the use at 5 rejected, and the balance
    # at 10 would be M + 1: refused, and the account answers as before (SPEC section 6).
    m = 2**63 - 1
    credit = GPUCredit(policy="reject")
    credit.addCredit("a", m, 0, 100)
    credit.useCredit("a", 5, m)
    credit.addCredit("a", 2, 10, 100)
    with pytest.raises(InputError) as info:
        credit.useCredit("a", 3, 1)
    assert info.value.reason == "balance beyond int64 at 10"
    assert credit.getBalance("a", 4) == m
    assert credit.getBalance("a", 5) is None
    assert credit.getBalance("a", 10) == 2


def test_run_credit_meters_a_job():
    # SPEC section 10: 3 at every tick 10, 11, ..., 19, drawn soonest-ending first.
    credit = GPUCredit()
    credit.addCredit("a", 100, 0, 1000)
    credit.addCredit("a", 10, 5, 9)  # [5, 14]: drawn first while active
    credit.runCredit("a", 10, 3, 10)
    assert credit.getBalance("a", 9) == 110
    assert credit.getBalance("a", 10) == 107
    assert credit.getBalance("a", 13) == 98  # the short credit is out after tick 13 (10 - 3 x 3 = 1, then split)
    assert credit.getBalance("a", 19) == 80
    assert credit.getBalance("a", 20) == 80
    with pytest.raises(InputError) as info:
        credit.runCredit("a", 0, -1, 5)
    assert info.value.reason == "negative rate"
    with pytest.raises(InputError):
        credit.runCredit("a", 2**63 - 1, 1, 2)
    assert credit.getBalance("a", 20) == 80


def test_use_credit_says_whether_it_was_paid_and_unpaid_lists_what_was_not():
    credit = GPUCredit(policy="reject")
    credit.addCredit("a", 10, 0, 100)
    assert credit.useCredit("a", 5, 4) is True
    assert credit.useCredit("a", 6, 50) is False  # rejected: changes nothing
    assert credit.getBalance("a", 6) == 6
    assert credit.unpaid() == [{"account": "a", "call": 3, "timestamp": 6, "amount": 50, "outcome": "rejected"}]
    drained = GPUCredit()
    drained.addCredit("b", 10, 0, 100)
    assert drained.useCredit("b", 5, 15) is False  # drains 10, 5 short
    assert drained.unpaid() == [{"account": "b", "call": 2, "timestamp": 5, "amount": 5, "outcome": "shortfall"}]
    drained.addCredit("b", 20, 1, 100)  # a late add pays it
    assert drained.unpaid() == []
