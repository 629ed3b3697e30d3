package snowflake

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/grant"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// The warehouse diff engine's side of the source (see source.Warehouse).

var _ source.Warehouse = (*Source)(nil)

// WarehouseSQL describes the model: keys as ScanHashes compares them
// (integers as BIGINT, text by UTF-8 bytes), and the binary MD5 of the same
// row text, so h holds the 16 bytes ScanHashes decodes from the hex MD5.
func (s *Source) WarehouseSQL(ctx context.Context, m source.Model) (source.WarehouseSQL, error) {
	cols, keys, _, err := s.plan(ctx, m)
	if err != nil {
		return source.WarehouseSQL{}, err
	}
	out := source.WarehouseSQL{From: query.Wrap(m.SQL), Hash: "MD5_BINARY(" + rowText(cols) + ")"}
	for i, e := range compareKeys(keys) {
		if keys[i].Int {
			e = "CAST(" + e + " AS BIGINT)" // NUMBER(38,0) whatever the column's precision
		}
		out.Keys = append(out.Keys, source.KeyExpr{Expr: e, Int: keys[i].Int})
	}
	return out, nil
}

// Table qualifies a table of the snapshot schema. The engine's names are
// lower case, so they are quoted.
func (s *Source) Table(name string) string { return s.schemaName() + "." + quote(name) }

// schemaName is the snapshot schema, in the source's database when the
// config names one (else the session's), written as the credential check
// names it.
func (s *Source) schemaName() string {
	if s.cfg.Database == "" {
		return grant.SfIdent(s.schema)
	}
	return grant.SfName(upperIdent(s.cfg.Database), s.schema)
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Dialect is Snowflake's: transient tables, since the engine rebuilds its
// tables every run and needs no Fail-safe copies of them; deletes with
// USING, as Snowflake documents DELETE (no alias on the target).
func (s *Source) Dialect() source.WarehouseDialect {
	return source.WarehouseDialect{CreateTable: "CREATE TRANSIENT TABLE", DeleteUsing: true, Quote: quote}
}

// Param renders :n, a numbered bind as ScanRows uses.
func (s *Source) Param(n int) string { return fmt.Sprintf(":%d", n) }

// ProbeSchema creates the schema only when it is missing: CREATE SCHEMA IF
// NOT EXISTS needs CREATE SCHEMA on the database even when the schema
// exists, and a least-privilege role has CREATE TABLE on its schema only.
// INFORMATION_SCHEMA is the session's database's, the one Table names.
func (s *Source) ProbeSchema(ctx context.Context) error {
	name := s.schemaName()
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM INFORMATION_SCHEMA.SCHEMATA WHERE schema_name = :1", s.schema).Scan(&n)
	if err != nil {
		return fmt.Errorf("looking up schema %s: %w", name, err)
	}
	if n == 0 {
		if _, err := s.db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+name); err != nil {
			return fmt.Errorf("creating schema %s: %w", name, err)
		}
	}
	probe := s.Table(fmt.Sprintf("probe_%d", rand.Int64()))
	_, err = s.Exec(ctx, source.Stmt{SQL: s.Dialect().CreateTable + " " + probe + " (i INTEGER)"}, source.Stmt{SQL: "DROP TABLE " + probe})
	if err != nil {
		return fmt.Errorf("creating a table in schema %s: %w", name, err)
	}
	return nil
}

// Exec runs the statements one after the other, outside a transaction:
// Snowflake commits at each DDL statement anyway, and the engine runs its
// statement lists again from the start after a failure.
func (s *Source) Exec(ctx context.Context, stmts ...source.Stmt) ([]int64, error) {
	counts := make([]int64, len(stmts))
	for i, st := range stmts {
		res, err := s.db.ExecContext(ctx, st.SQL, binds(st.Args)...)
		if err != nil {
			return nil, err
		}
		// DDL has no count (the driver answers ResultNoRows): it affected
		// no rows.
		if n, err := res.RowsAffected(); err == nil {
			counts[i] = n
		}
	}
	return counts, nil
}

// binds marks byte slices as BINARY: the driver sends a bare []byte as an
// ARRAY of numbers. The marker is not a bind variable; it holds for every
// later argument of the statement (a second one would be bound as a
// value), and changes nothing for integers and text.
func binds(args []any) []any {
	for i, a := range args {
		if _, ok := a.([]byte); ok {
			return append(append(args[:i:i], sf.DataTypeBinary), args[i:]...)
		}
	}
	return args
}

// QueryInt runs a query returning one integer.
func (s *Source) QueryInt(ctx context.Context, sql string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, sql).Scan(&n)
	return n, err
}

// ScanKeys reads key parts and a payload (BINARY hash or text), streaming
// the result chunk by chunk.
func (s *Source) ScanKeys(ctx context.Context, sql string, nkeys int, fn source.HashFunc) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := s.db.QueryContext(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	keys, err := resultKeys(rows, nkeys)
	if err != nil {
		return err
	}
	parts := make([]keyPart, nkeys)
	dest := make([]any, 0, nkeys+1)
	for i := range parts {
		parts[i].col, parts[i].int = keys[i].Name, keys[i].Int
		dest = append(dest, &parts[i])
	}
	payload := keyPart{col: "payload"} // text or bytes, kept as bytes
	dest = append(dest, &payload)
	var key record.Key
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		key = appendKey(key[:0], keys, parts)
		if payload.null {
			return fmt.Errorf("key %s has a NULL payload", key)
		}
		if err := fn(key, payload.s); err != nil {
			cancel()
			return err
		}
	}
	return rows.Err()
}

// resultKeys describes the first nkeys columns of a result as keys: an
// integer NUMBER is an integer key part, anything else text.
func resultKeys(rows *sql.Rows, nkeys int) ([]query.Key, error) {
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	if len(types) != nkeys+1 {
		return nil, fmt.Errorf("query returned %d columns, want %d key columns and a payload", len(types), nkeys)
	}
	keys := make([]query.Key, nkeys)
	for i, t := range types[:nkeys] {
		c := column{name: t.Name(), typ: t.DatabaseTypeName()}
		if _, scale, ok := t.DecimalSize(); ok {
			c.scale = scale
		}
		keys[i] = query.Key{Name: c.name, Int: c.isInt()}
	}
	return keys, nil
}

// ChangedModel is the model joined with a change table on the key
// columns: ScanRows over it reads only the changed rows, with its own
// keyset resumption and row decoding.
func (s *Source) ChangedModel(ctx context.Context, m source.Model, changeTable string) (source.Model, error) {
	_, keys, _, err := s.plan(ctx, m)
	if err != nil {
		return m, err
	}
	conds := make([]string, len(keys))
	for i, e := range compareKeys(keys) {
		conds[i] = fmt.Sprintf("c.k%d = %s", i+1, e)
	}
	sql := "SELECT m.* FROM " + query.Wrap(m.SQL) + " JOIN " + s.Table(changeTable) + " AS c ON " + strings.Join(conds, " AND ")
	return source.Model{SQL: sql, PrimaryKey: m.PrimaryKey}, nil
}

// Tables lists the snapshot schema's tables, by their names as created
// (the engine's are lower case).
func (s *Source) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT table_name FROM INFORMATION_SCHEMA.TABLES WHERE table_schema = :1", s.schema)
	if err != nil {
		return nil, fmt.Errorf("listing tables of schema %s: %w", s.schemaName(), err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("listing tables of schema %s: %w", s.schemaName(), err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tables of schema %s: %w", s.schemaName(), err)
	}
	return names, nil
}
