package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule tells when a sync runs on its own. A nil Schedule means manual.
type Schedule interface {
	// Next returns the first firing time after t.
	Next(t time.Time) time.Time
}

type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// ParseSchedule parses "manual" (or empty), "@every <duration>" or a
// five-field cron expression (also @hourly, @daily and the like).
func ParseSchedule(s string) (Schedule, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "manual" {
		return nil, nil
	}
	if rest, ok := strings.CutPrefix(s, "@every "); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil || d < time.Second {
			return nil, fmt.Errorf("schedule %q: want @every with a duration of at least 1s, such as \"@every 5m\"", s)
		}
		return every(d), nil
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	sched, err := parser.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: not manual, @every <duration> or a cron expression: %v", s, err)
	}
	return sched, nil
}
