#!/usr/bin/python3
"""Parses a /metrics body with the official Python client's parsers, an implementation
independent of fleetwatch's, and prints every sample as one JSON line:
{"family": ..., "type": ..., "name": ..., "labels": {...}, "value": ...}.

Usage: parse_exposition.py text|openmetrics < body. Exit 1 with the parser's message when the
body does not parse.
"""
import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text


def main():
    fmt = sys.argv[1]
    body = sys.stdin.buffer.read().decode("utf-8")
    parse = parse_om if fmt == "openmetrics" else parse_text
    try:
        families = list(parse(body))
    except Exception as e:  # the parsers raise ValueError and friends
        print("parse error: %s" % e, file=sys.stderr)
        return 1
    for family in families:
        for sample in family.samples:
            value = sample.value
            if math.isnan(value) or math.isinf(value):
                value = str(value)
            print(json.dumps({"family": family.name, "type": family.type, "name": sample.name,
                              "labels": sample.labels, "value": value}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
