#!/usr/bin/python3
"""Outside truth for the structured-output tests: Debian's python3-jsonschema
(Draft 2020-12) plus Python's own parsers for the string formats.

Reads [{"schema": S, "texts": [T, ...]}, ...] from argv[1] and prints, for each
case, a list of "" (valid) or an error message per text, as JSON.
"""
import datetime
import ipaddress
import json
import re
import sys
import uuid

import jsonschema


def check_format(fmt, value):
    if fmt == "date":
        datetime.date.fromisoformat(value)
    elif fmt == "time":
        # RFC 3339 full-time: hh:mm:ss[.frac](Z|+hh:mm)
        if not re.fullmatch(r"\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError("not an RFC 3339 time")
        datetime.time.fromisoformat(value.replace("Z", "+00:00"))
    elif fmt == "date-time":
        if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
            raise ValueError("not an RFC 3339 date-time")
        d, t = value.split("T")
        datetime.date.fromisoformat(d)
        datetime.time.fromisoformat(t.replace("Z", "+00:00"))
    elif fmt == "uuid":
        uuid.UUID(value)
        if len(value) != 36:
            raise ValueError("not the 8-4-4-4-12 form")
    elif fmt == "email":
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("not an e-mail address")
    elif fmt == "ipv4":
        ipaddress.IPv4Address(value)
    return True


def formats(schema, value, errors):
    """Walks value against schema's 'format' keywords (jsonschema only checks
    formats whose optional dependencies are installed)."""
    if isinstance(schema, dict):
        fmt = schema.get("format")
        if fmt and isinstance(value, str):
            try:
                check_format(fmt, value)
            except Exception as e:  # noqa: BLE001
                errors.append("format %s: %r: %s" % (fmt, value, e))
        if isinstance(value, dict):
            for k, v in value.items():
                sub = schema.get("properties", {}).get(k)
                if sub is not None:
                    formats(sub, v, errors)
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            for v in value:
                formats(schema["items"], v, errors)


def main():
    cases = json.load(open(sys.argv[1], encoding="utf-8"))
    out = []
    for case in cases:
        schema = case["schema"]
        # The 2020-12 format checker (a bare FormatChecker() also has draft 3's "time").
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.draft202012_format_checker)
        results = []
        for text in case["texts"]:
            try:
                value = json.loads(text)
            except ValueError as e:
                results.append("not JSON: %s" % e)
                continue
            errs = [e.message for e in validator.iter_errors(value)]
            formats(schema, value, errs)
            results.append("; ".join(errs))
        out.append(results)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
