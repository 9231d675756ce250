package stack

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
)

// TestIgnoredKeys checks Docker's two warnings, and that ignored keys
// change nothing: links add no dependency, network_mode does not take the
// default network away, profiles do not disable a service.
func TestIgnoredKeys(t *testing.T) {
	dir := writeFiles(t, map[string]string{"app.yml": `
version: "3.8"
services:
  web:
    image: nginx
    build: .
    restart: always
    privileged: true
    container_name: web
    expose: ["80"]
    isolation: default
    links: [db]
    network_mode: host
    profiles: [debug]
  db:
    image: postgres
    networks:
      default:
        priority: 10
    deploy:
      resources:
        reservations:
          devices:
            - capabilities: [gpu]
`})
	l, p, err := planIn(dir, nil, "app.yml")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, strings.Join(l.Warnings, ""), "ignored_keys.golden")
	if len(p.Services) != 2 {
		t.Fatalf("services %d, want 2 (profiles must not disable one)", len(p.Services))
	}
	for _, s := range p.Services {
		if len(s.DependsOn) != 0 {
			t.Errorf("%s depends on %v: links must not order the deploy", s.Name, s.DependsOn)
		}
		if n := s.Spec.Task.Networks; len(n) != 1 || n[0].Target != "s_default" {
			t.Errorf("%s networks %v, want s_default", s.Name, n)
		}
	}
}

// TestExtends accepts extends within the file, with a note, and merges it.
func TestExtends(t *testing.T) {
	dir := writeFiles(t, map[string]string{"app.yml": `
services:
  base:
    image: busybox
    environment: [A=1]
    deploy:
      replicas: 2
  web:
    extends: base
    command: ["sleep", "1"]
  api:
    extends:
      service: base
    image: busybox:1.36
`})
	l, p, err := planIn(dir, nil, "app.yml")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, strings.Join(l.Warnings, ""), "extends_note.golden")
	for _, s := range p.Services {
		if s.Spec.GetReplicated().GetReplicas() != 2 || len(s.Spec.Task.Container.Env) != 1 {
			t.Errorf("%s did not inherit from base: %v", s.Name, s.Spec)
		}
	}
}

// TestUnsetVariable warns once per variable, sorted, in compose's words.
func TestUnsetVariable(t *testing.T) {
	dir := writeFiles(t, map[string]string{"app.yml": `
services:
  web:
    image: nginx:${TAG}
    environment:
      - A=$ZZZ
      - B=${AAA}
      - C=${AAA}
      - D=${SET:-x}
      - E=$$HOME
`})
	l, p, err := planIn(dir, []string{"TAG=1.27"}, "app.yml")
	if err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, strings.Join(l.Warnings, ""), "unset_variables.golden")
	if got := strings.Join(p.Services[0].Spec.Task.Container.Env, " "); got != "A= B= C= D=x E=$HOME" {
		t.Errorf("env %q", got)
	}
}

// errorCases are invalid stack files; each error must name the file and,
// where it is about a service, the service and the key.
var errorCases = []struct {
	name, yaml string
	env        []string
	files      map[string]string
}{
	{name: "rejected keys", yaml: `
services:
  web:
    image: nginx
    mem_limit: 512m
    cpu_shares: 512
  db:
    image: postgres
    volumes_from: [web]
    cpus: 0.5
`},
	{name: "extends file", yaml: `
services:
  web:
    image: nginx
    extends:
      file: base.yml
      service: base
`},
	{name: "include", yaml: `
include: [other.yml]
services:
  web:
    image: nginx
`},
	{name: "build without image", yaml: `
services:
  web:
    build: .
`},
	{name: "required variable", yaml: `
services:
  web:
    image: nginx:${TAG:?set TAG to the release to deploy}
`},
	{name: "unknown mode", yaml: `
services:
  web:
    image: nginx
    deploy:
      mode: daemonset
`},
	{name: "global with replicas", yaml: `
services:
  web:
    image: nginx
    deploy:
      mode: global
      replicas: 2
`},
	{name: "restart condition", yaml: `
services:
  web:
    image: nginx
    deploy:
      restart_policy:
        condition: always
`},
	{name: "update order", yaml: `
services:
  web:
    image: nginx
    deploy:
      update_config:
        order: random
`},
	{name: "host ip", yaml: `
services:
  web:
    image: nginx
    ports: ["127.0.0.1:8080:80"]
`},
	{name: "port range", yaml: `
services:
  web:
    image: nginx
    ports: ["8000-8010:80"]
`},
	{name: "constraint", yaml: `
services:
  web:
    image: nginx
    deploy:
      placement:
        constraints: [node.rol==manager]
`},
	{name: "undefined network", yaml: `
services:
  web:
    image: nginx
    networks: [nope]
`},
	{name: "network driver", yaml: `
services:
  web:
    image: nginx
    networks: [front]
networks:
  front:
    driver: bridge
`},
	{name: "network mtu", yaml: `
services:
  web:
    image: nginx
    networks: [front]
networks:
  front:
    driver_opts:
      com.docker.network.driver.mtu: jumbo
`},
	{name: "subnet", yaml: `
services:
  web:
    image: nginx
    networks: [front]
networks:
  front:
    ipam:
      config:
        - subnet: 10.0.0.0/33
`},
	{name: "volume type", yaml: `
services:
  web:
    image: nginx
    volumes:
      - type: image
        source: other:1
        target: /data
`},
	{name: "secret from unset variable", yaml: `
services:
  web:
    image: nginx
    secrets: [token]
secrets:
  token:
    environment: NOPE
`},
	{name: "missing secret file", yaml: `
services:
  web:
    image: nginx
    secrets: [token]
secrets:
  token:
    file: ./missing.txt
`},
	{name: "secret too large", yaml: `
services:
  web:
    image: nginx
    secrets: [token]
secrets:
  token:
    file: ./big.txt
`, files: map[string]string{"big.txt": strings.Repeat("x", 600*1024)}},
	{name: "cycle", yaml: `
services:
  a:
    image: nginx
    depends_on: [b]
  b:
    image: nginx
    depends_on: [c]
  c:
    image: nginx
    depends_on: [a]
`},
	{name: "yaml syntax", yaml: "services:\n  web:\n    image: [nginx\n"},
	{name: "not a mapping", yaml: "- web\n- api\n"},
	{name: "empty", yaml: "# nothing\n"},
	{name: "image reference", yaml: `
services:
  web:
    image: Not/Valid:Ref:x
`},
	{name: "job with update_config", yaml: `
services:
  migrate:
    image: nginx
    deploy:
      mode: replicated-job
      update_config:
        parallelism: 2
`},
	{name: "schema", yaml: `
services:
  web:
    image: nginx
    deploy:
      replicas: many
`},
	{name: "unknown key", yaml: `
services:
  web:
    imagee: nginx
    image: nginx
`},
	{name: "healthcheck disable with test", yaml: `
services:
  web:
    image: nginx
    healthcheck:
      disable: true
      test: ["CMD", "true"]
`},
	{name: "tmpfs option", yaml: `
services:
  web:
    image: nginx
    tmpfs: ["/tmp:uid=1000"]
`},
	{name: "memory reservation over limit", yaml: `
services:
  web:
    image: nginx
    deploy:
      resources:
        limits:
          memory: 64M
        reservations:
          memory: 128M
`},
	{name: "duplicate published port", yaml: `
services:
  web:
    image: nginx
    ports: ["8080:80", "8080:81"]
`},
	{name: "x-masquerade on a host port", yaml: `
services:
  web:
    image: nginx
    ports:
      - {target: 80, published: 8080, mode: host, x-masquerade: true}
`},
	{name: "x-masquerade not a boolean", yaml: `
services:
  web:
    image: nginx
    ports:
      - {target: 80, published: 8080, x-masquerade: maybe}
`},
	{name: "custom tag", yaml: `
services:
  web:
    image: nginx
    ports: !reset []
`},
	{name: "top-level jobs", yaml: `
services:
  web:
    image: nginx
jobs:
  once:
    image: nginx
`},
}

func TestErrors(t *testing.T) {
	var b strings.Builder
	for _, tc := range errorCases {
		files := map[string]string{"app.yml": tc.yaml}
		for k, v := range tc.files {
			files[k] = v
		}
		dir := writeFiles(t, files)
		_, _, err := planIn(dir, tc.env, "app.yml")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		msg := strings.ReplaceAll(err.Error(), dir, "$DIR")
		if !strings.Contains(msg, "app.yml") && !strings.Contains(msg, "$DIR") {
			t.Errorf("%s: the error does not name the file: %s", tc.name, msg)
		}
		fmt.Fprintf(&b, "== %s ==\n%s\n\n", tc.name, msg)
	}
	golden.Assert(t, b.String(), "errors.golden")
}

// TestErrorsNameTheLastFile: with several -c files, an error names the
// file that set the faulty key.
func TestErrorsNameTheLastFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yml": "services:\n  web:\n    image: nginx\n",
		"b.yml": "services:\n  web:\n    deploy:\n      mode: nope\n",
	})
	_, _, err := planIn(dir, nil, "a.yml", "b.yml")
	if err == nil || !strings.HasPrefix(err.Error(), `b.yml: service "web": deploy.mode: unknown mode "nope"`) {
		t.Errorf("err = %v", err)
	}
}
