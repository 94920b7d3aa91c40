"""consul-template helper functions, printf verbs, and writeToFile of the devstack renderer."""

from __future__ import annotations

import json
import os
import stat

import pytest

from devstack.template import RenderContext, TemplateError, render_sync


def r(text: str, **env: str) -> str:
    return render_sync(text, RenderContext(env=env)).text


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{{ printf "%s|%d|%v|%q|%t" "s" 42 true "q" false }}', 's|42|true|"q"|false'),
        (
            '{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b|%c" "ab" "ab" 42 255 255 8 5 65 }}',
            "   ab|ab   |00042|ff|FF|10|101|A",
        ),
        (
            '{{ printf "%.2f|%8.3f|%e|%g|%v" 3.14159 2.5 1234.5 0.5 2.0 }}',
            "3.14|   2.500|1.234500e+03|0.5|2",
        ),
        ('{{ printf "%d%%" 5 }}', "5%"),
        ('{{ printf "%d" "x" }}', "%!d(string=x)"),
        ('{{ printf "%s %s" "a" }}', "a %!s(MISSING)"),
        ('{{ printf "%s" "a" "b" }}', "a%!(EXTRA string=b)"),
        ('{{ printf "%v" (split "," "a,b") }}', "[a b]"),
        ('{{ printf "%x" "hi" }}', "6869"),
    ],
)
def test_printf_verbs(text: str, want: str) -> None:
    assert r(text) == want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{{ env "A" }}|{{ env "MISSING" }}', "1|"),
        ('{{ envOrDefault "MISSING" "d" }}{{ envOrDefault "A" "d" }}', "d1"),
        ('{{ mustEnv "A" }}', "1"),
        ('{{ "  x \\n" | trimSpace }}', "x"),
        (
            '{{ "--x--" | trim "-" }}{{ "/a/b" | trimPrefix "/" }}'
            '{{ "f.pem" | trimSuffix ".pem" }}',
            "xa/bf",
        ),
        ('{{ "a.b.c" | replaceAll "." "-" }}', "a-b-c"),
        ('{{ split "," "a,b" | join ";" }}', "a;b"),
        ('{{ "Ab" | toLower }}{{ "Ab" | toUpper }}', "abAB"),
        (
            '{{ if split "," "a,b" | contains "b" }}y{{ end }}'
            '{{ if in (split "," "a") "z" }}n{{ end }}',
            "y",
        ),
        ('{{ "line1\\nline2" | indent 2 }}', "  line1\n  line2"),
        ('{{ parseBool "t" }}{{ parseInt "42" | add 1 }}{{ parseFloat "1.5" }}', "true431.5"),
        (
            "{{ 10 | subtract 3 }} {{ 10 | divide 4 }} {{ 10 | modulo 4 }} {{ 3 | multiply 4 }}",
            "7 2 2 12",
        ),
        ("{{ 3 | minimum 5 }} {{ 3 | maximum 5 }}", "3 5"),
        ('{{ "hi" | base64Encode }} {{ "aGk=" | base64Decode }}', "aGk= hi"),
        (
            '{{ "a" | sha256Hex }}',
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        ),
    ],
)
def test_helpers(text: str, want: str) -> None:
    assert r(text, A="1") == want


def test_to_json_is_compact_sorted_and_html_escaped_like_go() -> None:
    out = r('{{ toJSON (parseJSON `{"b":[1,"<&>"],"a":null}`) }}')
    assert out == '{"a":null,"b":[1,"\\u003c\\u0026\\u003e"]}'
    assert json.loads(out) == {"a": None, "b": [1, "<&>"]}
    pretty = r('{{ toJSONPretty (parseJSON `{"b":1,"a":2}`) }}')
    assert pretty == '{\n  "a": 2,\n  "b": 1\n}'


def test_must_env_fails_when_unset() -> None:
    with pytest.raises(TemplateError, match='environment variable "NOPE" is not set'):
        r('{{ mustEnv "NOPE" }}')


def _mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_to_file_writes_atomically_with_perms_and_flags(tmp_path) -> None:
    ctx = RenderContext(task_dir=str(tmp_path), sandbox_dir=str(tmp_path))
    text = (
        '{{ "k1" | writeToFile "secrets/key.pem" "" "" "0600" }}'
        '{{ "c1" | writeToFile "out.txt" "" "" "0644" }}'
        '{{ "c2" | writeToFile "out.txt" "" "" "0644" "append,newline" }}done'
    )
    res = render_sync(text, ctx)
    assert res.text == "done"
    key = tmp_path / "secrets" / "key.pem"
    assert key.read_text() == "k1" and _mode(str(key)) == 0o600
    assert (tmp_path / "out.txt").read_text() == "c1c2\n"
    assert set(res.files_written) == {str(key), str(tmp_path / "out.txt")}
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmpl-")]


def test_write_to_file_cannot_escape_the_sandbox(tmp_path) -> None:
    inner = tmp_path / "alloc"
    inner.mkdir()
    ctx = RenderContext(task_dir=str(inner), sandbox_dir=str(inner))
    with pytest.raises(TemplateError, match="escapes the allocation directory"):
        render_sync('{{ "x" | writeToFile "../evil" "" "" "0644" }}', ctx)
    assert not (tmp_path / "evil").exists()


def test_denylisted_function_fails_when_called() -> None:
    with pytest.raises(TemplateError, match="disabled by the client's function_denylist"):
        render_sync(
            '{{ "x" | writeToFile "/tmp/x" "" "" "0644" }}',
            RenderContext(),
            function_denylist=("writeToFile",),
        )


def test_vault_functions_need_a_vault() -> None:
    with pytest.raises(TemplateError, match="no Vault configured"):
        r('{{ with secret "secret/x" }}{{ end }}')
    with pytest.raises(TemplateError, match="not k=v pair"):
        render_sync(
            '{{ with pkiCert "pki/issue/r" "oops" }}{{ end }}',
            RenderContext(destination="/nonexistent/cert.pem"),
        )
