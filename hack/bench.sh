#!/usr/bin/env bash
# make bench: builds recipes/minimal.yaml and recipes/control-plane.yaml cold (no caches: time,
# peak memory), warm (the build cache) and with one sysctl changed, and prints each against the
# I/O floor (copying the image); the image size against its inputs; the
# time to write each other output format from the raw image, and kiln burn's throughput onto a
# loop device against dd's; then the boot milestones of the last VM runs, if there are any,
# the control plane's first boot against its reboot, and a timeline picture of those boots.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
kiln=$out/bin/kiln
mirror=""
img=$out/bench/minimal.raw
mkdir -p "$out/bench"
# seconds of wall time of a command, its peak RSS in KiB beside it in $out/bench/rss
timed() {
  /usr/bin/time -f '%e %M' -o "$out/bench/time" "$@" >/dev/null
  read -r s kb < "$out/bench/time"
  echo "$kb" > "$out/bench/rss"
  echo "$s"
}
# seconds to copy an image (the I/O floor of writing it)
cp_seconds() {
  local start
  start=$(date +%s.%N)
  cp --sparse=always "$1" "$out/bench/copy.raw"
  sync "$out/bench/copy.raw"
  echo "$(date +%s.%N) - $start" | bc
  rm -f "$out/bench/copy.raw"
}
# rows for recipe $1 (extra build flags after it): a cold build without caches (time, peak
# RSS), a warm rebuild (the build cache) and a rebuild with one sysctl changed, against cp.
# A sysctl with a value new on every run is added to (or changed in) a copy of the recipe
# beside it, so that rebuild never finds its plan in the cache.
recipe_rows() {
  local name=$1; shift
  local r=recipes/$name.yaml o=$out/bench/$name.raw changed=recipes/.bench-$name.yaml
  local cold cold_rss warm cp_s sysctl
  cold=$(timed "$kiln" build "$r" "$@" --cache-dir - -o "$o"); cold_rss=$(cat "$out/bench/rss")
  "$kiln" build "$r" "$@" -o "$o" >/dev/null # fill the build cache
  warm=$(timed "$kiln" build "$r" "$@" -o "$o")
  cp_s=$(cp_seconds "$o")
  if grep -q '^  sysctls:' "$r"; then
    sed "s/^  sysctls:/  sysctls:\n    net.core.somaxconn: $(( $(date +%s) % 100000 + 4096 ))/" "$r" > "$changed"
  else
    { cat "$r"; printf 'node:\n  sysctls:\n    net.core.somaxconn: %d\n' $(( $(date +%s) % 100000 + 4096 )); } > "$changed"
  fi
  sysctl=$(timed "$kiln" build "$changed" "$@" -o "$o")
  rm -f "$changed" "$changed.lock"
  printf '%-44s %.1f s, peak RSS %d MiB\n' "$name: cold build, no caches" "$cold" $((cold_rss >> 10))
  printf '%-44s %.1f s\n' "$name: warm rebuild (build cache)" "$warm"
  printf '%-44s %.2f s\n' "$name: cp of the image (I/O floor)" "$cp_s"
  printf '%-44s %.1f\n' "$name: warm rebuild / cp (goal <= 2)" "$(echo "$warm / $cp_s" | bc -l)"
  printf '%-44s %.1f s\n' "$name: rebuild, one sysctl changed" "$sysctl"
  printf '%-44s %.1f\n' "$name: one-sysctl rebuild / cp (goal <= 3)" "$(echo "$sysctl / $cp_s" | bc -l)"
  rm -f "$o"
}
$kiln build recipes/minimal.yaml $mirror -o "$img" >/dev/null # warm the caches
/usr/bin/time -f '%e %M' -o "$out/bench/time" $kiln build recipes/minimal.yaml $mirror -o "$img" >/dev/null
read -r build_s _ < "$out/bench/time"
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
recipe_rows minimal
recipe_rows control-plane --mirrors recipes/mirrors.yaml
printf '%-44s %d MiB (%d MiB apparent)\n' "image size, allocated" $((allocated >> 20)) $((apparent >> 20))
printf '%-44s %d MiB\n' "sum of compressed inputs" $((inputs >> 20))
printf '%-44s %.2f\n' "image (allocated) / inputs" "$(echo "$allocated / $inputs" | bc -l)"
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
q2=$out/qemu-tests/TestQ2Q4ControlPlane
if [ -f "$q2/first-boot/milestones.json" ] && [ -f "$q2/after-power-cut/milestones.json" ]; then
  python3 -c '
import json, sys
def ms(p):
    return {x["name"]: x["seconds"] for x in json.load(open(p))["milestones"] or []}
first, again = ms(sys.argv[1]), ms(sys.argv[2])
if "node Ready" in first and "node Ready" in again:
    print("%-44s %.0f s / %.0f s = %.2f" % ("control plane: first-boot / reboot node Ready", first["node Ready"], again["node Ready"], first["node Ready"] / again["node Ready"]))
    print("%-44s %s" % ("  (goal <= 1.15, TCG)", ""))
if "apiserver ready" in first:
    print("%-44s %.0f s" % ("control plane: first boot -> API ready (<= 90)", first["apiserver ready"]))' "$q2/first-boot/milestones.json" "$q2/after-power-cut/milestones.json"
fi
# The boots' milestones as a picture, first boot above the reboot.
timeline=()
for f in "$out"/qemu-tests/TestQ1Smoke/first-boot/milestones.json "$out"/qemu-tests/TestQ1Smoke/second-boot/milestones.json \
         "$q2"/first-boot/milestones.json "$q2"/after-power-cut/milestones.json; do
  [ -f "$f" ] && timeline+=("$f")
done
if [ ${#timeline[@]} -gt 0 ]; then
  python3 hack/timeline.py "$out/bench/timeline.svg" "${timeline[@]}"
  printf '%-44s %s\n' "boot timeline (SVG)" "$out/bench/timeline.svg"
fi
c="$out/qemu-tests/TestClusterQ5/cluster.json"
if [ -f "$c" ]; then
  python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
print("%-44s %.0f s" % ("cluster: both nodes Ready after power-on", c["bothReadySeconds"]))
print("%-44s %s" % ("cluster: memory used per VM (MiB)", " ".join("%s=%s" % kv for kv in sorted(c["memoryUsedMiB"].items()))))' "$c"
fi
