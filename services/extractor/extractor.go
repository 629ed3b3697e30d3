// Package extractor is the service that reads the rows of a run's change set
// from the warehouse and publishes them in batches.
//
// A batch ends at the run's batch size or at a byte budget below the NATS
// server's max payload, whichever comes first. Its boundary is saved in the
// checkpoint before it is published, so a resumed extraction rebuilds
// exactly the same batch (the same change-set entries, whatever the rows
// hold by then) and its republish is a duplicate the stream drops.
//
// One extractor owns a run's extraction at a time (a claim in the run).
// When the sync's buffer of record batches is full (its destination is
// slow), the extractor hands the run back with a delay and serves other
// runs meanwhile. A mirror run that deletes and also adds or changes
// records publishes its deletes first and waits for their results, so a
// delete and an add that reach the same destination record arrive in that
// order.
package extractor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source"
)

// Deps is what the extractor needs.
type Deps struct {
	Plane      *plane.Plane
	Log        zerolog.Logger
	OpenSource func(context.Context, config.Source) (source.Source, error)
	// Workers is how many runs are extracted at once.
	Workers int
	// ClaimTTL is how long an extractor's claim on a run lasts without
	// renewal: after a crash, another copy takes the run over after it.
	// Default 10s: a crash costs at most that before another copy goes on.
	ClaimTTL time.Duration
}

type service struct{ Deps }

// Run consumes ebb.run.diffed until ctx ends.
func Run(ctx context.Context, d Deps) error {
	if d.Workers <= 0 {
		d.Workers = 2
	}
	if d.ClaimTTL <= 0 {
		d.ClaimTTL = 10 * time.Second
	}
	d.Log = d.Log.With().Str(logging.FieldService, "extractor").Logger()
	cons, err := bus.Durable(ctx, d.Plane.JS, bus.StreamRuns, jetstream.ConsumerConfig{
		Durable:       "extractor",
		FilterSubject: bus.RunDiffed("*"),
		// Runs handed back while their buffer is full wait here without a
		// worker: room for many of them keeps the others moving.
		MaxAckPending: 4096,
	})
	if err != nil {
		return err
	}
	s := &service{d}
	return d.Plane.Bus.Work(ctx, cons, bus.WorkOptions{Workers: d.Workers}, d.Log, s.handle)
}

// Reasons to hand a run back, with how long it waits before it comes
// back. The checkpoint is saved each time.
var (
	errBufferFull   = errors.New("the sync's buffer of record batches is full")
	errDeletesFirst = errors.New("waiting for the run's deletes to reach the destination before its other records")
)

func (s *service) handle(ctx context.Context, msg jetstream.Msg) error {
	var ev run.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		s.Log.Error().Err(err).Msg("dropping malformed run event")
		return nil
	}
	log := s.Log.With().Str(logging.FieldSync, ev.Sync).Str(logging.FieldRun, ev.RunID).Logger()
	owner := ulid.Make().String()
	r, err := s.Plane.Runs.Claim(ctx, ev.Sync, ev.RunID, owner, run.Extracting, s.ClaimTTL)
	switch {
	case errors.Is(err, run.ErrNotFound), errors.Is(err, run.ErrPhaseOver):
		return nil // extracted already, paused (a resume announces it again) or over
	case errors.Is(err, run.ErrClaimed):
		return &bus.RetryError{Err: err, Delay: s.ClaimTTL / 3, Hold: true}
	case err != nil:
		return err
	}
	lctx, stop := s.Plane.Runs.KeepClaim(ctx, r.Sync, r.ID, owner, s.ClaimTTL)
	if err = s.awaitRoom(lctx, r); err == nil {
		err = s.extract(lctx, log, r, owner)
	}
	stop()
	if err != nil && !errors.Is(err, run.ErrLostClaim) {
		s.release(ctx, r, owner)
	}
	return s.settle(ctx, log, msg, r, err)
}

// settle turns what extract returned into what the message gets: acked,
// handed back with a delay, or the run failed.
func (s *service) settle(ctx context.Context, log zerolog.Logger, msg jetstream.Msg, r *run.Run, err error) error {
	var transient *source.TransientError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errStopped), errors.Is(err, run.ErrPhaseOver):
		log.Info().Msg("extraction stopped at a batch boundary: the run is paused or over")
		return nil // a resume announces the run again
	case errors.Is(err, run.ErrLostClaim):
		log.Warn().Msg("another extractor took the run over")
		return nil
	case errors.Is(err, errBufferFull):
		return &bus.RetryError{Err: err, Delay: handBackDelay(msg), Hold: true}
	case errors.Is(err, errDeletesFirst):
		return &bus.RetryError{Err: err, Delay: time.Second, Hold: true}
	case ctx.Err() != nil, errors.Is(err, errShuttingDown):
		return err
	case bus.IsPermanent(err):
		log.Error().Err(err).Msg("extraction failed")
		_, ferr := s.Plane.Runs.Fail(ctx, r.Sync, r.ID, err.Error())
		return ferr
	case errors.As(err, &transient) && bus.Delivered(msg) < source.TransientAttempts:
		// Handed back: the redelivery resumes from the checkpoint.
		log.Warn().Err(err).Uint64("attempt", bus.Delivered(msg)).Msg("the warehouse failed transiently; extraction will be retried")
		return err
	}
	var srcErr *sourceError
	if errors.As(err, &srcErr) {
		// The warehouse refused: the run fails with its message.
		log.Error().Err(err).Msg("extraction failed")
		_, ferr := s.Plane.Runs.Fail(ctx, r.Sync, r.ID, err.Error())
		return ferr
	}
	return err // NATS: handed back and retried
}

// handBackDelay grows with the times a run was handed back, from one to
// five seconds: a run waiting on a slow destination costs a read of its
// checkpoint every few seconds, nothing more.
func handBackDelay(msg jetstream.Msg) time.Duration {
	return min(time.Duration(bus.Delivered(msg))*time.Second, 5*time.Second)
}

// awaitRoom hands a run back again while its sync's buffer is more than
// half full: a run handed back because its buffer was full resumes once a
// good part of it has drained, not for every batch delivered, so a slow
// destination costs the warehouse one more read of the model per half a
// buffer, not per batch.
func (s *service) awaitRoom(ctx context.Context, r *run.Run) error {
	st, err := s.Plane.JS.Stream(ctx, bus.StreamRecords)
	if err != nil {
		return err
	}
	subject := bus.Records(r.Sync)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return err
	}
	if limit := info.Config.MaxMsgsPerSubject; limit > 0 && 2*int64(info.State.Subjects[subject]) > limit {
		return errBufferFull
	}
	return nil
}

// release gives up owner's claim so the run's next announcement is taken
// at once, not after the lease.
func (s *service) release(ctx context.Context, r *run.Run, owner string) {
	_, _ = s.Plane.Runs.Release(context.WithoutCancel(ctx), r.Sync, r.ID, owner)
}

// sourceError marks a failure of the warehouse, as opposed to one of NATS.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (s *service) extract(ctx context.Context, log zerolog.Logger, r *run.Run, owner string) error {
	cp, err := s.loadCheckpoint(ctx, r.ID)
	if err != nil {
		return err
	}
	passes := passesOf(r)
	if cp.Seq > 0 || cp.Pass > 0 {
		log.Info().Int("from_batch", cp.Seq).Int("pass", cp.Pass).Msg("resuming extraction from checkpoint")
	} else {
		log.Info().Msg("extracting")
	}
	var src source.Source
	defer func() {
		if src != nil {
			src.Close()
		}
	}()
	for cp.Pass < len(passes) {
		p := passes[cp.Pass]
		if p.waitsForDeletes && !r.DeletesDone {
			if err := s.awaitDeletes(ctx, r); err != nil {
				return err
			}
		}
		if p.readsRows && src == nil {
			if src, err = s.openSource(ctx, r); err != nil {
				return err
			}
		}
		w := &walker{svc: s, run: r, cp: &cp, pass: p, budget: s.Plane.Bus.MaxInline() / 2}
		if err := w.walk(ctx, src); err != nil {
			return err
		}
		cp = checkpoint{Pass: cp.Pass + 1, Seq: cp.Seq, Extracted: cp.Extracted}
		if cp.Pass < len(passes) {
			if err := s.saveCheckpoint(ctx, r.ID, cp); err != nil {
				return err
			}
		}
	}
	_, err = s.Plane.Runs.Advance(ctx, r.Sync, r.ID, owner, run.Extracting, run.Delivering, func(r *run.Run) {
		r.Batches = cp.Seq
		r.Extracted = cp.Extracted
	})
	if err != nil {
		return err
	}
	_ = s.Plane.State.Delete(ctx, checkpointKey(r.ID))
	log.Info().Int("batches", cp.Seq).Int64("records", cp.Extracted).Msg("extracted")
	return nil
}

func (s *service) openSource(ctx context.Context, r *run.Run) (source.Source, error) {
	srcCfg, err := s.Plane.Configs.Source(ctx, r.Spec.Source)
	if errors.Is(err, config.ErrNotFound) {
		return nil, &sourceError{err} // deleted since the run started: it fails
	}
	if err != nil {
		return nil, err // NATS: handed back
	}
	src, err := s.OpenSource(ctx, srcCfg)
	if err != nil {
		return nil, &sourceError{source.MarkTransient(nil, fmt.Errorf("opening source %q: %w", srcCfg.Name, err))}
	}
	return src, nil
}

// awaitDeletes waits for every delete of the run to have its result, for
// a few seconds; past that, the run is handed back and checked again
// later, so a slow destination does not hold this worker.
func (s *service) awaitDeletes(ctx context.Context, r *run.Run) error {
	deadline := time.Now().Add(3 * time.Second)
	for {
		cur, err := s.Plane.Runs.Get(ctx, r.Sync, r.ID)
		if err != nil {
			return err
		}
		if cur.State.Over() || cur.State == run.Paused {
			return errStopped
		}
		d := cur.Deletes
		if d.Delivered+d.Failed+d.Vanished+d.Filtered >= cur.Planned.Deletes {
			_, err := s.Plane.Runs.MarkDeletesDone(ctx, r.Sync, r.ID)
			r.DeletesDone = err == nil
			return err
		}
		if time.Now().After(deadline) {
			return errDeletesFirst
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// errShuttingDown hands the run back at a batch boundary when this copy
// is shutting down: another copy (or this one, restarted) resumes from the
// checkpoint.
var errShuttingDown = errors.New("shutting down: extraction handed back at its checkpoint")

// errStopped ends an extraction at a batch boundary because the run was
// paused, cancelled or failed; the checkpoint is saved, so a resume goes
// on from the next batch.
var errStopped = errors.New("run paused or over")

// checkActive reads the run's state after each batch: one read per batch
// of thousands of records is cheap, and a pause stops extraction within a
// batch.
func (s *service) checkActive(ctx context.Context, r *run.Run) error {
	if bus.Stopping(ctx) {
		return errShuttingDown
	}
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return err // the claim was lost, or the run stopped
	}
	cur, err := s.Plane.Runs.Get(ctx, r.Sync, r.ID)
	if err != nil {
		return err
	}
	if cur.State != run.Extracting {
		return errStopped
	}
	return nil
}
