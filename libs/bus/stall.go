package bus

import (
	"context"
	"fmt"
	"io"
	"time"
)

// StallTimeout is how long one step of a read from the object store (its
// opening, or one Read call) may wait before the read is given up as
// stalled. The object store answers through requests and a consumer; when
// the node serving them dies or restarts mid-read, a reply can be lost and
// the read wait for ever (seen when a NATS node restarted under an
// extraction). The work is handed back and read again.
const StallTimeout = 20 * time.Second

// ErrStalled is the error of a read that received nothing for
// StallTimeout; it is transient.
var ErrStalled = fmt.Errorf("read stalled for %s", StallTimeout)

// Guard bounds each step of one read from the object store by
// StallTimeout: a step that waits longer cancels the read's context with
// ErrStalled. Only time spent inside a step counts, so a consumer that
// reads slowly is not a stall.
type Guard struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// GuardStalls starts guarding a read under ctx.
func GuardStalls(ctx context.Context) *Guard {
	ctx, cancel := context.WithCancelCause(ctx)
	return &Guard{ctx: ctx, cancel: cancel}
}

// Context is the read's context: pass it to the object store.
func (g *Guard) Context() context.Context { return g.ctx }

// Step runs one step of the read (opening the object) under the timeout.
func (g *Guard) Step(fn func() error) error {
	t := time.AfterFunc(StallTimeout, func() { g.cancel(ErrStalled) })
	err := fn()
	if !t.Stop() && err != nil {
		return fmt.Errorf("%w: %v", ErrStalled, err)
	}
	return err
}

// Reader wraps the object's reader: each Read is a step.
func (g *Guard) Reader(r io.Reader) io.Reader { return &stallReader{r: r, g: g} }

// Stop ends the read's context.
func (g *Guard) Stop() { g.cancel(nil) }

type stallReader struct {
	r io.Reader
	g *Guard
}

func (s *stallReader) Read(p []byte) (int, error) {
	var n int
	var readErr error
	err := s.g.Step(func() error {
		n, readErr = s.r.Read(p)
		if readErr == io.EOF {
			return nil // the end, not a failure
		}
		return readErr
	})
	if err != nil {
		return n, err
	}
	return n, readErr
}
