#!/usr/bin/env bash
# Runs shoal's raft store (raftstore BenchmarkReplicatedWrites, with the
# disk's limits BenchmarkFdatasync and BenchmarkQuorumFdatasync) and etcd
# (bench/etcd BenchmarkEtcdPut, a module of its own, three etcd members on
# loopback) on the same load, in one run, and prints the medians side by
# side. The rounds alternate (shoal, etcd, shoal, …) so that a change in the
# machine's load hits both sides alike. What each timer includes is in the
# benchmarks' doc comments and in BENCHMARKS.md ("Raft store: committed
# writes"). Needs etcd (Debian's etcd-server: scripts/install-deps.sh
# --bench-etcd, which make bench-etcd runs) or ETCD=/path/to/etcd.
#
#   scripts/bench-etcd.sh                  # 3 rounds, 5000 writes per case
#   COUNT=1 N=2000 scripts/bench-etcd.sh
#   SHOAL_TEST=/tmp/old.test scripts/bench-etcd.sh   # a prebuilt raftstore test binary
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
COUNT=${COUNT:-3}
N=${N:-5000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if [ -n "${SHOAL_TEST:-}" ]; then
	cp "$SHOAL_TEST" "$out/shoal.test"
else
	$GO test -c -o "$out/shoal.test" ./raftstore/
fi
(cd bench/etcd && $GO test -c -o "$out/etcd.test" .)
etcd=${ETCD:-$(command -v etcd || true)}
[ -n "$etcd" ] || { echo "bench-etcd: no etcd: run scripts/install-deps.sh --bench-etcd or set ETCD" >&2; exit 1; }
echo "etcd: $("$etcd" --version | head -1)"

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$COUNT"); do
	"$out/shoal.test" -test.run '^$' -test.bench 'Fdatasync|ReplicatedWrites' -test.benchtime "${N}x" -test.timeout 30m 2>&1 |
		tee -a "$out/raw" | grep '^Benchmark' || true
	ETCD=$etcd "$out/etcd.test" -test.run '^$' -test.bench EtcdPut -test.benchtime "${N}x" -test.timeout 30m 2>&1 |
		tee -a "$out/raw" | grep '^Benchmark' || true
	echo "round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
if grep -q -e '^--- FAIL' -e '^FAIL' "$out/raw"; then
	grep -A5 -e '^--- FAIL' -e '^FAIL' "$out/raw" >&2
	exit 1
fi

# Lines "benchmark unit value" (one per metric), then the median per
# benchmark and unit over the rounds.
awk '/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		for (i = 3; i < NF; i += 2) print name, $(i + 1), $i
	}' "$out/raw" |
	sort -k1,1 -k2,2 -k3,3g |
	awk '
	{ k = $1 " " $2; v[k, ++n[k]] = $3 }
	END {
		for (k in n) {
			c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
			med[k] = m; runs[k] = c
		}
		printf "| proposers | shoal writes/s | shoal p50 / p99 ms | etcd writes/s | etcd p50 / p99 ms | shoal ÷ etcd |\n|---|---|---|---|---|---|\n"
		split("1 16 256", ps, " ")
		for (i = 1; i <= 3; i++) {
			s = "BenchmarkReplicatedWrites/proposers=" ps[i]; e = "BenchmarkEtcdPut/proposers=" ps[i]
			sw = med[s " writes/s"]; ew = med[e " writes/s"]
			printf "| %s | %.0f (n=%d) | %.2f / %.1f | %.0f (n=%d) | %.2f / %.1f | %s |\n", ps[i],
				sw, runs[s " writes/s"], med[s " p50-ms"], med[s " p99-ms"],
				ew, runs[e " writes/s"], med[e " p50-ms"], med[e " p99-ms"],
				(sw && ew) ? sprintf("%.2f×", sw / ew) : "—"
		}
		printf "\n| disk (same run) | p50 ms | p99 ms |\n|---|---|---|\n"
		split("BenchmarkFdatasync BenchmarkQuorumFdatasync/fsyncs=1 BenchmarkQuorumFdatasync/fsyncs=2", ds, " ")
		for (i = 1; i <= 3; i++)
			if ((ds[i] " p50-ms") in med)
				printf "| `%s` | %.3f | %.2f |\n", ds[i], med[ds[i] " p50-ms"], med[ds[i] " p99-ms"]
	}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
