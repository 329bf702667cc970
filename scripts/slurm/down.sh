#!/usr/bin/env bash
# Stop the local SLURM cluster that scripts/slurm/up.sh started and remove the
# /etc/slurm/slurm.conf link it made (a leftover config without a running slurmctld makes
# every snakemake call on the machine wait ~11 s).
#
#   bash scripts/slurm/down.sh           # keeps $LSKD_SLURM_DIR (munge key, database): fast restart
#   bash scripts/slurm/down.sh --purge   # also deletes $LSKD_SLURM_DIR
#
# Only processes named in our PID files are signalled (and only if /proc says they are the
# expected daemon); jobs still in our cluster are cancelled through SLURM first so their
# slurmstepd processes end with them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
quiet=0 purge=0
for arg in "$@"; do
    case $arg in
        --quiet) quiet=1 ;;
        --purge) purge=1 ;;
        *) echo "usage: $0 [--quiet] [--purge]" >&2; exit 2 ;;
    esac
done
say() { ((quiet)) || echo "slurm/down: $*"; }

if our_pid slurmctld "$STATE/run/slurmctld.pid" > /dev/null && [[ -L $ETC_CONF ]]; then
    jobs=$(squeue -h -o %A 2> /dev/null || true)
    if [[ -n $jobs ]]; then
        say "cancelling jobs: $(echo $jobs)"
        # shellcheck disable=SC2086
        scancel $jobs 2> /dev/null || true
        # KillWait is 5 s in our slurm.conf: jobs are gone well within 20 s.
        wait_for 20 bash -c '[[ -z $(squeue -h -o %A -t R,CG,S 2>/dev/null) ]]' || true
    fi
fi

# Reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged.
for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
    read -r name pidfile <<< "${DAEMONS[i]}"
    if pid=$(our_pid "$name" "$pidfile"); then
        kill -TERM "$pid"
        # Most stop in under a second; mariadbd flushes its tables first.
        if ! wait_for 30 bash -c "[[ ! -e /proc/$pid ]] || [[ \$(cat /proc/$pid/stat 2>/dev/null | cut -d' ' -f3) == Z ]]"; then
            say "$name ($pid) ignored SIGTERM for 30 s: SIGKILL"
            kill -KILL "$pid" 2> /dev/null || true
        fi
        say "stopped $name ($pid)"
    fi
    rm -f "$pidfile"
done

# The config link: removed only if it points into our state folder.
if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$STATE"/* ]]; then
    rm -f "$ETC_CONF"
    say "removed $ETC_CONF"
fi
if ((purge)) && [[ -d $STATE ]]; then
    rm -rf "$STATE"
    say "deleted $STATE"
fi
