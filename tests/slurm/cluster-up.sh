#!/usr/bin/env bash
# Bring up a throwaway single-node SLURM cluster (Debian slurm-wlm + munge) for the
# dnatok SLURM test; also usable by hand to try the profile:
#
#   sudo tests/slurm/cluster-up.sh [DIR]      # prints: export SLURM_CONF=DIR/slurm.conf
#   sudo tests/slurm/cluster-down.sh [DIR]
#
# Needs root (apt-get, daemons). Idempotent: packages are installed only when missing,
# a cluster left over in DIR is stopped first, a running munged is reused.
# Every wait is bounded; on failure the daemons' logs are printed and it exits non-zero.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-${DNATOK_SLURM_CI_DIR:-/tmp/dnatok-slurm-ci}}"
CTLD_PORT="${DNATOK_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${DNATOK_SLURM_SLURMD_PORT:-6818}"
HOST="$(hostname -s)"

die() { echo "cluster-up: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, starts daemons)"

# 1. Packages: only when a binary is missing, so repeated runs cost nothing.
need_install=0
for bin in slurmctld slurmd sbatch squeue scontrol munged; do
    command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq
    timeout 600 apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

# 2. munge: reuse a working daemon, else start one (as the munge user, like the
# Debian service does). The package generates /etc/munge/munge.key on install.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        (munge -n | unmunge) >/dev/null 2>&1 && break
        sleep 0.1
    done
    (munge -n | unmunge) >/dev/null 2>&1 || die "munged did not come up"
fi

# 3. A fresh cluster folder (stopping what an earlier run may have left there).
"$HERE/cluster-down.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
mkdir -p "$DIR/state" "$DIR/spool"
for f in slurm.conf gres.conf; do
    sed -e "s|@HOST@|$HOST|g" -e "s|@DIR@|$DIR|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        "$HERE/$f.in" >"$DIR/$f"
done
export SLURM_CONF="$DIR/slurm.conf"

show_logs() {
    for log in "$DIR/slurmctld.log" "$DIR/slurmd.log"; do
        [ -f "$log" ] && { echo "--- $log (tail)"; tail -n 30 "$log"; }
    done >&2
}

# 4. Daemons: -c is a cold start (no state from earlier clusters). Both daemonize and
# write their pid files into $DIR, which cluster-down.sh uses.
slurmctld -c || { show_logs; die "slurmctld failed to start"; }
slurmd || { show_logs; die "slurmd failed to start"; }

# 5. Wait (bounded) until the node is idle in both partitions.
for _ in $(seq 150); do
    states="$(sinfo -h -o '%P %T' 2>/dev/null || true)"
    if [ "$(grep -c ' idle$' <<<"$states")" = 2 ]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.2
done
echo "sinfo says: ${states:-nothing}" >&2
show_logs
die "node did not become idle within 30 s"
