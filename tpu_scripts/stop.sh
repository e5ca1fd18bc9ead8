#!/usr/bin/env bash
# Thin wrapper: tpu.py stop "$@" (see tpu_scripts/tpu.py and docs/tpu.md; --dry-run prints the commands).
exec "${PYTHON:-python3}" "$(dirname "$0")/tpu.py" stop "$@"
