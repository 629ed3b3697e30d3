package admin

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/builtin"
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
