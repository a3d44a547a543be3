#!/usr/bin/env bash
# Builds jaxcnn's oneDNN binding (jaxcnn/cpu/onednn.cc) with AddressSanitizer and runs
# every network's binding calls under it at each ISA level (tests/onednn_isa_sweep.py).
# Exit 0: no ASan report and every result equal to XLA's.
#
#   bash scripts/onednn_asan.sh                      # the whole zoo, SSE41/AVX2/AVX512_CORE/ALL
#   bash scripts/onednn_asan.sh --models=alexnet --levels=SSE41,ALL
#
# ASan instruments the binding (its buffers, shapes, scratchpad and reorders); oneDNN and
# XLA are not rebuilt, so it sees their accesses only where they reach memory the binding
# allocated. The sanitizer's runtime is preloaded: python itself is not instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
runtime=$(${CXX:-c++} -print-file-name=libasan.so)
if [ ! -e "$runtime" ] || [ "$runtime" = libasan.so ]; then
  echo "error: ${CXX:-c++} has no AddressSanitizer runtime (libasan.so); install it (e.g. apt-get install libasan8)." >&2
  exit 2
fi
# libstdc++ with it, so that ASan's interceptor of C++ throws finds the real one (jaxlib
# throws and catches while it looks for plug-ins).
stdcxx=$(${CXX:-c++} -print-file-name=libstdc++.so)
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
log="$cache/asan"
# A separate build cache: the instrumented binding never replaces the ordinary one.
export JAXCNN_NATIVE_CACHE="$cache" JAXCNN_COMPILATION_CACHE=off
export JAXCNN_ONEDNN_CXXFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1"
# Leaks: python and XLA keep allocations to exit by design. Reports go to files, one a process.
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:log_path=$log:verify_asan_link_order=0"
status=0
LD_PRELOAD="$runtime $stdcxx" "$python" tests/onednn_isa_sweep.py "$@" || status=$?
# (grep reads all of nm's output: with -q it would stop early and fail the pipe.)
if ! nm -D "$cache"/onednn-*.so 2>/dev/null | grep __asan_report_store >/dev/null; then
  echo "error: the binding in $cache was not built with AddressSanitizer." >&2
  exit 1
fi
if ls "$log".* >/dev/null 2>&1; then
  cat "$log".* >&2
  echo "AddressSanitizer reported the above." >&2
  exit 1
fi
echo "AddressSanitizer: no report (binding built with $JAXCNN_ONEDNN_CXXFLAGS)."
exit $status
