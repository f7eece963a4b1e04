# Sourced by the bench scripts: builds one benchmark binary with the library's sources
# compiled in, every translation unit in its own compiler process.
#
#   build_if_stale WHO BIN OBJDIR SOURCES_ARRAY_NAME WATCHED...
#
# Uses the caller's $cxx and ${cxxflags[@]}. Rebuilds BIN when it is missing or any WATCHED
# file or directory holds something newer; a failed compile prints its log and returns 1.
build_if_stale() {
  local who=$1 bin=$2 obj=$3
  local -n build_sources=$4
  shift 4
  if [[ -x $bin ]] && [[ -z $(find "$@" -newer "$bin" -print -quit) ]]; then
    return 0
  fi
  echo "$who: building $bin ..." >&2
  mkdir -p "$obj"
  local objs=() pids=() s o i fail=0
  for s in "${build_sources[@]}"; do
    o=$obj/$(echo "$s" | tr / _).o
    objs+=("$o")
    "$cxx" "${cxxflags[@]}" -c "$s" -o "$o" 2>"$o.log" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      echo "$who: compiling ${build_sources[$i]} failed:" >&2
      cat "${objs[$i]}.log" >&2
      fail=1
    fi
  done
  (( fail == 0 )) || return 1
  "$cxx" "${cxxflags[@]}" "${objs[@]}" -o "$bin"
}
