package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDeliveryTypeDefaults(t *testing.T) {
	o, err := Destination{Name: "h", Type: "hubspot"}.Delivery()
	require.NoError(t, err)
	assert.Equal(t, 100, o.BatchSize)
	assert.Equal(t, 10.0, o.RequestsPerSecond)
	assert.Equal(t, 10, o.Burst)

	o, err = Destination{Name: "s", Type: "slack"}.Delivery()
	require.NoError(t, err)
	assert.Equal(t, 1, o.BatchSize)
	assert.Equal(t, 1.0, o.RequestsPerSecond)

	o, err = Destination{Name: "sf", Type: "salesforce"}.Delivery()
	require.NoError(t, err)
	assert.Equal(t, 200, o.BatchSize)
	assert.Equal(t, 25, o.Concurrency)
	assert.Zero(t, o.RequestsPerSecond)

	// Types without documented limits keep the general defaults.
	o, err = Destination{Name: "w", Type: "webhook"}.Delivery()
	require.NoError(t, err)
	assert.Equal(t, DefaultBatchSize, o.BatchSize)
	assert.Zero(t, o.RequestsPerSecond)
	assert.Equal(t, 1, o.Burst)
}

func TestDeliveryOverridesTypeDefaults(t *testing.T) {
	o, err := Destination{Name: "b", Type: "braze", Config: map[string]any{
		"batch_size": 50, "requests_per_second": 2.5, "burst": 3, "concurrency": 4,
	}}.Delivery()
	require.NoError(t, err)
	assert.Equal(t, 50, o.BatchSize)
	assert.Equal(t, 2.5, o.RequestsPerSecond)
	assert.Equal(t, 3, o.Burst)
	assert.Equal(t, 4, o.Concurrency)
}

func TestDeliveryBatchSizeCappedByTheAPI(t *testing.T) {
	_, err := Destination{Name: "b", Type: "braze", Config: map[string]any{"batch_size": 76}}.Delivery()
	require.EqualError(t, err, "config.batch_size: 76 is out of range [1, 75]")
	for typ, lim := range typeLimits {
		if lim.MaxBatchSize > 0 {
			assert.LessOrEqual(t, lim.BatchSize, lim.MaxBatchSize, typ)
		}
		assert.Contains(t, DestinationTypes, typ)
	}
}
