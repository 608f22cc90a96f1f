#!/usr/bin/env bash
# Assemble the Apache Kafka jars the tests run (Maven Central -> .cache/kafka).
# Idempotent: a second run returns at once. CI calls this before pytest so the
# first Kafka test does not pay for the download.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" -m devstack.apache_kafka fetch "$@"
