package record

import (
	"fmt"
)

// BatchWriter encodes a batch one record at a time, so the stage building
// it knows its size as it grows and can cut it at a byte budget. Its
// output decodes as a Batch.
type BatchWriter struct {
	out     JSONBuffer // the batch so far
	scratch JSONBuffer // the record being encoded
	count   int
}

// NewBatchWriter starts a batch with head's fields; head.Records is
// ignored.
func NewBatchWriter(head Batch) *BatchWriter {
	w := &BatchWriter{}
	w.out.batchHead(head)
	w.out.Buf = append(w.out.Buf, '[')
	return w
}

// Encode returns rec's JSON as Add would write it, without adding it, so
// a caller can check its size first. The result is valid until the next
// call.
func (w *BatchWriter) Encode(rec Record) ([]byte, error) {
	w.scratch.Buf = w.scratch.Buf[:0]
	if err := w.scratch.record(&rec); err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", rec.KeyEnc, err)
	}
	return w.scratch.Buf, nil
}

// AddEncoded appends a record Encode returned.
func (w *BatchWriter) AddEncoded(data []byte) {
	if w.count > 0 {
		w.out.Buf = append(w.out.Buf, ',')
	}
	w.out.Buf = append(w.out.Buf, data...)
	w.count++
}

// Add appends rec and returns the size of its JSON.
func (w *BatchWriter) Add(rec Record) (int, error) {
	data, err := w.Encode(rec)
	if err != nil {
		return 0, err
	}
	w.AddEncoded(data)
	return len(data), nil
}

// Len is the size of the batch so far, in bytes.
func (w *BatchWriter) Len() int { return len(w.out.Buf) + 2 }

// Count is the number of records added.
func (w *BatchWriter) Count() int { return w.count }

// Bytes ends the batch and returns it; the writer must not be used after.
func (w *BatchWriter) Bytes() []byte {
	return append(w.out.Buf, "]}"...)
}
