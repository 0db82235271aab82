#!/usr/bin/env bash
# Tear down the cluster that cluster-up.sh started in DIR: cancel its jobs, stop slurmd
# and slurmctld (by the pid files in DIR; bounded waits, SIGKILL as last resort) and
# remove the /etc/slurm files cluster-up.sh wrote. munged is left running: it is a
# shared system daemon and costs nothing idle.
set -uo pipefail

DIR="${1:-${DNATOK_SLURM_CI_DIR:-/tmp/dnatok-slurm-ci}}"
ETC=/etc/slurm
MARK="# dnatok-ci cluster"
ours() { [ -f "$1" ] && head -n 1 "$1" | grep -q "^$MARK"; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Jobs first, so no job steps outlive their slurmd.
if ours "$ETC/slurm.conf" && alive "$DIR/slurmctld.pid"; then
    timeout 10 scancel --full --user="$(id -un)" >/dev/null 2>&1 || true
fi

stop() {  # stop PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
    local pidfile="$1" pid
    alive "$pidfile" || return 0
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"

for f in slurm.conf gres.conf; do
    if ours "$ETC/$f"; then rm -f "$ETC/$f"; fi
done
exit 0
