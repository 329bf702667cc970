# Shared by up.sh, down.sh and status.sh (sourced, not run): where the test cluster keeps
# its state, its ports, and how a daemon is recognised from its PID file.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Every file the cluster writes lives here (git-ignored), except the one link below. Keep
# the path short: munge's socket path must stay under the 108-byte unix socket limit.
STATE=${LSKD_SLURM_DIR:-$REPO/.slurm}
# slurm.conf has to be at its compiled-in default path: the slurm-jobstep plugin strips
# SLURM_* variables from jobs, so SLURM_CONF would not reach srun inside a job. up.sh
# makes it a symbolic link into $STATE, which tells down.sh the file is ours to remove.
ETC_CONF=/etc/slurm/slurm.conf
CTLD_PORT=${LSKD_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${LSKD_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${LSKD_SLURM_DBD_PORT:-6819}
# Not 3306, so that a MariaDB of the machine's own keeps its port.
DB_PORT=${LSKD_SLURM_DB_PORT:-3307}
MUNGE_SOCKET=$STATE/munge/munge.socket
DB_SOCKET=$STATE/db/mysqld.sock
# Daemons in start order: name (as in /proc/PID/comm) and PID file.
DAEMONS=(
    "munged $STATE/run/munged.pid"
    "mariadbd $STATE/run/mariadbd.pid"
    "slurmdbd $STATE/run/slurmdbd.pid"
    "slurmctld $STATE/run/slurmctld.pid"
    "slurmd $STATE/run/slurmd.pid"
)

# PID from a PID file, printed only if that process is alive and is the daemon we started
# (guards against a stale file whose PID now belongs to another process).
our_pid() {
    local name=$1 pidfile=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(tr -dc 0-9 < "$pidfile")
    [[ -n $pid && -r /proc/$pid/comm && $(cat "/proc/$pid/comm") == "$name" ]] || return 1
    echo "$pid"
}

# Poll COMMAND until it succeeds or SECONDS pass; returns its last status.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" > /dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}
