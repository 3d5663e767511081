"""The calculator member: exact answers from plain-language questions, clear refusals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pinfactory.members.base import Completion, Price
from pinfactory.members.calculator import (
    MAX_QUESTION_CHARS,
    CalculatorMember,
    NotArithmetic,
    OutOfBounds,
    UndefinedResult,
    calculate,
    evaluate,
    format_number,
)
from pinfactory.members.registry import member_class
from pinfactory.request import Request, estimate_tokens

EXACT = [
    # percentages
    ("What is 17% of 2,340?", "397.8"),
    ("15 percent of 80", "12"),
    ("what's 12.5 per cent of 64", "8"),
    ("increase 200 by 15%", "230"),
    ("decrease 80 by 25%", "60"),
    ("200 + 15%", "230"),
    ("200 minus 10%", "180"),
    ("what is 20% of 50 plus 3", "13"),
    ("What is 50% of 50% of 80?", "20"),
    ("what is 20 percent", "0.2"),
    # decimals and thousands separators
    ("1,234.5 minus 0.5", "1234"),
    ("0.1 + 0.2", "0.3"),
    ("What is 1,000,000 * 3?", "3000000"),
    ("what is .5 + .25", "0.75"),
    ("3.50 * 2", "7"),
    # parentheses and precedence
    ("what's (3.5 + 2) * 4?", "22"),
    ("2 + 3 * 4", "14"),
    ("(2 + 3) * 4", "20"),
    ("((((1)))) + 1", "2"),
    ("10 - 4 - 3", "3"),
    ("100 / 10 / 2", "5"),
    # unary minus
    ("-3 + 5", "2"),
    ("3 - -2", "5"),
    ("-(4 - 10)", "6"),
    ("-2^2", "-4"),
    ("(-2)^2", "4"),
    # powers and roots
    ("2 to the power of 10", "1024"),
    ("What is 2 ** 10", "1024"),
    ("2^3^2", "512"),
    ("2^-1", "0.5"),
    ("what is 7 squared", "49"),
    ("5 cubed", "125"),
    ("square root of 144", "12"),
    ("what is the square root of 2.25", "1.5"),
    ("sqrt(16) + 1", "5"),
    ("cube root of -8", "-2"),
    ("√81", "9"),
    # natural-language operators
    ("12 times 7", "84"),
    ("12 x 7", "84"),
    ("6 multiplied by 7", "42"),
    ("divide 100 by 8", "12.5"),
    ("100 divided by 8", "12.5"),
    ("3 over 4", "0.75"),
    ("100 ÷ 8", "12.5"),
    ("5 plus 3", "8"),
    ("5 added to 10", "15"),
    ("add 5 to 10", "15"),
    ("subtract 3 from 10", "7"),
    ("3 subtracted from 10", "7"),
    ("multiply 6 by 7", "42"),
    ("sum of 3 and 4", "7"),
    ("product of 6 and 7", "42"),
    ("difference between 10 and 4", "6"),
    ("10 mod 3", "1"),
    ("10 % 3", "1"),
    ("-7 modulo 3", "2"),
    ("Is 12 times 7 equal to 84?", "84"),
    ("what is 2+2=", "4"),
    # big and exact
    ("12345678901234567890 * 98765432109876543210", "1219326311370217952237463801111263526900"),
    ("1e5 + 1", "100001"),
]


@pytest.mark.parametrize(("question", "expected"), EXACT)
def test_exact_answers(question: str, expected: str) -> None:
    assert evaluate(question) == Decimal(expected)


@pytest.mark.parametrize(
    ("question", "shown"),
    [("1 / 3", "0.333333333333"), ("2/3", "0.666666666667"), ("sqrt 2", "1.414213562373")],
)
def test_inexact_answers_are_rounded_to_12_places(question: str, shown: str) -> None:
    calculation = calculate(question)
    assert format_number(calculation.value) == shown
    assert not calculation.exact
    assert calculation.answer.endswith(f"≈ {shown}")


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 17% of 2,340?", "0.17 * 2340 = 397.8"),
        ("increase 200 by 15%", "200 * (1 + 0.15) = 230"),
        ("100 / 10% of 50", "100 / (0.1 * 50) = 20"),
        ("-2^2", "-(2 ^ 2) = -4"),
        ("3 - -2", "3 - (-2) = 5"),
        ("square root of 144", "sqrt(144) = 12"),
        ("10 % 3", "10 mod 3 = 1"),
        ("what is 20 percent", "20% = 0.2"),
    ],
)
def test_answer_shows_the_normalised_expression(question: str, answer: str) -> None:
    assert calculate(question).answer == answer


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("397.80", "397.8"),
        ("1E+3", "1000"),
        ("-0.0000000000001", "0"),
        ("0.0000000000005", "0.000000000001"),
        ("1234567.5", "1234567.5"),
        ("-12.000", "-12"),
        ("1E-20", "0"),
    ],
)
def test_format_number(value: str, text: str) -> None:
    assert format_number(Decimal(value)) == text


def test_format_number_refuses_infinity() -> None:
    with pytest.raises(ValueError, match="cannot format"):
        format_number(Decimal("Infinity"))


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",
        "What's the status of order 1042?",
        "What is 42?",
        "f(1, 2)",
        "solve x + 2 = 5",
        "five plus two",
        "",
    ],
)
def test_no_arithmetic(question: str) -> None:
    with pytest.raises(
        NotArithmetic, match="answers arithmetic only; found no expression in"
    ) as info:
        evaluate(question)
    assert type(info.value) is NotArithmetic
    assert question[:20] in str(info.value)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("2 + * 3", "cannot read '2 + * 3' as arithmetic: expected a number, found '*'"),
        ("what is (2 + 3", "expected ')', found the end"),
        ("1,234,56 + 1", "'1,234,56' is not a number (misplaced thousands separators)"),
        ("I have 3 + 4 apples and 5 * 6 pears", "more than one expression ('3 + 4', '5 * 6')"),
    ],
)
def test_unreadable(question: str, message: str) -> None:
    with pytest.raises(NotArithmetic) as info:
        evaluate(question)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("100 divided by 0", "cannot divide by zero (in '100 / 0')"),
        ("10 mod 0", "cannot divide by zero (in '10 mod 0')"),
        ("1 / (2 - 2)", "cannot divide by zero (in '1 / (2 - 2)')"),
        ("0 ^ -1", "cannot divide by zero (in '0 ^ (-1)')"),
        ("square root of -4", "the square root of a negative number (-4) is not a real number"),
        ("(-8) ^ 0.5", "a negative number to a fractional power is not a real number"),
    ],
)
def test_undefined(question: str, message: str) -> None:
    with pytest.raises(UndefinedResult) as info:
        evaluate(question)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("10 ** 100000", "exponent 100000 is too large .* at most 1000"),
        ("10 ^ 10 ^ 10", "exponent 10000000000 is too large"),
        ("9 ^ 1000", "more than 100 digits"),
        ("1" * 120 + " + 1", "more than 100 digits"),
        ("-" * 100 + "1 + 1", "nested more than 64 levels deep"),
        ("(" * 100 + "1" + ")" * 100 + " + 1", "nested more than 64 levels deep"),
    ],
)
def test_out_of_bounds(question: str, message: str) -> None:
    with pytest.raises(OutOfBounds, match=message):
        evaluate(question)


def test_too_long_input() -> None:
    question = "1 + " * 200 + "1"
    assert len(question) > MAX_QUESTION_CHARS
    with pytest.raises(OutOfBounds, match=f"too long .*{len(question)} characters; at most 500"):
        evaluate(question)


def test_every_refusal_is_a_not_arithmetic_value_error() -> None:
    assert issubclass(UndefinedResult, NotArithmetic)
    assert issubclass(OutOfBounds, NotArithmetic)
    assert issubclass(NotArithmetic, ValueError)


def test_registered_as_calculator() -> None:
    assert member_class("calculator") is CalculatorMember


async def test_complete_answers() -> None:
    member = CalculatorMember("calc", price=Price(per_call=Decimal("0.000001")))
    await member.open()
    request = Request.from_text("What is 17% of 2,340?")
    completion = await member.complete(request)
    await member.close()
    assert completion.text == "0.17 * 2340 = 397.8"
    assert not completion.refused
    assert completion.finish_reason == "stop"
    assert completion.model == "calculator"
    assert completion.usage.input_tokens == request.prompt_tokens
    assert completion.usage.output_tokens == estimate_tokens(completion.text)
    assert completion.cost_usd == Decimal("0.000001")


@pytest.mark.parametrize(
    ("question", "says"),
    [("What is the capital of France?", "arithmetic only"), ("7 / 0", "divide by zero")],
)
async def test_complete_refuses_without_raising(question: str, says: str) -> None:
    completion = await CalculatorMember("calc").complete(Request.from_text(question))
    assert completion.refused
    assert completion.finish_reason == "refused"
    assert says in completion.text
    assert completion.cost_usd == 0


async def test_stream_sends_the_whole_answer_then_the_completion() -> None:
    parts = [part async for part in CalculatorMember("calc").stream(Request.from_text("12 x 7"))]
    assert parts[0] == "12 * 7 = 84"
    assert isinstance(parts[1], Completion)
    assert parts[1].text == "12 * 7 = 84"
