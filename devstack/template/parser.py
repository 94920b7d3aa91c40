"""Parse Go text/template tokens into a small tree (the subset consul-template users write).

Unknown functions are rejected at parse time, exactly like Go (`function "x" not defined`), and
constructs we do not implement (`define`, `template`, `block`) fail with a message naming them,
so a template never renders half-understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devstack.template.errors import TemplateError, UnsupportedError
from devstack.template.lexer import T, Token, lex

# ---- argument nodes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Dot:
    pass


@dataclass(frozen=True)
class Nil:
    pass


@dataclass(frozen=True)
class Literal:
    value: object


@dataclass(frozen=True)
class Field:
    names: tuple[str, ...]  # `.a.b` -> ("a", "b"), evaluated against dot


@dataclass(frozen=True)
class Variable:
    name: str  # "$" or "$x"
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ident:
    name: str  # a function


@dataclass(frozen=True)
class Chain:
    node: Arg  # `(pipeline).a.b`
    names: tuple[str, ...]


@dataclass(frozen=True)
class Command:
    args: tuple[Arg, ...]
    line: int


@dataclass(frozen=True)
class Pipe:
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]
    line: int


Arg = Dot | Nil | Literal | Field | Variable | Ident | Chain | Pipe

# ---- statement nodes --------------------------------------------------------------------------


@dataclass
class Text:
    text: str


@dataclass
class Action:
    pipe: Pipe


@dataclass
class Branch:
    kind: str  # if | with | range
    pipe: Pipe
    body: list[Node] = field(default_factory=list)
    else_body: list[Node] | None = None


@dataclass
class Loop:
    kind: str  # break | continue
    line: int


Node = Text | Action | Branch | Loop


class Parser:
    def __init__(self, tokens: list[Token], name: str, funcs: Mapping[str, object]) -> None:
        self.toks, self.i, self.name, self.funcs = tokens, 0, name, funcs
        self.range_depth = 0

    def fail(self, msg: str, line: int | None = None) -> TemplateError:
        line = line if line is not None else self.peek().line
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    def peek(self, k: int = 0) -> Token:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else Token(T.RIGHT, "EOF", self._last_line())

    def _last_line(self) -> int:
        return self.toks[-1].line if self.toks else 1

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, kind: T, context: str) -> Token:
        tok = self.next()
        if tok.kind is not kind:
            raise self.fail(f"unexpected {tok.value!r} in {context}", tok.line)
        return tok

    def parse(self) -> list[Node]:
        body, stop = self.list_until(())
        if stop is not None:
            raise self.fail(f"unexpected {{{{{stop}}}}}")
        return body

    def list_until(self, stops: tuple[str, ...]) -> tuple[list[Node], str | None]:
        """Nodes until one of the keywords in `stops` (consumed, action start) or EOF."""
        out: list[Node] = []
        while self.i < len(self.toks):
            tok = self.next()
            if tok.kind is T.TEXT:
                out.append(Text(tok.value))
                continue
            kw = self.peek()
            if kw.kind is T.KEYWORD:
                if kw.value in ("end", "else"):
                    if kw.value not in stops:
                        raise self.fail(f"unexpected {{{{{kw.value}}}}}", kw.line)
                    self.next()
                    if kw.value == "end":
                        self.expect(T.RIGHT, "end")
                    return out, kw.value
                out.append(self.control(self.next()))
            else:
                out.append(Action(self.pipeline("command", decl_ok=True)))
                self.expect(T.RIGHT, "command")
        if stops:
            raise self.fail("unexpected EOF, missing {{end}}")
        return out, None

    def control(self, kw: Token) -> Node:
        if kw.value in ("define", "template", "block"):
            raise UnsupportedError(
                f"template: {self.name}:{kw.line}: {{{{{kw.value}}}}} is not supported by this "
                "renderer (consul-template subset)"
            )
        if kw.value in ("break", "continue"):
            if self.range_depth == 0:
                raise self.fail(f"{{{{{kw.value}}}}} outside {{{{range}}}}", kw.line)
            self.expect(T.RIGHT, kw.value)
            return Loop(kw.value, kw.line)
        return self.branch(kw.value)

    def branch(self, kind: str) -> Branch:
        pipe = self.pipeline(kind, decl_ok=True)
        self.expect(T.RIGHT, kind)
        if kind == "range":
            self.range_depth += 1
        body, stop = self.list_until(("end", "else"))
        if kind == "range":
            self.range_depth -= 1
        node = Branch(kind, pipe, body)
        if stop == "else":
            nxt = self.peek()
            if nxt.kind is T.KEYWORD and nxt.value == kind and kind != "range":
                # `else if` / `else with`: a nested branch that shares our {{end}}.
                self.next()
                node.else_body = [self.branch(nxt.value)]
                return node
            self.expect(T.RIGHT, "else")
            node.else_body, stop = self.list_until(("end",))
        return node

    def pipeline(self, context: str, decl_ok: bool) -> Pipe:
        line = self.peek().line
        decl: list[str] = []
        is_assign = False
        if decl_ok and self.peek().kind is T.VARIABLE:
            j = 1
            names = [self.peek().value]
            if self.peek(1).kind is T.COMMA and self.peek(2).kind is T.VARIABLE:
                names.append(self.peek(2).value)
                j = 3
            op = self.peek(j)
            if op.kind in (T.DECLARE, T.ASSIGN):
                if len(names) == 2 and context != "range":
                    raise self.fail(f"too many declarations in {context}", op.line)
                self.i += j + 1
                decl, is_assign = names, op.kind is T.ASSIGN
        cmds: list[Command] = []
        while True:
            cmds.append(self.command(context))
            if self.peek().kind is T.PIPE:
                self.next()
                continue
            break
        return Pipe(tuple(decl), is_assign, tuple(cmds), line)

    def command(self, context: str) -> Command:
        line = self.peek().line
        args: list[Arg] = []
        while self.peek().kind not in (T.RIGHT, T.RPAREN, T.PIPE):
            if args and not self.peek().space_before:
                tok = self.peek()
                raise self.fail(f"missing space before {tok.value!r} in {context}", tok.line)
            args.append(self.operand(context))
        if not args:
            raise self.fail(f"missing value for {context}", line)
        return Command(tuple(args), line)

    def operand(self, context: str) -> Arg:
        tok = self.next()
        node: Arg
        if tok.kind is T.DOT:
            node = Dot()
        elif tok.kind is T.NIL:
            node = Nil()
        elif tok.kind is T.BOOL:
            node = Literal(tok.value == "true")
        elif tok.kind is T.STRING:
            node = Literal(tok.value)
        elif tok.kind is T.NUMBER:
            node = Literal(_number(tok, self))
        elif tok.kind is T.FIELD:
            node = Field((tok.value[1:],))
        elif tok.kind is T.VARIABLE:
            node = Variable(tok.value)
        elif tok.kind is T.IDENT:
            if tok.value not in self.funcs:
                raise self.fail(f'function "{tok.value}" not defined', tok.line)
            if self.funcs[tok.value] is None:
                raise UnsupportedError(
                    f"template: {self.name}:{tok.line}: function {tok.value!r} is not supported "
                    "by this renderer (consul-template subset)"
                )
            node = Ident(tok.value)
        elif tok.kind is T.LPAREN:
            node = self.pipeline(context, decl_ok=False)
            self.expect(T.RPAREN, "parenthesized pipeline")
        else:
            raise self.fail(f"unexpected {tok.value!r} in {context}", tok.line)
        names: list[str] = []
        while self.peek().kind is T.FIELD and not self.peek().space_before:
            names.append(self.next().value[1:])
        if not names:
            return node
        if isinstance(node, Field):
            return Field(node.names + tuple(names))
        if isinstance(node, Variable):
            return Variable(node.name, tuple(names))
        if isinstance(node, Literal | Nil | Dot):
            raise self.fail(f"unexpected . after term {tok.value!r}", tok.line)
        return Chain(node, tuple(names))


def _number(tok: Token, p: Parser) -> int | float:
    text = tok.value.replace("_", "")
    try:
        if any(c in text for c in ".eE") and not text.lower().startswith(("0x", "-0x", "+0x")):
            return float(text)
        return int(text, 0)
    except ValueError as e:
        raise p.fail(f"bad number syntax: {tok.value!r}", tok.line) from e


def parse(
    text: str,
    funcs: Mapping[str, object],
    name: str = "template",
    left: str = "{{",
    right: str = "}}",
) -> list[Node]:
    return Parser(lex(text, name, left, right), name, funcs).parse()
