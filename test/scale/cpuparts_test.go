package scale

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/shoal-project/shoal/internal/testcluster"
)

// cpuParts is the CPU a profile sampled, by the value of the goroutines'
// pprof label testcluster.LabelKey: each manager's name, "fleet" (the
// simulated nodes), "harness" (the test's own goroutines) and "other"
// (goroutines without the label: the garbage collector's workers, timer
// callbacks, the runtime; the GC works for every part).
type cpuParts map[string]time.Duration

// cpuProfile is a running CPU profile, kept in memory.
type cpuProfile struct {
	buf  bytes.Buffer
	file string // where to write it too, "" for nowhere
}

// startCPUProfile starts a CPU profile; nil if one runs already (as with
// go test -cpuprofile).
func startCPUProfile(file string) (*cpuProfile, error) {
	p := &cpuProfile{file: file}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, err
	}
	return p, nil
}

// stop ends the profile, writes it to its file if it has one, and splits
// its samples by part.
func (p *cpuProfile) stop() (cpuParts, error) {
	pprof.StopCPUProfile()
	if p.file != "" {
		if err := os.WriteFile(p.file, p.buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	return splitCPU(p.buf.Bytes())
}

// splitCPU reads a gzipped profile.proto (github.com/google/pprof's
// format: Profile.sample = 2, Profile.string_table = 6; Sample.value = 2,
// Sample.label = 3; Label.key = 1, Label.str = 2) and sums the CPU
// nanoseconds (the samples' second value) by the label's value.
func splitCPU(gz []byte) (cpuParts, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var strs []string
	type sample struct {
		nanos int64
		label int64 // string index of the label's value, -1 for none
	}
	var samples []sample
	err = fields(raw, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 6 && typ == protowire.BytesType:
			strs = append(strs, string(v))
		case num == 2 && typ == protowire.BytesType:
			s := sample{label: -1}
			var values []int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
				switch {
				case num == 2 && typ == protowire.VarintType:
					values = append(values, int64(x))
				case num == 2 && typ == protowire.BytesType: // packed
					for len(v) > 0 {
						x, n := protowire.ConsumeVarint(v)
						if n < 0 {
							return protowire.ParseError(n)
						}
						values, v = append(values, int64(x)), v[n:]
					}
				case num == 3 && typ == protowire.BytesType:
					var key, str int64
					if err := fields(v, func(num protowire.Number, typ protowire.Type, _ []byte, x uint64) error {
						if typ == protowire.VarintType && num == 1 {
							key = int64(x)
						} else if typ == protowire.VarintType && num == 2 {
							str = int64(x)
						}
						return nil
					}); err != nil {
						return err
					}
					if key > 0 {
						s.label = key<<32 | str // resolved once the strings are read
					}
				}
				return nil
			})
			if len(values) >= 2 {
				s.nanos = values[1]
			}
			samples = append(samples, s)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	parts := cpuParts{}
	for _, s := range samples {
		part := "other"
		if s.label >= 0 {
			key, str := s.label>>32, s.label&(1<<32-1)
			if key < int64(len(strs)) && str < int64(len(strs)) && strs[key] == testcluster.LabelKey {
				part = strs[str]
			}
		}
		parts[part] += time.Duration(s.nanos)
	}
	return parts, nil
}

// fields calls fn for each field of the protobuf message b: for varints
// with x, for length-delimited fields with v.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// String words the parts as percentages of one core over wall, the
// managers first (the leader at the phase's end marked), then the fleet,
// the harness and the rest.
func (ps cpuParts) String(wall time.Duration, leader string) string {
	if len(ps) == 0 {
		return ""
	}
	var names []string
	for name := range ps {
		names = append(names, name)
	}
	rank := func(n string) int {
		switch n {
		case "fleet":
			return 1
		case "harness":
			return 2
		case "other":
			return 3
		}
		return 0
	}
	slices.SortFunc(names, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	var out []string
	for _, name := range names {
		shown := name
		if name == leader {
			shown += " (leader)"
		}
		out = append(out, fmt.Sprintf("%s %.1f%%", shown, 100*ps[name].Seconds()/max(wall.Seconds(), 1e-9)))
	}
	return "CPU by part (sampled, % of one core): " + strings.Join(out, ", ")
}
