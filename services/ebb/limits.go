package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebb-etl/ebb/libs/bus"
)

// limitFlags size the buffers of the data plane: every process provisions
// the streams when it starts, so give all of them the same values.
type limitFlags struct {
	workMaxBytes string
	syncBuffer   int64
	laneBuffer   int64
	envErr       error
}

func (f *limitFlags) register(cmd *cobra.Command) {
	def := bus.DefaultLimits()
	f.workMaxBytes = envOr("EBB_WORK_MAX_BYTES", "2GiB")
	cmd.Flags().StringVar(&f.workMaxBytes, "work-max-bytes", f.workMaxBytes,
		"the most each work-queue stream holds on disk, such as 2GiB: the backstop behind the buffers below (env EBB_WORK_MAX_BYTES)")
	cmd.Flags().Int64Var(&f.syncBuffer, "sync-buffer", f.envInt("EBB_SYNC_BUFFER", def.SyncBuffer),
		"record batches that may wait per sync for the transformer, each at most the NATS max payload (env EBB_SYNC_BUFFER)")
	cmd.Flags().Int64Var(&f.laneBuffer, "lane-buffer", f.envInt("EBB_LANE_BUFFER", def.LaneBuffer),
		"batches that may wait per destination lane for delivery, each at most the NATS max payload (env EBB_LANE_BUFFER)")
}

// envInt reads a whole number from the environment; a malformed value is
// an error when the command runs, never a silent default.
func (f *limitFlags) envInt(name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		f.envErr = fmt.Errorf("%s=%q is not a whole number", name, v)
		return def
	}
	return n
}

// limits returns the bus limits the flags describe, with replicas.
func (f *limitFlags) limits(replicas int) (bus.Limits, error) {
	if f.envErr != nil {
		return bus.Limits{}, f.envErr
	}
	l := bus.DefaultLimits()
	size, err := parseSize(f.workMaxBytes)
	if err != nil {
		return l, fmt.Errorf("--work-max-bytes: %w", err)
	}
	l.WorkMaxBytes, l.SyncBuffer, l.LaneBuffer = size, f.syncBuffer, f.laneBuffer
	if replicas > 0 {
		l.Replicas = replicas
	}
	return l, l.Validate()
}

// parseSize reads a size in bytes: a whole number, optionally followed by
// KiB, MiB, GiB or TiB (or KB, MB, GB, TB, taken as the same powers of 2).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	units := []struct {
		suffix string
		shift  uint
	}{{"TIB", 40}, {"GIB", 30}, {"MIB", 20}, {"KIB", 10}, {"TB", 40}, {"GB", 30}, {"MB", 20}, {"KB", 10}, {"B", 0}}
	shift := uint(0)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, shift = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is not a size such as 2GiB or 536870912", s)
	}
	return n << shift, nil
}
