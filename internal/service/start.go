package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Start builds the server, binds its address (so a port in use is
// reported before anything else starts) and serves it in the background.
// The returned stop shuts the server down and waits for it; call it when
// the service's work has ended (the server outlives ctx so that /metrics
// stays up while the service drains).
func Start(ctx context.Context, opts Options) (*Server, func(), error) {
	srv, err := New(opts)
	if err != nil {
		return nil, nil, err
	}
	if err := srv.Listen(); err != nil {
		return nil, nil, err
	}
	httpCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Run(httpCtx) }()
	return srv, func() { cancel(); <-done }, nil
}

// WaitFor retries op with backoff (1s doubling to 15s, each attempt bounded
// by 30s) until it succeeds or ctx ends, logging each failure. Services use
// it for dependencies that may still be starting.
func WaitFor(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	return Retry(ctx, log, what, func(ctx context.Context) error {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return op(octx)
	})
}

// Retry is WaitFor without a bound on each attempt, for work that takes
// as long as it takes (a training run) and is retried only when it fails.
func Retry(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	delay := time.Second
	for {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if errors.As(err, new(permanentError)) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Warn("waiting", "op", what, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// Permanent marks err as one that no retry cures (a Kafka cluster that
// refuses the credentials): WaitFor and Retry return it at once instead of
// waiting. The mark adds nothing to the error's text.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }
