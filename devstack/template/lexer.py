"""Tokens of Go text/template, as consul-template (and so Nomad) parses them.

Text and actions alternate; inside an action we lex word by word so that a right delimiter
inside a quoted string does not end the action. Trim markers (`{{- ` / ` -}}`) and comments
(`{{/* */}}`) are handled here, so the parser only sees meaningful tokens. Each token records
whether whitespace preceded it, because `.a.b` (one chained field) and `.a .b` (two arguments)
differ only in that.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from devstack.template.errors import TemplateError


class T(Enum):
    TEXT = auto()
    LEFT = auto()
    RIGHT = auto()
    IDENT = auto()
    KEYWORD = auto()
    FIELD = auto()
    VARIABLE = auto()
    DOT = auto()
    STRING = auto()
    NUMBER = auto()
    BOOL = auto()
    NIL = auto()
    PIPE = auto()
    LPAREN = auto()
    RPAREN = auto()
    DECLARE = auto()
    ASSIGN = auto()
    COMMA = auto()


KEYWORDS = frozenset(
    {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
)


@dataclass(frozen=True)
class Token:
    kind: T
    value: str
    line: int
    space_before: bool = False


def _is_space(c: str) -> bool:
    return c in " \t\r\n"


def _alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


class Lexer:
    def __init__(self, text: str, name: str, left: str = "{{", right: str = "}}") -> None:
        self.src, self.name = text, name
        self.left, self.right = left or "{{", right or "}}"
        self.pos, self.line = 0, 1
        self.tokens: list[Token] = []

    def fail(self, msg: str) -> TemplateError:
        return TemplateError(f"template: {self.name}:{self.line}: {msg}")

    def run(self) -> list[Token]:
        src = self.src
        while self.pos < len(src):
            start = src.find(self.left, self.pos)
            if start < 0:
                self._text(src[self.pos :])
                break
            text = src[self.pos : start]
            after = start + len(self.left)
            trim_left = (
                src.startswith("-", after) and after + 1 < len(src) and _is_space(src[after + 1])
            )
            if trim_left:
                text = text.rstrip(" \t\r\n")
            self._text(text)
            self.line += src.count("\n", self.pos, after)
            self.pos = after + (2 if trim_left else 0)
            self._action()
        return self.tokens

    def _text(self, text: str) -> None:
        if text:
            self.tokens.append(Token(T.TEXT, text, self.line))

    def _at_right(self) -> tuple[bool, bool]:
        """(at a right delimiter, it carries a trim marker) at self.pos, after spaces."""
        src, p = self.src, self.pos
        if src.startswith(self.right, p):
            return True, False
        q = p
        while q < len(src) and _is_space(src[q]):
            q += 1
        if q > p and src.startswith("-" + self.right, q):
            return True, True
        return False, False

    def _close(self, trim: bool) -> None:
        src = self.src
        end = src.find(self.right, self.pos) + len(self.right)
        self.line += src.count("\n", self.pos, end)
        self.pos = end
        if trim:
            while self.pos < len(src) and _is_space(src[self.pos]):
                if src[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def _comment(self) -> bool:
        src = self.src
        if not src.startswith("/*", self.pos):
            return False
        end = src.find("*/", self.pos + 2)
        if end < 0:
            raise self.fail("unclosed comment")
        self.line += src.count("\n", self.pos, end)
        self.pos = end + 2
        at, trim = self._at_right()
        if not at:
            raise self.fail("comment ends before closing delimiter")
        self._close(trim)
        return True

    def _action(self) -> None:
        if self._comment():
            return
        line0 = self.line
        self.tokens.append(Token(T.LEFT, self.left, line0))
        depth = 0
        space = False
        src = self.src
        while True:
            if self.pos >= len(src):
                raise TemplateError(f"template: {self.name}:{line0}: unclosed action")
            at, trim = self._at_right()
            if at and depth == 0:
                self.tokens.append(Token(T.RIGHT, self.right, self.line))
                self._close(trim)
                return
            c = src[self.pos]
            if _is_space(c):
                if c == "\n":
                    self.line += 1
                self.pos += 1
                space = True
                continue
            tok = self._word(c)
            if tok.kind is T.LPAREN:
                depth += 1
            elif tok.kind is T.RPAREN:
                depth -= 1
                if depth < 0:
                    raise self.fail("unexpected right paren")
            self.tokens.append(
                Token(tok.kind, tok.value, tok.line, space or self.tokens[-1].kind is T.LEFT)
            )
            space = False

    def _word(self, c: str) -> Token:
        src, p, line = self.src, self.pos, self.line
        simple = {"|": T.PIPE, "(": T.LPAREN, ")": T.RPAREN, ",": T.COMMA}
        if c in simple:
            self.pos += 1
            return Token(simple[c], c, line)
        if src.startswith(":=", p):
            self.pos += 2
            return Token(T.DECLARE, ":=", line)
        if c == "=":
            self.pos += 1
            return Token(T.ASSIGN, "=", line)
        if c == '"':
            return self._quoted()
        if c == "`":
            end = src.find("`", p + 1)
            if end < 0:
                raise self.fail("unterminated raw quoted string")
            self.line += src.count("\n", p, end)
            self.pos = end + 1
            return Token(T.STRING, src[p + 1 : end], line)
        if c == "'":
            return self._char()
        if c == "$":
            q = p + 1
            while q < len(src) and _alnum(src[q]):
                q += 1
            self.pos = q
            return Token(T.VARIABLE, src[p:q], line)
        if c == ".":
            if p + 1 < len(src) and src[p + 1].isdigit():
                return self._number()
            q = p + 1
            while q < len(src) and _alnum(src[q]):
                q += 1
            self.pos = q
            return Token(T.DOT if q == p + 1 else T.FIELD, src[p:q], line)
        if c.isdigit() or (c in "+-" and p + 1 < len(src) and src[p + 1].isdigit()):
            return self._number()
        if _alnum(c):
            q = p
            while q < len(src) and _alnum(src[q]):
                q += 1
            self.pos = q
            word = src[p:q]
            if word in ("true", "false"):
                return Token(T.BOOL, word, line)
            if word == "nil":
                return Token(T.NIL, word, line)
            return Token(T.KEYWORD if word in KEYWORDS else T.IDENT, word, line)
        raise self.fail(f"unexpected {c!r} in command")

    def _quoted(self) -> Token:
        src, p = self.src, self.pos
        q = p + 1
        while q < len(src) and src[q] != '"':
            if src[q] == "\n":
                raise self.fail("unterminated quoted string")
            q += 2 if src[q] == "\\" else 1
        if q >= len(src):
            raise self.fail("unterminated quoted string")
        self.pos = q + 1
        return Token(T.STRING, _unquote(src[p + 1 : q], self), self.line)

    def _char(self) -> Token:
        src, p = self.src, self.pos
        q = p + 1
        while q < len(src) and src[q] != "'":
            q += 2 if src[q] == "\\" else 1
        body = _unquote(src[p + 1 : q], self)
        if len(body) != 1:
            raise self.fail(f"malformed character constant: {src[p : q + 1]}")
        self.pos = q + 1
        return Token(T.NUMBER, str(ord(body)), self.line)

    def _number(self) -> Token:
        src, p = self.src, self.pos
        q = p + 1
        while q < len(src) and (_alnum(src[q]) or src[q] in ".+-"):
            if src[q] in "+-" and src[q - 1] not in "eEpP":
                break
            q += 1
        self.pos = q
        return Token(T.NUMBER, src[p:q], self.line)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a"}
_ESCAPES |= {"b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _unquote(body: str, lx: Lexer) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        if nxt in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[nxt]
            digits = body[i + 2 : i + 2 + width]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError as e:
                raise lx.fail(f"bad escape \\{nxt}{digits}") from e
            i += 2 + width
        elif nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            raise lx.fail(f"unknown escape sequence \\{nxt}")
    return "".join(out)


def lex(text: str, name: str = "template", left: str = "{{", right: str = "}}") -> list[Token]:
    return Lexer(text, name, left, right).run()
