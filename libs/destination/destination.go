// Package destination defines how Ebb writes to a tool. Each destination
// type is one package beside this one (webhook, postgres); builtin opens them
// by type.
package destination

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ebb-etl/ebb/libs/record"
)

// Batch is what a destination sends in one request (or transaction).
type Batch struct {
	// ID is stable for the same records of the same run, whatever the number
	// of attempts: destinations send it as their idempotency key.
	ID      string
	Sync    string
	RunID   string
	Records []record.Record
}

// Destination writes batches. Implementations are safe for concurrent use.
type Destination interface {
	// Write sends a batch. It returns either one error per record (nil for a
	// delivered record; non-nil errors are that record's permanent failure)
	// or an error for the whole batch: Permanent when the destination
	// rejected the batch without saying which record is at fault (the caller
	// splits the batch to find out), anything else when the batch may be
	// retried as it is (timeouts, 5xx, 429; see RetryAfter).
	Write(ctx context.Context, b Batch) ([]error, error)
	// Close releases connections.
	Close() error
}

// pacerKey carries a Write's pacer in its context.
type pacerKey struct{}

// WithPacer returns ctx carrying pace. Delivery paces requests, not Writes:
// it takes a rate-limit token for a Write's first request, and a
// destination whose Write makes several requests (splits by size, a read
// before a delete) calls Pace before each, which waits for the others.
func WithPacer(ctx context.Context, pace func(context.Context) error) context.Context {
	return context.WithValue(ctx, pacerKey{}, pace)
}

// Pace waits for the destination's rate limit before one request of a
// Write; without a pacer (tests, tools) it returns at once.
func Pace(ctx context.Context) error {
	if pace, ok := ctx.Value(pacerKey{}).(func(context.Context) error); ok {
		return pace(ctx)
	}
	return nil
}

// RawTaker is a Destination that sends record data as the JSON it arrives
// in (the webhook): delivery then hands it Record.RawData instead of
// decoding Data, saving a decode and an encode per record.
type RawTaker interface {
	TakesRawData() bool
}

// permanentError marks a rejection that retrying will not fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a rejection that retrying will not fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// retryAfterError carries a destination's Retry-After.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string {
	if e.after <= 0 {
		return e.err.Error()
	}
	return fmt.Sprintf("%v (retry after %s)", e.err, e.after)
}
func (e *retryAfterError) Unwrap() error { return e.err }

// WithRetryAfter marks a transient err with the wait the destination asked for.
func WithRetryAfter(err error, after time.Duration) error {
	return &retryAfterError{err: err, after: after}
}

// IsThrottled reports whether the destination asked to slow down: a 429,
// or any answer with a Retry-After.
func IsThrottled(err error) bool {
	var r *retryAfterError
	return errors.As(err, &r)
}

// RetryAfter returns the wait a destination asked for, or 0.
func RetryAfter(err error) time.Duration {
	var r *retryAfterError
	if errors.As(err, &r) {
		return r.after
	}
	return 0
}
