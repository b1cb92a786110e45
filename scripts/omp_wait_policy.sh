#!/usr/bin/env bash
# Prints the OpenMP wait policy for a CPU job started now: PASSIVE when other processes keep half a CPU or
# more busy, nothing (libgomp's default) otherwise; the reason goes to stderr. libgomp reads OMP_WAIT_POLICY
# once, when torch is imported, so a launcher decides it (scripts/demo.sh). Its default spins a while before
# a waiting thread sleeps: on the idle 2-core AMD EPYC (Zen 5, AVX-512) VM the demo's step took 0.12 s with it and 0.22 s with PASSIVE
# (threads sleep at once). But a spinning thread holds a core another process needs: with a busy-looping
# process per core the step took 1.25 s against 0.40 s with PASSIVE, and with one such process on the two
# cores 0.29-0.32 s against 0.20-0.22 s.
set -euo pipefail
[ -r /proc/stat ] || exit 0
# CPUs' worth of time over one second that was not idle: other processes' and, as steal, the hypervisor's.
# The line "cpu" sums the lines "cpu0", "cpu1", ...: their count scales its share to CPUs.
ticks() { awk '/^cpu /{ t = $2+$3+$4+$5+$6+$7+$8+$9; i = $5+$6 } /^cpu[0-9]/{ n++ } END { print t, i, n }' /proc/stat; }
read -r total0 idle0 cpus < <(ticks)
sleep 1
read -r total1 idle1 _ < <(ticks)
busy=$(awk -v t=$((total1 - total0)) -v i=$((idle1 - idle0)) -v n="$cpus" \
  'BEGIN { printf "%.1f", (t > 0 ? (t - i) / t * n : 0) }')
if awk -v b="$busy" 'BEGIN { exit !(b >= 0.5) }'; then
  echo "==> other processes keep $busy of $cpus CPUs busy: OpenMP threads will sleep while they wait (OMP_WAIT_POLICY=PASSIVE)" >&2
  echo PASSIVE
fi
