#!/usr/bin/env bash
# Start a local single-node SLURM cluster with real accounting (munged, MariaDB, slurmdbd,
# slurmctld, slurmd), all state under $LSKD_SLURM_DIR (default: .slurm/ in the repository).
# Needs root and Debian's packages (scripts/setup.sh installs them). Stop it with
# scripts/slurm/down.sh: while /etc/slurm/slurm.conf exists without a running slurmctld,
# every snakemake call on the machine waits ~11 s for `scontrol show config`.
#
#   bash scripts/slurm/up.sh     # idempotent: does nothing when the cluster is already up
#   sinfo; sacct                 # partition `debug`, node `localhost`
#   bash scripts/slurm/down.sh   # stops every daemon by its PID file, removes the link
set -Eeuo pipefail
source "$(dirname "$0")/common.sh"
start=$SECONDS

for exe in munged mungekey mariadb-install-db mariadbd slurmdbd slurmctld slurmd sacct; do
    command -v "$exe" > /dev/null || {
        echo "slurm/up: $exe not found: run scripts/setup.sh (Debian packages slurm-wlm," \
            "slurmdbd, munge, mariadb-server)" >&2
        exit 3
    }
done
((EUID == 0)) || { echo "slurm/up: must run as root (daemons run as root)" >&2; exit 3; }

running=0
for entry in "${DAEMONS[@]}"; do
    read -r name pidfile <<< "$entry"
    our_pid "$name" "$pidfile" > /dev/null && running=$((running + 1))
done
if ((running == ${#DAEMONS[@]})) && [[ -L $ETC_CONF ]]; then
    echo "slurm/up: already up ($STATE)"
    exit 0
fi
if [[ -e $ETC_CONF && ! -L $ETC_CONF ]]; then
    echo "slurm/up: $ETC_CONF exists and is not ours (a real cluster?): not touching it" >&2
    exit 3
fi
# A half-started cluster (a failed earlier run) is stopped first; any failure below
# stops what this run started, so nothing is left behind.
bash "$(dirname "$0")/down.sh" --quiet
trap 'echo "slurm/up: failed; logs in $STATE/log" >&2; bash "$(dirname "$0")/down.sh" --quiet' ERR

mkdir -p "$STATE"/{etc,run,log,ctld,spool,munge,db}
chmod 700 "$STATE" "$STATE/munge" "$STATE/etc"

# munge: our own key and socket, so the machine's munge (if any) is left alone. --force:
# munged refuses group-writable paths on the way to the socket, which /work may have.
[[ -s $STATE/munge/munge.key ]] || mungekey --create --keyfile="$STATE/munge/munge.key"
chmod 600 "$STATE/munge/munge.key"
munged --force --key-file="$STATE/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
wait_for 10 bash -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"

# MariaDB for slurmdbd, in $STATE/db on 127.0.0.1. --no-defaults: ignore /etc/mysql.
[[ -s $STATE/db.pass ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$STATE/db.pass")
db_pass=$(cat "$STATE/db.pass")
if [[ ! -d $STATE/db/data/mysql ]]; then
    mariadb-install-db --no-defaults --datadir="$STATE/db/data" --user=root \
        --auth-root-authentication-method=socket --skip-test-db > "$STATE/log/mariadb-install.log" 2>&1
fi
# mariadbd does not daemonize itself: setsid detaches it from this shell and its terminal.
setsid mariadbd --no-defaults --datadir="$STATE/db/data" --socket="$DB_SOCKET" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$STATE/run/mariadbd.pid" \
    --user=root --log-error="$STATE/log/mariadbd.log" --skip-log-bin \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 < /dev/null > /dev/null 2>&1 &
wait_for 30 mariadb-admin --no-defaults --socket="$DB_SOCKET" ping
mariadb --no-defaults --socket="$DB_SOCKET" -u root <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# Configuration from the templates next to this script.
cpus=$(nproc)
# RealMemory above what slurmd finds would drain the node: leave 10 % for the system.
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
render() {
    sed -e "s|@STATE@|$STATE|g" -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@DBD_PORT@|$DBD_PORT|g" -e "s|@DB_PORT@|$DB_PORT|g" \
        -e "s|@DB_PASS@|$db_pass|g" -e "s|@CPUS@|$cpus|g" -e "s|@MEM_MB@|$mem_mb|g" \
        "$(dirname "$0")/$1"
}
render slurm.conf.in > "$STATE/etc/slurm.conf"
(umask 077 && render slurmdbd.conf.in > "$STATE/etc/slurmdbd.conf")
mkdir -p "$(dirname "$ETC_CONF")"
ln -sfn "$STATE/etc/slurm.conf" "$ETC_CONF"

# slurmdbd reads slurmdbd.conf from the folder of $SLURM_CONF: ours, not /etc/slurm.
SLURM_CONF=$STATE/etc/slurm.conf slurmdbd
wait_for 30 sacctmgr -n show cluster
# Register the cluster before slurmctld starts, so its first jobs are recorded.
sacctmgr -n -P show cluster format=cluster | grep -qx lskd || sacctmgr -i add cluster lskd > /dev/null

slurmctld
slurmd -N localhost
# The node is usable once slurmctld reports it idle (or already running jobs).
node_ready() { sinfo -h -n localhost -o %T | grep -Eq '^(idle|mixed|allocated)'; }
wait_for 60 node_ready || {
    echo "slurm/up: node not ready: $(sinfo -h -N -o '%N %T %E' 2>&1)" >&2
    false
}
trap - ERR
echo "slurm/up: cluster up in $((SECONDS - start)) s: partition debug, $cpus CPUs, ${mem_mb} MB ($STATE)"
