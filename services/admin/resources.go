package admin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/run"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// Resources are stored as given, ${VAR} references unexpanded, and every
// config returned passes through config.Redact.

func redactedSource(s config.Source) (*adminv1.Source, error) {
	s.Config = config.Redact(s.Config)
	return convert.SourceToPB(s)
}

func redactedDestination(d config.Destination) (*adminv1.Destination, error) {
	d.Config = config.Redact(d.Config)
	return convert.DestinationToPB(d)
}

// exists reports whether a resource is stored.
func (s *server) exists(ctx context.Context, kind config.Kind, name string) (bool, error) {
	var err error
	switch kind {
	case config.KindSource:
		_, err = s.d.Configs.Source(ctx, name)
	case config.KindDestination:
		_, err = s.d.Configs.Destination(ctx, name)
	default:
		_, err = s.d.Configs.Sync(ctx, name)
	}
	if errors.Is(err, config.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// write stores a resource that must (update) or must not (create) exist
// already. check, if set, runs under the lock before the write.
func (s *server) write(ctx context.Context, kind config.Kind, name string, v any, update bool, check func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	found, err := s.exists(ctx, kind, name)
	switch {
	case err != nil:
		return toStatus(err)
	case found && !update:
		return status.Errorf(codes.AlreadyExists, "%s %q already exists", kind, name)
	case !found && update:
		return status.Errorf(codes.NotFound, "%s %q: %v", kind, name, config.ErrNotFound)
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	if err := s.d.Configs.Put(ctx, kind, name, v); err != nil {
		return toStatus(err)
	}
	action := config.ActionCreate
	if update {
		action = config.ActionUpdate
	}
	s.log.Info().Str(fieldKind, string(kind)).Str(fieldName, name).Str(fieldAction, string(action)).Msg("config changed")
	return nil
}

// remove deletes a resource unless a sync uses it.
func (s *server) remove(ctx context.Context, kind config.Kind, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind != config.KindSync {
		if err := s.checkUnused(ctx, kind, name); err != nil {
			return err
		}
	}
	if err := s.d.Configs.Delete(ctx, kind, name); err != nil {
		return toStatus(err)
	}
	s.log.Info().Str(fieldKind, string(kind)).Str(fieldName, name).Str(fieldAction, string(config.ActionDelete)).Msg("config changed")
	return nil
}

// checkUnused fails with FailedPrecondition when a sync uses the source or
// destination.
func (s *server) checkUnused(ctx context.Context, kind config.Kind, name string) error {
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return toStatus(err)
	}
	for _, sy := range f.Syncs {
		if kind == config.KindSource && sy.Source == name || kind == config.KindDestination && sy.Destination == name {
			return status.Errorf(codes.FailedPrecondition, "%s %q is used by sync %q: delete or change the sync first", kind, name, sy.Name)
		}
	}
	return nil
}

// checkRefs fails with FailedPrecondition when the sync's source or
// destination does not exist.
func (s *server) checkRefs(ctx context.Context, sy config.Sync) error {
	for _, ref := range []struct {
		kind config.Kind
		name string
	}{{config.KindSource, sy.Source}, {config.KindDestination, sy.Destination}} {
		found, err := s.exists(ctx, ref.kind, ref.name)
		if err != nil {
			return toStatus(err)
		}
		if !found {
			return status.Errorf(codes.FailedPrecondition, "sync %q: %s %q does not exist", sy.Name, ref.kind, ref.name)
		}
	}
	return nil
}

func (s *server) putSource(ctx context.Context, pb *adminv1.Source, update bool) (*adminv1.Source, error) {
	src := convert.SourceFromPB(pb)
	if err := src.Validate(); err != nil {
		return nil, invalid(err)
	}
	if err := s.write(ctx, config.KindSource, src.Name, src, update, nil); err != nil {
		return nil, err
	}
	return redactedSource(src)
}

func (s *server) putDestination(ctx context.Context, pb *adminv1.Destination, update bool) (*adminv1.Destination, error) {
	dst := convert.DestinationFromPB(pb)
	if err := dst.Validate(); err != nil {
		return nil, invalid(err)
	}
	if err := checkDestination(dst); err != nil {
		return nil, invalid(err)
	}
	if err := s.write(ctx, config.KindDestination, dst.Name, dst, update, nil); err != nil {
		return nil, err
	}
	return redactedDestination(dst)
}

func (s *server) putSync(ctx context.Context, pb *adminv1.Sync, update bool) (*adminv1.Sync, error) {
	sy := convert.SyncFromPB(pb)
	if err := sy.Validate(); err != nil {
		return nil, invalid(err)
	}
	if err := s.checkSyncMode(ctx, sy); err != nil {
		return nil, invalid(err)
	}
	check := func() error { return s.checkRefs(ctx, sy) }
	if err := s.write(ctx, config.KindSync, sy.Name, sy, update, check); err != nil {
		return nil, err
	}
	return convert.SyncToPB(sy)
}

// CreateSource implements AdminService.
func (s *server) CreateSource(ctx context.Context, req *adminv1.CreateSourceRequest) (*adminv1.CreateSourceResponse, error) {
	out, err := s.putSource(ctx, req.GetSource(), false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.CreateSourceResponse{Source: out}, nil
}

// UpdateSource implements AdminService.
func (s *server) UpdateSource(ctx context.Context, req *adminv1.UpdateSourceRequest) (*adminv1.UpdateSourceResponse, error) {
	out, err := s.putSource(ctx, req.GetSource(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.UpdateSourceResponse{Source: out}, nil
}

// GetSource implements AdminService.
func (s *server) GetSource(ctx context.Context, req *adminv1.GetSourceRequest) (*adminv1.GetSourceResponse, error) {
	src, err := s.d.Configs.Source(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := redactedSource(src)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.GetSourceResponse{Source: out}, nil
}

// ListSources implements AdminService.
func (s *server) ListSources(ctx context.Context, _ *adminv1.ListSourcesRequest) (*adminv1.ListSourcesResponse, error) {
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.ListSourcesResponse{}
	for _, src := range f.Sources {
		out, err := redactedSource(src)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Sources = append(resp.Sources, out)
	}
	return resp, nil
}

// DeleteSource implements AdminService.
func (s *server) DeleteSource(ctx context.Context, req *adminv1.DeleteSourceRequest) (*adminv1.DeleteSourceResponse, error) {
	if err := s.remove(ctx, config.KindSource, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteSourceResponse{}, nil
}

// CreateDestination implements AdminService.
func (s *server) CreateDestination(ctx context.Context, req *adminv1.CreateDestinationRequest) (*adminv1.CreateDestinationResponse, error) {
	out, err := s.putDestination(ctx, req.GetDestination(), false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.CreateDestinationResponse{Destination: out}, nil
}

// UpdateDestination implements AdminService.
func (s *server) UpdateDestination(ctx context.Context, req *adminv1.UpdateDestinationRequest) (*adminv1.UpdateDestinationResponse, error) {
	out, err := s.putDestination(ctx, req.GetDestination(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.UpdateDestinationResponse{Destination: out}, nil
}

// GetDestination implements AdminService.
func (s *server) GetDestination(ctx context.Context, req *adminv1.GetDestinationRequest) (*adminv1.GetDestinationResponse, error) {
	d, err := s.d.Configs.Destination(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := redactedDestination(d)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.GetDestinationResponse{Destination: out}, nil
}

// ListDestinations implements AdminService.
func (s *server) ListDestinations(ctx context.Context, _ *adminv1.ListDestinationsRequest) (*adminv1.ListDestinationsResponse, error) {
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.ListDestinationsResponse{}
	for _, d := range f.Destinations {
		out, err := redactedDestination(d)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Destinations = append(resp.Destinations, out)
	}
	return resp, nil
}

// DeleteDestination implements AdminService.
func (s *server) DeleteDestination(ctx context.Context, req *adminv1.DeleteDestinationRequest) (*adminv1.DeleteDestinationResponse, error) {
	if err := s.remove(ctx, config.KindDestination, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteDestinationResponse{}, nil
}

// CreateSync implements AdminService.
func (s *server) CreateSync(ctx context.Context, req *adminv1.CreateSyncRequest) (*adminv1.CreateSyncResponse, error) {
	out, err := s.putSync(ctx, req.GetSync(), false)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.CreateSyncResponse{Sync: out}, nil
}

// UpdateSync implements AdminService.
func (s *server) UpdateSync(ctx context.Context, req *adminv1.UpdateSyncRequest) (*adminv1.UpdateSyncResponse, error) {
	out, err := s.putSync(ctx, req.GetSync(), true)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminv1.UpdateSyncResponse{Sync: out}, nil
}

// GetSync implements AdminService.
func (s *server) GetSync(ctx context.Context, req *adminv1.GetSyncRequest) (*adminv1.GetSyncResponse, error) {
	sy, err := s.d.Configs.Sync(ctx, req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	out, err := convert.SyncToPB(sy)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.GetSyncResponse{Sync: out}
	if resp.Paused, err = run.SyncPaused(ctx, s.d.State, sy.Name); err != nil {
		return nil, toStatus(err)
	}
	if resp.ActiveRunId, err = s.d.Runs.ActiveID(ctx, sy.Name); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// ListSyncs implements AdminService.
func (s *server) ListSyncs(ctx context.Context, _ *adminv1.ListSyncsRequest) (*adminv1.ListSyncsResponse, error) {
	f, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &adminv1.ListSyncsResponse{}
	for _, sy := range f.Syncs {
		out, err := convert.SyncToPB(sy)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Syncs = append(resp.Syncs, out)
	}
	return resp, nil
}

// DeleteSync implements AdminService.
func (s *server) DeleteSync(ctx context.Context, req *adminv1.DeleteSyncRequest) (*adminv1.DeleteSyncResponse, error) {
	if err := s.remove(ctx, config.KindSync, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteSyncResponse{}, nil
}
