package record_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/ebb-etl/ebb/libs/record"
)

// benchBatch is a record batch as the extractor publishes it: 2,000
// records of a five-column row.
func benchBatch() record.Batch {
	recs := make([]record.Record, 2000)
	for i := range recs {
		recs[i] = record.Record{
			Op: record.OpUpsert, Change: record.Added,
			KeyEnc: record.AppendInt(nil, int64(i)),
			Key:    map[string]any{"id": int64(i)},
			Data: map[string]any{
				"id": int64(i), "name": fmt.Sprintf("Customer %d alpha bravo", i),
				"email":  fmt.Sprintf("user%d@example.com", i),
				"amount": json.Number("1234.50"), "updated_at": "2024-03-01T12:34:56Z",
			},
		}
	}
	return record.Batch{Sync: "bench", RunID: "01KAXRUN", Seq: 7, Records: recs}
}

// BenchmarkBatchEncode is what every stage pays to publish a batch.
func BenchmarkBatchEncode(b *testing.B) {
	benchEncode(b, record.EncodeBatch)
}

// BenchmarkBatchEncodeEncodingJSON is the same with encoding/json, for
// comparison.
func BenchmarkBatchEncodeEncodingJSON(b *testing.B) {
	benchEncode(b, func(batch record.Batch) ([]byte, error) { return json.Marshal(batch) })
}

func benchEncode(b *testing.B, encode func(record.Batch) ([]byte, error)) {
	batch := benchBatch()
	b.ReportAllocs()
	for b.Loop() {
		data, err := encode(batch)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(data)))
	}
	b.ReportMetric(float64(len(batch.Records))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkBatchDecode is what the transformer pays to consume a batch.
func BenchmarkBatchDecode(b *testing.B) {
	benchDecode(b, func(data []byte) error { _, err := record.DecodeBatch(data, false); return err })
}

// BenchmarkBatchDecodeRaw is what delivery pays for a webhook, whose
// records' data stays JSON.
func BenchmarkBatchDecodeRaw(b *testing.B) {
	benchDecode(b, func(data []byte) error { _, err := record.DecodeBatch(data, true); return err })
}

// BenchmarkBatchDecodeEncodingJSON is BenchmarkBatchDecode with
// encoding/json, for comparison.
func BenchmarkBatchDecodeEncodingJSON(b *testing.B) {
	benchDecode(b, func(data []byte) error {
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		var out record.Batch
		return d.Decode(&out)
	})
}

func benchDecode(b *testing.B, decode func([]byte) error) {
	data, err := json.Marshal(benchBatch())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := decode(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2000*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkKey encodes, checks and compares integer keys, as the differ
// does for every row.
func BenchmarkKey(b *testing.B) {
	var k, prev record.Key
	i := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		k = record.AppendInt(k[:0], i)
		if k.HasNull() {
			b.Fatal("no NULL here")
		}
		if record.Compare(k, prev) <= 0 && i > 0 {
			b.Fatal("keys out of order")
		}
		prev = append(prev[:0], k...)
		i++
	}
}
