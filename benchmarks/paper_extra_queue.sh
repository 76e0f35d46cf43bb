#!/usr/bin/env bash
# Run the commands listed in benchmarks/results/paper_extra_jobs.txt one after another (nice 10),
# re-reading the file so jobs can be appended while it runs. Progress: paper_extra_queue.log.
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
jobs=benchmarks/results/paper_extra_jobs.txt
done_n=0
while true; do
  total=$(grep -c . "$jobs")
  if [ "$done_n" -ge "$total" ]; then sleep 20; total=$(grep -c . "$jobs"); [ "$done_n" -ge "$total" ] && break; fi
  done_n=$((done_n + 1))
  cmd=$(grep . "$jobs" | sed -n "${done_n}p")
  echo "$(date -u +%H:%M:%S) start $cmd"
  nice -n 10 bash -c "$cmd"
  echo "$(date -u +%H:%M:%S) done rc=$?"
done
