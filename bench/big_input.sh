#!/usr/bin/env bash
# Streams a large generated ledger through `gpucredit balances` and reports peak memory:
# EVENTS events over 10,000 accounts (each a plan credit, then hourly usage), 1,000,000
# day-end queries. Prints the input size, wall time, peak RSS and bytes per event.
#   bench/big_input.sh build/gpucredit 50000000
set -euo pipefail
cli=${1:-build/gpucredit}
events=${2:-50000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
accounts=10000
awk -v n="$events" -v a="$accounts" 'BEGIN {
  print "op,account,credit_id,timestamp,amount,expiration"
  for (i = 0; i < a; i++) printf "add,org-%d,plan,0,100000000,31535999\n", i
  for (i = a; i < n; i++) { h = int(i / a); printf "use,org-%d,,%d,%d,\n", i % a, h * 3600 + (i % 3600), 1 + (i * 7919) % 997 }
}' >"$work/events.csv"
awk -v a="$accounts" 'BEGIN { print "account,timestamp"; for (i = 0; i < 1000000; i++) printf "org-%d,%d\n", i % a, (int(i / a) + 1) * 86400 - 1 }' >"$work/queries.csv"
bytes=$(stat -c %s "$work/events.csv")
/usr/bin/time -f "%e %M" -o "$work/time.txt" "$cli" balances --events "$work/events.csv" --queries "$work/queries.csv" --out "$work/out.csv"
read -r seconds peak_kib <"$work/time.txt"
rows=$(($(wc -l <"$work/out.csv") - 1))
echo "events: $events ($((bytes / 1000000)) MB), queries answered: $rows"
echo "wall: ${seconds} s, peak RSS: $((peak_kib / 1024)) MiB, $(awk -v k="$peak_kib" -v e="$events" 'BEGIN{printf "%.1f", k*1024/e}') bytes per event"
