#!/usr/bin/env bash
# Per-event cost as the ledger grows (read + replay + index, from `--timings`), the
# accounts growing with the events (160 events an account: a plan credit, then usage
# spread over the accounts), 10^6 day-end queries. Runs each size REPEATS times, the
# CLIs given alternating, and prints best and median per event.
#   bench/per_event.sh "build/gpucredit [other/gpucredit ...]" "1000000 50000000" 3
set -euo pipefail
clis=${1:-build/gpucredit}
sizes=${2:-"1000000 50000000"}
repeats=${3:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "load average before: $(cut -d' ' -f1 /proc/loadavg)"
for events in $sizes; do
  accounts=$((events / 160))
  awk -v n="$events" -v a="$accounts" 'BEGIN {
    print "op,account,credit_id,timestamp,amount,expiration"
    for (i = 0; i < a; i++) printf "add,org-%d,plan,0,100000000,31535999\n", i
    for (i = a; i < n; i++) { h = int(i / a); printf "use,org-%d,,%d,%d,\n", (i * 7919) % a, h * 60 + (i % 60), 1 + (i * 7919) % 997 }
  }' >"$work/events.csv"
  awk -v a="$accounts" 'BEGIN { print "account,timestamp"; for (i = 0; i < 1000000; i++) printf "org-%d,%d\n", i % a, (int(i / a) + 1) * 86400 - 1 }' >"$work/queries.csv"
  echo "$events events over $accounts accounts ($(($(stat -c %s "$work/events.csv") / 1000000)) MB)"
  for cli in $clis; do : >"$work/$(echo "$cli" | tr / _).times"; done
  for ((r = 0; r < repeats; r++)); do
    for cli in $clis; do
      "$cli" balances --events "$work/events.csv" --queries "$work/queries.csv" --out "$work/out.csv" --timings 2>&1 |
        awk -v n="$events" '/read events|replay|index/ { s += $(NF - 1) } END { printf "%.4f\n", s / n * 1e6 }' >>"$work/$(echo "$cli" | tr / _).times"
    done
  done
  for cli in $clis; do
    sort -n "$work/$(echo "$cli" | tr / _).times" | awk -v c="$cli" '{ v[NR] = $1 } END { printf "  %s: per event best %.3f us, median %.3f us (%d runs)\n", c, v[1], v[int((NR + 1) / 2)], NR }'
  done
done
echo "load average after: $(cut -d' ' -f1 /proc/loadavg)"
