package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/capture"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/plane"
	"github.com/ebb-etl/ebb/libs/run"
	"github.com/ebb-etl/ebb/libs/source/duckdb"
)

// The demo's resources.
const (
	demoSource      = "demo_warehouse"
	demoDestination = "demo_capture"
	demoSync        = "demo_customers"
	demoRows        = 1000
)

// runDemo seeds a DuckDB warehouse and a capture destination, runs the demo
// sync, changes the warehouse, runs it again, and says what each run sent.
func runDemo(ctx context.Context, js jetstream.JetStream, natsURL, dataDir string, out io.Writer) error {
	dir := filepath.Join(dataDir, "demo")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("resetting demo data: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating demo data dir: %w", err)
	}
	p, err := plane.Open(ctx, js)
	if err != nil {
		return err
	}
	dbPath := filepath.Join(dir, "warehouse.duckdb")
	db, release, err := duckdb.DB(dbPath)
	if err != nil {
		return fmt.Errorf("opening demo warehouse: %w", err)
	}
	defer release()
	if err := seedDemo(ctx, db); err != nil {
		return err
	}
	capturePath := filepath.Join(dir, "received.jsonl")
	sink := capture.New(capture.Options{File: capturePath})
	url, err := sink.Start("127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting demo destination: %w", err)
	}
	defer sink.Close()
	if err := applyDemo(ctx, p, dbPath, url); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nDemo: sync %q sends DuckDB table customers (%d rows) to a local webhook (%s), mode mirror.\n", demoSync, demoRows, url)
	first, err := demoRun(ctx, p, out, "Run 1, first sync")
	if err != nil {
		return err
	}
	if err := changeDemo(ctx, db); err != nil {
		return err
	}
	fmt.Fprintln(out, "Changed the warehouse: 25 customers changed plan, 10 signed up, 5 left.")
	second, err := demoRun(ctx, p, out, "Run 2, after the changes")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nWhere to look:\n")
	fmt.Fprintf(out, "  what the destination received  %s (%d records)\n", capturePath, len(sink.Records()))
	fmt.Fprintf(out, "  runs                           ebb runs list --sync %s\n", demoSync)
	fmt.Fprintf(out, "  one run                        ebb runs get %s\n", second.ID)
	fmt.Fprintf(out, "  streams, consumers, buckets    nats --server %s stream ls  (kv ls, consumer ls EBB_DELIVER)\n", natsURL)
	if first.State != run.Succeeded || second.State != run.Succeeded {
		return fmt.Errorf("a demo run did not succeed")
	}
	return nil
}

func seedDemo(ctx context.Context, db *sql.DB) error {
	stmts := []string{
		`CREATE OR REPLACE TABLE customers (
			id INTEGER PRIMARY KEY, email VARCHAR, name VARCHAR, plan VARCHAR,
			seats INTEGER, mrr DECIMAL(10,2), updated_at TIMESTAMP)`,
		fmt.Sprintf(`INSERT INTO customers
			SELECT i, 'customer' || i || '@example.com', 'Customer ' || i,
			       ['free','starter','pro','enterprise'][1 + i %% 4],
			       1 + i %% 50, CAST((i %% 4) * 49.5 AS DECIMAL(10,2)),
			       TIMESTAMP '2026-01-01 00:00:00' + INTERVAL (i) MINUTE
			FROM range(1, %d) t(i)`, demoRows+1),
	}
	return execAll(ctx, db, stmts)
}

func changeDemo(ctx context.Context, db *sql.DB) error {
	return execAll(ctx, db, []string{
		`UPDATE customers SET plan = 'enterprise', mrr = 499.00 WHERE id % 40 = 0`,
		fmt.Sprintf(`INSERT INTO customers SELECT i, 'new' || i || '@example.com', 'Newcomer ' || i, 'free', 1, 0, TIMESTAMP '2026-11-25 00:00:00'
			FROM range(%d, %d) t(i)`, demoRows+1, demoRows+11),
		`DELETE FROM customers WHERE id IN (3, 7, 11, 13, 17)`,
	})
}

func execAll(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("demo warehouse: %w", err)
		}
	}
	return nil
}

// applyDemo declares the demo's resources and forgets the demo sync's
// previous snapshot, so every demo starts from scratch.
func applyDemo(ctx context.Context, p *plane.Plane, dbPath, url string) error {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return err
	}
	f := config.File{
		Sources:      []config.Source{{Name: demoSource, Type: "duckdb", Config: map[string]any{"path": abs}}},
		Destinations: []config.Destination{{Name: demoDestination, Type: "webhook", Config: map[string]any{"url": url, "batch_size": 100}}},
		Syncs: []config.Sync{{
			Name: demoSync, Source: demoSource, Destination: demoDestination,
			Model: config.Model{SQL: "SELECT id, email, name, plan, seats, mrr, updated_at FROM customers", PrimaryKey: []string{"id"}},
			Mode:  config.ModeMirror,
			Mapping: []config.Mapping{
				{From: "email", To: "traits.email"}, {From: "name", To: "traits.name"},
				{From: "plan", To: "traits.plan"}, {From: "mrr", To: "traits.mrr"},
				{Const: "ebb-demo", To: "context.source"},
			},
			Schedule: "manual",
		}},
	}
	if err := f.Validate(); err != nil {
		return err
	}
	for _, s := range f.Sources {
		if err := p.Configs.Put(ctx, config.KindSource, s.Name, s); err != nil {
			return err
		}
	}
	for _, d := range f.Destinations {
		if err := p.Configs.Put(ctx, config.KindDestination, d.Name, d); err != nil {
			return err
		}
	}
	for _, s := range f.Syncs {
		if err := p.Configs.Put(ctx, config.KindSync, s.Name, s); err != nil {
			return err
		}
	}
	if err := p.State.Delete(ctx, "snapshot."+demoSync); err != nil && err != jetstream.ErrKeyNotFound {
		return fmt.Errorf("resetting demo snapshot: %w", err)
	}
	return nil
}

// demoRun starts a run of the demo sync, waits for it and prints what it sent.
func demoRun(ctx context.Context, p *plane.Plane, out io.Writer, title string) (*run.Run, error) {
	started := time.Now()
	r, err := startWhenIdle(ctx, p, demoSync)
	if err != nil {
		return nil, err
	}
	r, err = waitRun(ctx, p.Runs, r.Sync, r.ID)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\n%s (run %s): %s in %s\n", title, r.ID, r.State, time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(out, "  adds     %5d sent of %d planned\n", r.Adds.Delivered, r.Planned.Adds)
	fmt.Fprintf(out, "  changes  %5d sent of %d planned\n", r.Changes.Delivered, r.Planned.Changes)
	fmt.Fprintf(out, "  deletes  %5d sent of %d planned\n", r.Deletes.Delivered, r.Planned.Deletes)
	fmt.Fprintf(out, "  failed   %5d\n", r.FailedRecords())
	if r.Error != "" {
		fmt.Fprintf(out, "  error    %s\n", r.Error)
	}
	return r, nil
}

// startWhenIdle starts a run, waiting out a run left active by an earlier
// demo that was interrupted.
func startWhenIdle(ctx context.Context, p *plane.Plane, sync string) (*run.Run, error) {
	for {
		r, err := run.Start(ctx, p.Bus, p.Runs, sync, "manual")
		if err == nil {
			return r, nil
		}
		id, aerr := p.Runs.ActiveID(ctx, sync)
		if aerr != nil || id == "" {
			return nil, err
		}
		if _, err := waitRun(ctx, p.Runs, sync, id); err != nil {
			return nil, err
		}
	}
}

// waitRun polls a run until it ends.
func waitRun(ctx context.Context, runs *run.Store, sync, id string) (*run.Run, error) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		r, err := runs.Get(ctx, sync, id)
		if err != nil {
			return nil, err
		}
		if r.State.Terminal() {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}
