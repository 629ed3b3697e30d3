package delivery

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/run"
)

// members counts the live delivery copies, so each can take its share of
// every destination's rate limit, and reports the runs this copy has
// requests in flight for, so a stopped run drains before its sync runs
// again (run.Drained). Each copy keeps a key in the state bucket holding
// a run.Member, and renews it every second; a copy that dies stops
// counting once its key expires.
type members struct {
	state  jetstream.KeyValue
	id     string
	ttl    time.Duration
	copies atomic.Int64
	log    zerolog.Logger

	mu       sync.Mutex
	inflight map[string]int // requests in flight by run id
}

func newMembers(state jetstream.KeyValue, ttl time.Duration, log zerolog.Logger) *members {
	host, _ := os.Hostname()
	id := strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(fmt.Sprintf("%s-%d-%s", host, os.Getpid(), ulid.Make()))
	m := &members{state: state, id: id, ttl: ttl, log: log, inflight: map[string]int{}}
	m.copies.Store(1)
	return m
}

// begin registers a request of run in flight; end must follow.
func (m *members) begin(runID string) {
	m.mu.Lock()
	m.inflight[runID]++
	m.mu.Unlock()
}

func (m *members) end(runID string) {
	m.mu.Lock()
	if m.inflight[runID]--; m.inflight[runID] <= 0 {
		delete(m.inflight, runID)
	}
	m.mu.Unlock()
}

func (m *members) runsInFlight() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	runs := make([]string, 0, len(m.inflight))
	for id := range m.inflight {
		runs = append(runs, id)
	}
	return runs
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
			_ = m.state.Delete(context.WithoutCancel(ctx), run.MemberPrefix+m.id)
			return
		case <-t.C:
		}
	}
}

func (m *members) beat(ctx context.Context) error {
	now := time.Now().UTC()
	if _, err := run.PutMember(ctx, m.state, m.id, run.Member{Until: now.Add(m.ttl), At: now, Inflight: m.runsInFlight()}); err != nil {
		return err
	}
	live, err := run.Members(ctx, m.state)
	if err != nil {
		return err
	}
	n := max(int64(len(live)), 1)
	if prev := m.copies.Swap(n); prev != n {
		m.log.Info().Int64("copies", n).Msg("delivery copies share the destinations' rate limits")
	}
	return nil
}
