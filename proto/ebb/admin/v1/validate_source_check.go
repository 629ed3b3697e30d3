package adminv1

import "errors"

// Validate checks the request.
func (r *CheckSourceRequest) Validate() error { return checkName("name", r.GetName()) }

// Validate checks the request; the server names the known types.
func (r *SourceSetupSQLRequest) Validate() error {
	if r.GetType() == "" {
		return errors.New("type: required")
	}
	return nil
}
