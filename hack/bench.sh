#!/usr/bin/env bash
# make bench: builds recipes/minimal.yaml warm and prints a table of the build's cost against
# the I/O floor (copying the image), the image size against its inputs, and peak memory; the
# time to write each other output format from the raw image, and kiln burn's throughput onto a
# loop device against dd's; then the boot milestones of the last VM runs, if there are any.
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
# Each format written from the raw image, as a build does (a build with every format, minus the
# raw build alone).
for fmt in qcow2 vmdk vhd iso pxe; do
  /usr/bin/time -f '%e' -o "$out/bench/time" $kiln build recipes/minimal.yaml $mirror --format raw,$fmt -o "$img" >/dev/null
  printf '%-44s %.1f s\n' "writing $fmt from the raw image" "$(echo "$(cat "$out/bench/time") - $build_s" | bc -l)"
  rm -rf "$out/bench/minimal.$fmt"
done
# kiln burn onto a loop device against dd of the same image onto the same device. The device is
# a file in $out/bench, not in memory: both write the same bytes through the same page cache
# of the backing file's file system. kiln's write phase counts alone; its read-back is shown
# apart.
dev_file="$out/bench/loop.img"
truncate -s "$(( apparent + (64 << 20) ))" "$dev_file"
loopdev=$(losetup --find --show "$dev_file")
trap 'losetup -d "$loopdev" 2>/dev/null || true' EXIT
start=$(date +%s.%N)
dd if="$img" of="$loopdev" bs=4M oflag=direct conv=fsync status=none
dd_s=$(echo "$(date +%s.%N) - $start" | bc)
burn=$($kiln burn "$img" "$loopdev" --yes --output json)
read -r burn_s verify_s < <(echo "$burn" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["writeSeconds"], r["verifySeconds"])')
losetup -d "$loopdev"
rm -f "$dev_file"
printf '%-44s %.1f s\n' "dd bs=4M oflag=direct onto a loop device" "$dd_s"
printf '%-44s %.1f s (+ %.1f s verifying)\n' "kiln burn onto the same loop device" "$burn_s" "$verify_s"
printf '%-44s %.2f\n' "burn / dd ratio (goal <= 1.1)" "$(echo "$burn_s / $dd_s" | bc -l)"
for f in "$out"/qemu-tests/TestQ1Smoke/*/milestones.json "$out"/qemu-tests/TestLiveMedia/*/milestones.json \
         "$out"/qemu-tests/TestISOInstall/*/milestones.json "$out"/qemu-tests/TestQ2Q4ControlPlane/*/milestones.json \
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
