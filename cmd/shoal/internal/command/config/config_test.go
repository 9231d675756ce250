package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	api "github.com/shoal-project/shoal/proto"
)

func TestConfig(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	path := e.File("nginx.conf", "events {}\n")
	e.Golden("config_create", "config", "create", "-l", "kind=nginx", "nginx_v2", path)
	if got := string(e.Srv.Requests("CreateConfig")[0].(*api.CreateConfigRequest).GetSpec().GetData()); got != "events {}\n" {
		t.Errorf("data %q", got)
	}
	e.Golden("config_ls", "config", "ls")
	e.Golden("config_ls_filter", "config", "ls", "-f", "label=kind", "-q")
	e.Golden("config_inspect_pretty", "config", "inspect", "--pretty", "nginx_v2")
	e.Golden("config_inspect", "config", "inspect", "nginx_v2")
	e.Golden("config_rm", "config", "rm", "nginx_v2")
}

func TestConfigTooLarge(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Stdin = strings.Repeat("x", api.MaxConfigDataBytes+1)
	e.Golden("config_create_too_large", "config", "create", "big", "-")
	if n := len(e.Srv.Requests("CreateConfig")); n != 0 {
		t.Errorf("%d requests sent", n)
	}
	e.Stdin = strings.Repeat("x", api.MaxConfigDataBytes)
	if r := e.Run("config", "create", "big", "-"); r.Code != 0 {
		t.Errorf("500 KiB refused: %s", r.Err)
	}
}
