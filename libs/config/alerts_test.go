package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAlertValidation(t *testing.T) {
	base := Sync{Name: "s", Source: "a", Destination: "b", Mode: ModeMirror,
		Model: Model{SQL: "SELECT 1 AS id", PrimaryKey: []string{"id"}}}
	for _, tc := range []struct {
		alert Alert
		err   string
	}{
		{Alert{On: "run_failed", Webhook: "https://hooks.example.com/x"}, ""},
		{Alert{On: "slow_run", After: "30m", Slack: "${SLACK_URL}"}, ""},
		{Alert{On: "exploded", Webhook: "https://x"}, `alerts[0].on: unknown condition "exploded" (known: run_failed, failed_records, row_count_swing, slow_run)`},
		{Alert{On: "slow_run", Webhook: "https://x"}, `alerts[0].after: slow_run needs a positive duration`},
		{Alert{On: "failed_records", Share: 2, Webhook: "https://x"}, `alerts[0].share: must be between 0 and 1`},
		{Alert{On: "run_failed"}, `alerts[0]: needs exactly one of webhook or slack`},
		{Alert{On: "run_failed", Webhook: "https://x", Slack: "https://y"}, `needs exactly one of webhook or slack`},
		{Alert{On: "run_failed", Webhook: "ftp://x"}, `alerts[0].webhook: want an absolute http:// or https:// URL`},
	} {
		s := base
		s.Alerts = []Alert{tc.alert}
		err := s.Validate()
		if tc.err == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tc.err)
	}
}
