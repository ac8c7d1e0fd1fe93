#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, private to this test: its own munged (key, socket),
# slurmctld and slurmd (ports, spool, state, logs, SLURM_CONF) under a temporary folder. Submits a
# 3-point `cflow sweep --slurm`, waits for the job array, collects, checks 3 completed rows, and stops
# only the daemons it started. Exit 77 (skipped) with the reason when Slurm is not installed
# (bash scripts/setup.sh --test installs it) or its daemons cannot start here.
#   test_slurm.sh CFLOW_BINARY
set -uo pipefail
cflow=$1
skip() { echo "SKIPPED: $*"; exit 77; }
for program in munged mungekey munge unmunge slurmctld slurmd sinfo sbatch squeue; do
  command -v "$program" >/dev/null || skip "$program not found: install slurm-wlm and munge (bash scripts/setup.sh --test)"
done
[[ $(id -u) -eq 0 ]] || skip "the daemons run as root here (SlurmUser=root); run the test as root"

work=$(mktemp -d /tmp/cflow_test_slurm.XXXXXX)
pids=()
stop_daemons() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done  # reaped here: PID 1 may not reap
  rm -rf "$work"
}
trap stop_daemons EXIT
mkdir -p "$work"/{state,spool,log}
logs() { tail -n 5 "$work"/log/*.log 2>/dev/null; }

# munged: a private key and socket (slurm.conf's AuthInfo points Slurm at it).
socket=$work/munge.sock
mungekey -c -k "$work/munge.key" >/dev/null 2>&1 || skip "mungekey cannot create a key"
munged -F --force --key-file="$work/munge.key" --socket="$socket" --pid-file="$work/munged.pid" \
  --log-file="$work/log/munged.log" --seed-file="$work/munged.seed" &>"$work/log/munged.out" &
pids+=($!)
for _ in $(seq 100); do munge -n -S "$socket" 2>/dev/null | unmunge -S "$socket" >/dev/null 2>&1 && break; sleep 0.1; done
munge -n -S "$socket" | unmunge -S "$socket" >/dev/null 2>&1 || { logs; skip "munged did not start"; }

# slurm.conf for this host: ports picked from the PID so concurrent runs of this test do not meet.
host=$(hostname)
port=$((20000 + ($$ % 5000) * 2))
memory=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
export SLURM_CONF=$work/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=cflowtest
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
NodeName=$host CPUs=$(nproc) RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -c -f "$SLURM_CONF" &>"$work/log/slurmctld.out" &
pids+=($!)
slurmd -D -f "$SLURM_CONF" &>"$work/log/slurmd.out" &
pids+=($!)
for _ in $(seq 150); do [[ $(sinfo -h -o %t 2>/dev/null) == idle ]] && break; sleep 0.2; done
[[ $(sinfo -h -o %t 2>/dev/null) == idle ]] || { logs; skip "slurmctld/slurmd did not come up (sinfo: $(sinfo -h -o %t 2>&1))"; }

# A 3-point sweep of tiny runs, submitted as a job array.
cat > "$work/spec.toml" <<'SPEC'
name = "slurm-test"
[base]
data = "moons"
n = 64
n-test = 0
steps = 20
threads = 1
runs = ["discrete", "central"]
[grid]
width = [8, 12, 16]
SPEC
fail() { echo "FAILED: $*"; logs; cat "$work"/sweep/slurm/*.out 2>/dev/null | tail -n 20; exit 1; }
"$cflow" sweep "$work/spec.toml" --out "$work/sweep" --slurm --max-parallel 2 || fail "cflow sweep --slurm"
job=$(cat "$work/sweep/slurm/job_id") || fail "no job id"
for _ in $(seq 600); do [[ -z $(squeue -h -j "$job" 2>/dev/null) ]] && break; sleep 0.2; done
[[ -z $(squeue -h -j "$job" 2>/dev/null) ]] || fail "job $job still queued after 120 s"
"$cflow" sweep "$work/sweep" --status
"$cflow" sweep "$work/sweep" --collect || fail "cflow sweep --collect"
rows=$(tail -n +2 "$work/sweep/sweep.csv" | grep -c ',completed,0,')
[[ $rows -eq 3 ]] || fail "expected 3 completed rows in sweep.csv, got $rows: $(cat "$work/sweep/sweep.csv")"
echo "slurm job $job: 3 points completed and collected"
