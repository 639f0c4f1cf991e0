#!/usr/bin/env bash
# The one script that generates oms/v1/*_pb2.py, *_pb2_grpc.py and .pyi stubs from proto/.
# Output is committed; tests/unit/test_proto_gen.py checks that regenerating changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
OUT="${1:-.}"
GOOGLE_PROTOS="$("$PY" -c 'import os, google.rpc; print(os.path.dirname(os.path.dirname(google.rpc.__path__[0])))')"
mkdir -p "$OUT/oms/v1"
"$PY" -m grpc_tools.protoc -I proto -I "$GOOGLE_PROTOS" \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" proto/oms/v1/*.proto
touch "$OUT/oms/__init__.py" "$OUT/oms/v1/__init__.py"
