#!/usr/bin/env bash
# Tear down the cluster that cluster-up.sh started in DIR: cancel its jobs, stop
# slurmd and slurmctld (by the pid files in DIR), bounded waits, SIGKILL as last resort.
# munged is left running: it is a shared system daemon and costs nothing idle.
set -uo pipefail

DIR="${1:-${DNATOK_SLURM_CI_DIR:-/tmp/dnatok-slurm-ci}}"
[ -f "$DIR/slurm.conf" ] || exit 0
export SLURM_CONF="$DIR/slurm.conf"

# Jobs first, so no job steps outlive their slurmd.
if [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
    timeout 10 scancel --full --user=root >/dev/null 2>&1 || true
fi

stop() {  # stop PIDFILE: SIGTERM, wait up to 10 s, then SIGKILL
    local pidfile="$1" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
# Job steps (slurmstepd) of this cluster that survived their slurmd.
for pid in $(pgrep -x slurmstepd 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$pid/environ" 2>/dev/null | grep -q "SLURM_CONF=$DIR/slurm.conf"; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
exit 0
