package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func TestConfig(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "nginx.conf")
	if err := os.WriteFile(path, []byte("events {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.golden("config_create", "config", "create", "-l", "kind=nginx", "nginx_v2", path)
	if got := string(e.srv.Requests("CreateConfig")[0].(*api.CreateConfigRequest).GetSpec().GetData()); got != "events {}\n" {
		t.Errorf("data %q", got)
	}
	e.golden("config_ls", "config", "ls")
	e.golden("config_ls_filter", "config", "ls", "-f", "label=kind", "-q")
	e.golden("config_inspect_pretty", "config", "inspect", "--pretty", "nginx_v2")
	e.golden("config_inspect", "config", "inspect", "nginx_v2")
	e.golden("config_rm", "config", "rm", "nginx_v2")
}

func TestConfigTooLarge(t *testing.T) {
	e := newEnv(t)
	e.stdin = strings.Repeat("x", 1000*1024)
	e.golden("config_create_too_large", "config", "create", "big", "-")
	if n := len(e.srv.Requests("CreateConfig")); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	e.stdin = strings.Repeat("x", 1000*1024-1)
	if r := e.run("config", "create", "big", "-"); r.Code != 0 {
		t.Errorf("1000KB-1 refused: %s", r.Err)
	}
}
