package run

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The history stream's batches are written by hand; encoding/json reads
// them, and must read what it would have written.
func TestHistoryBatchEncodesAsEncodingJSON(t *testing.T) {
	hb := historyBatch{RunID: "01RUN", At: time.Date(2026, 12, 6, 18, 0, 0, 123456789, time.UTC), Events: []KeyEvent{
		{Key: "1", Op: "upsert", Status: "delivered", Response: "ok", PayloadHash: "9f"},
		{Key: `a,"b"`, Op: "delete", Status: "failed", Response: "HTTP 400: <bad> \u2028"},
	}}
	want, err := json.Marshal(hb)
	require.NoError(t, err)
	require.JSONEq(t, string(want), string(hb.encode()))
	var back historyBatch
	require.NoError(t, json.Unmarshal(hb.encode(), &back))
	require.Equal(t, hb, back)
}
