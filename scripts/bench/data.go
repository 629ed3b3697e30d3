package main

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// seed makes every data set the same from run to run.
const seed = 20261124

// postgresDSN is the benchmark's database: EBB_BENCH_POSTGRES_DSN, else the
// test suite's EBB_TEST_POSTGRES_DSN, else database test on 127.0.0.1:5432
// as $USER (or postgres), with trust auth.
func postgresDSN() string {
	for _, env := range []string{"EBB_BENCH_POSTGRES_DSN", "EBB_TEST_POSTGRES_DSN"} {
		if dsn := os.Getenv(env); dsn != "" {
			return dsn
		}
	}
	user := os.Getenv("USER")
	if user == "" || user == "root" {
		user = "postgres"
	}
	return "postgres://" + user + "@127.0.0.1:5432/test?sslmode=disable"
}

// dataset is a table of generated rows in a schema of its own, dropped by
// drop: a bigint key and text, numeric and timestamp columns, about 100
// bytes a row.
type dataset struct {
	pool   *pgxpool.Pool
	schema string
	rows   int64 // rows loaded by load (before edits)
}

func newDataset(ctx context.Context, name string) (*dataset, error) {
	pool, err := pgxpool.New(ctx, postgresDSN())
	if err != nil {
		return nil, fmt.Errorf("connecting to Postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to Postgres at %s (set EBB_BENCH_POSTGRES_DSN): %w", postgresDSN(), err)
	}
	d := &dataset{pool: pool, schema: fmt.Sprintf("ebb_bench_%s_%08x", name, rand.Uint32())}
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+d.schema); err != nil {
		pool.Close()
		return nil, err
	}
	return d, nil
}

// loadDataset creates a dataset and loads n rows into it.
func loadDataset(ctx context.Context, name string, n int64) (*dataset, error) {
	ds, err := newDataset(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := ds.load(ctx, n); err != nil {
		ds.drop()
		return nil, err
	}
	return ds, nil
}

// table is the qualified name of a table in the dataset's schema.
func (d *dataset) table(name string) string { return d.schema + "." + name }

// modelSQL is the sync's model over the main table.
func (d *dataset) modelSQL() string {
	return "SELECT id, name, email, amount, updated_at FROM " + d.table("customers")
}

func (d *dataset) exec(ctx context.Context, sql string, args ...any) error {
	if _, err := d.pool.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// drop removes the schema and everything in it.
func (d *dataset) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = d.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+d.schema+" CASCADE")
	d.pool.Close()
}

// load creates the customers table with ids 1..n.
func (d *dataset) load(ctx context.Context, n int64) error {
	if err := d.exec(ctx, `CREATE TABLE `+d.table("customers")+` (
		id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL,
		amount numeric(12,2), updated_at timestamptz NOT NULL)`); err != nil {
		return err
	}
	if err := d.copyRows(ctx, 1, n, 0); err != nil {
		return err
	}
	d.rows = n
	return d.exec(ctx, "VACUUM ANALYZE "+d.table("customers"))
}

// copyRows loads ids from..to (inclusive) with COPY. stream picks a
// different random sequence for rows added later.
func (d *dataset) copyRows(ctx context.Context, from, to int64, stream uint64) error {
	g := newGenerator(from, to, stream)
	_, err := d.pool.CopyFrom(ctx, pgx.Identifier{d.schema, "customers"},
		[]string{"id", "name", "email", "amount", "updated_at"}, g)
	if err != nil {
		return fmt.Errorf("loading rows %d..%d: %w", from, to, err)
	}
	return nil
}

// Edit counts for a table of n rows: 1% changed, 0.5% added, 0.5% deleted.
func changedRows(n int64) int64 { return n / 100 }
func addedRows(n int64) int64   { return n / 200 }
func deletedRows(n int64) int64 { return n / 200 }

// edit changes 1% of the rows, deletes 0.5% and adds 0.5% (ids after the
// last), then vacuums so every reader after it sees the same table.
func (d *dataset) edit(ctx context.Context) error {
	t := d.table("customers")
	n := d.rows
	if err := d.exec(ctx, "UPDATE "+t+" SET amount = amount + 1, updated_at = updated_at + interval '1 day' WHERE id % 100 = 17 AND id <= $1", n/100*100); err != nil {
		return err
	}
	if err := d.exec(ctx, "DELETE FROM "+t+" WHERE id % 200 = 3 AND id <= $1", n/200*200); err != nil {
		return err
	}
	if added := addedRows(n); added > 0 {
		if err := d.copyRows(ctx, n+1, n+added, 1); err != nil {
			return err
		}
	}
	return d.exec(ctx, "VACUUM ANALYZE "+t)
}

// generator produces rows for COPY, one at a time, so loading 10M rows does
// not hold them in memory.
type generator struct {
	id, to int64
	rng    *rand.Rand
	vals   []any
}

func newGenerator(from, to int64, stream uint64) *generator {
	return &generator{id: from - 1, to: to, rng: rand.New(rand.NewPCG(seed, stream)), vals: make([]any, 5)}
}

var words = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (g *generator) Next() bool {
	g.id++
	return g.id <= g.to
}

func (g *generator) Values() ([]any, error) {
	id := g.id
	g.vals[0] = id
	g.vals[1] = fmt.Sprintf("Customer %d %s %s", id, words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))])
	g.vals[2] = fmt.Sprintf("user%d@%s.example.com", id, words[g.rng.IntN(len(words))])
	g.vals[3] = pgtype.Numeric{Int: big.NewInt(g.rng.Int64N(10_000_000)), Exp: -2, Valid: true}
	g.vals[4] = epoch.Add(time.Duration(g.rng.Int64N(365*24*3600)) * time.Second)
	return g.vals, nil
}

func (g *generator) Err() error { return nil }

// row returns the generated values of one row as the webhook's data map,
// for the baselines that must send the same records.
func (g *generator) row() map[string]any {
	v, _ := g.Values()
	amount := v[3].(pgtype.Numeric)
	return map[string]any{
		"id":         v[0],
		"name":       v[1],
		"email":      v[2],
		"amount":     fmt.Sprintf("%d.%02d", amount.Int.Int64()/100, amount.Int.Int64()%100),
		"updated_at": v[4].(time.Time).Format(time.RFC3339),
	}
}
