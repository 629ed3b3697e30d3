package record

import (
	"fmt"
	"sync"
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
	w.out.Buf = batchBuffer(0)
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

// Batch buffers are recycled: a first load publishes thousands of batches
// of hundreds of kilobytes each, and allocating (and zeroing) each one,
// growing it by doubling, was a good part of the garbage collector's work.
var batchBuffers sync.Pool

// maxRecycled keeps one huge batch from pinning its buffer for ever.
const maxRecycled = 4 << 20

// batchBuffer returns an empty buffer, recycled if one is free.
func batchBuffer(size int) []byte {
	if b, ok := batchBuffers.Get().(*[]byte); ok && cap(*b) >= size {
		return (*b)[:0]
	}
	return make([]byte, 0, max(size, 64<<10))
}

// Recycle hands back the bytes of a batch (from EncodeBatch or
// BatchWriter.Bytes) once they are published; the caller must not use
// them after.
func Recycle(b []byte) {
	if cap(b) == 0 || cap(b) > maxRecycled {
		return
	}
	b = b[:0]
	batchBuffers.Put(&b)
}
