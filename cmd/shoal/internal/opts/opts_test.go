package opts

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/golden"
)

func compact(m proto.Message) string {
	b, _ := protojson.Marshal(m)
	return strings.ReplaceAll(string(b), " ", "")
}

// TestParsers records what each parser makes of a range of inputs, good and
// bad, in one golden file.
func TestParsers(t *testing.T) {
	var out strings.Builder
	for _, v := range []string{
		"80", "8080:80", "8080:80/udp", "5000-5002:6000-6002", "80-81/sctp",
		"published=8080,target=80", "target=53,published=53,protocol=udp,mode=host,name=dns",
		"1.2.3.4:80:80", "8080-8081:80", "0", "x", "80/icmp", "target=80,port=1", "published=1", "target=80,mode",
		"published=8080,target=80,masquerade=true", "published=8080,target=80,masquerade", "target=80,masquerade=false", "target=80,masquerade=maybe",
	} {
		ports, err := ParsePorts(v)
		fmt.Fprintf(&out, "port %q:", v)
		for _, p := range ports {
			out.WriteString(" " + compact(p))
		}
		if err != nil {
			out.WriteString(" error: " + err.Error())
		}
		out.WriteString("\n")
	}
	for _, v := range []string{
		"type=volume,source=data,target=/data", "source=data,target=/data,readonly", "type=bind,src=/a,dst=/b,ro=false",
		"type=tmpfs,target=/t,tmpfs-size=1g,tmpfs-mode=700", "type=bind,target=/b", "type=tmpfs,source=x,target=/t",
		"target=/x,tmpfs-size=1m", "type=volume", "type=foo,target=/x", "target=/x,readonly=maybe", "target=/x,bogus=1",
		"target=/x,bind-propagation=rshared", `"target=/a,b"`,
	} {
		m, err := ParseMount(v)
		fmt.Fprintf(&out, "mount %q: ", v)
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
			continue
		}
		out.WriteString(compact(m) + "\n")
	}
	for _, v := range []string{"db", "source=db,target=/run/db,uid=100,gid=101,mode=0400", "source=db,mode=0o600", "target=x", "source=db,owner=me", "source=db,mode=rw", ""} {
		r, err := ParseFileRef(v)
		fmt.Fprintf(&out, "file %q: %+v", v, r)
		if err != nil {
			out.WriteString(" error: " + err.Error())
		}
		out.WriteString("\n")
	}
	for _, v := range []string{"backend", "name=backend,alias=db,alias=pg", "alias=x", "name=n,driver-opt=x"} {
		n, err := ParseNetwork(v)
		fmt.Fprintf(&out, "network %q: ", v)
		if err != nil {
			out.WriteString("error: " + err.Error() + "\n")
			continue
		}
		out.WriteString(compact(n) + "\n")
	}
	golden.Assert(t, out.String(), "parsers.golden")
}

func TestValidators(t *testing.T) {
	var out strings.Builder
	check := func(name string, v Validator, inputs ...string) {
		for _, in := range inputs {
			got, err := v(in)
			if err != nil {
				fmt.Fprintf(&out, "%s %q: error: %v\n", name, in, err)
			} else {
				fmt.Fprintf(&out, "%s %q: %q\n", name, in, got)
			}
		}
	}
	check("constraint", ValidateConstraint, "node.role==manager", "node.role != worker", "node.labels.zone==east",
		"engine.labels.ssd!=true", "node.platform.os==linux", "NODE.ROLE==MANAGER", "node.role=manager", "node.role==boss",
		"node.labels.==x", "foo==bar", "node.id==a==b", "node.id==a!=b", "==x", "node.id==")
	check("pref", ValidatePlacementPref, "spread=node.labels.zone", "SPREAD=node.labels.rack", "spread=", "binpack=x", "spread")
	check("env", ValidateEnv, "A=1", "A", "A=", "=1", "A B=1")
	check("label", ValidateLabel, "a=b", "a", "=b", " =b")
	check("kv", ValidateKeyValue, "a=b", "a", "=b")
	check("ip", ValidateIP, "10.0.0.1", "::1", "10.0.0", "x")
	check("host", ValidateExtraHost, "db:10.0.0.1", "db:::1", "db", ":10.0.0.1", "db:nope")
	check("ulimit", ValidateUlimit, "nofile=1024", "nofile=1024:2048", "nofile=2048:1024", "bogus=1", "nofile")
	check("generic", ValidateGenericResource, "gpu=2", "gpu", "gpu=two")
	golden.Assert(t, out.String(), "validators.golden")
	if HostsEntry("db:10.0.0.1") != "10.0.0.1 db" {
		t.Errorf("HostsEntry = %q", HostsEntry("db:10.0.0.1"))
	}
}

func TestValues(t *testing.T) {
	var m MemBytes
	if err := m.Set("64m"); err != nil || m != 64<<20 {
		t.Errorf("64m = %d, %v", m, err)
	}
	if err := m.Set("1.5g"); err != nil || int64(m) != 3<<29 {
		t.Errorf("1.5g = %d, %v", m, err)
	}
	if err := m.Set("-1"); err == nil {
		t.Error("negative size accepted")
	}
	var c NanoCPUs
	if err := c.Set("0.5"); err != nil || c != 5e8 || c.String() != "0.500" {
		t.Errorf("0.5 = %d (%s), %v", c, c.String(), err)
	}
	for _, bad := range []string{"-1", "x", "0.0000000001"} {
		if err := c.Set(bad); err == nil {
			t.Errorf("cpus %q accepted", bad)
		}
	}
	var d Duration
	if err := d.Set("1m30s"); err != nil || d.String() != "1m30s" {
		t.Errorf("duration %s, %v", d.String(), err)
	}
	if err := d.Set("-1s"); err == nil {
		t.Error("negative duration accepted")
	}
	e := NewEnum("a", "a", "b", "c")
	if err := e.Set("d"); err == nil || err.Error() != `must be one of "a", "b" or "c"` {
		t.Errorf("enum error %v", err)
	}
	var r Ratio
	for _, bad := range []string{"1.5", "-0.1", "x"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("ratio %q accepted", bad)
		}
	}
	f := NewFilter()
	for _, v := range []string{"name=a", "name=b", "Role=manager"} {
		if err := f.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if f.String() != "name=a name=b role=manager" || f.Validate("name", "role") != nil || f.Validate("name") == nil {
		t.Errorf("filter %s", f.String())
	}
	if err := f.Set("novalue"); err == nil {
		t.Error("filter without = accepted")
	}
	l := NewListOpts(ValidateNotEmpty)
	if err := l.Set(" "); err == nil {
		t.Error("empty list value accepted")
	}
	if KVMap([]string{"a=1", "b", "c=x=y"})["c"] != "x=y" {
		t.Error("KVMap splits on the first =")
	}
}

func TestSplitWords(t *testing.T) {
	for in, want := range map[string]string{
		`/bin/sh -c "echo hi"`:   `[/bin/sh -c echo hi]`,
		`a 'b c' d\ e`:           `[a b c d e]`,
		`"a \"q\"" ''`:           `[a "q" ]`,
		`  spaced   out  `:       `[spaced out]`,
		`nginx -g "daemon off;"`: `[nginx -g daemon off;]`,
	} {
		got, err := SplitWords(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("SplitWords(%q) = %q, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{`"open`, `'open`, `trailing\`} {
		if _, err := SplitWords(bad); err == nil {
			t.Errorf("SplitWords(%q) accepted", bad)
		}
	}
}

func TestReadEnvFile(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "HOME_DIR" {
			return "/home/me", true
		}
		return "", false
	}
	got, err := ReadEnvFile(filepath.Join("testdata", "app.env"), lookup)
	if err != nil {
		t.Fatal(err)
	}
	if want := "[FROM_FILE=1 SPACED=a b HOME_DIR=/home/me UNSET]"; fmt.Sprint(got) != want {
		t.Errorf("got %q, want %s", got, want)
	}
	if _, err := ReadEnvFile(filepath.Join("testdata", "bad.env"), lookup); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad env file: %v", err)
	}
}
