"""deploytools.hclexpr (beside helm-less-deploy/gen.py): HCL2 values as python-hcl2
returns them, evaluated like jobspec2."""

from __future__ import annotations

import hcl2
import pytest
from deploytools.hclexpr import HclError, Scope, evaluate, evaluate_expression, heredoc_body
from hcl2.utils import SerializationOptions

SCOPE = Scope(
    variables={"driver": "docker", "dcs": ["dc1", "dc2"], "n": 3, "on": True, "img": "x/y"},
    locals={"tag": "1.2"},
)


def attr(source: str) -> object:
    """The raw python-hcl2 value of `v = <source>`."""
    options = SerializationOptions(with_comments=False, preserve_heredocs=True)
    return hcl2.loads(f"v = {source}\n", serialization_options=options)["v"]


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('"plain"', "plain"),
        ('"a\\"b\\\\c\\nd\\te"', 'a"b\\c\nd\te'),
        ('"\\u00e9"', "é"),
        ("var.driver", "docker"),
        ('"${var.img}:${local.tag}"', "x/y:1.2"),
        ('"${var.dcs}"', ["dc1", "dc2"]),  # one interpolation keeps the value's type
        ('"n=${var.n} on=${var.on}"', "n=3 on=true"),
        ('var.driver == "docker" ? "img" : null', "img"),
        ('var.driver != "docker" ? "img" : null', None),
        ('var.driver == "docker" && !var.on', False),
        ("(var.on || false) && true", True),
        ("[var.img, local.tag]", ["x/y", "1.2"]),
        ("var.dcs[1]", "dc2"),
        ("null", None),
        ("42", 42),
        ("true", True),
        ('{ a = "b", c = var.n }', {"a": "b", "c": 3}),
    ],
)
def test_values(source: str, value: object) -> None:
    assert evaluate(attr(source), SCOPE) == value


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('"${NOMAD_ADDR_http}"', "${NOMAD_ADDR_http}"),
        (
            '"http://${attr.unique.network.ip-address}:4646"',
            "http://${attr.unique.network.ip-address}:4646",
        ),
        ('"${node.class}-${var.driver}"', "${node.class}-docker"),
        ('"$${var.driver} %%{x}"', "${var.driver} %{x}"),
    ],
)
def test_runtime_interpolation_is_kept_for_the_nomad_client(source: str, value: str) -> None:
    assert evaluate(attr(source), SCOPE) == value


def test_flush_heredoc_strips_common_indent_keeps_last_newline_and_backslashes() -> None:
    raw = attr("<<-EOT\n    a=${var.driver}\n      b\\n\n    EOT")
    assert evaluate(raw, SCOPE) == "a=docker\n  b\\n\n"


def test_plain_heredoc_keeps_indent() -> None:
    assert heredoc_body("<<EOT\n  x\n y\nEOT") == "  x\n y\n"


@pytest.mark.parametrize(
    "source",
    [
        "var.missing",
        "other.thing",
        '"${var.dcs} and more"',  # a list cannot be part of a string
        '"%{ if true }x%{ endif }"',
        "upper(var.driver)",
        '"a" && true',
    ],
)
def test_unsupported_or_wrong_is_an_error_not_a_guess(source: str) -> None:
    with pytest.raises(HclError):
        evaluate(attr(source), SCOPE)


@pytest.mark.parametrize("text", ['var.n == 3 ? "a"', "var.", "(var.on", "[1, 2", "var.n @ 2"])
def test_malformed_expressions(text: str) -> None:
    with pytest.raises(HclError):
        evaluate_expression(text, SCOPE)
