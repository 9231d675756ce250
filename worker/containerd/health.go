package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	api "github.com/shoal-project/shoal/proto"
)

// This file holds the pure parts of health checks: the configuration (from
// the spec, else the image, as Docker merges them), its record on disk, and
// the decision logic (which probe counts, when the task is healthy or
// unhealthy, how long to wait before the next probe). probe.go runs them.

const (
	// maxProbeOutput bounds the output kept of one probe, as Docker does.
	maxProbeOutput = 4 << 10
	// minHealthDuration is Docker's smallest interval, timeout, start
	// period and start interval.
	minHealthDuration = time.Millisecond
	// healthFile records the resolved health check in the task's directory,
	// so a controller re-created after a restart probes the same way.
	healthFile = "health.json"
)

// errUnhealthy is the cause of a task killed by its health check.
var errUnhealthy = errors.New("container unhealthy")

// healthConfig is a resolved health check: the command to exec and its
// timings, defaults filled in.
type healthConfig struct {
	Args          []string      `json:"args"`
	Interval      time.Duration `json:"interval"`
	Timeout       time.Duration `json:"timeout"`
	StartPeriod   time.Duration `json:"start_period"`
	StartInterval time.Duration `json:"start_interval"`
	Retries       int           `json:"retries"`
}

// imageHealth is the Healthcheck of a Docker image config (durations in
// nanoseconds). The OCI ImageConfig type has no such field, so it is read
// from the raw config blob.
type imageHealth struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// parseImageConfig reads an image config blob: the OCI fields and Docker's
// Healthcheck.
func parseImageConfig(b []byte) (ocispec.Image, *imageHealth, error) {
	var img ocispec.Image
	if err := json.Unmarshal(b, &img); err != nil {
		return img, nil, err
	}
	var raw struct {
		Config struct {
			Healthcheck *imageHealth `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return img, nil, err
	}
	return img, raw.Config.Healthcheck, nil
}

// readImageConfig reads img's config blob from the content store.
func readImageConfig(ctx context.Context, img client.Image) (ocispec.Image, *imageHealth, error) {
	desc, err := img.Config(ctx)
	if err != nil {
		return ocispec.Image{}, nil, err
	}
	b, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return ocispec.Image{}, nil, err
	}
	return parseImageConfig(b)
}

// resolveHealth merges the spec's health check over the image's as Docker
// does (an empty test inherits the image's test, each zero field the
// image's value) and fills in the defaults. It returns nil when there is no
// health check: none anywhere, or a test of ["NONE"]. Its errors are spec
// faults.
func resolveHealth(spec *api.HealthConfig, img *imageHealth) (*healthConfig, error) {
	h := imageHealth{}
	if img != nil {
		h = *img
	}
	if spec != nil {
		if len(spec.GetTest()) > 0 {
			h.Test = spec.GetTest()
		}
		for _, f := range []struct {
			src interface{ AsDuration() time.Duration }
			dst *time.Duration
		}{
			{spec.GetInterval(), &h.Interval},
			{spec.GetTimeout(), &h.Timeout},
			{spec.GetStartPeriod(), &h.StartPeriod},
			{spec.GetStartInterval(), &h.StartInterval},
		} {
			// AsDuration reads an unset (nil) duration as 0: inherit.
			if d := f.src.AsDuration(); d != 0 {
				*f.dst = d
			}
		}
		if spec.GetRetries() != 0 {
			h.Retries = int(spec.GetRetries())
		}
	}
	if len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil, nil
	}
	hc := &healthConfig{
		Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod,
		StartInterval: h.StartInterval, Retries: h.Retries,
	}
	switch h.Test[0] {
	case "CMD":
		hc.Args = append([]string{}, h.Test[1:]...)
	case "CMD-SHELL":
		if len(h.Test) > 1 {
			hc.Args = append([]string{"/bin/sh", "-c"}, h.Test[1:]...)
		}
	default:
		return nil, fmt.Errorf("unknown healthcheck type %q (want NONE, CMD or CMD-SHELL)", h.Test[0])
	}
	if len(hc.Args) == 0 || hc.Args[0] == "" {
		return nil, fmt.Errorf("healthcheck %s without a command", h.Test[0])
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", hc.Interval}, {"timeout", hc.Timeout}, {"start period", hc.StartPeriod}, {"start interval", hc.StartInterval}} {
		if d.v < 0 || d.v > 0 && d.v < minHealthDuration {
			return nil, fmt.Errorf("healthcheck %s %s: must be 0 (the default) or at least 1ms", d.name, d.v)
		}
	}
	if hc.Retries < 0 {
		return nil, fmt.Errorf("healthcheck retries %d: cannot be negative", hc.Retries)
	}
	if hc.Interval == 0 {
		hc.Interval = api.DefaultHealthInterval
	}
	if hc.Timeout == 0 {
		hc.Timeout = api.DefaultHealthTimeout
	}
	if hc.Retries == 0 {
		hc.Retries = api.DefaultHealthRetries
	}
	return hc, nil
}

// writeHealth records hc in the task's directory; nil records nothing.
func writeHealth(taskDir string, hc *healthConfig) error {
	if hc == nil {
		return nil
	}
	b, err := json.Marshal(hc)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(taskDir, healthFile), b, 0o644)
}

// readHealth reads the health check recorded at Prepare: nil, nil when the
// task has none.
func readHealth(taskDir string) (*healthConfig, error) {
	b, err := os.ReadFile(filepath.Join(taskDir, healthFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hc healthConfig
	if err := json.Unmarshal(b, &hc); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(taskDir, healthFile), err)
	}
	return &hc, nil
}

// healthStatus is what the probes have decided so far.
type healthStatus int

const (
	healthStarting healthStatus = iota // no passing probe yet
	healthHealthy
	healthUnhealthy
)

// healthTracker counts probe results as Docker does. Its zero value is a
// task that has not passed a probe yet.
type healthTracker struct {
	healthy  bool // a probe has passed since the process started
	failures int  // consecutive failures that count
}

// observe records a probe that began sinceStart after the process started
// and returns the status. A pass is healthy and resets the count. A failure
// before the first pass that began within the start period does not count;
// any other failure counts, and Retries consecutive counted failures are
// unhealthy.
func (t *healthTracker) observe(hc *healthConfig, ok bool, sinceStart time.Duration) healthStatus {
	if ok {
		t.healthy, t.failures = true, 0
		return healthHealthy
	}
	if t.healthy || sinceStart >= hc.StartPeriod {
		t.failures++
	}
	if t.failures >= hc.Retries {
		return healthUnhealthy
	}
	if t.healthy {
		return healthHealthy
	}
	return healthStarting
}

// nextInterval is the wait before the next probe: the start interval while
// no probe has passed and the start period runs (when a start interval is
// set), else the interval. Docker waits one interval before the first probe
// too.
func (t *healthTracker) nextInterval(hc *healthConfig, sinceStart time.Duration) time.Duration {
	if !t.healthy && hc.StartInterval > 0 && sinceStart < hc.StartPeriod {
		return hc.StartInterval
	}
	return hc.Interval
}

// unhealthyError is the error of a task the probes found unhealthy, with
// the last probe's output.
func unhealthyError(r probeResult) error {
	out := strings.TrimSpace(r.Output)
	if out == "" {
		out = fmt.Sprintf("health check exited with code %d and no output", r.ExitCode)
	}
	return fmt.Errorf("%w: %s", errUnhealthy, out)
}

// probeResult is one probe's outcome.
type probeResult struct {
	Start    time.Time
	OK       bool
	ExitCode int // -1 when the probe did not exit by itself
	Output   string
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty probe neither grows memory nor blocks.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
