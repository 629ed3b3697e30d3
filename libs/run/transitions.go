package run

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ebb-etl/ebb/libs/record"
)

// This file holds every change of a run's state, each a named operation
// with its guard, so the rules of the state machine live in one place:
//
//	pending ─Claim(diffing)─▶ diffing ─Advance─▶ extracting ─Advance─▶ delivering ─BeginCommit─▶ committing ─Succeed─▶ succeeded|failed
//	                             └─Advance─▶ awaiting_approval ─Approve─▶ extracting
//	any active state ─Pause─▶ paused ─Resume─▶ the state it left
//	any active state ─Cancel/Fail─▶ cancelling|failing ─Finish (drained)─▶ cancelled|failed
//	                                (straight to cancelled|failed when nothing can be on its way)
//
// Services never write a run's state any other way; Update stays for the
// counters of tests and tools.

// Errors of the transitions.
var (
	// ErrClaimed: another worker holds the phase; hand the work back.
	ErrClaimed = errors.New("another worker holds the run's phase")
	// ErrLostClaim: the worker's claim was taken over (its lease ran out);
	// it must stop without writing anything more.
	ErrLostClaim = errors.New("the claim on the run's phase was lost")
	// ErrPhaseOver: the run is not in the phase asked for any more: it
	// moved on, is paused, or was cancelled or failed.
	ErrPhaseOver = errors.New("the run is no longer in that phase")
)

// Claim makes owner the one worker of the run's phase (Diffing or
// Extracting) for ttl; Renew extends it. A run pending is moved to
// Diffing by its claim. It fails with ErrClaimed while another owner's
// lease is live, and with ErrPhaseOver when the run is not in the phase.
func (s *Store) Claim(ctx context.Context, sync, id, owner string, phase State, ttl time.Duration) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		now := time.Now().UTC()
		switch {
		case phase == Diffing && (r.State == Pending || r.State == Diffing):
		case phase == Extracting && r.State == Extracting:
		default:
			return fmt.Errorf("claiming %s of run %s, which is %s: %w", phase, id, r.State, ErrPhaseOver)
		}
		if r.Claim.heldByOther(owner, now) {
			return fmt.Errorf("run %s: %w (%s, until %s)", id, ErrClaimed, r.Claim.Owner, r.Claim.Until.Format(time.RFC3339))
		}
		if r.Claim == nil || r.Claim.Owner != owner {
			r.Claims++
		}
		r.State, r.Claim = phase, &Claim{Owner: owner, Phase: phase, Until: now.Add(ttl)}
		if r.StartedAt.IsZero() {
			r.StartedAt = now
		}
		return nil
	})
}

// Renew extends owner's claim for ttl. It fails with ErrLostClaim when
// another worker took the phase over, and ErrPhaseOver when the run was
// cancelled or failed meanwhile: either way the worker stops.
func (s *Store) Renew(ctx context.Context, sync, id, owner string, ttl time.Duration) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.State.Over() {
			return fmt.Errorf("run %s is %s: %w", id, r.State, ErrPhaseOver)
		}
		if r.Claim == nil || r.Claim.Owner != owner {
			return fmt.Errorf("run %s: %w", id, ErrLostClaim)
		}
		r.Claim.Until = time.Now().UTC().Add(ttl)
		return nil
	})
}

// Release gives up owner's claim, so the next worker handed the run need
// not wait for the lease to run out.
func (s *Store) Release(ctx context.Context, sync, id, owner string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.Claim == nil || r.Claim.Owner != owner {
			return ErrSkip
		}
		r.Claim = nil
		return nil
	})
}

// Advance moves the run from one phase to the next, applying fill to
// record what the phase found, and releases owner's claim. A paused run
// stays paused and resumes in the next phase. It fails with ErrLostClaim
// when owner (if not empty) no longer holds the claim, and ErrPhaseOver
// when the run is not in from (cancelled meanwhile, say).
func (s *Store) Advance(ctx context.Context, sync, id, owner string, from, to State, fill func(*Run)) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if owner != "" && (r.Claim == nil || r.Claim.Owner != owner) {
			return fmt.Errorf("advancing run %s to %s: %w", id, to, ErrLostClaim)
		}
		if !r.advance(from, to) {
			return fmt.Errorf("advancing run %s from %s to %s, but it is %s: %w", id, from, to, r.State, ErrPhaseOver)
		}
		r.Claim = nil
		if fill != nil {
			fill(r)
		}
		return nil
	})
}

// advance moves the run from one state to the next, and reports whether it
// did. A paused run stays paused but will resume in the next state, so a
// stage finishing its work during a pause still records its progress.
func (r *Run) advance(from, to State) bool {
	switch {
	case r.State == from:
		r.State = to
	case r.State == Paused && r.PausedFrom == from:
		r.PausedFrom = to
	default:
		return false
	}
	return true
}

// mayBeDelivering reports whether some of the run's records may be on
// their way to the destination: then stopping it must drain.
func (r *Run) mayBeDelivering() bool {
	p := r.Phase()
	return !r.DryRun && (p == Extracting || p == Delivering)
}

// stop ends the run with reason, through draining when needed.
func (r *Run) stop(draining, final State, reason string) {
	r.Error, r.PausedFrom, r.Claim = reason, "", nil
	if r.mayBeDelivering() {
		r.State, r.StoppedAt = draining, time.Now().UTC()
		return
	}
	r.State = final
}

// Fail fails the run with reason: through Failing when records may be on
// their way, straight to Failed otherwise. A run already over, or
// committing (everything was delivered; the commit is retried until it
// ends), is left as it is.
func (s *Store) Fail(ctx context.Context, sync, id, reason string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.State.Over() || r.State == Committing {
			return ErrSkip
		}
		r.stop(Failing, Failed, reason)
		return nil
	})
}

// Cancel ends an active run without committing its snapshot: records it
// delivered are sent again by the next run. Stages drop its remaining
// batches; it is Cancelling until its requests in flight have ended.
func (s *Store) Cancel(ctx context.Context, id string) (*Run, error) {
	r, err := s.Find(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Update(ctx, r.Sync, id, func(r *Run) error {
		switch {
		case r.State.Terminal(), r.State.Stopping():
			return fmt.Errorf("run %s is already %s: %w", id, r.State, ErrNotActive)
		case r.State == Committing:
			// Everything has a final result and the snapshot is moving:
			// stopping now would leave the destination ahead of it.
			return fmt.Errorf("run %s is committing and can no longer be cancelled: %w", id, ErrNotActive)
		}
		r.stop(Cancelling, Cancelled, "cancelled by request; the next run sends again what this one did not commit")
		return nil
	})
}

// Finish ends a draining run (Cancelling, Failing) once Drained says no
// request of it is in flight; it releases the sync's active slot.
func (s *Store) Finish(ctx context.Context, sync, id string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		switch r.State {
		case Cancelling:
			r.State = Cancelled
		case Failing:
			r.State = Failed
		default:
			return ErrSkip
		}
		return nil
	})
}

// ErrNotReady is returned by BeginCommit for a run some of whose records
// have no final result yet.
var ErrNotReady = errors.New("not every record has a final result")

// BeginCommit moves a run whose every record has a final result to
// Committing, and reports whether this call did (false: a commit a crash
// cut short is being resumed, or the run is over). A run paused after its
// last record was delivered commits too: that sends nothing.
func (s *Store) BeginCommit(ctx context.Context, sync, id string) (*Run, bool, error) {
	began := false
	r, err := s.Update(ctx, sync, id, func(r *Run) error {
		began = false
		if r.State == Committing || r.State.Over() {
			return ErrSkip
		}
		if r.Final() < r.Planned.Total() {
			return fmt.Errorf("run %s has %d of %d final results: %w", r.ID, r.Final(), r.Planned.Total(), ErrNotReady)
		}
		r.State, r.PausedFrom, r.Claim, began = Committing, "", nil, true
		return nil
	})
	return r, err == nil && (began || r.State == Committing), err
}

// Succeed ends a committed run: Succeeded, or Failed when some records
// failed (the committed snapshot keeps their old state, so the next run
// sends them again). A dry run ends the same way, saying what would fail.
func (s *Store) Succeed(ctx context.Context, sync, id string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.State != Committing {
			return ErrSkip
		}
		r.State = Succeeded
		n := r.FailedRecords()
		switch {
		case n > 0 && r.DryRun:
			r.State, r.Error = Failed, fmt.Sprintf("%d of %d records would fail", n, r.Planned.Total())
		case n > 0:
			r.State, r.Error = Failed, fmt.Sprintf("%d of %d records failed; the next run sends them again", n, r.Planned.Total())
		}
		return nil
	})
}

// CountResults adds a result batch's outcomes to the run, once: a bitmap
// of the batches counted guards against redelivery. It reports whether it
// counted them.
func (s *Store) CountResults(ctx context.Context, sync, id string, index int, results []record.Result, retries int) (*Run, bool, error) {
	counted := false
	r, err := s.Update(ctx, sync, id, func(r *Run) error {
		counted = false
		if r.State.Over() || !r.MarkBatch(index) {
			return ErrSkip
		}
		for _, c := range results {
			r.count(c)
		}
		r.Retries += int64(retries)
		counted = true
		return nil
	})
	return r, counted, err
}

// MarkDeletesDone records that the run's deletes all have their results,
// so its other records may go.
func (s *Store) MarkDeletesDone(ctx context.Context, sync, id string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.DeletesDone || r.State.Over() {
			return ErrSkip
		}
		r.DeletesDone = true
		return nil
	})
}

// Pause pauses the run: its stages stop at their next batch boundary. A
// run committing finishes (that sends nothing), one over stays over.
func (s *Store) Pause(ctx context.Context, sync, id string) (*Run, error) {
	return s.Update(ctx, sync, id, func(r *Run) error {
		if r.State.Over() || r.State == Paused || r.State == Committing {
			return ErrSkip
		}
		r.PausedFrom, r.State = r.State, Paused
		return nil
	})
}

// Resume returns a paused run to the state it left and reports whether it
// did. A run paused while diffing goes back to diffing: if its differ is
// alive it finishes (its claim keeps any other differ out); if it died,
// another takes the phase over once the claim's lease has run out.
func (s *Store) Resume(ctx context.Context, sync, id string) (*Run, bool, error) {
	resumed := false
	r, err := s.Update(ctx, sync, id, func(r *Run) error {
		resumed = false
		if r.State != Paused {
			return ErrSkip
		}
		r.State, r.PausedFrom = r.PausedFrom, ""
		r.Resumes++
		resumed = true
		return nil
	})
	return r, resumed, err
}

// Approve lets a run stopped by a safety check go on to extraction.
func (s *Store) Approve(ctx context.Context, id string) (*Run, error) {
	r, err := s.Find(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Update(ctx, r.Sync, id, func(r *Run) error {
		if r.State != AwaitingApproval {
			return fmt.Errorf("run %s is %s, not awaiting approval: %w", id, r.State, ErrNotActive)
		}
		r.State, r.ApprovedAt = Extracting, time.Now().UTC()
		return nil
	})
}

// count adds one result to the run's outcome counts, by what the differ
// found. A fanned-out copy after the first (Extra) counts in Fanout too,
// so Final counts its record once.
func (r *Run) count(res record.Result) {
	o := &r.Changes
	switch res.Change {
	case record.Added:
		o = &r.Adds
	case record.Deleted:
		o = &r.Deletes
	}
	switch res.Status {
	case record.Delivered:
		o.Delivered++
	case record.Vanished:
		o.Vanished++
	case record.Filtered:
		o.Filtered++
	default:
		o.Failed++
	}
	if res.Extra {
		r.Fanout++
	}
}

// KeepClaim renews owner's claim every third of ttl until stop is called.
// The context it returns ends, with ErrLostClaim or ErrPhaseOver as its
// cause, when the claim is lost or the run stops: the worker then stops
// at its next step without writing anything more.
func (s *Store) KeepClaim(ctx context.Context, syncName, id, owner string, ttl time.Duration) (context.Context, func()) {
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			_, err := s.Renew(ctx, syncName, id, owner, ttl)
			if errors.Is(err, ErrLostClaim) || errors.Is(err, ErrPhaseOver) {
				cancel(err)
				return
			}
			// Any other error (NATS unreachable) is tried again next tick;
			// the lease still has two thirds of its time.
		}
	}()
	var once sync.Once
	return lctx, func() { once.Do(func() { close(done); cancel(nil) }) }
}
