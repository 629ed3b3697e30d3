package bigquery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/source"
	"github.com/ebb-etl/ebb/libs/source/internal/query"
)

// The warehouse diff engine's side of the source (see source.Warehouse).
// The snapshot schema is a dataset of the source's project. BigQuery has
// no DDL in transactions, so statements run one after the other, each a
// query job.

var _ source.Warehouse = (*Source)(nil)

// changedAlias names the model in ChangedModel's join: not m, which
// may be a column of the model.
const changedAlias = "ebb_m"

// WarehouseSQL describes the model with ScanHashes's own expressions: From
// is the model wrapped as it wraps it, aliased ebb_row (TO_JSON_STRING
// needs the row's alias), and the keys and the hash are over that alias,
// so the snapshot tables hold ScanHashes's keys and bytes.
func (s *Source) WarehouseSQL(ctx context.Context, m source.Model) (source.WarehouseSQL, error) {
	_, keys, err := s.keys(ctx, m)
	if err != nil {
		return source.WarehouseSQL{}, err
	}
	out := source.WarehouseSQL{From: from(m.SQL), Hash: rowHash}
	for i, e := range selectKeys(keys) {
		if keys[i].Int {
			e = "CAST(" + e + " AS INT64)" // a no-op in BigQuery; pins the tables' type
		}
		out.Keys = append(out.Keys, source.KeyExpr{Expr: e, Int: keys[i].Int})
	}
	return out, nil
}

// Table is `project.dataset.name` in the snapshot dataset.
func (s *Source) Table(name string) string {
	return quote(s.project + "." + s.snapshot + "." + name)
}

// quote backquotes an identifier or a dotted path.
func quote(name string) string {
	return "`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(name) + "`"
}

// Dialect is GoogleSQL's: DELETE has no USING, so deletes take an alias
// and a correlated EXISTS.
func (s *Source) Dialect() source.WarehouseDialect {
	return source.WarehouseDialect{Quote: quote}
}

// Param renders the named parameter @pn, which Exec binds.
func (s *Source) Param(n int) string { return fmt.Sprintf("@p%d", n) }

// ProbeSchema makes sure the snapshot dataset exists, then creates and
// drops a table in it.
func (s *Source) ProbeSchema(ctx context.Context) error {
	if err := s.ensureDataset(ctx); err != nil {
		return err
	}
	probe := s.Table(fmt.Sprintf("probe_%d", rand.Int64()))
	_, err := s.Exec(ctx, source.Stmt{SQL: "CREATE TABLE " + probe + " (i INT64)"}, source.Stmt{SQL: "DROP TABLE " + probe})
	if err != nil {
		return fmt.Errorf("creating a table in dataset %q: %w", s.snapshot, err)
	}
	return nil
}

// ensureDataset creates the snapshot dataset when it is missing, and only
// then: creating needs bigquery.datasets.create on the project, which a
// least-privilege account lacks while it may write an existing dataset.
func (s *Source) ensureDataset(ctx context.Context) error {
	ds := s.client.Dataset(s.snapshot)
	_, err := ds.Metadata(ctx)
	if err == nil {
		return nil
	}
	if !hasStatus(err, http.StatusNotFound) {
		return s.apiError(fmt.Sprintf("reading dataset %q", s.snapshot), err)
	}
	loc, err := s.datasetLocation(ctx)
	if err != nil {
		return err
	}
	err = ds.Create(ctx, &bq.DatasetMetadata{Location: loc})
	if err != nil && !hasStatus(err, http.StatusConflict) { // a concurrent probe created it
		return s.apiError(fmt.Sprintf("creating dataset %q in location %q", s.snapshot, loc), err)
	}
	return nil
}

// datasetLocation is where to create the snapshot dataset: with the data,
// since a query reads and writes tables of one location only. That is the
// configured location, else the default dataset's, else BigQuery's
// default (US).
func (s *Source) datasetLocation(ctx context.Context) (string, error) {
	if s.location != "" || s.dataset == "" {
		return s.location, nil
	}
	md, err := s.client.Dataset(s.dataset).Metadata(ctx)
	if err != nil {
		return "", s.apiError(fmt.Sprintf("reading dataset %q", s.dataset), err)
	}
	return md.Location, nil
}

func hasStatus(err error, code int) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == code
}

// Exec runs the statements one after the other, each a query job: BigQuery
// has no DDL in transactions, and the engine's statement lists may be run
// again from the start. Args bind to @p1, @p2, … It returns the rows each
// DML statement affected (0 for DDL).
func (s *Source) Exec(ctx context.Context, stmts ...source.Stmt) ([]int64, error) {
	counts := make([]int64, len(stmts))
	for i, st := range stmts {
		n, err := s.exec(ctx, st)
		if err != nil {
			return counts[:i], err
		}
		counts[i] = n
	}
	return counts, nil
}

func (s *Source) exec(ctx context.Context, st source.Stmt) (int64, error) {
	doing := "running " + brief(st.SQL)
	params, err := bindArgs(st.Args)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", doing, err)
	}
	job, err := s.query(st.SQL, params...).Run(ctx)
	if err != nil {
		return 0, s.apiError(doing, err)
	}
	status, err := job.Wait(ctx)
	if err == nil {
		err = status.Err()
	}
	if err != nil {
		return 0, s.apiError(doing, err)
	}
	if status.Statistics == nil {
		return 0, nil
	}
	qs, _ := status.Statistics.Details.(*bq.QueryStatistics)
	if qs == nil {
		return 0, nil
	}
	return qs.NumDMLAffectedRows, nil
}

// bindArgs names the arguments p1, p2, …, typed INT64, STRING or BYTES
// from their Go type. A nil has no type to give a NULL parameter. (The
// client sends an empty []byte as NULL; row hashes are never empty.)
func bindArgs(args []any) ([]bq.QueryParameter, error) {
	params := make([]bq.QueryParameter, len(args))
	for i, a := range args {
		switch a.(type) {
		case int64, string, []byte:
		default:
			return nil, fmt.Errorf("parameter @p%d is a %T, not an int64, string or []byte", i+1, a)
		}
		params[i] = bq.QueryParameter{Name: fmt.Sprintf("p%d", i+1), Value: a}
	}
	return params, nil
}

// brief is the beginning of a statement, for errors.
func brief(sql string) string {
	sql = strings.Join(strings.Fields(sql), " ")
	if len(sql) > 80 {
		sql = sql[:77] + "..."
	}
	return fmt.Sprintf("%q", sql)
}

// QueryInt runs a query returning one integer.
func (s *Source) QueryInt(ctx context.Context, sql string) (int64, error) {
	doing := "running " + brief(sql)
	var n int64
	rows := 0
	err := s.rows(ctx, s.query(sql), doing, func(vals []bq.Value, _ bq.Schema) error {
		rows++
		if len(vals) != 1 {
			return fmt.Errorf("%s: it returned %d columns where one was expected", doing, len(vals))
		}
		x, ok := vals[0].(int64)
		if !ok {
			return fmt.Errorf("%s: it returned a %T where an INT64 was expected", doing, vals[0])
		}
		n = x
		return nil
	})
	if err == nil && rows != 1 {
		err = fmt.Errorf("%s: it returned %d rows where one was expected", doing, rows)
	}
	return n, err
}

// ScanKeys reads key parts (INT64 or STRING) and a payload (BYTES, or
// STRING passed as its bytes), page by page.
func (s *Source) ScanKeys(ctx context.Context, sql string, nkeys int, fn source.HashFunc) error {
	doing := "running " + brief(sql)
	var keys []query.Key
	var key record.Key
	var payload []byte
	return s.rows(ctx, s.query(sql), doing, func(vals []bq.Value, schema bq.Schema) error {
		if len(vals) != nkeys+1 {
			return fmt.Errorf("%s: it returned %d columns where %d were expected", doing, len(vals), nkeys+1)
		}
		if keys == nil {
			for _, f := range schema[:nkeys] {
				keys = append(keys, query.Key{Name: f.Name, Int: f.Type == bq.IntegerFieldType})
			}
		}
		var err error
		if key, err = appendKey(key[:0], keys, vals[:nkeys]); err != nil {
			return err
		}
		switch p := vals[nkeys].(type) {
		case []byte:
			payload = p
		case string:
			payload = append(payload[:0], p...)
		default:
			return fmt.Errorf("%s: column %q is a %T, not BYTES or STRING", doing, schema[nkeys].Name, p)
		}
		return fn(key, payload)
	})
}

// ChangedModel is the model joined with a change table on the key
// expressions WarehouseSQL wrote its keys with: ScanRows over it reads only
// the changed rows, with its own keyset resumption and row decoding.
func (s *Source) ChangedModel(ctx context.Context, m source.Model, changeTable string) (source.Model, error) {
	_, keys, err := s.keys(ctx, m)
	if err != nil {
		return m, err
	}
	conds := make([]string, len(keys))
	for i, e := range keyExprs(changedAlias, keys) {
		conds[i] = fmt.Sprintf("ebb_c.k%d = %s", i+1, e)
	}
	sql := "SELECT " + changedAlias + ".* FROM (\n" + query.Trim(m.SQL) + "\n) AS " + changedAlias +
		" JOIN " + s.Table(changeTable) + " AS ebb_c ON " + strings.Join(conds, " AND ")
	return source.Model{SQL: sql, PrimaryKey: m.PrimaryKey}, nil
}

// Tables lists the snapshot dataset's tables, page by page.
func (s *Source) Tables(ctx context.Context) ([]string, error) {
	it := s.client.Dataset(s.snapshot).Tables(ctx)
	var names []string
	for {
		t, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			return nil, s.apiError(fmt.Sprintf("listing tables of dataset %q", s.snapshot), err)
		}
		names = append(names, t.TableID)
	}
}
