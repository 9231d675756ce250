package stack

import (
	"fmt"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// dockerUnsupported are the service keys docker stack deploy ignores with
// "Ignoring unsupported options".
var dockerUnsupported = []string{
	"build", "cgroupns_mode", "cgroup_parent", "devices", "domainname", "external_links", "ipc", "links",
	"mac_address", "network_mode", "pid", "privileged", "restart", "security_opt", "shm_size", "userns_mode",
}

// shoalUnsupported are keys shoal cannot honour yet and ignores with the
// same warning: some Docker runs (isolation…), the rest are
// Compose-only keys Docker's v3 schema does not know.
var shoalUnsupported = []string{
	"isolation", "credential_spec", "oom_score_adj",
	"annotations", "attach", "blkio_config", "cgroup", "develop", "device_cgroup_rules", "gpus", "label_file",
	"log_driver", "log_opt", "mem_swappiness", "models", "net", "oom_kill_disable", "platform", "post_start",
	"pre_start", "pre_stop", "profiles", "provider", "pull_policy", "pull_refresh_after", "runtime", "storage_opt",
	"umask", "use_api_socket", "uts", "dockerfile",
}

// deprecated are the keys of "Ignoring deprecated options", with Docker's
// explanations.
var deprecated = map[string]string{
	"container_name": "Setting the container name is not supported.",
	"expose":         "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
}

// forbidden are the keys of "Compose file contains unsupported options",
// with Docker's explanations; the Compose-only resource shortcuts are
// refused the same way.
var forbidden = map[string]string{
	"extends":         "Support for `extends` is not implemented yet.",
	"volume_driver":   "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
	"volumes_from":    "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
	"cpu_quota":       "Set resource limits using deploy.resources",
	"cpu_shares":      "Set resource limits using deploy.resources",
	"cpuset":          "Set resource limits using deploy.resources",
	"mem_limit":       "Set resource limits using deploy.resources",
	"memswap_limit":   "Set resource limits using deploy.resources",
	"cpus":            "Set resource limits using deploy.resources",
	"cpu_count":       "Set resource limits using deploy.resources",
	"cpu_percent":     "Set resource limits using deploy.resources",
	"cpu_period":      "Set resource limits using deploy.resources",
	"cpu_rt_period":   "Set resource limits using deploy.resources",
	"cpu_rt_runtime":  "Set resource limits using deploy.resources",
	"mem_reservation": "Set resource reservations using deploy.resources",
	"pids_limit":      "Set resource limits using deploy.resources",
	"scale":           "Set the number of replicas using deploy.replicas",
}

// shoalWhy explains the refusals that are shoal's own.
var shoalWhy = map[string]string{
	"extends": "Extending a service of another file is not supported.",
	"include": "Including other files is not supported.",
	"jobs":    "Top-level jobs are not supported.",
}

// fixes say, for each refused key, what to write instead.
var fixes = map[string]string{
	"extends":         "extends.file is not supported: copy the base service into this file, or pass its file with another -c and override the service there",
	"volume_driver":   "declare a top-level volume with driver and mount it by name",
	"volumes_from":    "declare a named volume in the top-level volumes and mount it in each service",
	"cpu_quota":       "use deploy.resources.limits.cpus",
	"cpu_shares":      "use deploy.resources.reservations.cpus",
	"cpuset":          "use deploy.resources.limits.cpus (shoal does not pin CPUs)",
	"mem_limit":       "use deploy.resources.limits.memory",
	"memswap_limit":   "use deploy.resources.limits.memory (swap is not limited separately)",
	"cpus":            "use deploy.resources.limits.cpus",
	"cpu_count":       "use deploy.resources.limits.cpus",
	"cpu_percent":     "use deploy.resources.limits.cpus",
	"cpu_period":      "use deploy.resources.limits.cpus",
	"cpu_rt_period":   "use deploy.resources.limits.cpus",
	"cpu_rt_runtime":  "use deploy.resources.limits.cpus",
	"mem_reservation": "use deploy.resources.reservations.memory",
	"pids_limit":      "use deploy.resources.limits.pids",
	"scale":           "use deploy.replicas",
}

// supportedServiceKeys are converted (depends_on orders the deploy).
var supportedServiceKeys = setOf(
	"image", "command", "entrypoint", "environment", "env_file", "ports", "networks", "secrets", "configs",
	"healthcheck", "volumes", "tmpfs", "hostname", "user", "working_dir", "init", "read_only",
	"stop_grace_period", "stop_signal", "sysctls", "ulimits", "extra_hosts", "dns", "dns_search", "dns_opt",
	"cap_add", "cap_drop", "labels", "deploy", "depends_on", "tty", "stdin_open", "group_add", "extends",
)

// topLevelRefused are top-level keys shoal refuses, with the fix.
var topLevelRefused = map[string]string{
	"include": "include reads files that are not passed with -c: pass each file with its own -c option",
	"jobs":    "top-level jobs are not supported: declare a service with deploy.mode: replicated-job",
}

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// knownServiceKeys are every service key of the Compose specification.
var knownServiceKeys = func() map[string]bool {
	m := setOf(append([]string{
		"build", "deploy", "develop", "restart", "scale", "attach", "container_name", "provider", "extends",
		"external_links", "links", "net", "pre_start", "post_start", "pre_stop", "depends_on", "dockerfile",
		"expose", "healthcheck", "ports", "stdin_open", "tty", "profiles",
	}, types.ContainerSpecAttributes...)...)
	for k := range supportedServiceKeys {
		m[k] = true
	}
	return m
}()

var ignoredKeys = setOf(append(append([]string{}, dockerUnsupported...), shoalUnsupported...)...)

// refusal is one rejected key: where it is and how to fix it.
type refusal struct {
	key, file, where, fix string
}

// scanner collects what the raw files contain, file by file.
type scanner struct {
	unsupported map[string]bool
	deprecated  map[string]bool
	refused     []refusal
	unknown     []string
	notes       []string
	// origins maps "service\x00key" to the last file that sets it.
	origins map[string]string
	// images records whether a file gives a service an image or extends.
	images map[string]bool
	order  []string
}

func newScanner() *scanner {
	return &scanner{unsupported: map[string]bool{}, deprecated: map[string]bool{}, origins: map[string]string{}, images: map[string]bool{}}
}

// scan inspects one document of file and removes the keys shoal ignores,
// so that the loader never sees them.
func (s *scanner) scan(file string, doc map[string]any) {
	delete(doc, "version") // obsolete; Docker requires it, Compose warns about it
	for _, key := range sortedKeys(doc) {
		if fix, ok := topLevelRefused[key]; ok {
			s.refused = append(s.refused, refusal{key: key, file: file, where: "top level", fix: fix})
		}
		if key == "models" {
			s.unsupported["models"] = true
			delete(doc, key)
		}
	}
	services, _ := stringMap(doc["services"])
	for _, name := range sortedKeys(services) {
		svc, ok := stringMap(services[name])
		if !ok {
			continue
		}
		s.scanService(file, name, svc)
		services[name] = svc
	}
}

func (s *scanner) scanService(file, name string, svc map[string]any) {
	if _, seen := s.images[name]; !seen {
		s.order = append(s.order, name)
		s.images[name] = false
	}
	for _, key := range sortedKeys(svc) {
		s.origins[name+"\x00"+key] = file
		switch {
		case key == "image" || key == "extends":
			s.images[name] = true
		}
		switch {
		case key == "extends":
			s.scanExtends(file, name, svc[key])
		case forbidden[key] != "":
			s.refused = append(s.refused, refusal{key: key, file: file, where: fmt.Sprintf("service %q", name), fix: fixes[key]})
		case deprecated[key] != "":
			s.deprecated[key] = true
			delete(svc, key)
		case ignoredKeys[key]:
			s.unsupported[key] = true
			delete(svc, key)
		case !knownServiceKeys[key] && !strings.HasPrefix(key, "x-"):
			s.unknown = append(s.unknown, fmt.Sprintf("%s: service %q: %s: unknown key (Additional property %s is not allowed); check its spelling", file, name, key, key))
		}
	}
	if deploy, ok := stringMap(svc["deploy"]); ok {
		s.scanDeploy(deploy)
	}
	if nets, ok := stringMap(svc["networks"]); ok {
		for _, n := range sortedKeys(nets) {
			cfg, ok := stringMap(nets[n])
			if !ok {
				continue
			}
			for _, k := range sortedKeys(cfg) {
				if k != "aliases" && k != "ipv4_address" && k != "ipv6_address" && !strings.HasPrefix(k, "x-") {
					s.unsupported["networks."+k] = true
					delete(cfg, k)
				}
			}
		}
	}
}

// scanDeploy drops the device requests of deploy.resources, which shoal
// cannot place.
func (s *scanner) scanDeploy(deploy map[string]any) {
	res, ok := stringMap(deploy["resources"])
	if !ok {
		return
	}
	for _, part := range []string{"limits", "reservations"} {
		if r, ok := stringMap(res[part]); ok {
			if _, has := r["devices"]; has {
				s.unsupported["deploy.resources."+part+".devices"] = true
				delete(r, "devices")
			}
		}
	}
}

// scanExtends accepts extends of a service in the same file and refuses
// extends.file.
func (s *scanner) scanExtends(file, name string, v any) {
	base := ""
	switch e := v.(type) {
	case string:
		base = e
	default:
		m, _ := stringMap(v)
		if f, ok := m["file"]; ok && f != nil && fmt.Sprint(f) != "" {
			s.refused = append(s.refused, refusal{key: "extends", file: file, where: fmt.Sprintf("service %q", name), fix: fixes["extends"]})
			return
		}
		base = fmt.Sprint(m["service"])
	}
	s.notes = append(s.notes, fmt.Sprintf("Resolving extends: service %q extends %q (docker stack deploy rejects extends; shoal merges it within the file, as docker compose does)", name, base))
}

// messages returns Docker's warnings, ready to print on stderr.
func (s *scanner) messages() []string {
	var out []string
	if len(s.unsupported) > 0 {
		out = append(out, fmt.Sprintf("Ignoring unsupported options: %s\n\n", strings.Join(sortedKeys(s.unsupported), ", ")))
	}
	if len(s.deprecated) > 0 {
		var lines []string
		for _, k := range sortedKeys(s.deprecated) {
			lines = append(lines, k+": "+deprecated[k])
		}
		out = append(out, fmt.Sprintf("Ignoring deprecated options:\n\n%s\n\n", strings.Join(lines, "\n\n")))
	}
	for _, n := range s.notes {
		out = append(out, n+"\n")
	}
	return out
}

// refusedError is Docker's error for rejected keys, followed by where each
// one is and what to write instead.
func (s *scanner) refusedError() error {
	if len(s.refused) == 0 {
		if len(s.unknown) > 0 {
			return fmt.Errorf("%s", strings.Join(s.unknown, "\n"))
		}
		return nil
	}
	var lines []string
	seen := map[string]bool{}
	for _, r := range s.refused {
		why := forbidden[r.key]
		if w, ok := shoalWhy[r.key]; ok {
			why = w
		}
		line := r.key + ": " + why
		if !seen[line] {
			seen[line] = true
			lines = append(lines, line)
		}
	}
	sort.Strings(lines)
	var where []string
	for _, r := range s.refused {
		where = append(where, fmt.Sprintf("%s: %s: %s: %s", r.file, r.where, r.key, r.fix))
	}
	return fmt.Errorf("Compose file contains unsupported options:\n\n%s\n\n%s", strings.Join(lines, "\n\n"), strings.Join(where, "\n"))
}

// origin names the last file that sets key of service, or files.
func (s *scanner) origin(service, key string, files []string) string {
	if f, ok := s.origins[service+"\x00"+key]; ok {
		return f
	}
	for _, k := range []string{"image", "extends"} {
		if f, ok := s.origins[service+"\x00"+k]; ok {
			return f
		}
	}
	return strings.Join(files, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
