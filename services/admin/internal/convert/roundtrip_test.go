package convert

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ebb-etl/ebb/libs/config"
)

// Every field of a sync must survive the API: a field config.Sync gains
// and the proto lacks would be dropped silently by `ebb apply`.
func TestSyncRoundTrip(t *testing.T) {
	share, rows := 0.2, int64(50)
	in := config.Sync{
		Name: "s", Source: "wh", Destination: "crm", Mode: config.ModeMirror, Schedule: "@every 5m",
		Engine:          config.EngineWarehouse,
		Model:           config.Model{SQL: "SELECT 1 AS id", PrimaryKey: []string{"id"}},
		Mapping:         []config.Mapping{{From: "a", To: "b.c", Cast: "number", Default: 1.0, OmitNull: true, Required: true}, {Const: "x", To: "k"}, {Template: "{{ a }}", To: "t", Format: "rfc3339"}},
		QuarantineAfter: 5,
		KeepValues:      true,
		Safety:          config.Safety{MaxDeleteShare: &share, MaxChangeShare: &share, MinRows: &rows},
		Alerts:          []config.Alert{{On: config.AlertSlowRun, After: "30m", Slack: "https://hooks.slack.com/x"}, {On: config.AlertFailedRecords, Share: 0.1, Webhook: "https://h"}},
		Transformation:  &config.Transformation{Code: "function transformEvent(r) { return r }", TimeoutMS: 500, MaxOutputBytes: 1024},
	}
	in.Transformation.Normalize()
	pb, err := SyncToPB(in)
	require.NoError(t, err)
	require.Equal(t, in, SyncFromPB(pb))
}
