"""Exact arithmetic and percentages from plain-language questions (the calculator's engine).

A question goes through pure steps, none of which executes the user's text:

1. :func:`normalise` rewrites words to operators ("12 times 7" -> "12 * 7",
   "17 percent of 2,340" -> "17 % of 2,340", "square root of 144" -> "sqrt 144").
2. A tokenizer cuts the text into numbers, operators and the few keywords the
   grammar knows. Any other word is noise; noise separates candidate expressions,
   so "What is 12 times 7?" yields the single candidate "12 * 7".
3. A recursive-descent parser builds a small expression tree, evaluated over
   :class:`decimal.Decimal` with hard limits on input length, nesting depth,
   exponents and the size of every intermediate result.

Grammar, lowest precedence first::

    expr    := term (("+" | "-" | "subfrom") term)*
    term    := unary (("*" | "/" | "mod" | "%") unary)*
    unary   := ("-" | "+") unary | power
    power   := postfix ("^" unary)?                      (right-associative)
    postfix := primary ("%" ["of" unary] | "squared" | "cubed")*
    primary := NUMBER | "(" expr ")" | ("sqrt" | "cbrt") unary
             | ("divide" | "multiply" | "increase" | "decrease") expr "by" unary
             | "add" expr ("to" | "and") unary | "subtract" expr "from" unary
             | ("sum" | "product" | "difference") expr "and" unary

Percentages follow pocket calculators and search engines: ``x%`` is ``x / 100``;
``a + b%`` and ``a - b%`` add or take away ``b`` percent *of a* (``200 + 15% = 230``);
``x% of y`` is ``x / 100 * y``. A ``%`` directly followed by a number or "(" is
the modulo operator (``10 % 3 = 1``); modulo is floored, as in Python.
Number words ("twelve") are not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)

MAX_QUESTION_CHARS = 500
MAX_DEPTH = 64
MAX_EXPONENT = 1000
MAX_DIGITS = 100
DISPLAY_DECIMALS = 12

_CONTEXT = Context(
    prec=MAX_DIGITS + 2 * DISPLAY_DECIMALS,
    rounding=ROUND_HALF_EVEN,
    Emax=4 * MAX_DIGITS,
    Emin=-4 * MAX_DIGITS,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)


class NotArithmetic(ValueError):
    """The calculator cannot answer; ``str(exc)`` says why in plain words.

    Raised as is when the text holds no readable expression. Its subclasses
    mark an expression that was read but has no answer, so one ``except
    NotArithmetic`` catches every refusal.
    """


class UndefinedResult(NotArithmetic):
    """Division by zero, an even root of a negative number and the like."""


class OutOfBounds(NotArithmetic):
    """The question or a number in it exceeds the calculator's safety limits."""


@dataclass(frozen=True, slots=True)
class Calculation:
    """What the calculator read (``expression``, normalised) and its exact ``value``."""

    expression: str
    value: Decimal

    @property
    def exact(self) -> bool:
        """True when :func:`format_number` shows the value without rounding."""
        return Decimal(format_number(self.value)) == self.value

    @property
    def answer(self) -> str:
        sign = "=" if self.exact else "≈"
        return f"{self.expression} {sign} {format_number(self.value)}"


def evaluate(question: str) -> Decimal:
    """The value of the one arithmetic expression in ``question``.

    Raises :class:`NotArithmetic` (or a subclass) with a human message otherwise.
    """
    return calculate(question).value


def format_number(value: Decimal) -> str:
    """Plain decimal text: no exponent, no thousands separators, no trailing zeros,
    at most 12 decimal places (rounded half up)."""
    if not value.is_finite():
        raise ValueError(f"cannot format {value}")
    context = Context(prec=max(value.adjusted(), 0) + DISPLAY_DECIMALS + 2, rounding=ROUND_HALF_UP)
    rounded = value.quantize(Decimal(1).scaleb(-DISPLAY_DECIMALS), context=context)
    return "0" if rounded.is_zero() else _plain(rounded)


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


# --- 1. words to operators -------------------------------------------------

_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"[×·∗]", " * "),
        (r"÷", " / "),
        (r"−", " - "),
        (r"√", " sqrt "),
        (r"²", " squared "),
        (r"³", " cubed "),
        (r"\*\*", " ^ "),
        (r"\bper\s*cent(?:age)?\b|\bpercent(?:age)?\b|\bpct\b", " % "),
        (r"\b(?:to|raised\s+to)\s+the\s+power\s+of\b|\braised\s+to\b", " ^ "),
        (r"\bmultiplied\s+by\b|\btimes\b", " * "),
        (r"\bdivided\s+by\b|\bover\b", " / "),
        (r"\bplus\b|\badded\s+to\b|\bincreased\s+by\b", " + "),
        (r"\bminus\b|\bdecreased\s+by\b", " - "),
        (r"\bsubtracted\s+from\b", " subfrom "),
        (r"\bmodulo\b|\bmod\b", " mod "),
        (r"\bsquare\s+root(?:\s+of)?\b", " sqrt "),
        (r"\bcube\s+root(?:\s+of)?\b", " cbrt "),
        (r"\bsum\s+of\b", " sum "),
        (r"\bproduct\s+of\b", " product "),
        (r"\bdifference\s+(?:between|of)\b", " difference "),
        (r"(?<=[\d)])\s*x\s*(?=[\d(.])", " * "),
    )
)


def normalise(question: str) -> str:
    """Lower-case ``question`` and replace operator words and symbols with operators."""
    text = question.lower()
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


# --- 2. tokens -------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d|,\d))"  # 2,340 and 1,234.5
    r"|(?P<bad>\d+(?:,\d+)+(?:\.\d+)?)"  # 1,234,56 and 12,34: misplaced separators
    r"|(?P<plain>(?:\d+(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?)"  # 2340, 3.5, .5, 1e5
    r"|(?P<op>[-+*/^%()])"
    r"|(?P<word>[a-z_]+)"
    r"|(?P<space>\s+)"
    r"|(?P<other>.)",
    re.DOTALL,
)
_CONNECTORS = frozenset({"of", "by", "to", "and", "from"})
_OPERATOR_WORDS = frozenset(
    {"mod", "subfrom", "squared", "cubed", "sqrt", "cbrt", "divide", "multiply", "add"}
    | {"subtract", "increase", "decrease", "sum", "product", "difference"}
)
_KEYWORDS = _CONNECTORS | _OPERATOR_WORDS
_FILLERS = frozenset({"the", "a", "an", "please"})
_CANNOT_START = _CONNECTORS | {"*", "/", "^", "%", ")", "mod", "subfrom", "squared", "cubed"}
_CANNOT_END = (
    _CONNECTORS | {"+", "-", "*", "/", "^", "("} | (_OPERATOR_WORDS - {"squared", "cubed"})
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "num", "bad" (a malformed number), "op", "word" or "noise"
    text: str

    @property
    def is_operator(self) -> bool:
        return (self.kind == "op" and self.text not in "()") or self.text in _OPERATOR_WORDS


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        kind, value = match.lastgroup or "other", match.group()
        kind = "num" if kind == "plain" else kind
        if kind == "space" or value in _FILLERS:
            continue
        if kind in ("num", "bad"):
            tokens.append(_Token(kind, value.replace(",", "") if kind == "num" else value))
        elif kind == "op" or (kind == "word" and value in _KEYWORDS):
            tokens.append(_Token("word" if kind == "word" else "op", value))
        else:
            tokens.append(_Token("noise", value))
    return tokens


def _candidates(tokens: list[_Token]) -> list[list[_Token]]:
    """Runs of grammar tokens between noise, trimmed of ends no expression has."""
    runs: list[list[_Token]] = [[]]
    for token in tokens:
        if token.kind == "noise":
            runs.append([])
        else:
            runs[-1].append(token)
    trimmed = []
    for run in runs:
        start, end = 0, len(run)
        while start < end and run[start].text in _CANNOT_START:
            start += 1
        while end > start and run[end - 1].text in _CANNOT_END:
            end -= 1
        if any(token.kind in ("num", "bad") for token in run[start:end]):
            trimmed.append(run[start:end])
    return trimmed


# --- 3. the expression tree --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Num:
    value: Decimal
    text: str = ""  # as written, when plain decimal notation would not show it well (1e-400)


@dataclass(frozen=True, slots=True)
class _Neg:
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Percent:
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Root:
    degree: int  # 2 or 3
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Binary:
    op: str  # "+", "-", "*", "/", "mod" or "^"
    left: _Node
    right: _Node


_Node = _Num | _Neg | _Percent | _Root | _Binary

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "mod": 2, "^": 4}
_NEG, _ATOM = 3, 5


class _ParseError(Exception):
    """A candidate that is not a well-formed expression (internal: becomes NotArithmetic)."""


class _Parser:
    """Recursive descent over one candidate run; see the grammar in the module docstring."""

    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._pos = 0
        self._depth = 0

    def parse(self) -> _Node:
        node = self._expr()
        if self._pos < len(self._tokens):
            raise _ParseError(f"unexpected '{self._tokens[self._pos].text}'")
        return node

    def _peek(self, offset: int = 0) -> _Token | None:
        index = self._pos + offset
        return self._tokens[index] if index < len(self._tokens) else None

    def _accept(self, *texts: str) -> str | None:
        token = self._peek()
        if token is not None and token.kind != "num" and token.text in texts:
            self._pos += 1
            return token.text
        return None

    def _expect(self, *texts: str) -> str:
        found = self._accept(*texts)
        if found is None:
            token = self._peek()
            where = f"'{token.text}'" if token else "the end"
            raise _ParseError(f"expected {' or '.join(repr(t) for t in texts)}, found {where}")
        return found

    def _expr(self) -> _Node:
        node = self._term()
        while op := self._accept("+", "-", "subfrom"):
            right = self._term()
            node = _binary_additive(op, node, right)
        return node

    def _term(self) -> _Node:
        node = self._unary()
        while op := self._accept("*", "/", "mod", "%"):
            node = _Binary("mod" if op == "%" else op, node, self._unary())
        return node

    def _unary(self) -> _Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise OutOfBounds(f"the expression is nested more than {MAX_DEPTH} levels deep")
        try:
            if self._accept("-"):
                return _Neg(self._unary())
            if self._accept("+"):
                return self._unary()
            return self._power()
        finally:
            self._depth -= 1

    def _power(self) -> _Node:
        node = self._postfix()
        if self._accept("^"):
            node = _Binary("^", node, self._unary())
        return node

    def _postfix(self) -> _Node:
        node = self._primary()
        while True:
            if self._at_percent():
                self._pos += 1
                node = _Percent(node)
                if self._accept("of"):
                    node = _Binary("*", node, self._unary())
            elif self._accept("squared"):
                node = _Binary("^", node, _Num(Decimal(2)))
            elif self._accept("cubed"):
                node = _Binary("^", node, _Num(Decimal(3)))
            else:
                return node

    def _at_percent(self) -> bool:
        """A ``%`` that means percent: not followed by an operand (then it is modulo)."""
        token, after = self._peek(), self._peek(1)
        if token is None or token.text != "%":
            return False
        return after is None or not (after.kind == "num" or after.text in ("(", "sqrt", "cbrt"))

    def _primary(self) -> _Node:
        token = self._peek()
        if token is None:
            raise _ParseError("expected a number, found the end")
        self._pos += 1
        if token.kind == "num":
            return _Num(Decimal(token.text), token.text if "e" in token.text else "")
        if token.kind == "bad":
            raise _ParseError(f"'{token.text}' is not a number (misplaced thousands separators)")
        match token.text:
            case "(":
                node = self._expr()
                self._expect(")")
                return node
            case "sqrt" | "cbrt":
                return _Root(2 if token.text == "sqrt" else 3, self._unary())
            case "divide" | "multiply":
                left = self._expr()
                self._expect("by")
                return _Binary("/" if token.text == "divide" else "*", left, self._unary())
            case "increase" | "decrease":
                left = self._expr()
                self._expect("by")
                return _binary_additive(
                    "+" if token.text == "increase" else "-", left, self._unary()
                )
            case "add":
                left = self._expr()
                self._expect("to", "and")
                return _binary_additive("+", self._unary(), left)
            case "subtract":
                left = self._expr()
                self._expect("from")
                return _binary_additive("-", self._unary(), left)
            case "sum" | "difference":
                left = self._expr()
                self._expect("and")
                return _binary_additive("+" if token.text == "sum" else "-", left, self._unary())
            case "product":
                left = self._expr()
                self._expect("and")
                return _Binary("*", left, self._unary())
        raise _ParseError(f"expected a number, found '{token.text}'")


def _binary_additive(op: str, left: _Node, right: _Node) -> _Node:
    """``a + b`` or ``a - b``; with a bare percentage, ``a * (1 + b/100)``."""
    if op == "subfrom":
        op, left, right = "-", right, left
    if isinstance(right, _Percent):
        return _Binary("*", left, _Binary(op, _Num(Decimal(1)), right))
    return _Binary(op, left, right)


def _is_operation(node: _Node) -> bool:
    while isinstance(node, _Neg):
        node = node.operand
    return not isinstance(node, _Num)


# --- rendering ---------------------------------------------------------------


def _render(node: _Node) -> tuple[str, int]:
    """(text, precedence) of ``node`` with only the parentheses it needs."""
    match node:
        case _Num(value, text):
            return text or _plain(value), _ATOM
        case _Percent(_Num(value, "")):
            with localcontext(_CONTEXT):
                return _plain(value / 100), _ATOM
        case _Percent(operand):
            return f"{_wrap(operand, 2, strict=False)} / 100", 2
        case _Root(degree, operand):
            return f"{'sqrt' if degree == 2 else 'cbrt'}({_render(operand)[0]})", _ATOM
        case _Neg(operand):
            text, precedence = _render(operand)
            paren = precedence < _ATOM  # -(2 ^ 2), never the ambiguous -2 ^ 2
            return f"-({text})" if paren else f"-{text}", _NEG
        case _Binary(op, left, right):
            precedence = _PRECEDENCE[op]
            left_text = _wrap(left, precedence, strict=op == "^")
            right_text = _wrap(right, precedence, strict=op != "^")
            if isinstance(right, _Neg) and not right_text.startswith("("):
                right_text = f"({right_text})"
            return f"{left_text} {op} {right_text}", precedence
    raise AssertionError(node)  # pragma: no cover


def _wrap(node: _Node, precedence: int, *, strict: bool) -> str:
    text, own = _render(node)
    return f"({text})" if own < precedence or (strict and own == precedence) else text


# --- evaluation --------------------------------------------------------------


def _value(node: _Node) -> Decimal:
    match node:
        case _Num(value, _):
            return _bounded(value)
        case _Neg(operand):
            return -_value(operand)
        case _Percent(operand):
            return _bounded(_value(operand) / 100)
        case _Root(degree, operand):
            return _root(degree, _value(operand))
        case _Binary(op, left, right):
            return _bounded(_apply(op, _value(left), _value(right), node))
    raise AssertionError(node)  # pragma: no cover


def _bounded(value: Decimal) -> Decimal:
    if value.adjusted() >= MAX_DIGITS:
        raise OutOfBounds(f"a number in the calculation has more than {MAX_DIGITS} digits")
    return value


def _apply(op: str, a: Decimal, b: Decimal, node: _Node) -> Decimal:
    if op in ("/", "mod") and b.is_zero():
        raise UndefinedResult(f"cannot divide by zero (in '{_render(node)[0]}')")
    try:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "mod":
            remainder = a % b  # sign of the dividend; floor it like Python's int %
            return remainder + b if remainder and (remainder < 0) != (b < 0) else remainder
        return _power(a, b, node)
    except InvalidOperation as exc:
        raise OutOfBounds(f"cannot compute '{_render(node)[0]}' exactly") from exc


def _power(base: Decimal, exponent: Decimal, node: _Node) -> Decimal:
    if abs(exponent) > MAX_EXPONENT:
        raise OutOfBounds(
            f"the exponent {format_number(exponent)} is too large (in '{_render(node)[0]}'); "
            f"the calculator allows at most {MAX_EXPONENT}"
        )
    integral = exponent == exponent.to_integral_value()
    if base.is_zero():
        if exponent < 0:
            raise UndefinedResult(f"cannot divide by zero (in '{_render(node)[0]}')")
        return Decimal(1) if exponent.is_zero() else Decimal(0)
    if base < 0 and not integral:
        raise UndefinedResult(
            "a negative number to a fractional power is not a real number "
            f"(in '{_render(node)[0]}')"
        )
    return base**exponent  # an overflow past Emax is trapped and refused


def _root(degree: int, value: Decimal) -> Decimal:
    if degree == 2:
        if value < 0:
            raise UndefinedResult(
                f"the square root of a negative number ({_plain(value)}) is not a real number"
            )
        return value.sqrt()
    magnitude = abs(value) ** (Decimal(1) / 3) if value else Decimal(0)
    snapped = magnitude.quantize(Decimal(1).scaleb(-DISPLAY_DECIMALS))
    if snapped**3 == abs(value):  # an exact cube root: drop the last-digit noise of 1/3
        magnitude = snapped.normalize()
    return -magnitude if value < 0 else magnitude


# --- the whole question --------------------------------------------------------


def calculate(question: str) -> Calculation:
    """Read the one arithmetic expression in ``question`` and compute it exactly.

    Raises :class:`NotArithmetic` when there is none, or more than one, or it
    cannot be read; :class:`UndefinedResult` and :class:`OutOfBounds` when it
    has no answer or exceeds the limits.
    """
    if len(question) > MAX_QUESTION_CHARS:
        raise OutOfBounds(
            f"the question is too long for the calculator ({len(question)} characters; "
            f"at most {MAX_QUESTION_CHARS})"
        )
    found: list[_Node] = []
    unreadable: list[str] = []
    for run in _candidates(_tokenize(normalise(question))):
        text = " ".join(token.text for token in run)
        try:
            node = _Parser(run).parse()
        except _ParseError as exc:
            if any(token.is_operator for token in run):
                unreadable.append(f"cannot read '{text}' as arithmetic: {exc}")
            continue
        if _is_operation(node):
            found.append(node)
    if len(found) > 1:
        listed = ", ".join(f"'{_render(node)[0]}'" for node in found)
        raise NotArithmetic(f"found more than one expression ({listed}); ask one at a time")
    if not found:
        if unreadable:
            raise NotArithmetic(unreadable[0])
        raise NotArithmetic(
            f"the calculator answers arithmetic only; found no expression in {_clip(question)!r}"
        )
    try:
        with localcontext(_CONTEXT):
            value = _value(found[0])
    except Overflow as exc:
        raise OutOfBounds(f"a number in the calculation has more than {MAX_DIGITS} digits") from exc
    node = found[0]
    if isinstance(node, _Percent):  # "what is 20%": show "20% = 0.2", not "0.2 = 0.2"
        return Calculation(f"{_wrap(node.operand, _ATOM, strict=False)}%", value)
    return Calculation(_render(node)[0], value)


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
