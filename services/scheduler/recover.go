package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
)

// tendActive looks after a sync's active run each tick:
//   - it repairs what a crash in run.Start can leave behind: an active slot
//     whose run was never written, and a pending run whose announcement
//     was never published (after StaleAfter the leader assumes the crash);
//   - it fails a run older than the sync's max_run_duration;
//   - it ends a cancelled or failed run once its requests in flight have
//     drained (run.Drained), which frees the sync for its next run.
func (s *service) tendActive(ctx context.Context, sync config.Sync) error {
	id, err := s.Plane.Runs.ActiveID(ctx, sync.Name)
	if err != nil || id == "" {
		return err
	}
	r, err := s.Plane.Runs.Get(ctx, sync.Name, id)
	if errors.Is(err, run.ErrNotFound) {
		return s.Plane.Runs.ReleaseOrphan(ctx, sync.Name, id, s.StaleAfter)
	}
	if err != nil {
		return err
	}
	limit := sync.RunLimit()
	if r.Spec.Name != "" {
		limit = r.Spec.RunLimit() // the sync as the run started
	}
	switch {
	case r.State.Stopping():
		return s.finishDrained(ctx, r)
	case time.Since(r.CreatedAt) > limit:
		return s.expire(ctx, r, limit)
	case r.State == run.Pending && time.Since(r.CreatedAt) >= s.StaleAfter:
		s.Log.Warn().Str(logging.FieldSync, sync.Name).Str(logging.FieldRun, id).Msg("run pending for too long; announcing it again")
		// The same id every time: the stream's duplicate window keeps repeats out.
		return run.Announce(ctx, s.Plane.Bus, bus.RunRequested(sync.Name), id, sync.Name, "requested/recovered")
	}
	return s.nudge(ctx, r)
}

// nudge announces again a run that sits in a phase with no one working on
// it for longer than StaleAfter: no claim on its diff or extraction, or
// every result in but no commit. An announcement lost in a crash (or a
// node of the cluster lost with it) would otherwise leave the run there
// for good. At most one per minute: the stages ignore one that finds the
// work in hand or done.
func (s *service) nudge(ctx context.Context, r *run.Run) error {
	since, ok := r.Entered[r.State]
	if !ok || time.Since(since) < s.StaleAfter {
		return nil
	}
	unclaimed := r.Claim == nil || time.Now().After(r.Claim.Until)
	minute := fmt.Sprintf("recovered-%d", time.Now().Unix()/60)
	var subject, event string
	switch {
	case r.State == run.Diffing && unclaimed:
		subject, event = bus.RunRequested(r.Sync), "requested/"+minute
	case r.State == run.Extracting && unclaimed:
		subject, event = bus.RunDiffed(r.Sync), "diffed/"+minute
	case r.State == run.Committing, r.State == run.Delivering && r.Final() >= r.Planned.Total():
		subject, event = bus.RunDelivered(r.Sync), "delivered/"+minute
	default:
		return nil
	}
	s.Log.Debug().Str(logging.FieldSync, r.Sync).Str(logging.FieldRun, r.ID).Str("state", string(r.State)).Msg("announcing a run that nobody works on again")
	return run.Announce(ctx, s.Plane.Bus, subject, r.ID, r.Sync, event)
}

// expire fails a run that ran longer than its sync allows.
func (s *service) expire(ctx context.Context, r *run.Run, limit time.Duration) error {
	reason := fmt.Sprintf("the run lasted longer than the sync's max_run_duration (%s) and was stopped; the next run sends again what it did not commit", limit)
	s.Log.Warn().Str(logging.FieldSync, r.Sync).Str(logging.FieldRun, r.ID).Dur("limit", limit).Msg("failing a run that ran too long")
	r, err := s.Plane.Runs.Fail(ctx, r.Sync, r.ID, reason)
	if err == nil && r.State.Terminal() {
		// Failed at once (nothing was on its way): clean up now; a run
		// that drains is cleaned up when it ends.
		return s.Plane.ForgetRun(ctx, r.Sync, r.ID)
	}
	return err
}

// finishDrained hands a cancelled or failed run to the differ once none
// of its requests is in flight: the differ settles what it leaves behind
// and ends it (differ.settleStopped). Announced again every minute until
// then, in case an announcement is lost.
func (s *service) finishDrained(ctx context.Context, r *run.Run) error {
	timeout := config.DefaultTimeout
	if dest, err := s.Plane.Configs.Destination(ctx, r.Spec.Destination); err == nil {
		if o, err := dest.Delivery(); err == nil {
			timeout = o.Timeout
		}
	}
	drained, err := run.Drained(ctx, s.Plane.State, r, timeout)
	if err != nil || !drained {
		return err
	}
	event := fmt.Sprintf("stopped/%d", time.Now().Unix()/60)
	return run.Announce(ctx, s.Plane.Bus, bus.RunDelivered(r.Sync), r.ID, r.Sync, event)
}
