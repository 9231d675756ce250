package convert

import (
	"sort"
	"testing"

	api "github.com/shoal-project/shoal/proto"
)

// checkEnum proves that every value the proto declares (names, the
// generated X_name map) has one Docker string and parses back to itself,
// so a value added to the proto fails here until the table has it. empty
// lists values whose Docker form is "" on purpose.
func checkEnum[P ~int32, M ~string](t *testing.T, kind string, names map[int32]string, e enum[P, M], empty ...P) {
	t.Helper()
	values := make([]int32, 0, len(names))
	for v := range names {
		values = append(values, v)
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	seen := map[M]P{}
	for _, v := range values {
		p := P(v)
		m := e.toMoby(p)
		isEmpty := false
		for _, x := range empty {
			isEmpty = isEmpty || x == p
		}
		if m == "" && !isEmpty {
			t.Errorf("%s %s (%d) has no Docker name: add it to the table in enums.go", kind, names[v], v)
			continue
		}
		if other, dup := seen[m]; dup {
			t.Errorf("%s %s and %d share the Docker name %q", kind, names[v], other, m)
		}
		seen[m] = p
		back, err := e.fromMoby(kind, m)
		if err != nil || back != p {
			t.Errorf("%s %q parses to %v (%v), want %s", kind, m, back, err, names[v])
		}
	}
	if len(e.pairs) != len(names) {
		t.Errorf("%s table has %d entries, the proto %d", kind, len(e.pairs), len(names))
	}
	if _, err := e.fromMoby(kind, "bogus"); err == nil {
		t.Errorf("%s accepts \"bogus\"", kind)
	}
}

func TestEnumsCoverEveryProtoValue(t *testing.T) {
	checkEnum(t, "TaskState", api.TaskState_name, taskStates)
	checkEnum(t, "NodeRole", api.NodeRole_name, nodeRoles)
	checkEnum(t, "Availability", api.Availability_name, availabilities)
	checkEnum(t, "NodeStatus.State", api.NodeStatus_State_name, nodeStates)
	checkEnum(t, "Reachability", api.Reachability_name, reachabilities)
	checkEnum(t, "NodeSpec.Membership", api.NodeSpec_Membership_name, nodeMemberships)
	checkEnum(t, "RestartPolicy.Condition", api.RestartPolicy_Condition_name, restartConditions)
	checkEnum(t, "UpdateConfig.FailureAction", api.UpdateConfig_FailureAction_name, failureActions)
	checkEnum(t, "UpdateConfig.Order", api.UpdateConfig_Order_name, updateOrders)
	checkEnum(t, "UpdateStatus.State", api.UpdateStatus_State_name, updateStates, api.UpdateStatus_UNKNOWN)
	checkEnum(t, "PortConfig.Protocol", api.PortConfig_Protocol_name, protocols)
	checkEnum(t, "PortConfig.PublishMode", api.PortConfig_PublishMode_name, publishModes)
	checkEnum(t, "EndpointSpec.ResolutionMode", api.EndpointSpec_ResolutionMode_name, resolutionModes)
	checkEnum(t, "Mount.Type", api.Mount_Type_name, mountTypes)
}

func TestEnumDockerNames(t *testing.T) {
	// Spot checks of the strings clients match on.
	for _, c := range []struct{ got, want string }{
		{string(TaskState(api.TaskState_RUNNING)), "running"},
		{string(TaskState(api.TaskState_ORPHANED)), "orphaned"},
		{string(updateStates.toMoby(api.UpdateStatus_ROLLBACK_STARTED)), "rollback_started"},
		{string(restartConditions.toMoby(api.RestartPolicy_ON_FAILURE)), "on-failure"},
		{string(updateOrders.toMoby(api.UpdateConfig_START_FIRST)), "start-first"},
		{string(nodeStates.toMoby(api.NodeStatus_DISCONNECTED)), "disconnected"},
		{string(reachabilities.toMoby(api.Reachability_REACHABILITY_UNKNOWN)), "unknown"},
		{archToMoby("amd64"), "x86_64"},
		{archToMoby("mips"), "mips"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if s, err := TaskStateFromMoby("Allocated"); err != nil || s != api.TaskState_PENDING {
		t.Errorf("allocated: %v %v", s, err)
	}
	_, err := updateOrders.fromMoby("UpdateConfig.Order", "sideways")
	if err == nil || err.Error() != `invalid UpdateConfig.Order "sideways": must be one of stop-first, start-first` {
		t.Errorf("error: %v", err)
	}
	for spec, want := range map[*api.ServiceSpec]string{
		{Mode: &api.ServiceSpec_Replicated{}}:    ModeReplicated,
		{Mode: &api.ServiceSpec_Global{}}:        ModeGlobal,
		{Mode: &api.ServiceSpec_ReplicatedJob{}}: ModeReplicatedJob,
		{Mode: &api.ServiceSpec_GlobalJob{}}:     ModeGlobalJob,
		{}:                                       "",
	} {
		if got := ServiceMode(spec); got != want {
			t.Errorf("ServiceMode = %q, want %q", got, want)
		}
	}
}
