package secret_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	api "github.com/shoal-project/shoal/proto"
)

func TestSecretCreate(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	path := e.File("pw.txt", "hunter2\n")
	e.Golden("secret_create", "secret", "create", "-l", "env=prod", "-l", "team", "--template-driver", "golang", "db_pw", path)
	req := e.Srv.Requests("CreateSecret")[0].(*api.CreateSecretRequest)
	if string(req.GetSpec().GetData()) != "hunter2\n" || req.GetSpec().GetAnnotations().GetLabels()["env"] != "prod" {
		t.Errorf("request %v", req)
	}
	e.Stdin = "from stdin"
	e.Golden("secret_create_stdin", "secret", "create", "token", "-")
	if got := string(e.Srv.Requests("CreateSecret")[1].(*api.CreateSecretRequest).GetSpec().GetData()); got != "from stdin" {
		t.Errorf("data %q", got)
	}
	e.Golden("secret_create_exists", "secret", "create", "token", "-")
}

func TestSecretCreateRefused(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	big := e.File("big", strings.Repeat("x", api.MaxSecretDataBytes+1))
	e.Golden("secret_create_too_large", "secret", "create", "big", big)
	e.Golden("secret_create_empty", "secret", "create", "empty", "-")
	e.Golden("secret_create_missing", "secret", "create", "x", filepath.Join(e.Dir, "nope"))
	e.Golden("secret_create_one_arg", "secret", "create", "x")
	if n := len(e.Srv.Requests("CreateSecret")); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestSecretLs(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Stdin = "a"
	e.Run("secret", "create", "-l", "app=web", "web_tls", "-")
	e.Golden("secret_ls", "secret", "ls")
	e.Golden("secret_ls_quiet", "secret", "ls", "-q")
	e.Golden("secret_ls_filter", "secret", "ls", "-f", "label=app=web")
	e.Golden("secret_ls_format", "secret", "ls", "--format", "{{.Name}} {{.Labels}}")
	e.Golden("secret_ls_json", "secret", "ls", "--format", "json", "-f", "name=db")
	e.Golden("secret_ls_bad_filter", "secret", "ls", "-f", "driver=x")
}

func TestSecretInspectRm(t *testing.T) {
	e := commandtest.New(t, time.Hour)
	e.Stdin = "s3cr3t"
	e.Run("secret", "create", "-l", "a=b", "web_tls", "-")
	r := e.Golden("secret_inspect", "secret", "inspect", "web_tls")
	if strings.Contains(r.Out, "s3cr3t") || strings.Contains(r.Out, "czNjcjN0") {
		t.Error("secret data printed")
	}
	e.Golden("secret_inspect_pretty", "secret", "inspect", "--pretty", "web_tls", "nope")
	e.Golden("secret_inspect_format", "secret", "inspect", "-f", "{{.Spec.Name}} {{.ID}}", "web_tls")
	e.Golden("secret_rm", "secret", "rm", "web_tls", "nope")
}
