package main

import (
	"bytes"
	"strings"
	"testing"
)

// A run of two packages, recorded from `go test -json` and cut down: one
// test passes, two skip for want of Kafka, one for want of libchdb, one
// fails; a third package has no tests.
const run = `{"Action":"start","Package":"example/a"}
{"Action":"run","Package":"example/a","Test":"TestPass"}
{"Action":"output","Package":"example/a","Test":"TestPass","Output":"=== RUN   TestPass\n"}
{"Action":"output","Package":"example/a","Test":"TestPass","Output":"--- PASS: TestPass (0.00s)\n"}
{"Action":"pass","Package":"example/a","Test":"TestPass","Elapsed":0}
{"Action":"run","Package":"example/a","Test":"TestKafka"}
{"Action":"output","Package":"example/a","Test":"TestKafka","Output":"=== RUN   TestKafka\n"}
{"Action":"output","Package":"example/a","Test":"TestKafka","Output":"    testenv.go:47: skipping: DRIFTWATCH_TEST_KAFKA_BROKERS is not set (run make test)\n"}
{"Action":"output","Package":"example/a","Test":"TestKafka","Output":"--- SKIP: TestKafka (0.00s)\n"}
{"Action":"skip","Package":"example/a","Test":"TestKafka","Elapsed":0}
{"Action":"run","Package":"example/a","Test":"TestFails"}
{"Action":"output","Package":"example/a","Test":"TestFails","Output":"=== RUN   TestFails\n"}
{"Action":"output","Package":"example/a","Test":"TestFails","Output":"    a_test.go:9: got 2, want 3\n"}
{"Action":"output","Package":"example/a","Test":"TestFails","Output":"--- FAIL: TestFails (0.00s)\n"}
{"Action":"fail","Package":"example/a","Test":"TestFails","Elapsed":0}
{"Action":"output","Package":"example/a","Output":"FAIL\n"}
{"Action":"fail","Package":"example/a","Elapsed":0.1}
{"Action":"run","Package":"example/b","Test":"TestKafkaToo"}
{"Action":"output","Package":"example/b","Test":"TestKafkaToo","Output":"    testenv.go:47: skipping: DRIFTWATCH_TEST_KAFKA_BROKERS is not set (run make test)\n"}
{"Action":"skip","Package":"example/b","Test":"TestKafkaToo","Elapsed":0}
{"Action":"run","Package":"example/b","Test":"TestChdb"}
{"Action":"output","Package":"example/b","Test":"TestChdb","Output":"    testenv.go:80: skipping: CHDB_LIB_PATH is not set: path of libchdb.so\n"}
{"Action":"skip","Package":"example/b","Test":"TestChdb","Elapsed":0}
{"Action":"output","Package":"example/b","Output":"ok  \texample/b\t0.01s\n"}
{"Action":"pass","Package":"example/b","Elapsed":0.01}
{"Action":"output","Package":"example/c","Output":"?   \texample/c\t[no test files]\n"}
{"Action":"skip","Package":"example/c","Elapsed":0}
`

func TestSummary(t *testing.T) {
	s, err := read(strings.NewReader(run))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	s.print(&out)
	got := out.String()
	for _, want := range []string{
		"--- FAIL example/a.TestFails\n=== RUN   TestFails\n    a_test.go:9: got 2, want 3",
		"packages: 1 ok, 1 failed, 1 without tests\n",
		"tests: 1 passed, 1 failed, 3 skipped\n",
		"skipped, by reason:\n    2  DRIFTWATCH_TEST_KAFKA_BROKERS is not set (run make test)\n    1  CHDB_LIB_PATH is not set: path of libchdb.so\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if s.ok() {
		t.Error("a run with a failed test is ok")
	}
	if s, _ := read(strings.NewReader("")); s.ok() {
		t.Error("an empty run is ok")
	}
}

// TestBuildFailure: go test's plain-text lines (a package that does not
// build, before Go 1.24 and as build-output events since) are shown and
// fail the run.
func TestBuildFailure(t *testing.T) {
	s, _ := read(strings.NewReader("# example/d\nd.go:3:1: syntax error\n" + `{"Action":"pass","Package":"example/b","Test":"TestX"}` + "\n"))
	var out bytes.Buffer
	s.print(&out)
	if s.ok() || !strings.Contains(out.String(), "syntax error") {
		t.Errorf("ok %v, output %q", s.ok(), out.String())
	}
}

func TestBuildOutputEvent(t *testing.T) {
	s, _ := read(strings.NewReader(`{"ImportPath":"example/d [example/d.test]","Action":"build-output","Output":"d.go:3:1: syntax error\n"}
{"Action":"fail","Package":"example/d","FailedBuild":"example/d [example/d.test]"}
`))
	var out bytes.Buffer
	s.print(&out)
	if s.ok() || !strings.Contains(out.String(), "build of example/d [example/d.test]\nd.go:3:1: syntax error") {
		t.Errorf("ok %v, output %q", s.ok(), out.String())
	}
}
