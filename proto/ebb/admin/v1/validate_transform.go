package adminv1

import "fmt"

// MaxTransformationSamples bounds TestTransformation's limit.
const MaxTransformationSamples = 1000

// Validate checks a TestTransformation request.
func (r *TestTransformationRequest) Validate() error {
	if err := checkName("sync", r.GetSync()); err != nil {
		return err
	}
	if r.GetLimit() < 0 || r.GetLimit() > MaxTransformationSamples {
		return fmt.Errorf("limit: %d is out of range (0 to %d)", r.GetLimit(), MaxTransformationSamples)
	}
	return nil
}
