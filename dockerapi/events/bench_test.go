package events

import (
	"fmt"
	"testing"
	"time"

	api "github.com/shoal-project/shoal/proto"
)

// BenchmarkConvertPublish: one task state change converted and handed to
// subs subscribers (half of them filtering it out), each drained.
func BenchmarkConvertPublish(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subs=%d", subs), func(b *testing.B) {
			s, err := New(Config{Watch: nilWatcher{}, ClientBuffer: 2048})
			if err != nil {
				b.Fatal(err)
			}
			var all []*Subscription
			for i := 0; i < subs; i++ {
				f := Filter{"type": {"task"}}
				if i%2 == 1 {
					f = Filter{"service": {"other"}}
				}
				sub, _ := s.Subscribe(f, time.Time{}, time.Time{})
				all = append(all, sub)
			}
			task := func(st api.TaskState) *api.StoreObject {
				return &api.StoreObject{Object: &api.StoreObject_Task{Task: &api.Task{Id: "t1", ServiceId: "s1", Slot: 1, NodeId: "n1",
					ServiceAnnotations: &api.Annotations{Name: "web"}, Status: &api.TaskStatus{State: st}}}}
			}
			we := &api.WatchEvent{Action: api.WatchAction_WATCH_ACTION_UPDATE, Object: task(api.TaskState_RUNNING), OldObject: task(api.TaskState_STARTING)}
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev, _ := Convert(we, now)
				s.Publish(ev)
				if i%1024 == 1023 {
					for _, sub := range all {
						for len(sub.C) > 0 {
							<-sub.C
						}
					}
				}
			}
		})
	}
}
