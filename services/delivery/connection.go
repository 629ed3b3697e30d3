package delivery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
)

// connection is a worker's open destination. A destination that cannot be
// opened (a server down, a URL that is not one, a ${VAR} not set) is
// opened again on use, at most once per backoff, and its error goes to the
// batches that needed it: they fail their run with it (see
// worker.destination) rather than wait in the stream while the reason is
// only in a log.
type connection struct {
	dest    config.Destination
	open    func(context.Context, config.Destination) (destination.Destination, error)
	timeout time.Duration
	log     zerolog.Logger

	mu      sync.Mutex
	client  destination.Destination
	err     error
	next    time.Time // the earliest next attempt after a failure
	backoff time.Duration
}

func newConnection(ctx context.Context, dest config.Destination, open func(context.Context, config.Destination) (destination.Destination, error),
	opts config.DeliveryOptions, log zerolog.Logger) *connection {
	c := &connection{dest: dest, open: open, timeout: opts.Timeout, log: log, backoff: time.Second}
	if _, err := c.get(ctx); err != nil {
		log.Error().Err(err).Msg("opening the destination failed; its runs fail with the reason unless it passes")
	}
	return c
}

// get returns the open destination, opening it if need be.
func (c *connection) get(ctx context.Context) (destination.Destination, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	if time.Now().Before(c.next) {
		return nil, c.err
	}
	octx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	client, err := c.open(octx, c.dest)
	if err != nil {
		c.err = fmt.Errorf("opening destination %q: %w", c.dest.Name, err)
		c.next = time.Now().Add(c.backoff)
		c.backoff = min(c.backoff*2, 30*time.Second)
		return nil, c.err
	}
	if c.err != nil {
		c.log.Info().Msg("the destination opened after failing to")
	}
	c.client, c.err, c.backoff = client, nil, time.Second
	return client, nil
}

func (c *connection) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		_ = c.client.Close()
		c.client = nil
	}
}
