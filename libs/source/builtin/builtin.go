// Package builtin opens the sources Ebb ships with by their config type.
package builtin

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/bigquery"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
	"github.com/ebb-etl/ebb/libs/source/postgres"
	"github.com/ebb-etl/ebb/libs/source/redshift"
	"github.com/ebb-etl/ebb/libs/source/snowflake"
)

type openFunc func(ctx context.Context, cfg map[string]any) (source.Source, error)

// openers maps each config.SourceTypes entry to its package's Open.
var openers = map[string]openFunc{
	"bigquery": func(ctx context.Context, cfg map[string]any) (source.Source, error) {
		return bigquery.Open(ctx, cfg)
	},
	"duckdb": func(ctx context.Context, cfg map[string]any) (source.Source, error) {
		return duckdb.Open(ctx, cfg)
	},
	"postgres": func(ctx context.Context, cfg map[string]any) (source.Source, error) {
		return postgres.Open(ctx, cfg)
	},
	"redshift": func(ctx context.Context, cfg map[string]any) (source.Source, error) {
		return redshift.Open(ctx, cfg)
	},
	"snowflake": func(ctx context.Context, cfg map[string]any) (source.Source, error) {
		return snowflake.Open(ctx, cfg)
	},
}

// Open expands the ${ENV} references of the source's config and opens it.
func Open(ctx context.Context, s config.Source) (source.Source, error) {
	open, ok := openers[s.Type]
	if !ok {
		known := make([]string, 0, len(openers))
		for t := range openers {
			known = append(known, t)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("source %q: unknown type %q (known: %s)", s.Name, s.Type, strings.Join(known, ", "))
	}
	cfg, err := config.Expand(s.Config)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", s.Name, err)
	}
	src, err := open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", s.Name, err)
	}
	return src, nil
}
