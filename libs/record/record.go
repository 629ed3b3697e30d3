package record

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Op is what a record asks the destination to do.
type Op string

const (
	OpUpsert Op = "upsert"
	OpInsert Op = "insert"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Change is what the differ found for one key.
type Change byte

const (
	Added   Change = 'a'
	Changed Change = 'c'
	Deleted Change = 'd'
)

func (c Change) String() string {
	switch c {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Deleted:
		return "deleted"
	}
	return fmt.Sprintf("change(%d)", byte(c))
}

// Record is one row on its way to a destination. Data is nil for deletes.
// KeyEnc travels with the record so every stage can report on the exact key
// the differ planned, whatever the mapping does to the data.
type Record struct {
	Op     Op             `json:"op"`
	Change Change         `json:"c"`
	KeyEnc Key            `json:"k"`
	Key    map[string]any `json:"key"`
	Data   map[string]any `json:"data,omitempty"`
	// RawData is Data as JSON, kept as received when the destination takes
	// it as is (see destination.RawTaker): delivery then skips decoding it
	// into Data, which stays nil.
	RawData json.RawMessage `json:"-"`
	// Final, when set, is the record's outcome decided before delivery: it
	// vanished from the model, was too large, failed its mapping or
	// transformation, or was filtered out. It still travels in its batch
	// to its lane, and delivery reports it with the batch's other results
	// without sending it: every record has its one result from the one
	// message that carries it, however often a stage handles that message.
	Final Status `json:"final,omitempty"`
	Error string `json:"error,omitempty"`
	// Extra marks the copies of a fanned-out record after the first.
	Extra bool `json:"extra,omitempty"`
}

// Sendable reports whether the record goes to the destination.
func (r Record) Sendable() bool { return r.Final == "" }

// Payload returns the record's data, decoding RawData if that is all it has.
func (r Record) Payload() map[string]any {
	if r.Data != nil || len(r.RawData) == 0 {
		return r.Data
	}
	m, _ := ParseJSONObject(r.RawData)
	return m
}

// Batch is the unit every stage publishes, acks and checkpoints. Seq numbers
// the extractor's batches of a run from 0; Partition is set from the
// transformer on.
type Batch struct {
	Sync        string   `json:"sync"`
	RunID       string   `json:"run_id"`
	Seq         int      `json:"seq"`
	Partition   int      `json:"partition"`
	Destination string   `json:"destination,omitempty"`
	Records     []Record `json:"records"`
}

// ResultIndex numbers a run's result batches for deduplication: each
// extracted batch seq has one per partition.
func ResultIndex(seq, partition, partitions int) int { return seq*partitions + partition }

// Status is a record's final outcome in a run.
type Status string

const (
	Delivered Status = "delivered"
	Failed    Status = "failed"
	// Vanished: the differ planned it but the row was gone by extraction.
	// It is final, and the snapshot keeps the old state so the next run
	// decides again.
	Vanished Status = "vanished"
	// Filtered: the sync's transformation dropped it. It is final and a
	// success: the snapshot takes the row's new state, so it is not sent
	// again until it changes.
	Filtered Status = "filtered"
)

// Result is one record's final outcome.
type Result struct {
	KeyEnc Key    `json:"k"`
	Op     Op     `json:"op"`
	Change Change `json:"c"`
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// PayloadHash fingerprints the payload delivery sent (or tried to), so
	// a key's history shows when what was sent changed.
	PayloadHash string `json:"h,omitempty"`
	// Extra marks the result of a fanned-out copy after the first: the
	// run counts its record once.
	Extra bool `json:"x,omitempty"`
}

// MaxErrorLen bounds the error text a result keeps: a destination may
// answer with a whole page.
const MaxErrorLen = 1024

// Truncate shortens an error text to MaxErrorLen bytes, on a rune boundary.
func Truncate(s string) string {
	if len(s) <= MaxErrorLen {
		return s
	}
	cut := MaxErrorLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// ResultBatch reports the outcomes of one delivered batch.
type ResultBatch struct {
	Sync      string   `json:"sync"`
	RunID     string   `json:"run_id"`
	Seq       int      `json:"seq"`
	Partition int      `json:"partition"`
	Results   []Result `json:"results"`
	// Retries counts the requests delivery retried for this batch.
	Retries int `json:"retries,omitempty"`
}

// MsgID is the deterministic Nats-Msg-Id of a batch at a stage, so a
// republish after a crash is dropped by JetStream's duplicate window.
func MsgID(sync, runID, stage string, seq, partition int) string {
	return fmt.Sprintf("%s/%s/%s/%d/%d", sync, runID, stage, seq, partition)
}

// Decode decodes a stage message into v. Numbers decode as json.Number,
// so exact decimals and big integers pass through every stage unchanged.
// Batches, result batches and objects take the fast path of this package's
// parser; anything else goes through encoding/json.
func Decode(data []byte, v any) error {
	var err error
	switch v := v.(type) {
	case *Batch:
		*v, err = DecodeBatch(data, false)
	case *ResultBatch:
		*v, err = DecodeResults(data)
	case *map[string]any:
		*v, err = ParseJSONObject(data)
	default:
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		err = d.Decode(v)
	}
	return err
}
