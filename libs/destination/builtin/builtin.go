// Package builtin opens the destinations Ebb ships with, by type. It links
// every destination's driver, so only the services that write import it.
package builtin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/postgres"
	"github.com/ebb-etl/ebb/libs/destination/webhook"
)

type opener func(ctx context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error)

var openers = map[string]opener{
	"postgres": func(ctx context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error) {
		return postgres.Open(ctx, cfg, opts)
	},
	"webhook": func(_ context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error) {
		return webhook.Open(cfg, opts)
	},
}

// Types lists the destination types Open knows, sorted.
func Types() []string {
	types := make([]string, 0, len(openers))
	for t := range openers {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Open opens d with its delivery settings and its ${ENV} references
// expanded. Errors name the destination.
func Open(ctx context.Context, d config.Destination) (destination.Destination, error) {
	open, ok := openers[d.Type]
	if !ok {
		return nil, fmt.Errorf("destination %q: unknown type %q (known: %s)", d.Name, d.Type, strings.Join(Types(), ", "))
	}
	opts, err := d.Delivery()
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", d.Name, err)
	}
	cfg, err := config.Expand(d.Config)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", d.Name, err)
	}
	dst, err := open(ctx, cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("destination %q: %w", d.Name, err)
	}
	return dst, nil
}
