package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/run"
)

// The recorder of the history test: it follows every write to the runs
// bucket (so the driver sees a run enter a phase within milliseconds, and a
// failure report can tell what each run went through) and keeps a log of
// the driver's actions, kills included.

// runTrace is what the recorder saw of one run.
type runTrace struct {
	id, sync string
	states   []stateAt
	last     run.Run
}

type stateAt struct {
	state run.State
	at    time.Time
}

// String is the run's path through its states, such as
// "pending → diffing → extracting → cancelled (cancelled by request)".
func (rt *runTrace) String() string {
	var parts []string
	for _, s := range rt.states {
		parts = append(parts, string(s.state))
	}
	out := strings.Join(parts, " → ")
	if rt.last.Error != "" {
		out += " (" + rt.last.Error + ")"
	}
	return out
}

// kill is one SIGKILL of a service by the driver.
type kill struct {
	service string
	// sync, run and phase are set when the kill hunted a run in a phase;
	// landed says the run was still in that phase once the process was
	// dead, so the kill cut the phase's work short.
	sync, run, phase string
	landed           bool
	at               time.Time
}

// recorder is safe for concurrent use.
type recorder struct {
	t     *testing.T
	start time.Time

	mu      sync.Mutex
	runs    map[string]*runTrace // by run id
	newest  map[string]string    // sync -> id of its newest run
	actions []action
	kills   []kill
	changed chan struct{} // closed and replaced at every run write
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, start: time.Now(), runs: map[string]*runTrace{}, newest: map[string]string{}, changed: make(chan struct{})}
}

// watch follows the runs bucket until the test ends, watching again if the
// watch stops (a NATS restart).
func (r *recorder) watch(js jetstream.JetStream) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	r.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r.watchOnce(ctx, js)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
}

func (r *recorder) watchOnce(ctx context.Context, js jetstream.JetStream) {
	kv, err := js.KeyValue(ctx, bus.BucketRuns)
	if err != nil {
		return
	}
	w, err := kv.Watch(ctx, "run.>")
	if err != nil {
		return
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var rn run.Run
			if json.Unmarshal(e.Value(), &rn) == nil {
				r.see(&rn)
			}
		}
	}
}

func (r *recorder) see(rn *run.Run) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.runs[rn.ID]
	if rt == nil {
		rt = &runTrace{id: rn.ID, sync: rn.Sync}
		r.runs[rn.ID] = rt
		if rn.ID > r.newest[rn.Sync] { // ULIDs sort by creation time
			r.newest[rn.Sync] = rn.ID
		}
	}
	if n := len(rt.states); n == 0 || rt.states[n-1].state != rn.State {
		rt.states = append(rt.states, stateAt{state: rn.State, at: time.Now()})
	}
	rt.last = *rn
	close(r.changed)
	r.changed = make(chan struct{})
}

// latest returns the newest run of sync as last seen, or nil.
func (r *recorder) latest(sync string) *run.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := r.runs[r.newest[sync]]
	if rt == nil {
		return nil
	}
	rn := rt.last
	return &rn
}

// trace describes a run for a failure report.
func (r *recorder) trace(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt := r.runs[id]; rt != nil {
		return rt.String()
	}
	return "(never seen in the runs bucket)"
}

// waitChange returns a channel closed at the next run write.
func (r *recorder) waitChange() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// action is a driver action, as logged.
type action struct {
	at   time.Time
	line string
}

// logf records a driver action and logs it.
func (r *recorder) logf(format string, args ...any) {
	now := time.Now()
	line := fmt.Sprintf("%6.1fs ", now.Sub(r.start).Seconds()) + fmt.Sprintf(format, args...)
	r.mu.Lock()
	r.actions = append(r.actions, action{at: now, line: line})
	r.mu.Unlock()
	r.t.Log(line)
}

// actionsAround lists the driver's actions from a few seconds before from
// until to, for a failure report.
func (r *recorder) actionsAround(from, to time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	for _, a := range r.actions {
		if !a.at.Before(from.Add(-3*time.Second)) && !a.at.After(to) {
			lines = append(lines, "    "+a.line)
		}
	}
	if len(lines) > 20 {
		lines = append(lines[:10], append([]string{"    ..."}, lines[len(lines)-10:]...)...)
	}
	return strings.Join(lines, "\n")
}

func (r *recorder) addKill(k kill) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kills = append(r.kills, k)
}

// phasesHit counts, per phase, the kills that landed in it.
func (r *recorder) phasesHit() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	hit := map[string]int{}
	for _, k := range r.kills {
		if k.landed {
			hit[k.phase]++
		}
	}
	return hit
}

// killCounts counts kills per service.
func (r *recorder) killCounts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := map[string]int{}
	for _, k := range r.kills {
		n[k.service]++
	}
	return n
}

// runsOf lists a sync's runs, oldest first, with their paths.
func (r *recorder) runsOf(sync string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for id, rt := range r.runs {
		if rt.sync == sync {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id + ": " + r.runs[id].String()
	}
	return out
}
