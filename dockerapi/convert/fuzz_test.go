package convert

import (
	"encoding/json"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzServiceSpecFromRequest feeds arbitrary JSON bodies through the create
// path: conversion must never panic, and a spec it accepts must survive a
// second trip through Docker's type unchanged (what a client's
// read-modify-write does).
func FuzzServiceSpecFromRequest(f *testing.F) {
	f.Add([]byte(cliBody))
	f.Add([]byte(`{"Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "nginx:latest", "Command": null, "Args": null}}, "Mode": {"replicated": {"Replicas": 2}}}`))
	f.Add([]byte(`{"Name":"j","TaskTemplate":{"ContainerSpec":{"Image":"x","Mounts":[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1,"Mode":511}}]},"RestartPolicy":{"Condition":"none","MaxAttempts":2}},"Mode":{"ReplicatedJob":{"MaxConcurrent":2}}}`))
	f.Add([]byte(`{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"x","DNSConfig":{"Nameservers":[""]}}}}`))
	if b, err := json.Marshal(ServiceSpecToMoby(fullSpec())); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r ServiceSpecRequest
		if err := strictDecode(body, &r); err != nil {
			return
		}
		s, err := ServiceSpecFromRequest(&r)
		if err != nil {
			return
		}
		m2 := ServiceSpecToMoby(s)
		s2, err := ServiceSpecFromMoby(&m2)
		if err != nil {
			t.Fatalf("an accepted spec fails its second trip: %v\n%v", err, s)
		}
		if !proto.Equal(s, s2) {
			t.Fatalf("second trip changed the spec\n%v\n%v", s, s2)
		}
	})
}

// FuzzNetworkSpecFromCreate: never panics on any body.
func FuzzNetworkSpecFromCreate(f *testing.F) {
	f.Add([]byte(`{"CheckDuplicate":true,"Driver":"overlay","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.1.0.0/24","Gateway":"10.1.0.1"}]},"Attachable":true,"Options":{"encrypted":""},"Labels":{},"Name":"ov"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r NetworkCreateRequest
		if err := strictDecode(body, &r); err != nil {
			return
		}
		_, _ = NetworkSpecFromCreate(r)
	})
}
