// Package builtin opens the destinations Ebb ships with, by type. It links
// every destination's driver, so only the services that write import it.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/destination/amplitude"
	"github.com/ebb-etl/ebb/libs/destination/braze"
	"github.com/ebb-etl/ebb/libs/destination/hubspot"
	"github.com/ebb-etl/ebb/libs/destination/mixpanel"
	natsdest "github.com/ebb-etl/ebb/libs/destination/nats"
	"github.com/ebb-etl/ebb/libs/destination/postgres"
	"github.com/ebb-etl/ebb/libs/destination/salesforce"
	"github.com/ebb-etl/ebb/libs/destination/segment"
	"github.com/ebb-etl/ebb/libs/destination/slack"
	"github.com/ebb-etl/ebb/libs/destination/webhook"
	"github.com/ebb-etl/ebb/libs/record"
)

type opener func(ctx context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error)

var openers = map[string]opener{
	"postgres": func(ctx context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error) {
		return postgres.Open(ctx, cfg, opts)
	},
	"webhook": func(_ context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error) {
		return webhook.Open(cfg, opts)
	},
	"segment":    plain(segment.Open),
	"hubspot":    plain(hubspot.Open),
	"salesforce": plain(salesforce.Open),
	"braze":      plain(braze.Open),
	"mixpanel":   plain(mixpanel.Open),
	"amplitude":  plain(amplitude.Open),
	"slack":      plain(slack.Open),
	"nats":       plain(natsdest.Open),
}

// plain adapts an Open that needs no context.
func plain[D destination.Destination](open func(map[string]any, config.DeliveryOptions) (D, error)) opener {
	return func(_ context.Context, cfg map[string]any, opts config.DeliveryOptions) (destination.Destination, error) {
		d, err := open(cfg, opts)
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// specs are the declared configs of the types that have one.
var specs = map[string]destination.Spec{
	"segment":    segment.Spec,
	"hubspot":    hubspot.Spec,
	"salesforce": salesforce.Spec,
	"braze":      braze.Spec,
	"mixpanel":   mixpanel.Spec,
	"amplitude":  amplitude.Spec,
	"slack":      slack.Spec,
	"nats":       natsdest.Spec,
}

// Spec returns a type's declared config, if it has one.
func Spec(destType string) (destination.Spec, bool) {
	s, ok := specs[destType]
	return s, ok
}

// CheckMode reports whether a sync in mode can write to a destination of
// destType: a mirror sync sends deletes, which some APIs cannot take. Meant
// for config validation (apply), so the sync is refused before it runs
// rather than failing every deleted row.
func CheckMode(destType string, mode config.Mode) error {
	s, ok := specs[destType]
	if !ok || mode != config.ModeMirror || s.Supports(record.OpDelete) {
		return nil
	}
	return fmt.Errorf("destination type %s cannot delete records: use mode upsert, update, insert or all instead of mirror", destType)
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
// expanded. Errors name the destination. An error that opening again
// cannot fix (an unknown type, a config that does not validate, an unset
// variable, a table that does not exist) is marked destination.Permanent;
// one of the network (a refused connection, a timeout) is not.
func Open(ctx context.Context, d config.Destination) (destination.Destination, error) {
	open, ok := openers[d.Type]
	if !ok {
		return nil, destination.Permanent(fmt.Errorf("destination %q: unknown type %q (known: %s)", d.Name, d.Type, strings.Join(Types(), ", ")))
	}
	opts, err := d.Delivery()
	if err != nil {
		return nil, destination.Permanent(fmt.Errorf("destination %q: %w", d.Name, err))
	}
	cfg, err := config.Expand(d.Config)
	if err != nil {
		return nil, destination.Permanent(fmt.Errorf("destination %q: %w", d.Name, err))
	}
	dst, err := open(ctx, cfg, opts)
	if err != nil {
		err = fmt.Errorf("destination %q: %w", d.Name, err)
		if !networkError(err) {
			err = destination.Permanent(err)
		}
		return nil, err
	}
	return dst, nil
}

// networkError reports an error of reaching a server, which may pass.
func networkError(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
