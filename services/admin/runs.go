package admin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/ebb-etl/ebb/libs/logging"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// Default list sizes.
const (
	defaultRunsLimit     = 20
	defaultFailuresLimit = 100
)

// TriggerRun implements AdminService.
func (s *server) TriggerRun(ctx context.Context, req *adminv1.TriggerRunRequest) (*adminv1.TriggerRunResponse, error) {
	name := req.GetSync()
	if _, err := s.d.Configs.Sync(ctx, name); err != nil {
		return nil, toStatus(err)
	}
	if err := s.refusePaused(ctx, name); err != nil {
		return nil, err
	}
	r, err := run.Start(ctx, s.d.Bus, s.d.Runs, name, "manual")
	if errors.Is(err, run.ErrActive) {
		active, _ := s.d.Runs.ActiveID(ctx, name)
		return nil, status.Errorf(codes.FailedPrecondition, "sync %q already has an active run: %s", name, active)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	s.log.Info().Str(logging.FieldSync, name).Str(logging.FieldRun, r.ID).Msg("run triggered")
	return &adminv1.TriggerRunResponse{Run: convert.RunToPB(r)}, nil
}

// GetRun implements AdminService.
func (s *server) GetRun(ctx context.Context, req *adminv1.GetRunRequest) (*adminv1.GetRunResponse, error) {
	r, err := s.d.Runs.Find(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.GetRunResponse{Run: convert.RunToPB(r)}, nil
}

// ListRuns implements AdminService.
func (s *server) ListRuns(ctx context.Context, req *adminv1.ListRunsRequest) (*adminv1.ListRunsResponse, error) {
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultRunsLimit
	}
	runs, err := s.d.Runs.List(ctx, req.GetSync(), limit)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.ListRunsResponse{}
	for _, r := range runs {
		resp.Runs = append(resp.Runs, convert.RunToPB(r))
	}
	return resp, nil
}

// ListFailures implements AdminService.
func (s *server) ListFailures(ctx context.Context, req *adminv1.ListFailuresRequest) (*adminv1.ListFailuresResponse, error) {
	r, err := s.d.Runs.Find(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultFailuresLimit
	}
	results, err := run.Failures(ctx, s.d.JS, r.Sync, r.ID, limit)
	resp := &adminv1.ListFailuresResponse{Truncated: errors.Is(err, run.ErrTooManyFailures)}
	if err != nil && !resp.Truncated {
		return nil, toStatus(err)
	}
	held, err := s.d.Quarantine.Quarantined(ctx, r.Sync)
	if err != nil {
		return nil, toStatus(err)
	}
	for _, res := range results {
		resp.Failures = append(resp.Failures, &adminv1.Failure{Key: res.KeyEnc.String(), Op: string(res.Op),
			Error: res.Error, Quarantined: held[string(res.KeyEnc)]})
	}
	return resp, nil
}

// ListQuarantine implements AdminService.
func (s *server) ListQuarantine(ctx context.Context, req *adminv1.ListQuarantineRequest) (*adminv1.ListQuarantineResponse, error) {
	if _, err := s.d.Configs.Sync(ctx, req.GetSync()); err != nil {
		return nil, toStatus(err)
	}
	entries, err := s.d.Quarantine.List(ctx, req.GetSync())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.ListQuarantineResponse{}
	for _, e := range entries {
		pe := &adminv1.QuarantineEntry{Key: e.Key.String(), Streak: int32(e.Streak), Quarantined: e.Quarantined,
			LastError: e.LastError, LastRunId: e.LastRun}
		if !e.Since.IsZero() {
			pe.Since = timestamppb.New(e.Since)
		}
		resp.Entries = append(resp.Entries, pe)
	}
	return resp, nil
}

// RetryQuarantined implements AdminService.
func (s *server) RetryQuarantined(ctx context.Context, req *adminv1.RetryQuarantinedRequest) (*adminv1.RetryQuarantinedResponse, error) {
	if _, err := s.d.Configs.Sync(ctx, req.GetSync()); err != nil {
		return nil, toStatus(err)
	}
	n, err := s.d.Quarantine.Release(ctx, req.GetSync(), req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	if n == 0 && req.GetKey() != "" {
		return nil, status.Errorf(codes.NotFound, "sync %q has no quarantined record with key %q", req.GetSync(), req.GetKey())
	}
	s.log.Info().Str(logging.FieldSync, req.GetSync()).Int("released", n).Msg("released quarantined records")
	resp := &adminv1.RetryQuarantinedResponse{Released: int32(n)}
	if paused, err := run.SyncPaused(ctx, s.d.State, req.GetSync()); err != nil || paused {
		return resp, toStatus(err) // released; they go with the first run after resume
	}
	r, err := run.Start(ctx, s.d.Bus, s.d.Runs, req.GetSync(), "retry")
	switch {
	case errors.Is(err, run.ErrActive):
		// The active run diffed with these keys left out, and its commit
		// keeps their old state: the run the scheduler starts once it
		// ends sends them.
		return resp, toStatus(run.RequestRerun(ctx, s.d.State, req.GetSync(), "retry"))
	case err != nil:
		return nil, toStatus(err)
	}
	resp.Run = convert.RunToPB(r)
	return resp, nil
}
