#!/usr/bin/env bash
# Mutation testing, outside CI: mutmut 2.5.1 mutates each module behind the README's claims and runs the tests
# that hold it; a mutant that no test kills is a change to the code that the suite would not notice.
#   pip install mutmut==2.5.1        (3.x pulls rich>=14, which finn-plus refuses)
#   bash scripts/mutation.sh [MODULE...]      default: every module listed below
# Runs in a scratch copy of the tree (the checkout is never mutated); prints killed / total per module and
# the surviving mutants (mutmut show).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
declare -A TESTS=(
  [vidconv_edge/stream/stats.py]="tests/test_stream.py -m 'not slow' -k 'timings or merged or host or 4096'"
  [vidconv_edge/stream/ring.py]="tests/test_stream.py tests/test_stream_fpga.py -m 'not slow'"
  [vidconv_edge/export/checks.py]="tests/test_export.py -m 'not slow'"
  [vidconv_edge/hw/precision.py]="tests/test_hw.py -m 'not slow' -k 'float64 or threshold'"
  [vidconv_edge/models/vidconv.py]="tests/test_models.py -m 'not slow' -k 'vic or vidconv'"
  [vidconv_edge/models/sevnet.py]="tests/test_models.py -m 'not slow' -k sevnet"
)
modules=("$@")
[ ${#modules[@]} = 0 ] && modules=("${!TESTS[@]}")
for m in "${modules[@]}"; do
  [ -n "${TESTS[$m]:-}" ] || { echo "mutation.sh: no tests listed for $m (known: ${!TESTS[*]})" >&2; exit 2; }
done
for m in "${modules[@]}"; do
  work="$(mktemp -d)"
  cp -r "$root/vidconv_edge" "$root/tests" "$root/pyproject.toml" "$work/"
  cd "$work"
  PYTHONPATH="$work" OMP_NUM_THREADS=1 mutmut run --paths-to-mutate "$m" --no-progress \
    --runner "python -m pytest -x -q -p no:cacheprovider ${TESTS[$m]}" >/dev/null 2>&1
  xml="$(mutmut junitxml 2>/dev/null)"
  total=$(grep -oE 'tests="[0-9]+"' <<<"$xml" | head -1 | grep -oE '[0-9]+')
  left=$(grep -oE 'failures="[0-9]+"' <<<"$xml" | head -1 | grep -oE '[0-9]+')
  echo "$m: $((total - left)) of $total mutants killed"
  survivors=$(python3 -c 'import sys, xml.etree.ElementTree as E
print(*(c.get("name").split("#")[1] for c in E.fromstring(sys.stdin.read()).iter("testcase") if c.find("failure") is not None))' <<<"$xml")
  for id in $survivors; do
    mutmut show "$id" 2>/dev/null | sed 's/^/    /'
  done
  cd "$root" && rm -rf "$work"
done
