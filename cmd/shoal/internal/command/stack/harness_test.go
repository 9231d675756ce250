package stack_test

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/testserver"
	api "github.com/shoal-project/shoal/proto"
)

// running makes every service's current tasks run, so that the converge
// display ends.
func running(e *commandtest.Env) {
	srv := e.Srv
	srv.Mu.Lock()
	defer srv.Mu.Unlock()
	srv.ListTasksHook = func(_ int, _ *api.ListTasksRequest) []*api.Task {
		var tasks []*api.Task
		for _, s := range srv.Services { // the server holds Mu
			n := s.GetSpec().GetReplicated().GetReplicas()
			if s.GetSpec().GetGlobal() != nil {
				n = 1
			}
			for slot := uint64(1); slot <= n; slot++ {
				t := testserver.Task(fmt.Sprintf("%s-task-%d", s.GetId()[:8], slot), s.GetId(), s.GetSpec().GetAnnotations().GetName(),
					slot, testserver.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, 3*time.Second)
				t.SpecVersion = s.GetSpecVersion()
				tasks = append(tasks, t)
			}
		}
		return tasks
	}
}

var errorInUse = status.Error(codes.FailedPrecondition, "network tools_default is in use by service x")

var errorConflict = status.Error(codes.Aborted, "update out of sequence")
