#!/usr/bin/python3
"""Renders Jinja templates the way Hugging Face transformers renders chat
templates, as the outside truth for flatline's Jinja interpreter.

The environment mirrors transformers' `_compile_jinja_template`
(src/transformers/utils/chat_template_utils.py): an ImmutableSandboxedEnvironment
with trim_blocks and lstrip_blocks, the loopcontrols extension and a
`{% generation %}` block tag (transformers' AssistantTracker, which renders its
body unchanged), a `tojson` filter calling json.dumps with ensure_ascii=False,
and the globals `raise_exception` and `strftime_now`. `strftime_now` uses the
fixed time a case gives instead of the clock, so renders are reproducible.

Input (stdin): {"cases": [{"template": str, "context": {...}, "now": "YYYY-MM-DDTHH:MM:SS"}, ...]}
Output (stdout): {"results": [{"ok": true, "output": str} |
                             {"ok": false, "error_type": str, "error": str}, ...]}
Run it with Debian's interpreter (/usr/bin/python3), which sees python3-jinja2.
"""
import datetime
import json
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders the body as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(lineno)

    def _render_body(self, caller):
        return caller()


def make_environment(now):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return now.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


_environments = {}
_templates = {}


def compile_template(source, now_text):
    """Environments and compiled templates are cached: jobs render each template many times."""
    key = (now_text, source)
    if key not in _templates:
        if now_text not in _environments:
            _environments[now_text] = make_environment(datetime.datetime.fromisoformat(now_text))
        _templates[key] = _environments[now_text].from_string(source)
    return _templates[key]


def render_case(case):
    try:
        template = compile_template(case["template"], case.get("now", "2025-07-15T10:30:00"))
        return {"ok": True, "output": template.render(**case.get("context", {}))}
    except Exception as e:  # every failure is a result the C++ side must match
        return {"ok": False, "error_type": type(e).__name__, "error": str(e)}


def main():
    job = json.load(sys.stdin)
    results = [render_case(case) for case in job["cases"]]
    json.dump({"results": results}, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
