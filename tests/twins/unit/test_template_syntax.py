"""Go text/template semantics of the devstack renderer (outputs as Go/consul-template give them)."""

from __future__ import annotations

import pytest

from devstack.template import RenderContext, TemplateError, UnsupportedError, render_sync


def r(text: str, **env: str) -> str:
    return render_sync(text, RenderContext(env=env)).text


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("plain text", "plain text"),
        ('{{ "a" }}{{ `raw\\n` }}', "araw\\n"),
        ('{{ "tab\\there\\u00e9\\x41" }}', "tab\there\u00e9A"),
        ("a  {{- 1 -}}  b", "a1b"),
        ("a \n {{- 1 }} \n b", "a1 \n b"),
        ("{{ 1 -}}\n\n  x", "1x"),
        ("{{-3}}", "-3"),
        ("x{{/* comment {{ }} */}}y", "xy"),
        ("x  {{- /* trimmed comment */ -}}  \n y", "xy"),
        ("{{ true }} {{ false }} {{ nil | print }}", "true false <nil>"),
        ("{{ 42 }} {{ 0x1F }} {{ 1_000 }} {{ 'a' }} {{ -7 }}", "42 31 1000 97 -7"),
        (
            "{{ 1.5 }} {{ 1e3 }} {{ 0.0001 }} {{ 1000000.0 }} {{ 1e-05 }}",
            "1.5 1000 0.0001 1e+06 1e-05",
        ),
    ],
)
def test_literals_trim_and_comments(text: str, want: str) -> None:
    assert r(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{{ $x := 1 }}{{ $x }}{{ $x = 2 }}{{ $x }}", "12"),
        ("{{ $x := 1 }}{{ if true }}{{ $x := 5 }}{{ $x }}{{ end }}{{ $x }}", "51"),
        ("{{ $x := 1 }}{{ if true }}{{ $x = 5 }}{{ end }}{{ $x }}", "5"),
        ('{{ with $v := env "A" }}{{ $v }}/{{ . }}{{ end }}', "va/va"),
        ('{{ with env "NOPE" }}yes{{ else }}no{{ end }}', "no"),
        ('{{ with env "NOPE" }}a{{ else with env "A" }}{{ . }}{{ end }}', "va"),
        ('{{ if 0 }}a{{ else if "" }}b{{ else if 1 }}c{{ else }}d{{ end }}', "c"),
        ('{{ if and 1 0 }}y{{ else }}n{{ end }}{{ or 0 "" "z" }}{{ and 1 2 }}', "nz2"),
        ('{{ not 0 }}{{ not "x" }}', "truefalse"),
        ('{{ range split "," "a,b,c" }}[{{ . }}]{{ end }}', "[a][b][c]"),
        ('{{ range $i, $v := split "," "a,b" }}{{ $i }}={{ $v }};{{ end }}', "0=a;1=b;"),
        ('{{ range $v := split "," "a,b" }}{{ $v }}{{ end }}', "ab"),
        ('{{ range $k, $v := parseJSON `{"b":2,"a":1}` }}{{ $k }}{{ $v }}{{ end }}', "a1b2"),
        ("{{ range parseJSON `[]` }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ range $i := loop 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ $i }}{{ end }}", "012"),
        ("{{ range loop 4 }}{{ if eq . 1 }}{{ continue }}{{ end }}{{ . }}{{ end }}", "023"),
        ("{{ range $i, $_ := loop 2 }}{{ $ }}{{ end }}", "<no value><no value>"),
        ('{{ "x" | printf "%s-%s" "y" }}', "y-x"),
        ('{{ env "A" | toUpper | printf "<%s>" }}', "<VA>"),
        ('{{ (parseJSON `{"a":{"b":"deep"}}`).a.b }}', "deep"),
        ('{{ $m := parseJSON `{"a":{"b":[1,2]}}` }}{{ $m.a.b }} {{ index $m.a.b 1 }}', "[1 2] 2"),
        ('{{ $m := parseJSON `{"a":1}` }}{{ $m.missing }}', "<no value>"),
        ('{{ parseJSON `{"b":[true,null],"a":"s"}` }}', "map[a:s b:[true <nil>]]"),
        ('{{ len "abc" }}{{ len (split "," "a,b") }}{{ slice "abcdef" 1 3 }}', "32bc"),
        ('{{ eq 1 2 3 1 }}{{ ne "a" "b" }}{{ lt 1 2 }}{{ ge "b" "a" }}', "truetruetruetrue"),
        ('{{ print "a" 1 2 "b" }}|{{ println "a" 1 }}', "a1 2b|a 1\n"),
    ],
)
def test_control_flow_variables_and_pipes(text: str, want: str) -> None:
    assert r(text, A="va") == want


def test_custom_delimiters_leave_braces_alone() -> None:
    ctx = RenderContext(env={"P": "8443"}, left_delim="[[", right_delim="]]")
    out = render_sync('map {{ $x }} listen [[ env "P" ]] [[- " ssl" ]];', ctx).text
    assert out == "map {{ $x }} listen 8443 ssl;"


def test_right_delimiter_inside_a_string_does_not_end_the_action() -> None:
    assert r('{{ "}}" }}{{ printf "%s" "{{" }}') == "}}{{"


def test_missing_key_errors_when_asked() -> None:
    ctx = RenderContext(error_on_missing_key=True)
    with pytest.raises(TemplateError, match='map has no entry for key "nope"'):
        render_sync("{{ (parseJSON `{}`).nope }}", ctx)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ nosuch 1 }}", 'function "nosuch" not defined'),
        ("{{ if 1 }}x", "missing {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ $y }}", "undefined variable: $y"),
        ('{{ "a" "b" }}', "can't give argument to non-function"),
        ("{{ .Foo }}", "nil pointer evaluating interface {}.Foo"),
        ("{{ (parseJSON `[1]`).x }}", "can't evaluate field x"),
        ("{{ 1 | 2 }}", "can't give argument to non-function"),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("{{ 1 ", "unclosed action"),
        ("{{/* open", "unclosed comment"),
        ("{{ range 3.5 }}{{ end }}", "range can't iterate over 3.5"),
        ('{{ eq 1 "1" }}', "incompatible types for comparison"),
        ('{{ index (split "," "a") 5 }}', "index out of range: 5"),
        ('{{ printf "%z" 1 }}', "verb %z is not supported"),
        ("{{ env }}", "wrong number of args for env"),
    ],
)
def test_errors_are_loud_and_named(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        r(text)
    assert str(info.value).startswith("template: ")
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ('{{ define "x" }}{{ end }}', "{{define}}"),
        ('{{ template "x" }}', "{{template}}"),
        ('{{ block "x" . }}{{ end }}', "{{block}}"),
        ('{{ plugin "x" }}', "'plugin'"),
        ("{{ range services }}{{ end }}", "'services'"),
        ("{{ timestamp }}", "'timestamp'"),
        ("{{ if false }}{{ nomadServices }}{{ end }}", "'nomadServices'"),
    ],
)
def test_unsupported_constructs_fail_even_in_branches_never_taken(text: str, name: str) -> None:
    with pytest.raises(UnsupportedError, match="not supported") as info:
        r(text)
    assert name in str(info.value)


def test_line_numbers_in_errors() -> None:
    with pytest.raises(TemplateError, match=r"^template: conf:3: "):
        render_sync("a\nb\n{{ nosuch }}", RenderContext(name="conf"))
