package diff_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/bus"
	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/diff"
	"github.com/ebb-etl/ebb/libs/natstest"
	"github.com/ebb-etl/ebb/libs/record"
	"github.com/ebb-etl/ebb/libs/snapshot"
	"github.com/ebb-etl/ebb/libs/source"
)

const benchRows = 200_000

// genSource streams keys 0..rows-1 (plus the adds) with synthetic hashes,
// already in key order, so the benchmark measures the merge and the
// snapshot files, not a warehouse. With edited set, 1% of rows change,
// 0.5% are deleted and 0.5% are added, as in `make bench`.
type genSource struct {
	rows   int64
	edited bool
}

func (s genSource) Columns(context.Context, string) ([]source.Column, error) { return nil, nil }
func (s genSource) ScanRows(context.Context, source.Model, record.Key, source.RowFunc) error {
	return nil
}
func (s genSource) Close() error { return nil }
func (s genSource) ScanHashes(_ context.Context, _ source.Model, fn source.HashFunc) error {
	var key record.Key
	hash := make([]byte, snapshot.HashSize)
	last := s.rows
	if s.edited {
		last += s.rows / 200
	}
	for i := range last {
		if s.edited && i < s.rows && i%200 == 3 {
			continue
		}
		binary.LittleEndian.PutUint64(hash, uint64(i))
		binary.LittleEndian.PutUint64(hash[8:], 0)
		if s.edited && i < s.rows && i%100 == 17 {
			hash[8] = 1
		}
		key = record.AppendInt(key[:0], i)
		if err := fn(key, hash); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkCompute measures the local engine's merge of a model of
// benchRows rows against the committed snapshot, writing the candidate
// snapshot and the change set to an embedded JetStream object store.
func BenchmarkCompute(b *testing.B) {
	ns := natstest.Start(b)
	ctx := context.Background()
	obs, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	if err != nil {
		b.Fatal(err)
	}
	run := func(src source.Source, prev, name string) diff.Stats {
		pr, err := snapshot.Open(ctx, obs, prev, snapshot.SnapshotPayload)
		if err != nil {
			b.Fatal(err)
		}
		defer pr.Close()
		next := snapshot.Create(ctx, obs, name+"/snapshot", snapshot.SnapshotPayload)
		changes := snapshot.Create(ctx, obs, name+"/changes", snapshot.ChangesPayload)
		st, err := diff.Compute(ctx, src, source.Model{}, config.ModeMirror, pr, next, changes)
		if err != nil {
			b.Fatal(err)
		}
		if err := next.Close(); err != nil {
			b.Fatal(err)
		}
		if err := changes.Close(); err != nil {
			b.Fatal(err)
		}
		return st
	}
	run(genSource{rows: benchRows}, "", "base")
	i := 0
	for b.Loop() {
		name := fmt.Sprintf("run%d", i)
		st := run(genSource{rows: benchRows, edited: true}, "base/snapshot", name)
		if st.Changes != benchRows/100 || st.Adds != benchRows/200 || st.Deletes != benchRows/200 {
			b.Fatalf("stats %+v", st)
		}
		deleteObjects(b, obs, name)
		i++
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

func deleteObjects(b *testing.B, obs jetstream.ObjectStore, name string) {
	for _, kind := range []string{"snapshot", "changes"} {
		if err := obs.Delete(context.Background(), name+"/"+kind); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotRead measures reading a snapshot file back, the other
// half of every merge.
func BenchmarkSnapshotRead(b *testing.B) {
	ns := natstest.Start(b)
	ctx := context.Background()
	obs, err := ns.JS.ObjectStore(ctx, bus.ObjectSnapshots)
	if err != nil {
		b.Fatal(err)
	}
	w := snapshot.Create(ctx, obs, "snap", snapshot.SnapshotPayload)
	hash := make([]byte, snapshot.HashSize)
	var key record.Key
	for i := range int64(benchRows) {
		key = record.AppendInt(key[:0], i)
		if err := w.Write(key, hash); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r, err := snapshot.Open(ctx, obs, "snap", snapshot.SnapshotPayload)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			ok, err := r.Next()
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
			n++
		}
		r.Close()
		if n != benchRows {
			b.Fatalf("read %d entries", n)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
