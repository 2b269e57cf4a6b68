#!/usr/bin/env bash
# make bench: builds recipes/minimal.yaml warm and prints a table of the build's cost against
# the I/O floor (copying the image), the image size against its inputs, and peak memory; then
# the boot milestones of the last Q1 run, if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
kiln=$out/bin/kiln
mirror=""
img=$out/bench/minimal.raw
mkdir -p "$out/bench"
$kiln build recipes/minimal.yaml $mirror -o "$img" >/dev/null # warm the cache
/usr/bin/time -f '%e %M' -o "$out/bench/time" $kiln build recipes/minimal.yaml $mirror -o "$img" >/dev/null
read -r build_s rss_kb < "$out/bench/time"
start=$(date +%s.%N)
cp --sparse=always "$img" "$out/bench/copy.raw"
sync "$out/bench/copy.raw"
cp_s=$(echo "$(date +%s.%N) - $start" | bc)
rm -f "$out/bench/copy.raw"
inputs=$($kiln plan recipes/minimal.yaml $mirror --output json | python3 -c '
import json, sys, os
plan = json.load(sys.stdin)
total = 0
for i in plan["inputs"]:
    d = i["from"].removeprefix("oci-layout:")
    h = i["digest"].split(":")[1]
    m = json.load(open(os.path.join(d, "blobs", "sha256", h)))
    total += sum(l["size"] for l in m["layers"])
print(total)')
allocated=$(( $(stat -c %b "$img") * 512 ))
apparent=$(stat -c %s "$img")
printf '\n%-44s %s\n' "measure" "value"
printf '%-44s %s\n' "--------------------------------------------" "------------"
printf '%-44s %.1f s\n' "warm build of recipes/minimal.yaml" "$build_s"
printf '%-44s %.2f s\n' "cp of the image (I/O floor)" "$cp_s"
printf '%-44s %.1f\n' "build / cp ratio (goal <= 2)" "$(echo "$build_s / $cp_s" | bc -l)"
printf '%-44s %d MiB (%d MiB apparent)\n' "image size, allocated" $((allocated >> 20)) $((apparent >> 20))
printf '%-44s %d MiB\n' "sum of compressed inputs" $((inputs >> 20))
printf '%-44s %.2f\n' "image (allocated) / inputs" "$(echo "$allocated / $inputs" | bc -l)"
printf '%-44s %d MiB\n' "builder peak RSS (goal <= 300 MiB)" $((rss_kb >> 10))
for f in "$out"/qemu-tests/TestQ1Smoke/*/milestones.json "$out"/qemu-tests/TestQ2Q4ControlPlane/*/milestones.json \
         "$out"/qemu-tests/TestClusterQ5/*/milestones.json; do
  [ -f "$f" ] || continue
  python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))
print("%-44s %s" % (sys.argv[1].split("/")[-3].removeprefix("Test")[:8] + " " + m["machine"] + " (TCG, s)", " ".join("%s=%.1f" % (x["name"], x["seconds"]) for x in (m["milestones"] or []))))' "$f"
done
c="$out/qemu-tests/TestClusterQ5/cluster.json"
if [ -f "$c" ]; then
  python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
print("%-44s %.0f s" % ("cluster: both nodes Ready after power-on", c["bothReadySeconds"]))
print("%-44s %s" % ("cluster: memory used per VM (MiB)", " ".join("%s=%s" % kv for kv in sorted(c["memoryUsedMiB"].items()))))' "$c"
fi
