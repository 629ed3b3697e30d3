package ui

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/debug"
)

// The live debugger page needs no script: while someone views a sync's
// live page, the server watches the sync (like `ebb debug`), keeps its
// latest events, and the page reloads itself every two seconds. A watch
// ends liveFor after the last view.
const (
	liveEvents  = 100
	liveFor     = time.Minute
	liveRenew   = 5 * time.Second
	liveRefresh = 2
)

// liveWatch holds a watched sync's latest events.
type liveWatch struct {
	mu       sync.Mutex
	events   []debug.Event // oldest first, at most liveEvents
	lastView time.Time
}

func (w *liveWatch) add(ev debug.Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events = append(w.events, ev)
	if len(w.events) > liveEvents {
		w.events = w.events[len(w.events)-liveEvents:]
	}
}

// latest returns the events, newest first, that pass the filters.
func (w *liveWatch) latest(status, key string) []debug.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastView = time.Now()
	out := make([]debug.Event, 0, len(w.events))
	for i := len(w.events) - 1; i >= 0; i-- {
		ev := w.events[i]
		if (status == "" || ev.Status == status) && (key == "" || ev.KeyText == key) {
			out = append(out, ev)
		}
	}
	return out
}

func (w *liveWatch) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Since(w.lastView) > liveFor
}

// watches are the syncs being watched from the page.
type watches struct {
	mu sync.Mutex
	m  map[string]*liveWatch
}

// watch returns the sync's watch, starting it if needed.
func (s *server) watch(r *http.Request, sync string) (*liveWatch, error) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if w, ok := s.live.m[sync]; ok {
		return w, nil
	}
	state, err := s.state(r.Context())
	if err != nil {
		return nil, err
	}
	w := &liveWatch{lastView: time.Now()}
	sub, err := s.d.JS.Conn().Subscribe(debug.Subject(sync), func(m *nats.Msg) {
		var ev debug.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			w.add(ev)
		}
	})
	if err != nil {
		return nil, err
	}
	if err := debug.Watch(r.Context(), state, sync, 3*liveRenew); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	s.live.m[sync] = w
	go s.keepWatching(sync, w, sub)
	return w, nil
}

// keepWatching renews the watch until nobody has viewed the page for
// liveFor, then stops.
func (s *server) keepWatching(sync string, w *liveWatch, sub *nats.Subscription) {
	t := time.NewTicker(liveRenew)
	defer t.Stop()
	for range t.C {
		if w.idle() {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), liveRenew)
		if state, err := s.state(ctx); err == nil {
			_ = debug.Watch(ctx, state, sync, 3*liveRenew)
		}
		cancel()
	}
	_ = sub.Unsubscribe()
	s.live.mu.Lock()
	delete(s.live.m, sync)
	s.live.mu.Unlock()
}

// liveView is what the live page shows.
type liveView struct {
	Sync     string
	Status   string
	Key      string
	Events   []liveEvent
	Watching bool
}

type liveEvent struct {
	debug.Event
	PayloadText string
}

func (v liveView) title() string { return v.Sync + " live" }
func (v liveView) refresh() int  { return liveRefresh }
func (s *server) liveSync(r *http.Request) (any, error) {
	name := r.PathValue("name")
	if config.ValidateName(string(config.KindSync), name) != nil {
		return nil, notFound("There is no sync named %q.", name)
	}
	_, err := s.d.Configs.Sync(r.Context(), name)
	if errors.Is(err, config.ErrNotFound) {
		return nil, notFound("There is no sync named %q.", name)
	}
	if err != nil {
		return nil, err
	}
	w, err := s.watch(r, name)
	if err != nil {
		return nil, err
	}
	status, key := r.URL.Query().Get("status"), r.URL.Query().Get("key")
	v := liveView{Sync: name, Status: status, Key: key, Watching: true}
	for _, ev := range w.latest(status, key) {
		payload, _ := json.Marshal(ev.Payload)
		text := string(payload)
		if len(text) > 300 {
			text = text[:300] + "…"
		}
		v.Events = append(v.Events, liveEvent{Event: ev, PayloadText: text})
	}
	return v, nil
}
