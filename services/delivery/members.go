package delivery

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"
)

// members counts the live delivery copies, so each can take its share of
// every destination's rate limit. Each copy keeps a key in the state
// bucket holding the time it expires, and renews it; a copy that dies
// stops counting once its key expires.
type members struct {
	state  jetstream.KeyValue
	id     string
	ttl    time.Duration
	copies atomic.Int64
	log    zerolog.Logger
}

const memberPrefix = "member.delivery."

func newMembers(state jetstream.KeyValue, ttl time.Duration, log zerolog.Logger) *members {
	host, _ := os.Hostname()
	id := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(fmt.Sprintf("%s-%d-%s", host, os.Getpid(), ulid.Make()))
	m := &members{state: state, id: id, ttl: ttl, log: log}
	m.copies.Store(1)
	return m
}

// run renews this copy's key and recounts the copies every second until
// ctx ends, then removes the key so the others take over its share at once.
func (m *members) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := m.beat(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn().Err(err).Msg("counting delivery copies")
		}
		select {
		case <-ctx.Done():
			_ = m.state.Delete(context.WithoutCancel(ctx), memberPrefix+m.id)
			return
		case <-t.C:
		}
	}
}

func (m *members) beat(ctx context.Context) error {
	until, _ := time.Now().Add(m.ttl).UTC().MarshalText()
	if _, err := m.state.Put(ctx, memberPrefix+m.id, until); err != nil {
		return err
	}
	keys, err := m.state.ListKeysFiltered(ctx, memberPrefix+"*")
	if err != nil {
		return err
	}
	var live int64
	for k := range keys.Keys() {
		e, err := m.state.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var exp time.Time
		if exp.UnmarshalText(e.Value()) == nil && time.Now().Before(exp) {
			live++
			continue
		}
		// A copy that died without removing its key: drop it, by revision,
		// so a copy renewing it at the same moment keeps it.
		_ = m.state.Purge(ctx, k, jetstream.LastRevision(e.Revision()))
	}
	if prev := m.copies.Swap(max(live, 1)); prev != max(live, 1) {
		m.log.Info().Int64("copies", max(live, 1)).Msg("delivery copies share the destinations' rate limits")
	}
	return nil
}
