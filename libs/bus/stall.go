package bus

import (
	"context"
	"fmt"
	"io"
	"time"
)

// StallTimeout is how long one read of an object may wait for data before
// the read is given up as stalled. The object store streams an object's
// chunks through a consumer; when the node serving it dies mid-read, a
// read can wait for ever (seen when a cluster node restarted under an
// extraction). The work is handed back and read again, from another node.
const StallTimeout = 20 * time.Second

// ErrStalled is the error of a read that received nothing for
// StallTimeout; it is transient.
var ErrStalled = fmt.Errorf("read stalled for %s", StallTimeout)

// GuardStalls returns a context for a read from the object store and a
// wrapper for its reader: a Read call that waits longer than StallTimeout
// cancels the context, which ends the read with ErrStalled. Only time spent
// inside Read counts, so a consumer that reads slowly is not a stall.
func GuardStalls(ctx context.Context) (context.Context, func(io.Reader) io.Reader, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	wrap := func(r io.Reader) io.Reader { return &stallReader{r: r, cancel: cancel} }
	return ctx, wrap, func() { cancel(nil) }
}

type stallReader struct {
	r      io.Reader
	cancel context.CancelCauseFunc
}

func (s *stallReader) Read(p []byte) (int, error) {
	t := time.AfterFunc(StallTimeout, func() { s.cancel(ErrStalled) })
	n, err := s.r.Read(p)
	if !t.Stop() && err != nil && err != io.EOF {
		return n, fmt.Errorf("%w: %v", ErrStalled, err)
	}
	return n, err
}
