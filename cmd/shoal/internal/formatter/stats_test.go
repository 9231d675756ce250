package formatter

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	api "github.com/shoal-project/shoal/proto"
)

func TestStatsRowsAsDockerPrintsThem(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	busy := &api.TaskStats{
		TaskId: "k3j4h5g6f7d8s9a0q1w2e3r4", TaskName: "web.1.k3j4h5g6f7d8s9a0q1w2e3r4", NodeId: "n1", ServiceName: "web",
		Read: timestamppb.New(at), PreRead: timestamppb.New(at.Add(-500 * time.Millisecond)),
		CpuNanos: 10_250_000_000, PreCpuNanos: 10_000_000_000,
		MemoryUsage: 3 << 20, MemoryLimit: 2 << 30, NetRxBytes: 1234, NetTxBytes: 648,
		BlockReadBytes: 4_100_000, BlockWriteBytes: 0, Pids: 3,
	}
	fresh := &api.TaskStats{TaskId: "abc", TaskName: "db.1.abc", NodeId: "n2", ServiceName: "db", Read: timestamppb.New(at)}
	var buf bytes.Buffer
	rows := []any{NewStatsRow(busy, "host1", false), NewStatsRow(fresh, "", false)}
	if err := Write(&buf, StatsTableFormat, StatsHeader, rows); err != nil {
		t.Fatal(err)
	}
	want := `TASK ID        NAME                             NODE      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O         BLOCK I/O    PIDS
k3j4h5g6f7d8   web.1.k3j4h5g6f7d8s9a0q1w2e3r4   host1     50.00%    3MiB / 2GiB         0.15%     1.23kB / 648B   4.1MB / 0B   3
abc            db.1.abc                         n2        --        0B / 0B             --        0B / 0B         0B / 0B      0
`
	if buf.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := Write(&buf, Resolve("json", false, StatsTableFormat), StatsHeader, rows[:1]); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"CPUPerc":"50.00%"`, `"MemUsage":"3MiB / 2GiB"`, `"Name":"web.1.k3j4h5g6f7d8s9a0q1w2e3r4"`, `"PIDs":"3"`, `"Node":"host1"`} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("json %s: no %s", buf.String(), w)
		}
	}
}
