package apitest

import (
	"time"

	"github.com/ebb-etl/ebb/libs/config"
	"github.com/ebb-etl/ebb/libs/record"
)

// Opts are delivery options for contract tests.
var Opts = config.DeliveryOptions{BatchSize: 100, Partitions: 1, AckWindow: 2, Timeout: 5 * time.Second}

// Rec is a record keyed by a single text column "id", as the pipeline
// hands it to a destination.
func Rec(op record.Op, id string, data map[string]any) record.Record {
	r := record.Record{Op: op, KeyEnc: record.AppendString(nil, id), Key: map[string]any{"id": id}}
	if op != record.OpDelete {
		if data == nil {
			data = map[string]any{}
		}
		r.Data = data
	}
	return r
}
