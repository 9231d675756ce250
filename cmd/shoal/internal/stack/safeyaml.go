package stack

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v4"

	api "github.com/shoal-project/shoal/proto"
)

// Limits on untrusted input.
const (
	// MaxFileSize caps each stack file, .env file and env_file.
	MaxFileSize = 1 << 20
	// MaxAliasExpansion caps the nodes YAML aliases may add to a file once
	// expanded (the "billion laughs" of CVE-2019-11253).
	MaxAliasExpansion = 100_000
	// MaxSecretSize and MaxConfigSize are the daemon's limits on data.
	MaxSecretSize = api.MaxSecretDataBytes
	MaxConfigSize = api.MaxConfigDataBytes
)

// ReadCapped reads at most limit bytes from r and fails, naming name, when
// there is more.
func ReadCapped(r io.Reader, name string, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %s: refusing to read it", name, api.FormatBytes(limit))
	}
	return data, nil
}

// ReadFileCapped reads a file of at most limit bytes.
func ReadFileCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	return ReadCapped(f, path, limit)
}

// parseDocuments parses every YAML document of a file after checking that
// its aliases stay bounded and that it uses no custom tags. Empty documents
// are skipped; each document must be a mapping.
func parseDocuments(name string, data []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []map[string]any
	for {
		var node yaml.Node
		err := dec.Decode(&node)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s", name, yamlMessage(err))
		}
		if err := checkNode(name, &node); err != nil {
			return nil, err
		}
		var v any
		if err := node.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %s", name, yamlMessage(err))
		}
		if v == nil {
			continue
		}
		m, ok := stringMap(v)
		if !ok {
			return nil, fmt.Errorf("%s: top-level object must be a mapping", name)
		}
		docs = append(docs, m)
	}
	return docs, nil
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// checkNode counts the nodes of a document as written and as expanded by
// its aliases, without expanding anything: the size of each anchored node
// is computed once.
func checkNode(name string, root *yaml.Node) error {
	c := &nodeCounter{sizes: map[*yaml.Node]int64{}, active: map[*yaml.Node]bool{}}
	if err := c.walk(root); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

var errAliasBomb = fmt.Errorf("YAML aliases expand to more than %d nodes; the file is refused as a possible alias bomb (use fewer aliases or smaller anchors)", MaxAliasExpansion)

type nodeCounter struct {
	sizes  map[*yaml.Node]int64 // expanded size of each node sized
	active map[*yaml.Node]bool  // nodes being sized (to find recursion)
	// aliased counts the nodes aliases stand for, over the whole document.
	aliased int64
}

// walk visits the nodes as written, adding what each alias expands to.
func (c *nodeCounter) walk(n *yaml.Node) error {
	if n == nil {
		return nil
	}
	if n.Tag != "" && strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return fmt.Errorf("line %d: YAML tag %s is not supported by shoal stack files", n.Line, n.Tag)
	}
	if n.Kind == yaml.AliasNode {
		size, err := c.size(n.Alias)
		if err != nil {
			return err
		}
		c.aliased += size
		if c.aliased > MaxAliasExpansion {
			return errAliasBomb
		}
		return nil
	}
	for _, child := range n.Content {
		if err := c.walk(child); err != nil {
			return err
		}
	}
	return nil
}

// size is the expanded node count of n, memoized; an alias to a node that
// contains it is refused.
func (c *nodeCounter) size(n *yaml.Node) (int64, error) {
	if n == nil {
		return 0, nil
	}
	if s, ok := c.sizes[n]; ok {
		return s, nil
	}
	if c.active[n] {
		return 0, fmt.Errorf("line %d: recursive YAML alias", n.Line)
	}
	c.active[n] = true
	defer delete(c.active, n)
	var total int64 = 1
	if n.Kind == yaml.AliasNode {
		s, err := c.size(n.Alias)
		if err != nil {
			return 0, err
		}
		total = s
	} else {
		for _, child := range n.Content {
			s, err := c.size(child)
			if err != nil {
				return 0, err
			}
			total += s
			if total > MaxAliasExpansion {
				break // big enough to refuse; stop counting
			}
		}
	}
	c.sizes[n] = total
	return total, nil
}

// stringMap returns v as a map with string keys (YAML decodes mappings with
// non-string keys as map[any]any).
func stringMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = val
		}
		return out, true
	}
	return nil, false
}
