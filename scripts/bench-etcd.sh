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
#   SHOAL_TEST=new.test BASE_TEST=old.test scripts/bench-etcd.sh
#
# SHOAL_TEST is a prebuilt raftstore test binary to run instead of building
# this tree's; BASE_TEST, another one (an older commit's) whose
# BenchmarkReplicatedWrites runs in the same rounds, for a before/after.
# BenchmarkReplicatedWrites runs its three members in one process with
# 3 x CPUs processors (GOMAXPROCS), as three processes would have; BASE_TEST
# gets BASE_PROCS processors, 3 x CPUs unless set (binaries older than that
# setting ran on one machine's processors: BASE_PROCS=$(nproc) measures them
# as they were).
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
[ -z "${BASE_TEST:-}" ] || cp "$BASE_TEST" "$out/base.test"
(cd bench/etcd && $GO test -c -o "$out/etcd.test" .)
etcd=${ETCD:-$(command -v etcd || true)}
[ -n "$etcd" ] || { echo "bench-etcd: no etcd: run scripts/install-deps.sh --bench-etcd or set ETCD" >&2; exit 1; }
echo "etcd: $("$etcd" --version | head -1)"

# side NAME CMD...: runs a benchmark binary, keeps its output in raw with
# the side's name before every result line, and shows the result lines.
side() {
	local name=$1
	shift
	"$@" 2>&1 | sed "s/^Benchmark/$name Benchmark/" | tee -a "$out/raw" | grep "^$name Benchmark" || true
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$COUNT"); do
	side shoal "$out/shoal.test" -test.run '^$' -test.bench 'Fdatasync|ReplicatedWrites' -test.benchtime "${N}x" -test.timeout 30m
	side etcd env ETCD="$etcd" "$out/etcd.test" -test.run '^$' -test.bench EtcdPut -test.benchtime "${N}x" -test.timeout 30m
	[ -z "${BASE_TEST:-}" ] ||
		side base env GOMAXPROCS="${BASE_PROCS:-$((3 * $(nproc)))}" "$out/base.test" -test.run '^$' -test.bench 'ReplicatedWrites' -test.benchtime "${N}x" -test.timeout 30m
	echo "round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
if grep -q -e '^--- FAIL' -e '^FAIL' "$out/raw"; then
	grep -A5 -e '^--- FAIL' -e '^FAIL' "$out/raw" >&2
	exit 1
fi

# Lines "side/benchmark unit value" (one per metric), then the median per
# side, benchmark and unit over the rounds.
awk '/^[a-z]+ Benchmark/ {
		name = $1 "/" $2; sub(/-[0-9]+$/, "", name)
		for (i = 4; i < NF; i += 2) print name, $(i + 1), $i
	}' "$out/raw" |
	sort -k1,1 -k2,2 -k3,3g |
	awk -v base="${BASE_TEST:+1}" '
	function batch(b) { return ((b " entries/append") in med) ? sprintf("%.1f", med[b " entries/append"]) : "—" }
	{ k = $1 " " $2; v[k, ++n[k]] = $3 }
	END {
		for (k in n) {
			c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
			med[k] = m; runs[k] = c
		}
		printf "| proposers | shoal writes/s | shoal p50 / p99 ms (entries/append) | etcd writes/s | etcd p50 / p99 ms | shoal ÷ etcd |"
		if (base) printf " base writes/s | base p50 / p99 ms (entries/append) | shoal ÷ base |"
		printf "\n|---|---|---|---|---|---|%s\n", base ? "---|---|---|" : ""
		split("1 16 256", ps, " ")
		for (i = 1; i <= 3; i++) {
			s = "shoal/BenchmarkReplicatedWrites/proposers=" ps[i]; e = "etcd/BenchmarkEtcdPut/proposers=" ps[i]
			sw = med[s " writes/s"]; ew = med[e " writes/s"]
			printf "| %s | %.0f (n=%d) | %.2f / %.1f (%s) | %.0f (n=%d) | %.2f / %.1f | %s |", ps[i],
				sw, runs[s " writes/s"], med[s " p50-ms"], med[s " p99-ms"], batch(s),
				ew, runs[e " writes/s"], med[e " p50-ms"], med[e " p99-ms"],
				(sw && ew) ? sprintf("%.2f×", sw / ew) : "—"
			if (base) {
				o = "base/BenchmarkReplicatedWrites/proposers=" ps[i]; bw = med[o " writes/s"]
				printf " %.0f (n=%d) | %.2f / %.1f (%s) | %s |", bw, runs[o " writes/s"], med[o " p50-ms"], med[o " p99-ms"], batch(o),
					(sw && bw) ? sprintf("%.2f×", sw / bw) : "—"
			}
			printf "\n"
		}
		printf "\n| disk (same run) | p50 ms | p99 ms |\n|---|---|---|\n"
		split("BenchmarkFdatasync BenchmarkQuorumFdatasync/fsyncs=1 BenchmarkQuorumFdatasync/fsyncs=2", ds, " ")
		for (i = 1; i <= 3; i++)
			if (("shoal/" ds[i] " p50-ms") in med)
				printf "| `%s` | %.3f | %.2f |\n", ds[i], med["shoal/" ds[i] " p50-ms"], med["shoal/" ds[i] " p99-ms"]
		q = med["shoal/BenchmarkQuorumFdatasync/fsyncs=1 p50-ms"]; p = med["shoal/BenchmarkReplicatedWrites/proposers=1 p50-ms"]
		if (q && p) printf "\nsingle-proposer p50 ÷ quorum fdatasync p50 (one fsync): %.2f×\n", p / q
	}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
