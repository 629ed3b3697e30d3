package reporting

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A receiver that cannot be reached fails without naming its URL: Slack
// webhook URLs are credentials, and the error is logged.
func TestAlertErrorKeepsTheURLOut(t *testing.T) {
	a := &alerter{client: &http.Client{Timeout: time.Second}}
	err := a.post(context.Background(), "http://127.0.0.1:1/services/T0/B0/secret-token", []byte(`{}`))
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-token")
	require.Contains(t, err.Error(), "alert receiver unreachable")
}
