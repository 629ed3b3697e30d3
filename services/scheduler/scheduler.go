// Package scheduler is the service that starts syncs on their schedules.
// Copies elect one leader through a lease in the leases KV bucket, renewed
// by compare-and-swap; only the leader starts runs, and the run store's
// active slot guarantees a sync never has two active runs.
package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
)

// Deps is what the scheduler needs.
type Deps struct {
	Plane *plane.Plane
	Log   zerolog.Logger
	// Leases is the leases bucket.
	Leases jetstream.KeyValue
	// ID names this copy in the lease; default host:pid.
	ID string
	// Tick is how often schedules are checked; default 1s.
	Tick time.Duration
	// LeaseTTL is how long a lease lasts without renewal; default 10s.
	LeaseTTL time.Duration
	// StaleAfter is how long a run may stay pending before the leader
	// announces it again; default 30s.
	StaleAfter time.Duration
	// RunRetention is how long finished runs are kept; default 30 days.
	RunRetention time.Duration
}

const leaseKey = "scheduler"

// lease is the leader's claim, valid until Expires.
type lease struct {
	Holder  string    `json:"holder"`
	Expires time.Time `json:"expires"`
}

type service struct {
	Deps
	leaseUntil time.Time
	// leaseRev is the revision of our last lease write: the fencing token.
	leaseRev uint64
	prunedAt time.Time
}

// Run checks schedules every tick while it holds the lease, until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Tick <= 0 {
		d.Tick = time.Second
	}
	if d.LeaseTTL <= 0 {
		d.LeaseTTL = 10 * time.Second
	}
	if d.StaleAfter <= 0 {
		d.StaleAfter = 30 * time.Second
	}
	if d.RunRetention <= 0 {
		d.RunRetention = 30 * 24 * time.Hour
	}
	if d.ID == "" {
		host, _ := os.Hostname()
		d.ID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	d.Log = d.Log.With().Str(logging.FieldService, "scheduler").Logger()
	s := &service{Deps: d}
	t := time.NewTicker(d.Tick)
	defer t.Stop()
	for {
		leader, err := s.claim(ctx)
		if err != nil && ctx.Err() == nil {
			s.Log.Warn().Err(err).Msg("claiming scheduler lease")
		}
		if leader {
			if err := s.fire(ctx); err != nil && ctx.Err() == nil {
				s.Log.Warn().Err(err).Msg("checking schedules")
			}
			s.prune(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// claim takes or renews the lease. Every write is compare-and-swap on the
// revision read, so two copies can never both succeed.
func (s *service) claim(ctx context.Context) (bool, error) {
	now := time.Now()
	next, _ := json.Marshal(lease{Holder: s.ID, Expires: now.Add(s.LeaseTTL)})
	e, err := s.Leases.Get(ctx, leaseKey)
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err = s.Leases.Create(ctx, leaseKey, next)
	case err != nil:
		return false, err
	default:
		var cur lease
		if jerr := json.Unmarshal(e.Value(), &cur); jerr == nil && cur.Holder != s.ID && now.Before(cur.Expires) {
			return false, nil // someone else leads
		}
		rev, err = s.Leases.Update(ctx, leaseKey, next, e.Revision())
	}
	if err != nil {
		return false, nil // lost the race
	}
	s.leaseRev = rev
	if s.leaseUntil.IsZero() || now.After(s.leaseUntil) {
		s.Log.Info().Str("holder", s.ID).Msg("leading the scheduler")
	}
	// Act on the lease only for half its TTL, to leave room for clock skew.
	s.leaseUntil = now.Add(s.LeaseTTL / 2)
	return true, nil
}

// prune deletes finished runs older than RunRetention, once a minute.
func (s *service) prune(ctx context.Context) {
	if time.Since(s.prunedAt) < time.Minute {
		return
	}
	s.prunedAt = time.Now()
	n, err := s.Plane.Runs.Prune(ctx, time.Now().Add(-s.RunRetention))
	if err != nil && ctx.Err() == nil {
		s.Log.Warn().Err(err).Msg("pruning run history")
	}
	if n > 0 {
		s.Log.Info().Int("runs", n).Dur("retention", s.RunRetention).Msg("pruned run history")
	}
}

// errNotLeader stops a copy that lost its lease from starting runs.
var errNotLeader = errors.New("no longer the scheduler leader")

// fence renews the lease by compare-and-swap on the revision of our last
// write, just before a run starts. A copy that was stopped (SIGSTOP, a long
// GC pause) while another took over finds the revision moved on and starts
// nothing: the revision is the fencing token.
func (s *service) fence(ctx context.Context) error {
	now := time.Now()
	next, _ := json.Marshal(lease{Holder: s.ID, Expires: now.Add(s.LeaseTTL)})
	rev, err := s.Leases.Update(ctx, leaseKey, next, s.leaseRev)
	if err != nil {
		s.leaseUntil = time.Time{}
		return errNotLeader
	}
	s.leaseRev, s.leaseUntil = rev, now.Add(s.LeaseTTL/2)
	return nil
}

// scheduleState is when a sync was last started by its schedule.
type scheduleState struct {
	Last time.Time `json:"last"`
}

func scheduleKey(sync string) string { return "schedule." + sync }

func (s *service) fire(ctx context.Context) error {
	names, err := s.Plane.Configs.Load(ctx)
	if err != nil {
		return err
	}
	for _, sync := range names.Syncs {
		if time.Now().After(s.leaseUntil) {
			return nil // the lease may have passed to another copy
		}
		if err := s.tendActive(ctx, sync); err != nil {
			s.Log.Warn().Err(err).Str(logging.FieldSync, sync.Name).Msg("checking active run")
		}
		if err := s.startRequested(ctx, sync.Name); errors.Is(err, errNotLeader) {
			return nil
		} else if err != nil {
			s.Log.Warn().Err(err).Str(logging.FieldSync, sync.Name).Msg("starting requested run")
		}
		err := s.fireOne(ctx, sync)
		if errors.Is(err, errNotLeader) {
			return nil
		}
		if err != nil {
			s.Log.Warn().Err(err).Str(logging.FieldSync, sync.Name).Msg("starting scheduled run")
		}
	}
	return nil
}

func (s *service) fireOne(ctx context.Context, sync config.Sync) error {
	sched, err := config.ParseSchedule(sync.Schedule)
	if err != nil || sched == nil {
		return err
	}
	now := time.Now().UTC()
	var st scheduleState
	e, err := s.Plane.State.Get(ctx, scheduleKey(sync.Name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// First sight of this schedule: start counting from now.
		return s.saveSchedule(ctx, sync.Name, scheduleState{Last: now})
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return err
	}
	if now.Before(sched.Next(st.Last)) {
		return nil
	}
	if paused, err := run.SyncPaused(ctx, s.Plane.State, sync.Name); err != nil || paused {
		return err
	}
	if err := s.fence(ctx); err != nil {
		return err
	}
	r, err := run.Start(ctx, s.Plane.Bus, s.Plane.Runs, sync.Name, "schedule")
	switch {
	case errors.Is(err, run.ErrActive):
		s.Log.Info().Str(logging.FieldSync, sync.Name).Msg("skipping scheduled run: the previous run is still active")
	case err != nil:
		return err
	default:
		s.Log.Info().Str(logging.FieldSync, sync.Name).Str(logging.FieldRun, r.ID).Msg("started scheduled run")
	}
	return s.saveSchedule(ctx, sync.Name, scheduleState{Last: now})
}

// startRequested starts the run a sync was asked for while it was busy
// (run.RequestRerun), once it is free and not paused.
func (s *service) startRequested(ctx context.Context, sync string) error {
	if id, err := s.Plane.Runs.ActiveID(ctx, sync); err != nil || id != "" {
		return err
	}
	if requested, err := run.RerunRequested(ctx, s.Plane.State, sync); err != nil || !requested {
		return err
	}
	if paused, err := run.SyncPaused(ctx, s.Plane.State, sync); err != nil || paused {
		return err
	}
	if err := s.fence(ctx); err != nil {
		return err
	}
	trigger, ok, err := run.TakeRerun(ctx, s.Plane.State, sync)
	if err != nil || !ok {
		return err
	}
	r, err := run.Start(ctx, s.Plane.Bus, s.Plane.Runs, sync, trigger)
	if errors.Is(err, run.ErrActive) {
		return run.RequestRerun(ctx, s.Plane.State, sync, trigger) // someone started one meanwhile: after it
	}
	if err != nil {
		return err
	}
	s.Log.Info().Str(logging.FieldSync, sync).Str(logging.FieldRun, r.ID).Str("trigger", trigger).Msg("started requested run")
	return nil
}

func (s *service) saveSchedule(ctx context.Context, sync string, st scheduleState) error {
	data, _ := json.Marshal(st)
	_, err := s.Plane.State.Put(ctx, scheduleKey(sync), data)
	return err
}
