// Package redshift reads models from Amazon Redshift through pgx, with
// package postgres's source in its portable dialect: SQL that Redshift
// accepts as well as Postgres, and results in text format.
//
// What differs from Postgres, and why:
//   - no COPY ... TO STDOUT and no binary results (Redshift has neither):
//     scans are plain queries whose text rows pgx streams as they arrive,
//     so memory stays bounded; no cursor, which Redshift would materialize
//     on its leader node first;
//   - row hashes are MD5 over each column's MD5 (or the NULL marker 'n'),
//     joined by '|': Redshift has no ROW(m.*)::text and no decode(.., 'hex');
//   - keys compare as VARCHAR(65535) without COLLATE (Redshift compares
//     strings by their bytes), NULLS FIRST as in Postgres; resuming uses the
//     expanded comparison, as Redshift has no row-value comparisons;
//   - BOOLEAN is spelled with CASE (Redshift cannot cast it to VARCHAR),
//     SUPER reads as JSON (JSON_SERIALIZE for hashes), VARBYTE as base64.
//
// The tests run this dialect against Postgres (every statement it writes is
// valid in both); they have not run against a real Redshift cluster. Set
// EBB_TEST_REDSHIFT_DSN to run TestRealRedshift against one.
package redshift

import (
	"context"

	"github.com/ebb-etl/ebb/libs/source/postgres"
)

// Dialect is Redshift's. Only settings Redshift documents are sent at
// connect: timezone, datestyle and extra_float_digits (2 makes Redshift's
// older float output exact; Postgres 12 and later treat any positive value
// as "shortest exact").
func Dialect() postgres.Dialect {
	return postgres.Dialect{
		Name: "redshift",
		Params: map[string]string{
			"timezone":           "UTC",
			"datestyle":          "ISO, MDY",
			"extra_float_digits": "2",
		},
		Portable: true,
	}
}

// Open connects to the cluster named by cfg["dsn"], a libpq connection
// string or URL (Redshift listens on port 5439 by default).
func Open(ctx context.Context, cfg map[string]any) (*postgres.Source, error) {
	return postgres.OpenDialect(ctx, cfg, Dialect())
}
