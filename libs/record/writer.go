package record

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// BatchWriter encodes a batch one record at a time, so the stage building
// it knows its size as it grows and can cut it at a byte budget. Its
// output decodes as a Batch.
type BatchWriter struct {
	buf     bytes.Buffer
	scratch bytes.Buffer
	enc     *json.Encoder
	count   int
}

// NewBatchWriter starts a batch with head's fields; head.Records is
// ignored.
func NewBatchWriter(head Batch) *BatchWriter {
	w := &BatchWriter{}
	w.enc = json.NewEncoder(&w.scratch)
	w.enc.SetEscapeHTML(false)
	head.Records = nil
	h, _ := json.Marshal(head) // {"sync":…,"records":null}
	w.buf.Write(h[:len(h)-len(`null}`)])
	w.buf.WriteByte('[')
	return w
}

// Encode returns rec's JSON as Add would write it, without adding it, so
// a caller can check its size first.
func (w *BatchWriter) Encode(rec Record) ([]byte, error) {
	w.scratch.Reset()
	if err := w.enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", rec.KeyEnc, err)
	}
	return bytes.TrimSuffix(w.scratch.Bytes(), []byte{'\n'}), nil
}

// AddEncoded appends a record Encode returned.
func (w *BatchWriter) AddEncoded(data []byte) {
	if w.count > 0 {
		w.buf.WriteByte(',')
	}
	w.buf.Write(data)
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
func (w *BatchWriter) Len() int { return w.buf.Len() + 2 }

// Count is the number of records added.
func (w *BatchWriter) Count() int { return w.count }

// Bytes ends the batch and returns it; the writer must not be used after.
func (w *BatchWriter) Bytes() []byte {
	w.buf.WriteString("]}")
	return w.buf.Bytes()
}
