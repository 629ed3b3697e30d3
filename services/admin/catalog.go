package admin

import (
	"context"

	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maps"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/builtin"
	"github.com/ebb-etl/ebb/libs/source"
)

// checkDestination validates a destination's config against its type's
// declared spec, so apply names a missing or malformed field instead of the
// first run failing. ${VAR} references are accepted as they are: their
// values live with the services, not here.
func checkDestination(d config.Destination) error {
	spec, ok := builtin.Spec(d.Type)
	if !ok {
		return nil
	}
	if _, err := spec.Parse(withPlaceholders(spec, d.Config)); err != nil {
		return fmt.Errorf("destination %q: %w", d.Name, err)
	}
	return nil
}

// withPlaceholders replaces ${VAR} references in typed fields with a value
// of the right type.
func withPlaceholders(spec destination.Spec, cfg map[string]any) map[string]any {
	out := maps.Clone(cfg)
	for _, f := range spec.Fields {
		s, ok := out[f.Name].(string)
		if !ok || !strings.Contains(s, "${") {
			continue
		}
		switch f.Type {
		case destination.TypeURL:
			out[f.Name] = "https://env.invalid"
		case destination.TypeEnum:
			out[f.Name] = f.Enum[0]
		}
	}
	return out
}

// checkCatalog checks every destination of f and every sync's mode against
// its destination's type: mirror needs a type that can delete.
func checkCatalog(f config.File) error {
	types := map[string]string{}
	for _, d := range f.Destinations {
		if err := checkDestination(d); err != nil {
			return err
		}
		types[d.Name] = d.Type
	}
	for _, sy := range f.Syncs {
		if err := builtin.CheckMode(types[sy.Destination], sy.Mode); err != nil {
			return fmt.Errorf("sync %q: mode: %w", sy.Name, err)
		}
	}
	return nil
}

// checkSyncMode checks one sync's mode against its stored destination.
func (s *server) checkSyncMode(ctx context.Context, sy config.Sync) error {
	d, err := s.d.Configs.Destination(ctx, sy.Destination)
	if err != nil {
		return nil // checkRefs reports a missing destination
	}
	if err := builtin.CheckMode(d.Type, sy.Mode); err != nil {
		return fmt.Errorf("sync %q: mode: %w", sy.Name, err)
	}
	return nil
}

// checkModels runs the model of every sync that changes (or whose source
// does) with no rows, and checks the columns its key and mapping name, so a
// typo is refused by apply instead of failing every record of the first
// run. A source the admin service cannot open fails apply, named.
func (s *server) checkModels(ctx context.Context, desired config.File, changes []config.Change) error {
	if s.d.OpenSource == nil {
		return nil // a bare admin API without warehouse drivers
	}
	changed := map[config.Kind]map[string]bool{config.KindSource: {}, config.KindSync: {}}
	for _, c := range changes {
		if c.Action != config.ActionDelete && changed[c.Kind] != nil {
			changed[c.Kind][c.Name] = true
		}
	}
	sources := map[string]source.Source{}
	defer func() {
		for _, src := range sources {
			_ = src.Close()
		}
	}()
	for _, sy := range desired.Syncs {
		if !changed[config.KindSync][sy.Name] && !changed[config.KindSource][sy.Source] {
			continue
		}
		cols, err := s.modelColumns(ctx, desired, sources, sy)
		if err != nil {
			return err
		}
		if err := sy.CheckColumns(cols); err != nil {
			return invalid(err)
		}
	}
	return nil
}

func (s *server) modelColumns(ctx context.Context, desired config.File, open map[string]source.Source, sy config.Sync) ([]string, error) {
	src, ok := open[sy.Source]
	if !ok {
		var cfg config.Source
		for _, c := range desired.Sources {
			if c.Name == sy.Source {
				cfg = c
			}
		}
		var err error
		if src, err = s.d.OpenSource(ctx, cfg); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "checking sync %q against its model: %v", sy.Name, err)
		}
		open[sy.Source] = src
	}
	cols, err := src.Columns(ctx, sy.Model.SQL)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "sync %q: model.sql: the warehouse refused it: %v", sy.Name, err)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	return names, nil
}
