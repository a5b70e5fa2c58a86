#!/usr/bin/env bash
# fuzz.sh is `make fuzz`: it runs every Go fuzz target in the module for
# FUZZTIME each (default 20s). The committed corpora under testdata/fuzz also
# run as ordinary test cases in every `go test`.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
FUZZTIME=${FUZZTIME:-20s}
found=0
while IFS= read -r file; do
	pkg="./$(dirname "$file")"
	while IFS= read -r target; do
		found=1
		echo "fuzz.sh: $pkg $target for $FUZZTIME" >&2
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
	done < <(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}')
done < <(git ls-files '*_test.go')
((found)) || echo "fuzz.sh: no fuzz targets found" >&2
