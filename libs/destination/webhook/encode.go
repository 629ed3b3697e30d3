package webhook

import (
	"fmt"
	"sync"

	"github.com/ebb-etl/ebb/libs/destination"
	"github.com/ebb-etl/ebb/libs/record"
)

// Encoding the body is the hot path of a webhook sync: it is appended
// with record.JSONBuffer (encoding/json's output without its reflection),
// and record data the transformer already encoded is copied in as it is.

// encoder holds the buffers of one request; it is pooled.
type encoder struct {
	j record.JSONBuffer
	// sent maps positions in the request's records array to positions in
	// the batch: records that cannot be encoded are left out.
	sent []int
}

// maxPooledBuffer keeps one huge batch from pinning its buffer forever.
const maxPooledBuffer = 4 << 20

var encoderPool = sync.Pool{New: func() any { return &encoder{} }}

func getEncoder() *encoder { return encoderPool.Get().(*encoder) }

func putEncoder(e *encoder) {
	if cap(e.j.Buf) > maxPooledBuffer {
		return
	}
	e.j.Reset() // do not keep record data alive
	e.sent = e.sent[:0]
	encoderPool.Put(e)
}

// encodeBatch writes the request body of b into e.j.Buf. A record that cannot
// be encoded (a NaN, an invalid json.Number) is left out of the body and
// gets its own permanent error in errs, which is nil when every record was
// encoded.
func (e *encoder) encodeBatch(b destination.Batch) (errs []error) {
	e.j.Buf = append(e.j.Buf[:0], `{"sync":`...)
	e.j.Buf = record.AppendJSONString(e.j.Buf, b.Sync)
	e.j.Buf = append(e.j.Buf, `,"run_id":`...)
	e.j.Buf = record.AppendJSONString(e.j.Buf, b.RunID)
	e.j.Buf = append(e.j.Buf, `,"batch_id":`...)
	e.j.Buf = record.AppendJSONString(e.j.Buf, b.ID)
	e.j.Buf = append(e.j.Buf, `,"records":[`...)
	e.sent = e.sent[:0]
	for i := range b.Records {
		mark := len(e.j.Buf)
		if len(e.sent) > 0 {
			e.j.Buf = append(e.j.Buf, ',')
		}
		if err := e.appendRecord(&b.Records[i]); err != nil {
			e.j.Buf = e.j.Buf[:mark]
			if errs == nil {
				errs = make([]error, len(b.Records))
			}
			errs[i] = fmt.Errorf("encoding record as JSON: %w", err)
			continue
		}
		e.sent = append(e.sent, i)
	}
	e.j.Buf = append(e.j.Buf, "]}\n"...)
	return errs
}

func (e *encoder) appendRecord(r *record.Record) error {
	switch r.Op {
	case record.OpUpsert, record.OpInsert, record.OpUpdate, record.OpDelete:
	default:
		return fmt.Errorf("unknown op %q", r.Op)
	}
	e.j.Buf = append(e.j.Buf, `{"op":`...)
	e.j.Buf = record.AppendJSONString(e.j.Buf, string(r.Op))
	e.j.Buf = append(e.j.Buf, `,"key":`...)
	if err := e.j.Map(r.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	// Deletes carry no data; every other op sends an object, even empty.
	if r.Op != record.OpDelete {
		e.j.Buf = append(e.j.Buf, `,"data":`...)
		if r.RawData != nil {
			// Data as the transformer encoded it, with the same
			// record.JSONBuffer: sorted keys included.
			e.j.Buf = append(e.j.Buf, r.RawData...)
		} else if err := e.j.Map(r.Data); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	}
	e.j.Buf = append(e.j.Buf, '}')
	return nil
}
