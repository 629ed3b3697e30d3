package mapper

import (
	"encoding/json"
	"testing"

	"github.com/ebb-etl/ebb/libs/config"
)

// benchRow is a model row as a source yields it.
func benchRow() map[string]any {
	return map[string]any{
		"id": int64(42), "email": "user42@example.com", "name": "Customer 42 alpha bravo",
		"amount": json.Number("1234.50"), "updated_at": "2024-03-01T12:34:56Z",
	}
}

// BenchmarkMap maps a row with a typical mapping: nested paths and a
// constant.
func BenchmarkMap(b *testing.B) {
	m, err := New([]config.Mapping{
		{From: "id", To: "user_id"},
		{From: "email", To: "traits.email"},
		{From: "name", To: "traits.name"},
		{From: "amount", To: "traits.mrr"},
		{From: "updated_at", To: "traits.updated_at"},
		{Const: "warehouse", To: "context.source"},
	})
	if err != nil {
		b.Fatal(err)
	}
	row := benchRow()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Map(row); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapBaseline builds the same record by hand: the floor for
// BenchmarkMap.
func BenchmarkMapBaseline(b *testing.B) {
	row := benchRow()
	b.ReportAllocs()
	for b.Loop() {
		_ = map[string]any{
			"user_id": row["id"],
			"traits": map[string]any{
				"email": row["email"], "name": row["name"], "mrr": row["amount"], "updated_at": row["updated_at"],
			},
			"context": map[string]any{"source": "warehouse"},
		}
	}
}
