// Package debug carries the live debugger's events: what delivery sent for
// each record and what the destination answered. Events go over core NATS
// (ebb.debug.<sync>), not JetStream: they are published only while someone
// watches the sync, sampled to a bounded rate, and never waited for, so
// watching can never slow a sync. A watcher that cannot keep up loses
// events; the admin API then drops it.
package debug

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// Event is one record's delivery, as the live debugger shows it.
type Event struct {
	Time        time.Time      `json:"time"`
	Sync        string         `json:"sync"`
	RunID       string         `json:"run_id"`
	Destination string         `json:"destination"`
	Key         map[string]any `json:"key"`
	// KeyText is the key's values joined by commas, as --key takes them.
	KeyText string `json:"key_text"`
	Op      string `json:"op"`
	// Status is delivered or failed.
	Status string `json:"status"`
	// Error is the destination's answer for a failed record.
	Error string `json:"error,omitempty"`
	// Payload is the mapped record as sent.
	Payload map[string]any `json:"payload,omitempty"`
	// Request identifies the request: its idempotency key.
	Request string `json:"request"`
	// LatencyMS is the duration of the request that carried the record.
	LatencyMS float64 `json:"latency_ms"`
	// Attempts is how many tries that request took.
	Attempts int `json:"attempts"`
	// Logs are the lines the transformation's log() wrote for the record
	// (Status "log").
	Logs []string `json:"logs,omitempty"`
}

// StatusLog marks an event carrying a transformation's log() lines, sent
// by the transformer before the record is delivered.
const StatusLog = "log"

// Subject is where a sync's events are published.
func Subject(sync string) string { return "ebb.debug." + sync }

// watchKey marks a watched sync in the state bucket; its value is the time
// the watch ends unless renewed.
func watchKey(sync string) string { return "debug." + sync }

// Watch marks sync as watched for ttl. Watchers renew it while they watch.
func Watch(ctx context.Context, state jetstream.KeyValue, sync string, ttl time.Duration) error {
	until, _ := time.Now().Add(ttl).UTC().MarshalText()
	_, err := state.Put(ctx, watchKey(sync), until)
	return err
}

// Publisher sends events of watched syncs, at most PerSecond per sync.
type Publisher struct {
	nc        *nats.Conn
	state     jetstream.KeyValue
	perSecond float64

	mu      sync.Mutex
	watched map[string]*watch
}

type watch struct {
	until time.Time
	// Failed records have their own budget: thousands of deliveries must
	// not crowd out the one failure someone is looking for.
	limit, failedLimit *rate.Limiter
}

// NewPublisher publishes on nc. It follows the watches in the state bucket
// with a KV watch until ctx ends, so a new watcher is seen at once.
func NewPublisher(ctx context.Context, nc *nats.Conn, state jetstream.KeyValue, perSecond float64) (*Publisher, error) {
	p := &Publisher{nc: nc, state: state, perSecond: perSecond, watched: map[string]*watch{}}
	kw, err := state.Watch(ctx, watchKey("*"))
	if err != nil {
		return nil, fmt.Errorf("watching debugger watches: %w", err)
	}
	go p.follow(ctx, kw)
	return p, nil
}

// follow keeps each sync's watch end up to date.
func (p *Publisher) follow(ctx context.Context, kw jetstream.KeyWatcher) {
	defer func() { _ = kw.Stop() }()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return
		case e = <-kw.Updates():
		}
		if e == nil {
			continue // the end of the current values
		}
		sync := strings.TrimPrefix(e.Key(), watchKey(""))
		var until time.Time
		if e.Operation() == jetstream.KeyValuePut {
			_ = until.UnmarshalText(e.Value())
		}
		p.mu.Lock()
		p.entry(sync).until = until
		p.mu.Unlock()
	}
}

// entry returns sync's watch state; the caller holds mu.
func (p *Publisher) entry(sync string) *watch {
	w, ok := p.watched[sync]
	if !ok {
		w = &watch{limit: rate.NewLimiter(rate.Limit(p.perSecond), int(p.perSecond)+1),
			failedLimit: rate.NewLimiter(rate.Limit(p.perSecond), int(p.perSecond)+1)}
		p.watched[sync] = w
	}
	return w
}

// Watched reports whether anyone watches sync.
func (p *Publisher) Watched(_ context.Context, sync string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.watched[sync]
	return ok && time.Now().Before(w.until)
}

// Publish sends ev if its sync's sample budget allows; it never blocks.
func (p *Publisher) Publish(ev Event) {
	p.mu.Lock()
	w := p.watched[ev.Sync]
	p.mu.Unlock()
	if w == nil {
		return
	}
	limit := w.limit
	if ev.Status != "delivered" {
		limit = w.failedLimit
	}
	if !limit.Allow() {
		return
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return
	}
	_ = p.nc.Publish(Subject(ev.Sync), data)
}
