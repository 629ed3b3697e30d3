package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Alert conditions.
const (
	// AlertRunFailed: the run ended failed.
	AlertRunFailed = "run_failed"
	// AlertFailedRecords: more than Share of the run's planned records
	// failed.
	AlertFailedRecords = "failed_records"
	// AlertRowCountSwing: the model's row count moved by more than Share of
	// the last committed snapshot's.
	AlertRowCountSwing = "row_count_swing"
	// AlertSlowRun: the run is still going after After.
	AlertSlowRun = "slow_run"
)

// AlertConditions lists the conditions an alert may watch.
var AlertConditions = []string{AlertRunFailed, AlertFailedRecords, AlertRowCountSwing, AlertSlowRun}

// Alert sends a short, link-free summary to a webhook (JSON) or a Slack
// incoming webhook when its condition holds for a run; once per run and
// condition.
type Alert struct {
	On string `json:"on" yaml:"on"`
	// Share is the threshold of failed_records and row_count_swing, from 0
	// to 1 (default 0.1).
	Share float64 `json:"share,omitempty" yaml:"share"`
	// After is the duration of slow_run, such as "30m".
	After   string `json:"after,omitempty" yaml:"after"`
	Webhook string `json:"webhook,omitempty" yaml:"webhook"`
	Slack   string `json:"slack,omitempty" yaml:"slack"`
}

// DefaultAlertShare is the default Alert.Share.
const DefaultAlertShare = 0.1

// Threshold returns Share with its default.
func (a Alert) Threshold() float64 {
	if a.Share == 0 {
		return DefaultAlertShare
	}
	return a.Share
}

// Duration returns After parsed; it is valid after Validate.
func (a Alert) Duration() time.Duration {
	d, _ := time.ParseDuration(a.After)
	return d
}

func (a Alert) validate(r, path string) error {
	if !slices.Contains(AlertConditions, a.On) {
		return fieldErr(r, path+".on", "unknown condition %q (known: %s)", a.On, strings.Join(AlertConditions, ", "))
	}
	if a.Share < 0 || a.Share > 1 {
		return fieldErr(r, path+".share", "must be between 0 and 1, not %v", a.Share)
	}
	if a.On == AlertSlowRun {
		if d, err := time.ParseDuration(a.After); err != nil || d <= 0 {
			return fieldErr(r, path+".after", "slow_run needs a positive duration such as \"30m\", not %q", a.After)
		}
	}
	switch {
	case (a.Webhook == "") == (a.Slack == ""):
		return fieldErr(r, path, "needs exactly one of webhook or slack")
	case a.Webhook != "":
		return checkAlertURL(r, path+".webhook", a.Webhook)
	}
	return checkAlertURL(r, path+".slack", a.Slack)
}

func checkAlertURL(r, path, raw string) error {
	if strings.Contains(raw, "${") {
		return nil // resolved where the alert is sent
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fieldErr(r, path, "want an absolute http:// or https:// URL")
	}
	return nil
}

func validateAlerts(r string, alerts []Alert) error {
	for i, a := range alerts {
		if err := a.validate(r, fmt.Sprintf("alerts[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}
