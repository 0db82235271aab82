#!/usr/bin/env bash
# Bring up a throwaway single-node SLURM cluster (Debian slurm-wlm + munge) for the
# dnatok SLURM test; also usable by hand to try the profile:
#
#   sudo tests/slurm/cluster-up.sh [DIR]     # DIR: state and logs (default /tmp/dnatok-slurm-ci)
#   sudo tests/slurm/cluster-down.sh [DIR]
#
# Two partitions on the one node: ci-gpu (with 2 fake A6000s) and ci-cpu (the default).
# Needs root (apt-get, daemons, /etc/slurm). Idempotent: packages are installed only
# when missing, a cluster left over in DIR is stopped first, a running munged is reused.
# Every wait is bounded.
#
# Exit status: 0 up; 3 this machine cannot host it (not root, packages cannot be
# installed, or /etc/slurm/slurm.conf belongs to a real cluster) -- the test skips;
# anything else is a failure (the daemons' logs are printed).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-${DNATOK_SLURM_CI_DIR:-/tmp/dnatok-slurm-ci}}"
CTLD_PORT="${DNATOK_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${DNATOK_SLURM_SLURMD_PORT:-6818}"
HOST="$(hostname -s)"
ETC=/etc/slurm
MARK="# dnatok-ci cluster"

die() { echo "cluster-up: $*" >&2; exit 1; }
cannot() { echo "cluster-up: $*" >&2; exit 3; }
[ "$(id -u)" = 0 ] || cannot "must run as root (installs packages, starts daemons)"

# 1. Packages: only when a binary is missing, so repeated runs cost nothing.
need_install=0
for bin in slurmctld slurmd sbatch squeue scontrol munged; do
    command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "$need_install" = 1 ]; then
    command -v apt-get >/dev/null 2>&1 || cannot "SLURM is not installed and there is no apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || cannot "apt-get update failed"
    timeout 600 apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null \
        || cannot "apt-get install slurmctld slurmd slurm-client munge failed"
fi

# 2. Never overwrite the configuration of a real cluster.
if [ -e "$ETC/slurm.conf" ] && ! head -n 1 "$ETC/slurm.conf" | grep -q "^$MARK"; then
    cannot "$ETC/slurm.conf exists and was not written by this script; not touching it"
fi

# 3. munge: reuse a working daemon, else start one (as the munge user, like the
# Debian service does). The package generates /etc/munge/munge.key on install.
if ! (munge -n | unmunge) >/dev/null 2>&1; then
    [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1
    for _ in $(seq 50); do
        (munge -n | unmunge) >/dev/null 2>&1 && break
        sleep 0.1
    done
    (munge -n | unmunge) >/dev/null 2>&1 || die "munged did not come up"
fi

# 4. A fresh cluster folder (stopping what an earlier run may have left there), and
# the rendered configuration in /etc/slurm (copies stay in DIR for reference).
"$HERE/cluster-down.sh" "$DIR" >/dev/null 2>&1 || true
rm -rf "$DIR"
mkdir -p "$DIR/state" "$DIR/spool" "$ETC"
for f in slurm.conf gres.conf; do
    sed -e "s|@HOST@|$HOST|g" -e "s|@DIR@|$DIR|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        "$HERE/$f.in" >"$DIR/$f"
    cp "$DIR/$f" "$ETC/$f"
done
# Only the default location works for every client (see slurm.conf.in).
unset SLURM_CONF

show_logs() {
    for log in "$DIR/slurmctld.log" "$DIR/slurmd.log"; do
        [ -f "$log" ] && { echo "--- $log (tail)"; tail -n 30 "$log"; }
    done >&2
}

# 5. Daemons: -c is a cold start (no state from earlier clusters). Both daemonize and
# write their pid files into DIR, which cluster-down.sh uses. Their stdio goes to a
# file: a daemon holding the caller's pipe open would make a caller that reads our
# output (pytest's subprocess.run) wait forever.
slurmctld -c </dev/null >>"$DIR/daemons.out" 2>&1 || { show_logs; die "slurmctld failed to start"; }
slurmd </dev/null >>"$DIR/daemons.out" 2>&1 || { show_logs; die "slurmd failed to start"; }

# 6. Wait (bounded) until the node is idle in both partitions.
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
    states="$(timeout 5 sinfo -h -o '%P %T' 2>/dev/null || true)"
    if [ "$(grep -c ' idle$' <<<"$states")" = 2 ]; then
        echo "cluster up: $(sinfo -h -o '%P' | tr '\n' ' ')(state and logs in $DIR)"
        exit 0
    fi
    sleep 0.2
done
echo "sinfo says: ${states:-nothing}" >&2
show_logs
die "node did not become idle within 30 s"
