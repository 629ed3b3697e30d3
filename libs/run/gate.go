package run

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
)

// Decision is what a stage does with a batch of a run.
type Decision int

const (
	// Go: the run is active; handle the batch.
	Go Decision = iota
	// Hold: the run is paused; hand the batch back to be redelivered later.
	Hold
	// Drop: the run is over (cancelled, failed, or draining towards
	// either) or gone; ack the batch without handling it.
	Drop
)

// Gate tells the transformer and delivery whether to go on with a run's
// batches. It caches each run's state for a short time so a busy stage
// reads the runs bucket about once per TTL per run, not once per batch;
// a pause therefore takes effect within one TTL.
type Gate struct {
	store *Store
	ttl   time.Duration

	mu      sync.Mutex
	entries map[string]gateEntry
}

type gateEntry struct {
	state State
	flags Flags
	found bool
	read  time.Time
}

// Flags are what a stage needs to know of a run besides its state.
type Flags struct {
	DryRun     bool
	KeepValues bool
}

// NewGate returns a gate reading runs from store, caching for ttl.
func NewGate(store *Store, ttl time.Duration) *Gate {
	return &Gate{store: store, ttl: ttl, entries: map[string]gateEntry{}}
}

// Check decides what to do with a batch of run id of sync.
func (g *Gate) Check(ctx context.Context, sync, id string) (Decision, error) {
	d, _, err := g.CheckRun(ctx, sync, id)
	return d, err
}

// CheckRun is Check that also returns the run's flags.
func (g *Gate) CheckRun(ctx context.Context, sync, id string) (Decision, Flags, error) {
	e, err := g.entry(ctx, sync, id)
	if err != nil {
		return Go, Flags{}, err
	}
	return decide(e), e.flags, nil
}

func decide(e gateEntry) Decision {
	switch {
	case !e.found || e.state.Over():
		return Drop
	case e.state == Paused:
		return Hold
	}
	return Go
}

func (g *Gate) entry(ctx context.Context, sync, id string) (gateEntry, error) {
	now := time.Now()
	g.mu.Lock()
	e, ok := g.entries[id]
	g.mu.Unlock()
	// A terminal state never changes, so it is cached for good.
	if ok && (now.Sub(e.read) < g.ttl || (e.found && e.state.Terminal())) {
		return e, nil
	}
	r, err := g.store.Get(ctx, sync, id)
	switch {
	case errors.Is(err, ErrNotFound):
		e = gateEntry{read: now}
	case err != nil:
		return e, err
	default:
		e = gateEntry{state: r.State, flags: Flags{DryRun: r.DryRun, KeepValues: r.Spec.KeepValues}, found: true, read: now}
	}
	g.mu.Lock()
	if len(g.entries) > 4096 {
		g.entries = map[string]gateEntry{}
	}
	g.entries[id] = e
	g.mu.Unlock()
	return e, nil
}

// ErrHeld is what a stage returns for a batch of a paused run: the batch is
// handed back and redelivered a few seconds later, without being logged as
// a failure.
var ErrHeld = &bus.RetryError{Err: errors.New("run is paused"), Delay: 3 * time.Second, Hold: true}
