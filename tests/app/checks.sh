# Shared by the CLI test scripts (sourced): counters and the two kinds of assertions. The caller
# sets W (its scratch folder) first and ends with `echo "$passes passed, $fails failed"`.
fails=0
passes=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; passes=$((passes + 1)); else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# expect_error NAME SUBSTRING CMD...: non-zero exit, exactly one stderr line, naming SUBSTRING
expect_error() {
  local name=$1 want=$2; shift 2
  "$@" >"$W/out" 2>"$W/err"; local rc=$?
  local lines; lines=$(grep -c . "$W/err")
  if [ "$rc" -ne 0 ] && [ "$lines" -eq 1 ] && grep -q -- "$want" "$W/err"; then
    echo "ok   $name: $(cat "$W/err")"; passes=$((passes + 1))
  else
    echo "FAIL $name (rc=$rc, $lines stderr lines, wanted '$want'):"; cat "$W/err"; fails=$((fails + 1))
  fi
}
