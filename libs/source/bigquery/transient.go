package bigquery

import (
	"errors"
	"net/http"

	bq "cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/ebb-etl/ebb/libs/source"
)

var _ source.TransientClassifier = (*Source)(nil)

// transientReasons are BigQuery's error reasons worth retrying, as its
// troubleshooting guide lists them: the service failing or overloaded,
// a rate or concurrency limit, a job that hit its timeout.
var transientReasons = map[string]bool{
	"backendError": true, "internalError": true, "jobBackendError": true, "jobInternalError": true,
	"rateLimitExceeded": true, "timeout": true,
}

// IsTransient recognises those reasons, and HTTP 429 and 5xx answers. The
// client already retries some of them within a call; this retries the
// run's step when it still fails. quotaExceeded (a daily quota) is not
// among them: retrying within minutes would not help.
func (s *Source) IsTransient(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code == http.StatusTooManyRequests || ge.Code >= 500 {
			return true
		}
		for _, e := range ge.Errors {
			if transientReasons[e.Reason] {
				return true
			}
		}
	}
	var be *bq.Error
	return errors.As(err, &be) && transientReasons[be.Reason]
}
