package future

import (
	"errors"
	"testing"
)

func TestFuture(t *testing.T) {
	release := make(chan struct{})
	f := Go(func() (int, error) {
		<-release
		return 42, nil
	})
	select {
	case <-f.done:
		t.Fatal("done before fn returned")
	default:
	}
	close(release)
	for range 2 {
		if v, err := f.Wait(); v != 42 || err != nil {
			t.Fatalf("Wait() = %d, %v, want 42, nil", v, err)
		}
	}
	boom := errors.New("boom")
	if _, err := Go(func() (string, error) { return "", boom }).Wait(); !errors.Is(err, boom) {
		t.Fatalf("Wait() error = %v, want boom", err)
	}
}
