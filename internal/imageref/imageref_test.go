package imageref

import "testing"

const dg = "sha256:2b4c6a1d8e0f3b5a7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b"

func TestPin(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                          "nginx@" + dg,
		"nginx:1.25":                     "nginx:1.25@" + dg,
		"127.0.0.1:5000/app:v1":          "127.0.0.1:5000/app:v1@" + dg,
		"docker.io/library/nginx:latest": "nginx:latest@" + dg,
		"app:v1@sha256:" + dg[7:]:        "app:v1@sha256:" + dg[7:],
		"app@sha256:" + dg[7:]:           "app@sha256:" + dg[7:],
		"app/UPPER":                      "app/UPPER",
	} {
		if got := Pin(in, dg); got != want {
			t.Errorf("Pin(%s) = %s, want %s", in, got, want)
		}
	}
	if got := Pin("app:v1", "nonsense"); got != "app:v1" {
		t.Errorf("bad digest: %s", got)
	}
}

func TestWithDefaultTagAndStrip(t *testing.T) {
	for in, want := range map[string]string{
		"nginx": "nginx:latest", "nginx:1": "nginx:1", "reg:5000/a": "reg:5000/a:latest",
		"a@" + dg: "a@" + dg, "a:v1@" + dg: "a:v1@" + dg, "app/UPPER": "app/UPPER",
	} {
		if got := WithDefaultTag(in); got != want {
			t.Errorf("WithDefaultTag(%s) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"nginx:latest@" + dg: "nginx:latest", "reg:5000/a:v1@" + dg: "reg:5000/a:v1",
		"a@" + dg: "a@" + dg, "nginx": "nginx", "app/UPPER": "app/UPPER",
	} {
		if got := StripDigest(in); got != want {
			t.Errorf("StripDigest(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestWarning(t *testing.T) {
	want := "image app:v1 could not be accessed on a registry to record\n" +
		"its digest. Each node will access app:v1 independently,\n" +
		"possibly leading to different nodes running different\n" +
		"versions of the image.\n"
	if got := Warning("app:v1"); got != want {
		t.Errorf("got %q", got)
	}
}
