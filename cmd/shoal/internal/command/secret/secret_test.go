package secret_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

func TestSecretCreate(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(e.dir, "pw.txt")
	if err := os.WriteFile(path, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.golden("secret_create", "secret", "create", "-l", "env=prod", "-l", "team", "--template-driver", "golang", "db_pw", path)
	req := e.srv.Requests("CreateSecret")[0].(*api.CreateSecretRequest)
	if string(req.GetSpec().GetData()) != "hunter2\n" || req.GetSpec().GetAnnotations().GetLabels()["env"] != "prod" {
		t.Errorf("request %v", req)
	}
	e.stdin = "from stdin"
	e.golden("secret_create_stdin", "secret", "create", "token", "-")
	if got := string(e.srv.Requests("CreateSecret")[1].(*api.CreateSecretRequest).GetSpec().GetData()); got != "from stdin" {
		t.Errorf("data %q", got)
	}
	e.golden("secret_create_exists", "secret", "create", "token", "-")
}

func TestSecretCreateRefused(t *testing.T) {
	e := newEnv(t)
	big := filepath.Join(e.dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("x", 500*1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	e.golden("secret_create_too_large", "secret", "create", "big", big)
	e.golden("secret_create_empty", "secret", "create", "empty", "-")
	e.golden("secret_create_missing", "secret", "create", "x", filepath.Join(e.dir, "nope"))
	e.golden("secret_create_one_arg", "secret", "create", "x")
	if n := len(e.srv.Requests("CreateSecret")); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestSecretLs(t *testing.T) {
	e := newEnv(t)
	e.stdin = "a"
	e.run("secret", "create", "-l", "app=web", "web_tls", "-")
	e.golden("secret_ls", "secret", "ls")
	e.golden("secret_ls_quiet", "secret", "ls", "-q")
	e.golden("secret_ls_filter", "secret", "ls", "-f", "label=app=web")
	e.golden("secret_ls_format", "secret", "ls", "--format", "{{.Name}} {{.Labels}}")
	e.golden("secret_ls_json", "secret", "ls", "--format", "json", "-f", "name=db")
	e.golden("secret_ls_bad_filter", "secret", "ls", "-f", "driver=x")
}

func TestSecretInspectRm(t *testing.T) {
	e := newEnv(t)
	e.stdin = "s3cr3t"
	e.run("secret", "create", "-l", "a=b", "web_tls", "-")
	r := e.golden("secret_inspect", "secret", "inspect", "web_tls")
	if strings.Contains(r.Out, "s3cr3t") || strings.Contains(r.Out, "czNjcjN0") {
		t.Error("secret data printed")
	}
	e.golden("secret_inspect_pretty", "secret", "inspect", "--pretty", "web_tls", "nope")
	e.golden("secret_inspect_format", "secret", "inspect", "-f", "{{.Spec.Name}} {{.ID}}", "web_tls")
	e.golden("secret_rm", "secret", "rm", "web_tls", "nope")
}
