package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/ebb-etl/ebb/libs/config"
	adminv1 "github.com/ebb-etl/ebb/proto/ebb/admin/v1"
	"github.com/ebb-etl/ebb/services/admin/internal/convert"
)

// Apply implements AdminService: it plans the changes from the stored
// configuration to the one given, validates the latter as a whole, and
// unless dry_run applies the changes in order.
func (s *server) Apply(ctx context.Context, req *adminv1.ApplyRequest) (*adminv1.ApplyResponse, error) {
	desired := convert.FileFromApply(req)
	if err := desired.Validate(); err != nil {
		return nil, invalid(err)
	}
	if err := checkCatalog(desired); err != nil {
		return nil, invalid(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	current, err := s.d.Configs.Load(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	changes := config.Plan(current, desired)
	if err := s.checkModels(ctx, desired, changes); err != nil {
		return nil, err
	}
	resp := &adminv1.ApplyResponse{}
	for _, c := range changes {
		resp.Changes = append(resp.Changes, convert.ChangeToPB(c))
	}
	if req.GetDryRun() {
		return resp, nil
	}
	if resp.SourceChecks, err = s.checkAppliedSources(ctx, desired, changes); err != nil {
		return nil, err
	}
	for i, c := range changes {
		if err := s.applyChange(ctx, desired, c); err != nil {
			return nil, toStatus(fmt.Errorf("applying change %d of %d (%s), after the ones before it: %w", i+1, len(changes), c, err))
		}
		s.log.Info().Str(fieldKind, string(c.Kind)).Str(fieldName, c.Name).Str(fieldAction, string(c.Action)).Msg("config changed")
	}
	return resp, nil
}

// applyChange makes one planned change; desired holds the resources.
func (s *server) applyChange(ctx context.Context, desired config.File, c config.Change) error {
	if c.Action == config.ActionDelete {
		err := s.d.Configs.Delete(ctx, c.Kind, c.Name)
		if errors.Is(err, config.ErrNotFound) {
			return nil
		}
		return err
	}
	v, ok := find(desired, c.Kind, c.Name)
	if !ok {
		return fmt.Errorf("%s %q is not in the desired configuration", c.Kind, c.Name)
	}
	return s.d.Configs.Put(ctx, c.Kind, c.Name, v)
}

// find returns the resource of kind and name in f.
func find(f config.File, kind config.Kind, name string) (any, bool) {
	switch kind {
	case config.KindSource:
		for _, r := range f.Sources {
			if r.Name == name {
				return r, true
			}
		}
	case config.KindDestination:
		for _, r := range f.Destinations {
			if r.Name == name {
				return r, true
			}
		}
	case config.KindSync:
		for _, r := range f.Syncs {
			if r.Name == name {
				return r, true
			}
		}
	}
	return nil, false
}
