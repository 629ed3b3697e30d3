package snowflake

import (
	"errors"
	"strings"

	sf "github.com/snowflakedb/gosnowflake"

	"github.com/ebb-etl/ebb/libs/source"
)

var _ source.TransientClassifier = (*Source)(nil)

// Snowflake's error numbers worth retrying: a statement that reached its
// statement or warehouse timeout (000630), or timed out waiting for a
// lock (000625).
var transientNumbers = map[int]bool{625: true, 630: true}

// IsTransient recognises Snowflake's timeouts, and its SQLSTATE classes 08
// (connection), 40 (transaction rollback), 53 (resources) and 57 (operator
// intervention), which the driver reports as a field rather than the
// SQLState method source.IsTransient looks for. The driver itself retries
// HTTP failures and expired sessions.
func (s *Source) IsTransient(err error) bool {
	var se *sf.SnowflakeError
	if !errors.As(err, &se) {
		return false
	}
	if transientNumbers[se.Number] {
		return true
	}
	for _, class := range []string{"08", "40", "53", "57"} {
		if strings.HasPrefix(se.SQLState, class) {
			return true
		}
	}
	return false
}
