package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// LoadOptions say where a stack's files come from.
type LoadOptions struct {
	// Files are the -c values in order; "-" reads Stdin (once).
	Files []string
	Stdin io.Reader
	// Cwd is the current directory: relative -c paths and stdin are taken
	// from it.
	Cwd string
	// Environ is the environment ("KEY=VALUE") interpolation reads; a .env
	// file in the working directory adds the variables it does not set.
	Environ []string
	// Stack is the stack name.
	Stack string
	// SkipInterpolation leaves ${VAR} as written.
	SkipInterpolation bool
}

// Loaded is a project read from stack files.
type Loaded struct {
	Project *types.Project
	Stack   string
	// Files name the files in messages, in -c order ("stdin" for -).
	Files []string
	// WorkingDir is the directory relative paths were taken from.
	WorkingDir string
	// Warnings are ready to print on stderr, in order: Docker's messages
	// for ignored keys, notes, and unset variables.
	Warnings []string
	scan     *scanner
}

var stackNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// ValidateName checks a stack name: it prefixes every object name.
func ValidateName(name string) error {
	if !stackNameRE.MatchString(name) {
		return fmt.Errorf("invalid stack name %q: use letters, digits, '_', '.' and '-', starting with a letter or a digit", name)
	}
	return nil
}

// projectName is the name compose-go works with: it must be lower case.
func projectName(stack string) string {
	if n := loader.NormalizeProjectName(stack); n != "" {
		return n
	}
	return "stack"
}

// Load reads, checks and loads the files of a stack. It reads nothing but
// the files, stdin, the .env file of the working directory and the
// services' env_file files, each capped at MaxFileSize.
func Load(ctx context.Context, o LoadOptions) (l *Loaded, err error) {
	if err := ValidateName(o.Stack); err != nil {
		return nil, err
	}
	if len(o.Files) == 0 {
		return nil, errors.New("Please specify a Compose file (with --compose-file).")
	}
	l = &Loaded{Stack: o.Stack, scan: newScanner()}
	details := types.ConfigDetails{}
	stdinUsed := false
	for i, f := range o.Files {
		var data []byte
		name, abs := f, f
		if f == "-" {
			if stdinUsed {
				return nil, errors.New("-c - can be given only once: stdin can be read only once")
			}
			stdinUsed = true
			name, abs = "stdin", filepath.Join(o.Cwd, "stdin")
			if o.Stdin == nil {
				return nil, errors.New("no stdin to read the stack file from")
			}
			data, err = ReadCapped(o.Stdin, "stdin", MaxFileSize)
		} else {
			if !filepath.IsAbs(abs) {
				abs = filepath.Join(o.Cwd, abs)
			}
			data, err = ReadFileCapped(abs, MaxFileSize)
			if err != nil && !strings.Contains(err.Error(), f) {
				err = fmt.Errorf("%s: %w", f, err)
			}
		}
		if err != nil {
			return nil, err
		}
		if i == 0 {
			details.WorkingDir = filepath.Dir(abs)
		}
		docs, err := parseDocuments(name, data)
		if err != nil {
			return nil, err
		}
		if len(docs) == 0 {
			return nil, fmt.Errorf("%s: empty compose file", name)
		}
		for _, doc := range docs {
			l.scan.scan(name, doc)
			details.ConfigFiles = append(details.ConfigFiles, types.ConfigFile{Filename: abs, Config: doc})
		}
		l.Files = append(l.Files, name)
	}
	l.WorkingDir = details.WorkingDir
	if err := l.scan.refusedError(); err != nil {
		return nil, err
	}
	for _, name := range l.scan.order {
		if !l.scan.images[name] {
			return nil, fmt.Errorf("%s: service %q: image: missing: shoal does not build images (build is ignored); build and push the image, then name it with image:",
				l.scan.origin(name, "build", l.Files), name)
		}
	}
	env, err := environment(o.Environ, details.WorkingDir)
	if err != nil {
		return nil, err
	}
	details.Environment = env
	missing := map[string]bool{}
	project, err := loadProject(ctx, details, o, missing)
	if err != nil {
		return nil, l.fileError(err, details)
	}
	if err := resolveEnvFiles(project, l); err != nil {
		return nil, err
	}
	l.Project = project
	l.Warnings = l.scan.messages()
	for _, v := range sortedKeys(missing) {
		l.Warnings = append(l.Warnings, fmt.Sprintf("The %q variable is not set. Defaulting to a blank string.\n", v))
	}
	return l, nil
}

// loadProject runs compose-go, turning a panic inside it into an error.
func loadProject(ctx context.Context, details types.ConfigDetails, o LoadOptions, missing map[string]bool) (p *types.Project, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("the file could not be loaded (compose-go failed: %v)", r)
		}
	}()
	return loader.LoadWithContext(ctx, details, func(lo *loader.Options) {
		lo.SetProjectName(projectName(o.Stack), true)
		lo.SkipInclude = true
		lo.SkipResolveEnvironment = true
		lo.SkipInterpolation = o.SkipInterpolation
		lo.ResolvePaths = true
		if lo.Interpolate != nil {
			lo.Interpolate.Substitute = substitute(missing)
		}
	})
}

// substitute interpolates like compose-go but records unset variables
// instead of logging them.
func substitute(missing map[string]bool) func(string, template.Mapping) (string, error) {
	replace := func(sub string, m template.Mapping, cfg *template.Config) (string, error) {
		v, applied, err := template.DefaultReplacementAppliedFunc(sub, m, cfg)
		if err == nil && !applied {
			missing[strings.Trim(sub, "${}")] = true
		}
		return v, err
	}
	return func(s string, m template.Mapping) (string, error) {
		return template.SubstituteWithOptions(s, m, template.WithoutLogging, template.WithReplacementFunction(replace))
	}
}

// environment is environ plus the variables of <dir>/.env it does not set.
func environment(environ []string, dir string) (types.Mapping, error) {
	env := types.NewMapping(environ)
	path := filepath.Join(dir, ".env")
	data, err := ReadFileCapped(path, MaxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return env, nil
	}
	if err != nil {
		return nil, err
	}
	vars, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for k, v := range vars {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env, nil
}

// resolveEnvFiles merges each service's env_file files into its
// environment (explicit environment entries win), reading each file capped.
func resolveEnvFiles(p *types.Project, l *Loaded) error {
	for _, name := range sortedKeys(p.Services) {
		svc := p.Services[name]
		svc.Environment = svc.Environment.Resolve(p.Environment.Resolve)
		merged := map[string]string{}
		for _, ef := range svc.EnvFiles {
			path := ef.Path
			if !filepath.IsAbs(path) {
				path = filepath.Join(p.WorkingDir, path)
			}
			data, err := ReadFileCapped(path, MaxFileSize)
			if errors.Is(err, os.ErrNotExist) && !bool(ef.Required) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s: service %q: env_file: %w", l.scan.origin(name, "env_file", l.Files), name, err)
			}
			lookup := func(k string) (string, bool) {
				if v, ok := p.Environment.Resolve(k); ok {
					return v, true
				}
				if v, ok := svc.Environment[k]; ok && v != nil {
					return *v, true
				}
				return "", false
			}
			if err := dotenv.ParseWithFormat(bytes.NewReader(data), path, merged, lookup, ef.Format); err != nil {
				return fmt.Errorf("%s: service %q: env_file %s: %w", l.scan.origin(name, "env_file", l.Files), name, ef.Path, err)
			}
		}
		if len(merged) > 0 || len(svc.EnvFiles) > 0 {
			env := types.MappingWithEquals{}
			for k, v := range merged {
				env[k] = &v
			}
			svc.Environment = env.OverrideBy(svc.Environment)
		}
		svc.EnvFiles = nil
		p.Services[name] = svc
	}
	return nil
}

// fileError names the files in an error of compose-go, which names them by
// absolute path or not at all.
func (l *Loaded) fileError(err error, details types.ConfigDetails) error {
	msg := err.Error()
	named := false
	for i, cf := range details.ConfigFiles {
		if strings.Contains(msg, cf.Filename) {
			msg = strings.ReplaceAll(msg, cf.Filename, l.displayName(i, details))
			named = true
		}
	}
	if !named {
		msg = strings.Join(l.Files, ", ") + ": " + msg
	}
	return errors.New(strings.TrimSuffix(msg, ": invalid compose project"))
}

// displayName is the -c name of the i-th config document.
func (l *Loaded) displayName(i int, details types.ConfigDetails) string {
	abs := details.ConfigFiles[i].Filename
	for j, f := range l.Files {
		if f == "stdin" && strings.HasSuffix(abs, string(filepath.Separator)+"stdin") {
			return l.Files[j]
		}
		if f == abs || strings.HasSuffix(abs, string(filepath.Separator)+filepath.Clean(f)) {
			return f
		}
	}
	return abs
}

// Origin names the last file that sets key of service (for messages).
func (l *Loaded) Origin(service, key string) string {
	if l == nil || l.scan == nil {
		return ""
	}
	return l.scan.origin(service, key, l.Files)
}
