#!/usr/bin/env bash
# fuzz.sh is `make fuzz`: it runs every Go fuzz target in the module for
# FUZZTIME each (default 20s). The committed corpora under testdata/fuzz also
# run as ordinary test cases in every `go test`.
#
# A failing target is judged by what it leaves behind. Go's fuzzing engine
# writes the failing input to <pkg>/testdata/fuzz/<Target>/; that input is
# replayed as an ordinary test, and only an input that fails again fails the
# run (a real finding: fix it, then commit the file as a regression case).
# An input that passes when replayed was a worker killed or timed out on a
# loaded machine (golang/go#56238); it is moved to .data/fuzz-unconfirmed/
# and reported. A failure that records no input at all (the engine's own,
# e.g. golang/go#51484) gets one more run of the target.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
FUZZTIME=${FUZZTIME:-20s}

inputs() { [[ -d $1 ]] && find "$1" -maxdepth 1 -type f -printf '%f\n' | sort; return 0; }

fuzz_target() {
	local pkg=$1 target=$2 dir="$1/testdata/fuzz/$2" before new f
	before=$(inputs "$dir")
	echo "fuzz.sh: $pkg $target for $FUZZTIME" >&2
	go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" && return 0
	new=$(comm -13 <(printf '%s\n' "$before") <(inputs "$dir"))
	if [[ -z $new ]]; then
		echo "fuzz.sh: $target failed without recording an input (a failure of the fuzzing engine, not of $pkg); once more" >&2
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
		return
	fi
	for f in $new; do
		echo "fuzz.sh: replaying $dir/$f" >&2
		if ! go test -count=1 -run "^${target}\$/^${f}\$" "$pkg"; then
			echo "fuzz.sh: FAIL: $dir/$f fails when replayed: fix the code, then commit the file as a regression case" >&2
			return 1
		fi
	done
	mkdir -p .data/fuzz-unconfirmed
	for f in $new; do
		mv "$dir/$f" ".data/fuzz-unconfirmed/${target}-$f"
	done
	rmdir "$dir" 2>/dev/null || true
	echo "fuzz.sh: WARNING: $target's recorded input passes when replayed: the fuzzing worker was killed or timed out (a loaded machine), not a failure of the code; kept in .data/fuzz-unconfirmed/${target}-*" >&2
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

# Sourced (by a test of this script), it only defines the functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
