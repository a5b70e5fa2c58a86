// Package future runs a computation in its own goroutine and hands its
// result over later: the monitor starts the reads that do not depend on
// a window's aggregates before computing them, so that their round trips
// to ClickHouse overlap the aggregation instead of following it.
package future

// Future is a value being computed.
type Future[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// Go runs fn in a goroutine.
func Go[T any](fn func() (T, error)) *Future[T] {
	f := &Future[T]{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		f.v, f.err = fn()
	}()
	return f
}

// Wait blocks until fn has returned and returns its result; it may be
// called any number of times.
func (f *Future[T]) Wait() (T, error) {
	<-f.done
	return f.v, f.err
}
