package testenv

import (
	"strconv"
	"testing"
)

func TestSeedFromEnvironment(t *testing.T) {
	t.Setenv(SeedVar, "12345")
	if got := Seed(t); got != 12345 {
		t.Fatalf("Seed = %d with %s=12345", got, SeedVar)
	}
}

func TestSeedFromClock(t *testing.T) {
	t.Setenv(SeedVar, "")
	a := Seed(t)
	// The seed logged is the one returned, so it can be passed back in.
	t.Setenv(SeedVar, strconv.FormatInt(a, 10))
	if b := Seed(t); b != a {
		t.Fatalf("rerun with the logged seed %d gave %d", a, b)
	}
}
