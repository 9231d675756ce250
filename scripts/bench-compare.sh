#!/usr/bin/env bash
# Runs shoal's scheduling loop (manager/schedloop BenchmarkSchedLoop) and
# SwarmKit's scheduler (bench/swarmkit BenchmarkSwarmKitScheduler, a module
# of its own) on the same cases, in one run, and prints the medians side by
# side. The rounds alternate (shoal, SwarmKit, shoal, …) so that a change in
# the machine's load hits both sides alike. What each timer includes is in
# the two benchmarks' doc comments and in BENCHMARKS.md.
#
#   scripts/bench-compare.sh            # 3 rounds of every case
#   COUNT=1 BENCH='/1svc_x_10k_tasks/' scripts/bench-compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
COUNT=${COUNT:-3}
BENCH=${BENCH:-.}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

$GO test -c -o "$out/shoal.test" ./manager/schedloop/
(cd bench/swarmkit && $GO test -c -o "$out/swarmkit.test" .)

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$COUNT"); do
	"$out/shoal.test" -test.run '^$' -test.bench "SchedLoop/$BENCH" -test.benchtime 1x -test.timeout 60m 2>&1 |
		tee -a "$out/raw" | grep '^Benchmark' || true
	(cd bench/swarmkit && "$out/swarmkit.test" -test.run '^$' -test.bench "SwarmKitScheduler/$BENCH" -test.benchtime 1x -test.timeout 60m) 2>&1 |
		tee -a "$out/raw" | grep '^Benchmark' || true
	echo "round $r done, load $(cut -d' ' -f1-3 /proc/loadavg)"
done
if grep -q '^--- FAIL' "$out/raw"; then
	grep -A3 '^--- FAIL' "$out/raw" >&2
	exit 1
fi

# Lines "side case ns", then the median per side and case (runs of one
# side and case sorted by time; the middle one, or the mean of the middle
# two).
sed -n -E 's/^Benchmark(SchedLoop|SwarmKitScheduler)\/([^ 	]+)-[0-9]+[ 	]+[0-9]+[ 	]+([0-9.]+) ns\/op.*/\1 \2 \3/p' "$out/raw" |
	sort -k1,1 -k2,2 -k3,3n |
	awk '
	{ k = $1 " " $2; v[k, ++n[k]] = $3 }
	END {
		for (k in n) {
			c = n[k]; m = (c % 2) ? v[k, (c + 1) / 2] : (v[k, c / 2] + v[k, c / 2 + 1]) / 2
			split(k, p, " "); med[p[1], p[2]] = m; runs[p[1], p[2]] = c; cases[p[2]] = 1
		}
		printf "| case | shoal schedloop | SwarmKit scheduler | SwarmKit ÷ shoal |\n|---|---|---|---|\n"
		nc = 0; for (c in cases) names[++nc] = c
		for (i = 2; i <= nc; i++) { x = names[i]; for (j = i - 1; j >= 1 && names[j] > x; j--) names[j + 1] = names[j]; names[j + 1] = x }
		for (i = 1; i <= nc; i++) {
			c = names[i]; a = med["SchedLoop", c]; b = med["SwarmKitScheduler", c]
			split(c, parts, "/"); tasks = parts[2] ~ /100k/ ? 100000 : 10000
			cell_a = a ? sprintf("%.0f ms (%.0f/s, n=%d)", a / 1e6, tasks / (a / 1e9), runs["SchedLoop", c]) : "—"
			cell_b = b ? sprintf("%.0f ms (%.0f/s, n=%d)", b / 1e6, tasks / (b / 1e9), runs["SwarmKitScheduler", c]) : "—"
			ratio = (a && b) ? sprintf("%.1f×", b / a) : "—"
			printf "| `%s` | %s | %s | %s |\n", c, cell_a, cell_b, ratio
		}
	}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
