package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebb-etl/ebb/libs/record"
)

// Values keeps the last payload sent for each key of the syncs that ask
// for it (keep_values), so a plan can show which fields of a changed
// record change. Keys are hashed: a record key can hold any bytes.
type Values struct{ kv jetstream.KeyValue }

// NewValues wraps the values bucket.
func NewValues(kv jetstream.KeyValue) *Values { return &Values{kv: kv} }

func valuesKey(sync string, key record.Key) string {
	sum := sha256.Sum256(key)
	return sync + "." + hex.EncodeToString(sum[:16])
}

// Keep records what a result says was sent: the payload of a delivered
// upsert, insert or update; nothing for a delivered delete.
func (v *Values) Keep(ctx context.Context, sync string, rec record.Record) error {
	k := valuesKey(sync, rec.KeyEnc)
	if rec.Op == record.OpDelete {
		if err := v.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forgetting the values of a deleted record: %w", err)
		}
		return nil
	}
	data := []byte(rec.RawData)
	if data == nil {
		var err error
		if data, err = json.Marshal(rec.Data); err != nil {
			return err
		}
	}
	if _, err := v.kv.Put(ctx, k, data); err != nil {
		return fmt.Errorf("keeping the values sent: %w", err)
	}
	return nil
}

// Last returns the payload last sent for key, or nil.
func (v *Values) Last(ctx context.Context, sync string, key record.Key) (map[string]any, error) {
	e, err := v.kv.Get(ctx, valuesKey(sync, key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, record.Decode(e.Value(), &m)
}

// FieldChange is one field of a record that a change sets anew.
type FieldChange struct {
	Path     string
	Old, New any
}

// DiffFields lists the fields (dot paths into nested objects) whose values
// differ between old and new, sorted by path.
func DiffFields(old, new map[string]any) []FieldChange {
	var out []FieldChange
	diffInto(&out, "", old, new)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func diffInto(out *[]FieldChange, prefix string, old, new map[string]any) {
	seen := map[string]bool{}
	for k, nv := range new {
		seen[k] = true
		diffValue(out, prefix+k, old[k], nv)
	}
	for k, ov := range old {
		if !seen[k] {
			*out = append(*out, FieldChange{Path: prefix + k, Old: ov})
		}
	}
}

func diffValue(out *[]FieldChange, path string, ov, nv any) {
	om, oIsMap := ov.(map[string]any)
	nm, nIsMap := nv.(map[string]any)
	if oIsMap && nIsMap {
		diffInto(out, path+".", om, nm)
		return
	}
	oj, _ := json.Marshal(ov)
	nj, _ := json.Marshal(nv)
	if string(oj) != string(nj) {
		*out = append(*out, FieldChange{Path: path, Old: ov, New: nv})
	}
}
