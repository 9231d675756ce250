package containerd

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pullMetrics count the executor's image pulls (docs/metrics.md).
type pullMetrics struct {
	pulls   *prometheus.CounterVec
	seconds prometheus.Histogram
	bytes   prometheus.Counter
}

func newPullMetrics() *pullMetrics {
	return &pullMetrics{
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_image_pulls_total",
			Help: "Image pulls by result: pulled, local (the registry failed and a local copy was used), failed."}, []string{"result"}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_image_pull_seconds",
			Help:    "Time to pull and unpack an image (shared pulls of one reference count once).",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_image_pull_bytes_total",
			Help: "Bytes of image content fetched from registries (blobs already on the node are not fetched)."}),
	}
}

// statsTimeout bounds one scrape's reading of the tasks.
const statsTimeout = 5 * time.Second

var (
	taskLabels   = []string{"task_id", "task_name", "service_id", "service_name"}
	descTaskCPU  = prometheus.NewDesc("shoal_task_cpu_seconds_total", "CPU time used by the task's container.", taskLabels, nil)
	descTaskMem  = prometheus.NewDesc("shoal_task_memory_usage_bytes", "Memory the task's container uses, without inactive page cache (as docker stats counts it).", taskLabels, nil)
	descTaskLim  = prometheus.NewDesc("shoal_task_memory_limit_bytes", "The task's memory limit (the node's memory when it has none).", taskLabels, nil)
	descTaskRx   = prometheus.NewDesc("shoal_task_network_receive_bytes_total", "Bytes received on the task's interfaces (all but lo).", taskLabels, nil)
	descTaskTx   = prometheus.NewDesc("shoal_task_network_transmit_bytes_total", "Bytes sent on the task's interfaces (all but lo).", taskLabels, nil)
	descTaskBlkR = prometheus.NewDesc("shoal_task_block_read_bytes_total", "Bytes the task's container read from block devices.", taskLabels, nil)
	descTaskBlkW = prometheus.NewDesc("shoal_task_block_write_bytes_total", "Bytes the task's container wrote to block devices.", taskLabels, nil)
	descTaskPids = prometheus.NewDesc("shoal_task_pids", "Processes in the task's container.", taskLabels, nil)
	descStatsErr = prometheus.NewDesc("shoal_task_stats_errors", "1 when the last scrape could not read the tasks' statistics, else 0.", nil, nil)
)

// Collector returns the executor's metrics: image pulls, and each running
// task's CPU, memory, network and block I/O read at scrape time.
func (e *Executor) Collector() prometheus.Collector { return execCollector{e} }

type execCollector struct{ e *Executor }

func (c execCollector) Describe(ch chan<- *prometheus.Desc) {
	c.e.pm.pulls.Describe(ch)
	c.e.pm.seconds.Describe(ch)
	c.e.pm.bytes.Describe(ch)
	for _, d := range []*prometheus.Desc{descTaskCPU, descTaskMem, descTaskLim, descTaskRx, descTaskTx, descTaskBlkR, descTaskBlkW, descTaskPids, descStatsErr} {
		ch <- d
	}
}

func (c execCollector) Collect(ch chan<- prometheus.Metric) {
	c.e.pm.pulls.Collect(ch)
	c.e.pm.seconds.Collect(ch)
	c.e.pm.bytes.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	sts, err := c.e.Stats(ctx, nil)
	failed := 0.0
	if err != nil {
		failed = 1
	}
	ch <- prometheus.MustNewConstMetric(descStatsErr, prometheus.GaugeValue, failed)
	for _, s := range sts {
		l := []string{s.GetTaskId(), s.GetTaskName(), s.GetServiceId(), s.GetServiceName()}
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
		}
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
		}
		counter(descTaskCPU, float64(s.GetCpuNanos())/1e9)
		gauge(descTaskMem, float64(s.GetMemoryUsage()))
		gauge(descTaskLim, float64(s.GetMemoryLimit()))
		counter(descTaskRx, float64(s.GetNetRxBytes()))
		counter(descTaskTx, float64(s.GetNetTxBytes()))
		counter(descTaskBlkR, float64(s.GetBlockReadBytes()))
		counter(descTaskBlkW, float64(s.GetBlockWriteBytes()))
		gauge(descTaskPids, float64(s.GetPids()))
	}
}
