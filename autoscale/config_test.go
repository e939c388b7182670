package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	p, err := NewPolicy(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Config()
	want := Config{
		Min: 1, Max: 64, Interval: time.Second, DeadBand: 0.05,
		ScaleDownWindow: 30 * time.Second, SlopeWindow: 5 * time.Second,
		LatencyTolerance: 0.2, ErrorThreshold: 0.1, Headroom: 0.05,
		DrainTime: 10 * time.Second, PodDrainTime: time.Minute, BottleneckHold: 2 * time.Minute,
	}
	if c != want {
		t.Errorf("defaults = %+v\nwant       %+v", c, want)
	}
	if got := (Config{Min: 300}).withDefaults().Max; got != 300 {
		t.Errorf("Max default with Min 300 = %d, want 300", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		wants []string // substrings of the error; none: valid
	}{
		{name: "zero value", cfg: Config{}},
		{name: "explicit", cfg: Config{Min: 2, Max: 8, Interval: 500 * time.Millisecond, MaxStep: 2, SinkMaxConcurrency: 4}},
		{name: "negative min", cfg: Config{Min: -1}, wants: []string{"Min = -1"}},
		{name: "max below min", cfg: Config{Min: 10, Max: 5}, wants: []string{"Max = 5", "want >= Min (10)"}},
		{name: "dead band out of range", cfg: Config{DeadBand: 1.5}, wants: []string{"DeadBand = 1.5"}},
		{name: "error threshold out of range", cfg: Config{ErrorThreshold: 2}, wants: []string{"ErrorThreshold = 2"}},
		{name: "slope window shorter than the interval", cfg: Config{Interval: 10 * time.Second}, wants: []string{"SlopeWindow = 5s"}},
		{
			name:  "every bad field is named",
			cfg:   Config{Interval: -time.Second, MaxStep: -1, Headroom: -0.1, SinkMaxConcurrency: -3},
			wants: []string{"Interval = -1s", "MaxStep = -1", "Headroom = -0.1", "SinkMaxConcurrency = -3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wants) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want an ErrInvalidConfig", err)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
			if _, err := NewPolicy(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewPolicy accepted a bad config: %v", err)
			}
		})
	}
}
