package stack_test

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/cmd/shoal/internal/commandtest"
	"github.com/shoal-project/shoal/cmd/shoal/internal/daemontest"
	api "github.com/shoal-project/shoal/proto"
)

// running makes every service's current tasks run before each poll of the
// tasks, as the orchestrator, scheduler and a worker would, so that the
// converge display ends.
func running(e *commandtest.Env) {
	e.Srv.Before("ListTasks", func(int, proto.Message) {
		e.Srv.Edit(func(f *daemontest.Fixture) {
			for _, s := range f.Services {
				n := s.GetSpec().GetReplicated().GetReplicas()
				if s.GetSpec().GetGlobal() != nil {
					n = 1
				}
				for slot := uint64(1); slot <= n; slot++ {
					t := daemontest.Task(fmt.Sprintf("%s%dtaskaaaaaaaaaaaaaaaa", s.GetId()[:4], slot), s.GetId(), s.GetSpec().GetAnnotations().GetName(),
						slot, daemontest.Node1, api.TaskState_RUNNING, api.TaskState_RUNNING, 3*time.Second)
					t.SpecVersion = s.GetSpecVersion()
					f.PutTask(t)
				}
			}
		})
	})
}

var errorInUse = status.Error(codes.FailedPrecondition, "network tools_default is in use by service x")

var errorConflict = status.Error(codes.Aborted, "update out of sequence")
