#!/usr/bin/env bash
# fuzz.sh is `make fuzz`: it runs every Go fuzz target in the module for
# FUZZTIME each (default 20s). The committed corpora under testdata/fuzz also
# run as ordinary test cases in every `go test`.
#
# A failing target is judged by what it leaves behind. Go's fuzzing engine
# writes the failing input to <pkg>/testdata/fuzz/<Target>/; that input is
# replayed as an ordinary test, and an input that fails again fails the run
# (a real finding: fix it, then commit the file as a regression case). Only
# when the engine itself reported its worker hung or killed (on a loaded
# machine it does so for inputs that are merely slow, golang/go#56238) and
# the input passes on replay is it moved to .data/fuzz-unconfirmed/ with a
# warning; an input that failed in the worker but passes on replay is a
# nondeterministic failure, and fails the run. A failure that recorded no
# input gets one more run when the engine reported its own error
# (golang/go#51484), and fails the run otherwise.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
FUZZTIME=${FUZZTIME:-20s}

inputs() { [[ -d $1 ]] && find "$1" -maxdepth 1 -type f -printf '%f\n' | sort; return 0; }

# Markers of the fuzzing engine's own failures, as opposed to the target's.
engine_failure='fuzzing process hung or terminated unexpectedly|context deadline exceeded|fuzzing process terminated'

fuzz_target() {
	local pkg=$1 target=$2 dir="$1/testdata/fuzz/$2" before new f out status=0
	before=$(inputs "$dir")
	out=$(mktemp)
	echo "fuzz.sh: $pkg $target for $FUZZTIME" >&2
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$out" || status=$?
	if ((status == 0)); then
		rm -f "$out"
		return 0
	fi
	local engine=0
	grep -Eq "$engine_failure" "$out" && engine=1
	rm -f "$out"
	new=$(comm -13 <(printf '%s\n' "$before") <(inputs "$dir"))
	if [[ -z $new ]]; then
		if ((engine)); then
			echo "fuzz.sh: $target: the fuzzing engine failed without recording an input; once more" >&2
			go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
			return
		fi
		echo "fuzz.sh: FAIL: $target failed without recording an input (its seed corpus?)" >&2
		return 1
	fi
	for f in $new; do
		echo "fuzz.sh: replaying $dir/$f" >&2
		if ! go test -count=1 -v -run "^${target}\$/^${f}\$" "$pkg"; then
			echo "fuzz.sh: FAIL: $dir/$f fails when replayed: fix the code, then commit the file as a regression case" >&2
			return 1
		fi
	done
	if ((!engine)); then
		echo "fuzz.sh: FAIL: $target failed on $new in the fuzzing worker but passes when replayed: a nondeterministic failure" >&2
		return 1
	fi
	mkdir -p .data/fuzz-unconfirmed
	for f in $new; do
		mv "$dir/$f" ".data/fuzz-unconfirmed/${target}-$f"
	done
	rmdir "$dir" 2>/dev/null || true
	echo "fuzz.sh: WARNING: the fuzzing engine reported $target's worker hung or killed on $new, which passes when replayed (its time is above): a slow input on a loaded machine, not a failure; kept in .data/fuzz-unconfirmed/${target}-*" >&2
}

main() {
	local found=0 file pkg target
	while IFS= read -r file; do
		pkg="./$(dirname "$file")"
		while IFS= read -r target; do
			found=1
			fuzz_target "$pkg" "$target"
		done < <(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}')
	done < <(git ls-files '*_test.go')
	((found)) || echo "fuzz.sh: no fuzz targets found" >&2
}

# Sourced, it only defines the functions (to try fuzz_target on a target).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
