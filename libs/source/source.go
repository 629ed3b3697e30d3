// Package source defines how Ebb reads a warehouse. Each warehouse is one
// package beside this one (postgres, duckdb); builtin opens them by type.
//
// Two scans serve the two stages that read the model:
//   - the differ's ScanHashes pushes the hashing down to the warehouse, so
//     only keys and 16-byte row hashes cross the wire;
//   - the extractor's ScanRows reads whole rows.
//
// Both return rows ordered by encoded key (record.Compare order), which lets
// the differ merge-join against the previous snapshot and the extractor
// merge-join against the change set, each in bounded memory.
package source

import (
	"context"

	"github.com/ebb-etl/ebb/libs/record"
)

// Model is the query a sync reads and its primary key columns.
type Model struct {
	SQL        string
	PrimaryKey []string
}

// Column is one column of a model's result. The differ records a model's
// columns with each committed snapshot, to notice a column whose type
// changes (see snapshot.TypeChanges).
type Column struct {
	Name string `json:"name"`
	// Type is the warehouse's own type name.
	Type string `json:"type"`
	// Int is set for the integer types whose values fit int64: as a key
	// part they are encoded with record.AppendInt, every other type as
	// text (see Source). The source sets it as it resolves key columns.
	Int bool `json:"int,omitempty"`
}

// HashFunc receives one row of ScanHashes. key and hash are only valid
// during the call: sources reuse their buffers from row to row.
type HashFunc func(key record.Key, hash []byte) error

// RowFunc receives one row of ScanRows. key is only valid during the call;
// row may be kept.
type RowFunc func(key record.Key, row map[string]any) error

// KeyFetcher is a source that reads rows by key: a run that changed a few
// rows of a large model reads those alone, instead of scanning the model
// in key order up to the last of them.
type KeyFetcher interface {
	// FetchesRows reports whether FetchRows works on this source (a
	// dialect may lack what it needs).
	FetchesRows() bool
	// FetchRows streams the rows of the model whose keys are in keys
	// (sorted, none with a NULL part), in key order, as ScanRows would; a
	// key without a row is left out.
	FetchRows(ctx context.Context, m Model, keys []record.Key, fn RowFunc) error
}

// Source reads a warehouse. Implementations are safe for concurrent use.
//
// Key encoding: integer key columns are encoded with record.AppendInt and
// ordered numerically; every other key column is cast to text, encoded with
// record.AppendString and ordered by the bytes of that text (COLLATE "C").
// A NULL key part is encoded with record.AppendNull; the differ reports it.
//
// Row values are canonical, the same whatever the warehouse: nil, bool,
// int64, float64, string, json.Number for exact decimals, json.RawMessage for
// JSON documents, []any for arrays. Timestamps with a zone are RFC 3339
// strings in UTC, timestamps without one are "2006-01-02T15:04:05.999999",
// dates "2006-01-02", binary values base64 strings.
type Source interface {
	// Columns runs the model with no rows and returns its columns.
	Columns(ctx context.Context, sql string) ([]Column, error)
	// ScanHashes streams each row's key and a hash of the whole row.
	ScanHashes(ctx context.Context, m Model, fn HashFunc) error
	// ScanRows streams whole rows whose key is greater than after (every
	// row when after is nil), in key order.
	ScanRows(ctx context.Context, m Model, after record.Key, fn RowFunc) error
	// Close releases connections.
	Close() error
}
