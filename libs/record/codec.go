package record

import (
	"encoding/base64"
	"fmt"
	"strconv"
)

// The messages stages exchange stay JSON: readable with `nats stream view`,
// and messages left in a stream by an older version still decode. What is
// hand-written is the encoding and decoding of batches and results, the
// largest cost of every stage (about two thirds of a first load's CPU went
// to encoding/json). The output is what encoding/json writes for the same
// structs (with HTML escaping off) and the input is what it reads; the
// tests compare the two.

// EncodeBatch encodes b as the message a stage publishes. A record whose
// Data is nil and RawData set is written with its RawData.
func EncodeBatch(b Batch) ([]byte, error) {
	j := JSONBuffer{Buf: batchBuffer(128 + 160*len(b.Records))} // a guess, saving most regrowth
	j.batchHead(b)
	if b.Records == nil {
		j.Buf = append(j.Buf, "null}"...)
		return j.Buf, nil
	}
	j.Buf = append(j.Buf, '[')
	for i := range b.Records {
		if i > 0 {
			j.Buf = append(j.Buf, ',')
		}
		if err := j.record(&b.Records[i]); err != nil {
			return nil, fmt.Errorf("encoding record %s: %w", b.Records[i].KeyEnc, err)
		}
	}
	j.Buf = append(j.Buf, "]}"...)
	return j.Buf, nil
}

// head writes the fields batches and result batches begin with.
func (j *JSONBuffer) head(sync, runID string, seq, partition int) {
	j.Buf = append(j.Buf, `{"sync":`...)
	j.String(sync)
	j.Buf = append(j.Buf, `,"run_id":`...)
	j.String(runID)
	j.Buf = append(j.Buf, `,"seq":`...)
	j.Buf = strconv.AppendInt(j.Buf, int64(seq), 10)
	j.Buf = append(j.Buf, `,"partition":`...)
	j.Buf = strconv.AppendInt(j.Buf, int64(partition), 10)
}

// batchHead writes a batch's fields up to its records.
func (j *JSONBuffer) batchHead(b Batch) {
	j.head(b.Sync, b.RunID, b.Seq, b.Partition)
	if b.Destination != "" {
		j.Buf = append(j.Buf, `,"destination":`...)
		j.String(b.Destination)
	}
	j.Buf = append(j.Buf, `,"records":`...)
}

// record writes r with the fields and omissions of its struct tags.
func (j *JSONBuffer) record(r *Record) error {
	j.Buf = append(j.Buf, `{"op":`...)
	j.String(string(r.Op))
	j.Buf = append(j.Buf, `,"c":`...)
	j.Buf = strconv.AppendUint(j.Buf, uint64(r.Change), 10)
	j.Buf = append(j.Buf, `,"k":`...)
	j.bytes(r.KeyEnc)
	j.Buf = append(j.Buf, `,"key":`...)
	if r.Key == nil {
		j.Buf = append(j.Buf, "null"...)
	} else if err := j.Map(r.Key); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	switch {
	case len(r.Data) > 0:
		j.Buf = append(j.Buf, `,"data":`...)
		if err := j.Map(r.Data); err != nil {
			return fmt.Errorf("data: %w", err)
		}
	case r.Data == nil && len(r.RawData) > 0:
		j.Buf = append(j.Buf, `,"data":`...)
		j.Buf = append(j.Buf, r.RawData...)
	}
	if r.Final != "" {
		j.Buf = append(j.Buf, `,"final":`...)
		j.String(string(r.Final))
	}
	if r.Error != "" {
		j.Buf = append(j.Buf, `,"error":`...)
		j.String(r.Error)
	}
	if r.Extra {
		j.Buf = append(j.Buf, `,"extra":true`...)
	}
	j.Buf = append(j.Buf, '}')
	return nil
}

// bytes writes b as encoding/json writes a []byte: base64, or null.
func (j *JSONBuffer) bytes(b []byte) {
	if b == nil {
		j.Buf = append(j.Buf, "null"...)
		return
	}
	j.Buf = append(j.Buf, '"')
	j.Buf = base64.StdEncoding.AppendEncode(j.Buf, b)
	j.Buf = append(j.Buf, '"')
}

// DecodeBatch decodes a batch message. With keepRaw, each record's data
// is checked and kept as JSON in RawData, not decoded (see
// Batch.DecodeData).
func DecodeBatch(data []byte, keepRaw bool) (Batch, error) {
	p := newParser(data)
	var b Batch
	err := p.fields(func(name []byte) error {
		if ok, err := p.headField(name, &b.Sync, &b.RunID, &b.Seq, &b.Partition); ok {
			return err
		}
		var err error
		switch string(name) {
		case "destination":
			b.Destination, err = p.stringField()
		case "records":
			b.Records, err = p.records(keepRaw)
		default:
			_, err = p.skip(1)
		}
		return err
	})
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return Batch{}, fmt.Errorf("decoding batch: %w", err)
	}
	return b, nil
}

// headField reads name if it is one of the fields batches and result
// batches begin with, and reports whether it was.
func (p *parser) headField(name []byte, sync, runID *string, seq, partition *int) (bool, error) {
	var err error
	switch string(name) {
	case "sync":
		*sync, err = p.stringField()
	case "run_id":
		*runID, err = p.stringField()
	case "seq":
		*seq, err = p.intField()
	case "partition":
		*partition, err = p.intField()
	default:
		return false, nil
	}
	return true, err
}

func (p *parser) records(keepRaw bool) ([]Record, error) {
	if p.null() {
		return nil, nil
	}
	recs := []Record{}
	err := p.elements(func() error {
		r, err := p.record(keepRaw)
		if err != nil {
			return fmt.Errorf("record %d: %w", len(recs), err)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

func (p *parser) record(keepRaw bool) (Record, error) {
	var r Record
	err := p.fields(func(name []byte) error {
		var err error
		var s string
		switch string(name) {
		case "op":
			s, err = p.nameField()
			r.Op = Op(s)
		case "c":
			r.Change, err = p.changeField()
		case "k":
			r.KeyEnc, err = p.bytesField()
		case "key":
			r.Key, err = p.mapField()
		case "data":
			if keepRaw {
				var raw []byte
				if raw, err = p.skip(1); string(raw) != "null" {
					r.RawData = raw
				}
			} else {
				r.Data, err = p.mapField()
			}
		case "final":
			s, err = p.nameField()
			r.Final = Status(s)
		case "error":
			r.Error, err = p.stringField()
		case "extra":
			r.Extra, err = p.boolField()
		default:
			_, err = p.skip(1)
		}
		return err
	})
	return r, err
}

// nameField reads a string from a small set (ops, statuses), interned.
func (p *parser) nameField() (string, error) {
	if p.null() {
		return "", nil
	}
	if p.next() != '"' {
		return "", p.unexpected("a string")
	}
	b, err := p.stringBytes()
	return p.intern(b), err
}

func (p *parser) changeField() (Change, error) {
	n, err := p.intField()
	if err == nil && (n < 0 || n > 255) {
		err = p.errorf("change %d out of range", n)
	}
	return Change(n), err
}

// bytesField reads base64 (or null) as encoding/json reads a []byte.
func (p *parser) bytesField() ([]byte, error) {
	if p.null() {
		return nil, nil
	}
	if p.next() != '"' {
		return nil, p.unexpected("a base64 string")
	}
	s, err := p.stringBytes()
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.AppendDecode(make([]byte, 0, base64.StdEncoding.DecodedLen(len(s))), s)
	if err != nil {
		return nil, p.errorf("invalid base64: %v", err)
	}
	return b, nil
}

// DecodeData decodes the RawData of every record into Data, for a batch
// decoded with keepRaw.
func (b *Batch) DecodeData() error {
	var p parser
	for i := range b.Records {
		r := &b.Records[i]
		if len(r.RawData) == 0 {
			continue
		}
		p.data, p.i = r.RawData, 0
		m, err := p.mapField()
		if err == nil {
			err = p.end()
		}
		if err != nil {
			return fmt.Errorf("record %d: data: %w", i, err)
		}
		r.Data, r.RawData = m, nil
	}
	return nil
}

// EncodeResults encodes a result batch message.
func EncodeResults(rb ResultBatch) ([]byte, error) {
	var j JSONBuffer
	j.head(rb.Sync, rb.RunID, rb.Seq, rb.Partition)
	j.Buf = append(j.Buf, `,"results":`...)
	if rb.Results == nil {
		j.Buf = append(j.Buf, "null"...)
	} else {
		j.Buf = append(j.Buf, '[')
		for i := range rb.Results {
			if i > 0 {
				j.Buf = append(j.Buf, ',')
			}
			j.result(&rb.Results[i])
		}
		j.Buf = append(j.Buf, ']')
	}
	if rb.Retries != 0 {
		j.Buf = append(j.Buf, `,"retries":`...)
		j.Buf = strconv.AppendInt(j.Buf, int64(rb.Retries), 10)
	}
	j.Buf = append(j.Buf, '}')
	return j.Buf, nil
}

func (j *JSONBuffer) result(r *Result) {
	j.Buf = append(j.Buf, `{"k":`...)
	j.bytes(r.KeyEnc)
	j.Buf = append(j.Buf, `,"op":`...)
	j.String(string(r.Op))
	j.Buf = append(j.Buf, `,"c":`...)
	j.Buf = strconv.AppendUint(j.Buf, uint64(r.Change), 10)
	j.Buf = append(j.Buf, `,"status":`...)
	j.String(string(r.Status))
	if r.Error != "" {
		j.Buf = append(j.Buf, `,"error":`...)
		j.String(r.Error)
	}
	if r.PayloadHash != "" {
		j.Buf = append(j.Buf, `,"h":`...)
		j.String(r.PayloadHash)
	}
	if r.Extra {
		j.Buf = append(j.Buf, `,"x":true`...)
	}
	j.Buf = append(j.Buf, '}')
}

// DecodeResults decodes a result batch message.
func DecodeResults(data []byte) (ResultBatch, error) {
	p := newParser(data)
	var rb ResultBatch
	err := p.fields(func(name []byte) error {
		if ok, err := p.headField(name, &rb.Sync, &rb.RunID, &rb.Seq, &rb.Partition); ok {
			return err
		}
		var err error
		switch string(name) {
		case "retries":
			rb.Retries, err = p.intField()
		case "results":
			rb.Results, err = p.results()
		default:
			_, err = p.skip(1)
		}
		return err
	})
	if err == nil {
		err = p.end()
	}
	if err != nil {
		return ResultBatch{}, fmt.Errorf("decoding results: %w", err)
	}
	return rb, nil
}

func (p *parser) results() ([]Result, error) {
	if p.null() {
		return nil, nil
	}
	out := []Result{}
	err := p.elements(func() error {
		r, err := p.result()
		if err != nil {
			return fmt.Errorf("result %d: %w", len(out), err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

func (p *parser) result() (Result, error) {
	var r Result
	err := p.fields(func(name []byte) error {
		var err error
		var s string
		switch string(name) {
		case "k":
			r.KeyEnc, err = p.bytesField()
		case "op":
			s, err = p.nameField()
			r.Op = Op(s)
		case "c":
			r.Change, err = p.changeField()
		case "status":
			s, err = p.nameField()
			r.Status = Status(s)
		case "error":
			r.Error, err = p.stringField()
		case "h":
			r.PayloadHash, err = p.stringField()
		case "x":
			r.Extra, err = p.boolField()
		default:
			_, err = p.skip(1)
		}
		return err
	})
	return r, err
}
