package admin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// PauseSync implements AdminService.
func (s *server) PauseSync(ctx context.Context, req *adminv1.PauseSyncRequest) (*adminv1.PauseSyncResponse, error) {
	name := req.GetSync()
	if _, err := s.d.Configs.Sync(ctx, name); err != nil {
		return nil, toStatus(err)
	}
	r, err := run.PauseSync(ctx, s.d.State, s.d.Runs, name)
	if err != nil {
		return nil, toStatus(err)
	}
	log := s.log.Info().Str(logging.FieldSync, name)
	resp := &adminv1.PauseSyncResponse{}
	if r != nil {
		log = log.Str(logging.FieldRun, r.ID).Str("state", string(r.State))
		resp.Run = convert.RunToPB(r)
	}
	log.Msg("sync paused")
	return resp, nil
}

// ResumeSync implements AdminService.
func (s *server) ResumeSync(ctx context.Context, req *adminv1.ResumeSyncRequest) (*adminv1.ResumeSyncResponse, error) {
	name := req.GetSync()
	if _, err := s.d.Configs.Sync(ctx, name); err != nil {
		return nil, toStatus(err)
	}
	r, err := run.ResumeSync(ctx, s.d.Bus, s.d.State, s.d.Runs, name)
	if err != nil {
		return nil, toStatus(err)
	}
	log := s.log.Info().Str(logging.FieldSync, name)
	resp := &adminv1.ResumeSyncResponse{}
	if r != nil {
		log = log.Str(logging.FieldRun, r.ID).Str("state", string(r.State))
		resp.Run = convert.RunToPB(r)
	}
	log.Msg("sync resumed")
	return resp, nil
}

// CancelRun implements AdminService.
func (s *server) CancelRun(ctx context.Context, req *adminv1.CancelRunRequest) (*adminv1.CancelRunResponse, error) {
	r, err := s.d.Runs.Cancel(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	// A run that may have requests in flight is cancelling until they
	// have ended; the scheduler then ends it and cleans up after it. One
	// cancelled at once (awaiting approval, a dry run) is cleaned up here.
	s.log.Info().Str(logging.FieldSync, r.Sync).Str(logging.FieldRun, r.ID).Str("state", string(r.State)).Msg("run cancelled")
	if r.State.Terminal() && s.d.Forget != nil {
		if err := s.d.Forget(ctx, r.Sync, r.ID); err != nil {
			s.log.Warn().Err(err).Str(logging.FieldRun, r.ID).Msg("cleaning up after a cancelled run")
		}
	}
	return &adminv1.CancelRunResponse{Run: convert.RunToPB(r)}, nil
}

// ApproveRun implements AdminService.
func (s *server) ApproveRun(ctx context.Context, req *adminv1.ApproveRunRequest) (*adminv1.ApproveRunResponse, error) {
	r, err := run.Approve(ctx, s.d.Bus, s.d.Runs, req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info().Str(logging.FieldSync, r.Sync).Str(logging.FieldRun, r.ID).Str("safety_stop", r.SafetyStop).Msg("run approved")
	return &adminv1.ApproveRunResponse{Run: convert.RunToPB(r)}, nil
}

// refusePaused fails with FAILED_PRECONDITION when the sync is paused.
func (s *server) refusePaused(ctx context.Context, sync string) error {
	paused, err := run.SyncPaused(ctx, s.d.State, sync)
	if err != nil {
		return toStatus(err)
	}
	if paused {
		return status.Errorf(codes.FailedPrecondition, "sync %q is paused; resume it first (ebb sync resume %s)", sync, sync)
	}
	return nil
}
