package adminv1

import (
	"fmt"
	"regexp"
	"strings"
)

// Validate methods check what a request must carry before it reaches the
// server's handlers: required fields and well-formed names. They are called
// by go-grpc-middleware's validator interceptor, which turns an error into
// InvalidArgument. The server validates resources fully with libs/config;
// these checks only keep malformed requests out, and each error names the
// field at fault.

// namePattern mirrors config.ValidateName in libs: names become NATS subject
// tokens and KV keys. It is repeated here to keep this module free of libs.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// runIDPattern accepts run ids (ULIDs) and nothing that could act as a
// subject wildcard or separator.
var runIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// Upper bounds of list limits.
const (
	MaxRunsLimit     = 1000
	MaxFailuresLimit = 10000
)

func checkName(field, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%s: name %q is invalid: use 1-64 letters, digits, '_' or '-'", field, name)
	}
	return nil
}

func checkRunID(field, id string) error {
	if !runIDPattern.MatchString(id) {
		return fmt.Errorf("%s: run id %q is malformed", field, id)
	}
	return nil
}

func checkRequired(field, value string) error {
	if strings.TrimSpace(value) == "" {
		return fmt.Errorf("%s is required", field)
	}
	return nil
}

func checkLimit(field string, limit, most int32) error {
	if limit < 0 || limit > most {
		return fmt.Errorf("%s: %d is out of range [0, %d]", field, limit, most)
	}
	return nil
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Source) check(field string) error {
	if s == nil {
		return fmt.Errorf("%s is required", field)
	}
	return firstError(checkName(field+".name", s.GetName()), checkRequired(field+".type", s.GetType()))
}

func (d *Destination) check(field string) error {
	if d == nil {
		return fmt.Errorf("%s is required", field)
	}
	return firstError(checkName(field+".name", d.GetName()), checkRequired(field+".type", d.GetType()))
}

func (s *Sync) check(field string) error {
	if s == nil {
		return fmt.Errorf("%s is required", field)
	}
	return firstError(
		checkName(field+".name", s.GetName()),
		checkName(field+".source", s.GetSource()),
		checkName(field+".destination", s.GetDestination()),
		checkRequired(field+".model.sql", s.GetModel().GetSql()),
		checkRequired(field+".mode", s.GetMode()),
	)
}

// Validate checks the request.
func (r *CreateSourceRequest) Validate() error { return r.GetSource().check("source") }

// Validate checks the request.
func (r *UpdateSourceRequest) Validate() error { return r.GetSource().check("source") }

// Validate checks the request.
func (r *GetSourceRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request.
func (r *DeleteSourceRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request.
func (r *CreateDestinationRequest) Validate() error { return r.GetDestination().check("destination") }

// Validate checks the request.
func (r *UpdateDestinationRequest) Validate() error { return r.GetDestination().check("destination") }

// Validate checks the request.
func (r *GetDestinationRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request.
func (r *DeleteDestinationRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request.
func (r *CreateSyncRequest) Validate() error { return r.GetSync().check("sync") }

// Validate checks the request.
func (r *UpdateSyncRequest) Validate() error { return r.GetSync().check("sync") }

// Validate checks the request.
func (r *GetSyncRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request.
func (r *DeleteSyncRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks every resource of the request.
func (r *ApplyRequest) Validate() error {
	for i, s := range r.GetSources() {
		if err := s.check(fmt.Sprintf("sources[%d]", i)); err != nil {
			return err
		}
	}
	for i, d := range r.GetDestinations() {
		if err := d.check(fmt.Sprintf("destinations[%d]", i)); err != nil {
			return err
		}
	}
	for i, s := range r.GetSyncs() {
		if err := s.check(fmt.Sprintf("syncs[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the request.
func (r *TriggerRunRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *GetRunRequest) Validate() error { return checkRunID("run_id", r.GetRunId()) }

// Validate checks the request.
func (r *ListRunsRequest) Validate() error {
	if r.GetSync() != "" {
		if err := checkName("sync", r.GetSync()); err != nil {
			return err
		}
	}
	return checkLimit("limit", r.GetLimit(), MaxRunsLimit)
}

// Validate checks the request.
func (r *ListFailuresRequest) Validate() error {
	return firstError(checkRunID("run_id", r.GetRunId()), checkLimit("limit", r.GetLimit(), MaxFailuresLimit))
}

// Validate checks the request.
func (r *ListQuarantineRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *RetryQuarantinedRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *PauseSyncRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *ResumeSyncRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *CancelRunRequest) Validate() error { return checkRunID("run_id", r.GetRunId()) }

// Validate checks the request.
func (r *ApproveRunRequest) Validate() error { return checkRunID("run_id", r.GetRunId()) }

// Validate checks the request.
func (r *ResetSyncRequest) Validate() error { return checkName("sync", r.GetSync()) }

// Validate checks the request.
func (r *DebugRequest) Validate() error {
	if err := checkName("sync", r.GetSync()); err != nil {
		return err
	}
	switch r.GetStatus() {
	case "", "delivered", "failed", "log":
		return nil
	}
	return fmt.Errorf("status: %q is not delivered, failed or log", r.GetStatus())
}

// Validate checks the request.
func (r *PlanSyncRequest) Validate() error {
	if err := checkName("sync", r.GetSync()); err != nil {
		return err
	}
	if r.GetLimit() < 0 || r.GetLimit() > 1000 {
		return fmt.Errorf("limit: must be between 0 and 1000, not %d", r.GetLimit())
	}
	return nil
}

// Validate checks the request.
func (r *FindRecordRequest) Validate() error {
	if err := checkName("sync", r.GetSync()); err != nil {
		return err
	}
	if r.GetKey() == "" {
		return fmt.Errorf("key: is required (the key's values joined by commas)")
	}
	if r.GetLimit() < 0 || r.GetLimit() > 10000 {
		return fmt.Errorf("limit: must be between 0 and 10000, not %d", r.GetLimit())
	}
	return nil
}
