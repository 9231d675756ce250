package logdriver

import (
	"fmt"
	"path/filepath"
	"strconv"
)

// The driver's arguments, given as key-value pairs in any order (the shim
// passes cio.BinaryIO's map in map order).
const (
	// ArgPath is the log's current file, an absolute path.
	ArgPath = "path"
	// ArgMaxSize is the most bytes a file holds before it is rotated; 0
	// means no limit.
	ArgMaxSize = "max-size"
	// ArgMaxFile is how many files are kept, the current one included.
	ArgMaxFile = "max-file"
)

// Args returns the arguments for cio.BinaryIO that make the shim run the
// driver binary writing to path, rotated at maxSize bytes and keeping
// maxFile files.
func Args(path string, maxSize int64, maxFile int) map[string]string {
	return map[string]string{
		ArgPath:    path,
		ArgMaxSize: strconv.FormatInt(maxSize, 10),
		ArgMaxFile: strconv.Itoa(maxFile),
	}
}

// config is what the command line says.
type config struct {
	path    string
	maxSize int64
	maxFile int
}

// parseArgs reads the pairs Args makes. The path is required; max-size
// defaults to 0 (no limit) and max-file to 1.
func parseArgs(args []string) (config, error) {
	c := config{maxFile: 1}
	if len(args)%2 != 0 {
		return c, fmt.Errorf("want key-value pairs, got %d arguments", len(args))
	}
	seen := map[string]bool{}
	for i := 0; i < len(args); i += 2 {
		k, v := args[i], args[i+1]
		if seen[k] {
			return c, fmt.Errorf("%s given twice", k)
		}
		seen[k] = true
		switch k {
		case ArgPath:
			if !filepath.IsAbs(v) {
				return c, fmt.Errorf("%s %q: want an absolute path", k, v)
			}
			c.path = v
		case ArgMaxSize:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return c, fmt.Errorf("%s %q: want a number of bytes, 0 for no limit", k, v)
			}
			c.maxSize = n
		case ArgMaxFile:
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s %q: want a number of files, at least 1", k, v)
			}
			c.maxFile = n
		default:
			return c, fmt.Errorf("unknown argument %q", k)
		}
	}
	if c.path == "" {
		return c, fmt.Errorf("%s is required", ArgPath)
	}
	return c, nil
}
