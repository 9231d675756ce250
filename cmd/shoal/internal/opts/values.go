package opts

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	units "github.com/docker/go-units"
)

// MemBytes is a size such as 64m or 1.5g (base 1024, as Docker reads them).
type MemBytes int64

// Set parses a size.
func (m *MemBytes) Set(value string) error {
	v, err := units.RAMInBytes(value)
	if err != nil {
		return err
	}
	*m = MemBytes(v)
	return nil
}

// String shows the size for help output.
func (m *MemBytes) String() string {
	if *m == 0 {
		return "0"
	}
	return units.BytesSize(float64(*m))
}

// Type names the value in help output.
func (m *MemBytes) Type() string { return "bytes" }

// NanoCPUs is a CPU amount such as 0.5, stored in billionths.
type NanoCPUs int64

// Set parses a decimal number of CPUs.
func (n *NanoCPUs) Set(value string) error {
	v, err := ParseCPUs(value)
	if err != nil {
		return err
	}
	*n = NanoCPUs(v)
	return nil
}

// String shows the amount in CPUs.
func (n *NanoCPUs) String() string {
	if *n == 0 {
		return ""
	}
	return big.NewRat(int64(*n), 1e9).FloatString(3)
}

// Type names the value in help output.
func (n *NanoCPUs) Type() string { return "decimal" }

// ParseCPUs reads "0.5" as 500000000 nano CPUs.
func ParseCPUs(value string) (int64, error) {
	cpu, ok := new(big.Rat).SetString(value)
	if !ok {
		return 0, fmt.Errorf("failed to parse %v as a rational number", value)
	}
	if cpu.Sign() < 0 {
		return 0, errors.New("the number of CPUs cannot be negative")
	}
	nano := cpu.Mul(cpu, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return 0, errors.New("value is too precise")
	}
	if !nano.Num().IsInt64() {
		return 0, errors.New("value is too large")
	}
	return nano.Num().Int64(), nil
}

// digitsRE finds the numbers of a duration, to tell an overflow from bad
// syntax.
var digitsRE = regexp.MustCompile(`[0-9]+(\.[0-9]*)?`)

// Duration is a non-negative duration flag such as 10s or 1m30s.
type Duration time.Duration

// Set parses a duration. One too long for Go's durations (292 years) is
// too large, which the parser alone words as "invalid duration".
func (d *Duration) Set(value string) error {
	v, err := time.ParseDuration(value)
	if err != nil {
		if _, serr := time.ParseDuration(digitsRE.ReplaceAllString(value, "1")); serr == nil {
			return fmt.Errorf("%s is too large: a duration is at most %v", value, time.Duration(math.MaxInt64))
		}
		return err
	}
	if v < 0 {
		return errors.New("duration cannot be negative")
	}
	*d = Duration(v)
	return nil
}

// String shows the duration.
func (d *Duration) String() string {
	if *d == 0 {
		return ""
	}
	return time.Duration(*d).String()
}

// Type names the value in help output.
func (d *Duration) Type() string { return "duration" }

// Enum is a string flag limited to a set of values.
type Enum struct {
	Value   string
	Allowed []string
}

// NewEnum returns an enum flag with default def.
func NewEnum(def string, allowed ...string) *Enum { return &Enum{Value: def, Allowed: allowed} }

// Set accepts one of the allowed values.
func (e *Enum) Set(value string) error {
	for _, a := range e.Allowed {
		if value == a {
			e.Value = value
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", OneOf(e.Allowed))
}

// String is the value.
func (e *Enum) String() string { return e.Value }

// Type names the value in help output.
func (e *Enum) Type() string { return "string" }

// OneOf words a list of choices: "a", "b" or "c".
func OneOf(choices []string) string {
	q := make([]string, len(choices))
	for i, c := range choices {
		q[i] = strconv.Quote(c)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// Ratio is a fraction between 0 and 1, such as --update-max-failure-ratio.
type Ratio float32

// Set parses the fraction.
func (r *Ratio) Set(value string) error {
	v, err := strconv.ParseFloat(value, 32)
	if err != nil {
		return err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1 {
		return errors.New("must be a number between 0 and 1")
	}
	*r = Ratio(v)
	return nil
}

// String shows the fraction.
func (r *Ratio) String() string { return strconv.FormatFloat(float64(*r), 'g', -1, 32) }

// Type names the value in help output.
func (r *Ratio) Type() string { return "float" }
