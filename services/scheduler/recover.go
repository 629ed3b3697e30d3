package scheduler

import (
	"context"
	"errors"
	"time"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
)

// recoverActive repairs what a crash in run.Start can leave behind: an
// active slot whose run was never written, and a pending run whose
// announcement was never published. Both would block the sync for good;
// after StaleAfter the leader assumes the crash and repairs them.
func (s *service) recoverActive(ctx context.Context, sync string) error {
	id, err := s.Plane.Runs.ActiveID(ctx, sync)
	if err != nil || id == "" {
		return err
	}
	r, err := s.Plane.Runs.Get(ctx, sync, id)
	if errors.Is(err, run.ErrNotFound) {
		return s.Plane.Runs.ReleaseOrphan(ctx, sync, id, s.StaleAfter)
	}
	if err != nil || r.State != run.Pending || time.Since(r.CreatedAt) < s.StaleAfter {
		return err
	}
	s.Log.Warn().Str(logging.FieldSync, sync).Str(logging.FieldRun, id).Msg("run pending for too long; announcing it again")
	// The same id every time: the stream's duplicate window keeps repeats out.
	return run.Announce(ctx, s.Plane.JS, bus.RunRequested(sync), id, sync, "requested/recovered")
}
