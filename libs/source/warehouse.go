package source

import (
	"context"
	"errors"
)

// DefaultSnapshotSchema is the schema the warehouse diff engine writes its
// tables to when a source's config has no "snapshot_schema".
const DefaultSnapshotSchema = "ebb"

// Warehouse is implemented by sources that can run the `warehouse` diff
// engine: the snapshot and the change set are tables in a schema of their
// own (the config field "snapshot_schema", DefaultSnapshotSchema when
// absent), so only changed rows leave the warehouse. Package warehouse
// writes the SQL; a source supplies its dialect and runs statements.
type Warehouse interface {
	Source
	// WarehouseSQL describes model m in the source's SQL dialect.
	WarehouseSQL(ctx context.Context, m Model) (WarehouseSQL, error)
	// Dialect tells where the engine's statements must differ.
	Dialect() WarehouseDialect
	// Table is the quoted, schema-qualified name of a table of the
	// snapshot schema.
	Table(name string) string
	// Param renders the n-th (1-based) statement parameter.
	Param(n int) string
	// ProbeSchema creates the snapshot schema if it is missing, then
	// creates and drops a table in it: an error means the credentials
	// cannot hold the engine's tables.
	ProbeSchema(ctx context.Context) error
	// Exec runs statements, in one transaction where the warehouse
	// allows DDL in one (Postgres, Redshift, DuckDB), else one after the
	// other (Snowflake commits at each DDL statement, BigQuery has no DDL
	// in transactions); the engine's statement lists are written to be
	// run again from the start after a failure. It returns the rows each
	// statement affected.
	Exec(ctx context.Context, stmts ...Stmt) ([]int64, error)
	// QueryInt runs a query that returns one integer.
	QueryInt(ctx context.Context, sql string) (int64, error)
	// ScanKeys runs a query whose first nkeys columns are key parts
	// (BIGINT or text, as WarehouseSQL keys are) and whose last column is
	// a payload, and passes each row's encoded key and payload to fn.
	ScanKeys(ctx context.Context, sql string, nkeys int, fn HashFunc) error
	// ChangedModel is model m joined with a change table (the engine's
	// k1..kn columns) on its key: the rows whose key changed, which
	// ScanRows reads in key order, resuming after a key as for any model.
	ChangedModel(ctx context.Context, m Model, changeTable string) (Model, error)
	// Tables lists the names of the tables in the snapshot schema.
	Tables(ctx context.Context) ([]string, error)
}

// RowLoader is implemented by warehouses where one bulk load beats
// multi-row INSERTs (BigQuery, where each INSERT is a query job of its
// own): the engine loads a previous snapshot and key sets through it.
type RowLoader interface {
	// LoadRows appends to table (unqualified, in the snapshot schema) the
	// rows next returns — int64, string or []byte values — until it
	// returns false, and returns how many it loaded.
	LoadRows(ctx context.Context, table string, next func() ([]any, bool, error)) (int64, error)
}

// WarehouseSQL is the dialect the warehouse engine writes its statements in.
type WarehouseSQL struct {
	// From is the model as a subquery aliased m.
	From string
	// Keys are the key columns as compared, over alias m: integers as
	// BIGINT, everything else as text with a byte-order collation, which
	// the engine's tables keep, so their ORDER BY is the key order.
	Keys []KeyExpr
	// Hash is the row hash over alias m: the same 16 bytes ScanHashes
	// returns, so snapshots move between the engines unchanged.
	Hash string
}

// WarehouseDialect is where the engine's statements differ between
// warehouses; everything else it writes is SQL all of them accept.
type WarehouseDialect struct {
	// CreateTable begins the engine's CREATE TABLE ... AS statements:
	// "CREATE TABLE", or Snowflake's "CREATE TRANSIENT TABLE" (no Fail-safe
	// copies of tables the engine rebuilds every run).
	CreateTable string
	// DeleteUsing writes deletes as DELETE FROM t USING keys q WHERE
	// q.k1 = t.k1, referring to the target by its bare name (Redshift's
	// DELETE takes no alias); otherwise DELETE FROM t AS x WHERE EXISTS
	// (...), which BigQuery needs (it has no USING).
	DeleteUsing bool
	// Quote quotes an unqualified identifier (for DeleteUsing).
	Quote func(name string) string
	// HashHex: row hashes are 32 hex digits of text, not 16 bytes
	// (Redshift, which cannot decode hex into Postgres's bytea).
	HashHex bool
}

// KeyExpr is one key column.
type KeyExpr struct {
	Expr string
	Int  bool
}

// Stmt is a statement with its arguments.
type Stmt struct {
	SQL  string
	Args []any
}

// SnapshotSchema reads a source config's "snapshot_schema".
func SnapshotSchema(cfg map[string]any) (string, error) {
	v, ok := cfg["snapshot_schema"]
	if !ok || v == nil {
		return DefaultSnapshotSchema, nil
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", errors.New(`config field "snapshot_schema" must be a non-empty string`)
	}
	return s, nil
}
