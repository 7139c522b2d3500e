#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, built from Debian 12's packages
# (Slurm 22.05, munge, slurmdbd on MariaDB), for CI and for contributors.
#
#   bash scripts/slurm_cluster.sh install              # apt-get the packages (root; idempotent)
#   eval "$(bash scripts/slurm_cluster.sh start DIR)"  # start; prints `export ...` lines
#   bash scripts/slurm_cluster.sh env DIR              # print the export lines again
#   bash scripts/slurm_cluster.sh stop DIR             # cancel jobs, stop every daemon by PID
#
# `start` on a DIR whose cluster is already up only prints the export lines;
# after a crash (some daemons gone) it stops the rest and starts afresh.
# A DIR keeps its MariaDB data, munge key and Slurm state across stop/start.
#
# Everything (config, munge key and socket, MariaDB datadir, spool, state, logs,
# pid files) lives under DIR, so two clusters in two DIRs do not share anything
# but the machine; each gets its own free loopback ports (remembered in
# DIR/ports.env so a restart reuses them).  Nothing is written under /etc, /run
# or /var: the packages' own /etc/slurm and /etc/munge are ignored because every
# daemon and client is pointed at DIR through SLURM_CONF / explicit options.
# The only system-wide change is `install` itself (the Debian packages).
#
# Runs as root, without systemd.  All daemons run as root (SlurmUser=root,
# SlurmdUser=root) to keep users and permissions out of the picture.
# Progress goes to stderr; only the `export` lines go to stdout, so `eval` works.

set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server-core mariadb-client-core)
PARTITION=local          # the one partition, Default=YES (jobs need not name it)
CLUSTER=dgl              # accounting cluster name (must be lower case)
ACCOUNT=dgl              # accounting account root's jobs are charged to
DAEMONS=(slurmd slurmctld slurmdbd mariadb munged)

log() { printf '[slurm_cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# --------------------------------------------------------------------------- install
cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages already installed"
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "install needs root (apt-get)"
    log "installing: ${missing[*]}"
    # The packages' maintainer scripts would start system-wide munged/slurm*
    # daemons through invoke-rc.d (with the packages' /etc config).  We never
    # want those: a policy-rc.d that answers 101 ("action forbidden") stops
    # them, exactly as Docker images do.  Only ours is removed afterwards.
    POLICY_RC=/usr/sbin/policy-rc.d
    if [ ! -e "$POLICY_RC" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"; chmod 755 "$POLICY_RC"
        trap 'rm -f "$POLICY_RC"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    local out; out=$(mktemp)
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out" 2>&1; then
        cat "$out" >&2; rm -f "$out"; die "apt-get failed"
    fi
    rm -f "$out"
    log "installed"
}

# --------------------------------------------------------------------------- helpers
need_bins() {
    local b
    for b in munged mungekey slurmctld slurmd slurmdbd sinfo sacctmgr scontrol mariadb mariadb-install-db; do
        command -v "$b" >/dev/null 2>&1 || die "$b not found: run '$0 install' first"
    done
    command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1 || die "mariadbd not found"
}

# All paths derived from STATE_DIR; must be called before anything else.
set_paths() {
    [ -n "${1:-}" ] || usage
    if [ "${2:-}" = create ]; then mkdir -p "$1"; fi
    [ -d "$1" ] || die "no such STATE_DIR: $1"
    S=$(cd "$1" && pwd -P)
    ETC=$S/etc; RUN=$S/run; LOG=$S/log; SPOOL=$S/spool
    SLURM_CONF_FILE=$ETC/slurm.conf
    DBD_CONF_FILE=$ETC/slurmdbd.conf   # slurmdbd finds it next to $SLURM_CONF (it has no -f)
    MUNGE_DIR=$S/munge
    MUNGE_SOCK=$MUNGE_DIR/munge.socket.2
    MUNGE_KEY=$MUNGE_DIR/munge.key
    DB_DIR=$S/mariadb/data
    DB_SOCK=$S/mariadb/mysqld.sock
    ENV_FILE=$S/slurm.env
    # Unix socket paths are limited to 107 bytes.
    [ ${#MUNGE_SOCK} -lt 100 ] && [ ${#DB_SOCK} -lt 100 ] || die "STATE_DIR path too long for unix sockets: $S"
    export SLURM_CONF=$SLURM_CONF_FILE
}

pidfile_of() {
    case $1 in
        munged)    echo "$RUN/munged.pid" ;;
        mariadb)   echo "$RUN/mariadbd.pid" ;;
        slurmdbd)  echo "$RUN/slurmdbd.pid" ;;
        slurmctld) echo "$RUN/slurmctld.pid" ;;
        slurmd)    echo "$RUN/slurmd.pid" ;;
    esac
}

# PID of daemon $1 if its pid file names a live process of the right program
# (guards against a stale pid file whose number was reused by something else).
live_pid() {
    local f pid comm
    f=$(pidfile_of "$1")
    [ -s "$f" ] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    case "$1:$comm" in
        mariadb:mariadbd|mariadb:mysqld|munged:munged|slurmdbd:slurmdbd|slurmctld:slurmctld|slurmd:slurmd)
            echo "$pid" ;;
        *) return 1 ;;
    esac
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.5 s.
wait_for() {
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.5
    done
    log "$what ready"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Four consecutive free loopback ports (mariadb, slurmdbd, slurmctld, slurmd),
# starting from a number derived from STATE_DIR so different DIRs tend not to
# collide; remembered so a restart of the same DIR keeps its ports.
choose_ports() {
    if [ -f "$S/ports.env" ]; then
        # shellcheck disable=SC1091
        . "$S/ports.env"
        if ! port_busy "$DB_PORT" && ! port_busy "$DBD_PORT" && ! port_busy "$CTLD_PORT" && ! port_busy "$SLURMD_PORT"; then
            return 0
        fi
        log "remembered ports busy, choosing new ones"
    fi
    local base tries=0
    base=$(( 20000 + ( $(printf '%s' "$S" | cksum | cut -d' ' -f1) % 3000 ) * 10 ))
    while :; do
        if ! port_busy "$base" && ! port_busy $((base + 1)) && ! port_busy $((base + 2)) && ! port_busy $((base + 3)); then
            break
        fi
        base=$((base + 10)); tries=$((tries + 1))
        [ $base -lt 50000 ] || base=20000
        [ $tries -lt 500 ] || die "no free ports found"
    done
    DB_PORT=$base; DBD_PORT=$((base + 1)); CTLD_PORT=$((base + 2)); SLURMD_PORT=$((base + 3))
    printf 'DB_PORT=%s\nDBD_PORT=%s\nCTLD_PORT=%s\nSLURMD_PORT=%s\n' \
        "$DB_PORT" "$DBD_PORT" "$CTLD_PORT" "$SLURMD_PORT" >"$S/ports.env"
}

# --------------------------------------------------------------------------- config
write_configs() {
    HOST=$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)
    NCPU=$(nproc)
    local mem_mb
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # slurmd drains a node that has less memory than configured; leave 5 %
    # (at least 512 MB) of headroom.
    local headroom=$((mem_mb / 20)); [ $headroom -ge 512 ] || headroom=512
    REAL_MEM=$((mem_mb - headroom))
    # Every address in the config is 127.0.0.1, so all traffic stays on
    # loopback.  NoInAddrAny makes slurmd/srun also *listen* only on the
    # address the host name resolves to, which is right only when that is a
    # loopback address (Docker maps the host name to the container's IP, and
    # slurmd would then not answer on 127.0.0.1).  slurmctld and slurmdbd
    # (22.05) listen on 0.0.0.0 either way.
    local host_addr
    host_addr=$(getent hosts "$HOST" 2>/dev/null | awk '{print $1; exit}' || true)
    if [[ "$host_addr" == 127.* ]]; then
        COMM_PARAMS="# $HOST resolves to $host_addr: listen there only.
CommunicationParameters=NoInAddrAny"
    else
        COMM_PARAMS="# $HOST resolves to '${host_addr:-nothing}', not loopback: listen on all addresses
# (NoInAddrAny would bind slurmd there, away from NodeAddr=127.0.0.1)."
    fi

    cat >"$SLURM_CONF_FILE" <<EOF
# Written by scripts/slurm_cluster.sh start; rewritten at every start.
ClusterName=$CLUSTER
# The controller name must equal \`hostname -s\` (slurmctld checks that it is
# the controller); its address is pinned to loopback so no DNS is involved.
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root

# Our own munged, not the system one at /run/munge (a second cluster has its
# own too).  Used for client/daemon auth and for signing job credentials.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
CredType=cred/munge

$COMM_PARAMS

StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups (containers/CI often cannot delegate them): track job processes
# by walking /proc, bind nothing, gather no per-job usage.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
# Don't copy the submitter's ulimits (e.g. memlock) onto the job: some cannot
# be raised inside a container and would make job launch fail.
PropagateResourceLimits=NONE
# No mail binary on a bare machine; slurmctld logs errors without one.
MailProg=/bin/true

# Seconds between SIGTERM and SIGKILL when a job is cancelled/killed: short, so
# tests and \`stop\` don't wait the default 30 s.
KillWait=5
# A node that went DOWN (e.g. slurmd stopped with the controller running, or a
# restart of this script) comes back by itself once slurmd registers again.
ReturnToService=2
# Trust this file's node description over what slurmd detects (nproc may be
# smaller than the host's CPU count in a container; no drain for that).
SlurmdParameters=config_overrides

# CPUs are the consumable resource; memory is only checked against RealMemory
# (a job asking more than RealMemory is rejected), not reserved, so a sweep of
# jobs that each ask --mem runs as many at once as there are CPUs.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill

# Accounting through slurmdbd: without it \`sacct\` fails and submitit's
# job.result() waits forever on a job that died without writing a result.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# Slurm 22.05 quirk: for auth/munge the slurmctld->slurmdbd connection takes
# its munge socket from AccountingStoragePass, not from AuthInfo.
AccountingStoragePass=$MUNGE_SOCK
JobCompType=jobcomp/none

NodeName=$HOST NodeAddr=127.0.0.1 NodeHostname=$HOST CPUs=$NCPU RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

    # slurmdbd refuses a config readable by others (it holds the DB password).
    ( umask 077
      cat >"$DBD_CONF_FILE" <<EOF
# Written by scripts/slurm_cluster.sh start; rewritten at every start.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCK
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
# TCP to our own MariaDB on loopback (its unix socket is not used by slurmdbd).
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$S/secrets/db_pass")
StorageLoc=slurm_acct_db
EOF
    )

    local mem_gb=$((REAL_MEM / 1024))
    cat >"$ENV_FILE" <<EOF
export SLURM_CONF=$SLURM_CONF_FILE
export DGL_SLURM_STATE_DIR=$S
export DGL_SLURM_PARTITION=$PARTITION
export DGL_SLURM_MAX_MEM_GB=$mem_gb
export DGL_SLURM_CPUS=$NCPU
export DGL_MUNGE_SOCKET=$MUNGE_SOCK
EOF
}

# --------------------------------------------------------------------------- daemons
start_munged() {
    mkdir -p "$MUNGE_DIR"
    # munged insists: key 0600 owned by its user; socket dir not writable by others.
    chmod 755 "$MUNGE_DIR"
    if [ ! -s "$MUNGE_KEY" ]; then
        mungekey --create --keyfile="$MUNGE_KEY" >/dev/null 2>&1 \
            || dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
    fi
    chmod 600 "$MUNGE_KEY"
    rm -f "$MUNGE_SOCK" "$MUNGE_SOCK.lock"
    # --force: run even if an ancestor of STATE_DIR is group/world writable
    # (munged would otherwise refuse such a path for its socket/log).
    munged --force --socket="$MUNGE_SOCK" --key-file="$MUNGE_KEY" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" </dev/null >>"$LOG/munged.out" 2>&1 \
        || die "munged failed; see $LOG/munged.log"
    wait_for 20 munged bash -c "munge -n -S '$MUNGE_SOCK' | unmunge -S '$MUNGE_SOCK'" \
        || die "munged not answering; see $LOG/munged.log"
}

# shellcheck disable=SC2120  # called with arguments through wait_for
mariadb_sql() { mariadb --no-defaults --protocol=socket -S "$DB_SOCK" -u root "$@"; }

start_mariadb() {
    local bin
    bin=$(command -v mariadbd || command -v mysqld)
    mkdir -p "$S/mariadb" "$S/secrets"; chmod 700 "$S/secrets"
    [ -s "$S/secrets/db_pass" ] || ( umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$S/secrets/db_pass" )
    if [ ! -d "$DB_DIR/mysql" ]; then
        log "initialising MariaDB datadir"
        rm -rf "$DB_DIR"
        # root authenticates through the unix socket (we are root); slurmdbd
        # gets its own password user below.
        mariadb-install-db --no-defaults --user=root --datadir="$DB_DIR" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOG/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $LOG/mariadb-install.log"
    fi
    rm -f "$DB_SOCK"
    # Not a daemonising program: setsid + background, detached from our stdio
    # (else `eval "$(... start)"` / subprocess.run would wait on its pipe).
    # --no-defaults: ignore /etc/mysql.  --user=root: mariadbd refuses root otherwise.
    # innodb_lock_wait_timeout/buffer pool: slurmdbd warns below these values.
    setsid "$bin" --no-defaults --user=root --datadir="$DB_DIR" \
        --socket="$DB_SOCK" --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --pid-file="$RUN/mariadbd.pid" --log-error="$LOG/mariadb.log" \
        --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
        </dev/null >>"$LOG/mariadb.out" 2>&1 &
    wait_for 60 mariadb mariadb_sql -e 'SELECT 1' || die "MariaDB did not start; see $LOG/mariadb.log"
    wait_for 10 "mariadb pid file" live_pid mariadb || die "MariaDB wrote no pid file"
    local pass; pass=$(cat "$S/secrets/db_pass")
    # --skip-name-resolve: a TCP client on 127.0.0.1 is 'slurm'@'127.0.0.1'.
    # shellcheck disable=SC2119
    mariadb_sql <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    slurmdbd </dev/null >>"$LOG/slurmdbd.out" 2>&1 || die "slurmdbd failed; see $LOG/slurmdbd.log"
    wait_for 60 slurmdbd sacctmgr -n -P list cluster || die "slurmdbd not answering; see $LOG/slurmdbd.log"
    # Cluster, account and root's association (idempotent; -i = no prompt).
    if [ -z "$(sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
    if [ -z "$(sacctmgr -n -P list account "$ACCOUNT" format=account)" ]; then
        sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=dgl organization=dgl >/dev/null
    fi
    if [ -z "$(sacctmgr -n -P list user root format=user,defaultaccount | grep "|$ACCOUNT$" || true)" ]; then
        sacctmgr -i add user root account="$ACCOUNT" defaultaccount="$ACCOUNT" cluster="$CLUSTER" >/dev/null || \
            sacctmgr -i modify user root set defaultaccount="$ACCOUNT" >/dev/null
    fi
}

start_slurmctld() {
    mkdir -p "$SPOOL/ctld"
    slurmctld -f "$SLURM_CONF_FILE" </dev/null >>"$LOG/slurmctld.out" 2>&1 || die "slurmctld failed; see $LOG/slurmctld.log"
    wait_for 60 slurmctld scontrol ping || die "slurmctld not answering; see $LOG/slurmctld.log"
}

start_slurmd() {
    mkdir -p "$SPOOL/d"
    slurmd -f "$SLURM_CONF_FILE" -N "$HOST" </dev/null >>"$LOG/slurmd.out" 2>&1 || die "slurmd failed; see $LOG/slurmd.log"
    # idle on a fresh cluster; mixed/allocated when jobs from before a restart
    # were recovered.  Not down/drained/unknown, nor "not responding" (idle*).
    node_up() { [[ "$(sinfo -h -N -n "$HOST" -o %T 2>/dev/null)" =~ ^(idle|mixed|allocated|completing)$ ]]; }
    if ! wait_for 60 "node $HOST" node_up; then
        sinfo -N -l >&2 || true
        die "node not idle; see $LOG/slurmd.log and $LOG/slurmctld.log"
    fi
}

# --------------------------------------------------------------------------- commands
cmd_start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root (all daemons run as root)"
    set_paths "${1:-}" create
    need_bins
    local t0=$SECONDS d alive=0
    for d in "${DAEMONS[@]}"; do live_pid "$d" >/dev/null && alive=$((alive + 1)); done
    if [ $alive -eq ${#DAEMONS[@]} ] && [ -f "$ENV_FILE" ] && sinfo -h >/dev/null 2>&1; then
        log "already running in $S"
        cat "$ENV_FILE"
        return 0
    fi
    if [ $alive -gt 0 ]; then
        log "some daemons of $S still running; stopping them first"
        cmd_stop "$S"
    fi
    mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL" "$S/secrets"
    rm -f "$RUN"/*.pid
    choose_ports
    [ -s "$S/secrets/db_pass" ] || ( umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$S/secrets/db_pass" )
    write_configs
    log "starting cluster in $S (host $HOST, $NCPU CPUs, RealMemory=${REAL_MEM}MB, ports $DB_PORT-$SLURMD_PORT)"
    start_munged
    start_mariadb
    start_slurmdbd
    start_slurmctld
    start_slurmd
    log "cluster up in $((SECONDS - t0)) s; partition '$PARTITION'"
    cat "$ENV_FILE"
}

# SIGTERM the daemons named (by their pid files) together and wait for all of
# them to exit; SIGKILL whatever is still there after 30 s.  Each takes ~2 s.
stop_daemons() {
    local d pid i pids=() names=()
    for d in "$@"; do
        if pid=$(live_pid "$d"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid"); names+=("$d")
        fi
    done
    for ((i = 0; i < ${#pids[@]}; i++)); do
        pid=${pids[$i]}
        local end=$((SECONDS + 30))
        while [ -d "/proc/$pid" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
        if [ -d "/proc/$pid" ]; then
            log "${names[$i]} ($pid) ignored SIGTERM for 30 s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while [ -d "/proc/$pid" ]; do sleep 0.2; done
        fi
        log "stopped ${names[$i]} ($pid)"
    done
    for d in "$@"; do rm -f "$(pidfile_of "$d")"; done
}

cmd_stop() {
    [ -n "${1:-}" ] || usage
    if [ ! -d "$1" ]; then log "nothing to stop in $1"; return 0; fi
    set_paths "$1"
    local t0=$SECONDS
    # Cancel this cluster's jobs first so no slurmstepd/job process outlives
    # slurmd (they are not daemons we track by pid).
    if live_pid slurmctld >/dev/null && scontrol ping >/dev/null 2>&1; then
        local jobs
        jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            # shellcheck disable=SC2016  # expanded by the inner bash
            wait_for $((5 + 20)) "job cleanup" bash -c '[ -z "$(squeue -h -o %A)" ]' \
                || log "jobs still listed; stopping anyway"
        fi
    fi
    # slurmctld sends its last records to slurmdbd, which writes them to
    # MariaDB; all of them authenticate through munged: stop in that order.
    stop_daemons slurmd slurmctld
    stop_daemons slurmdbd
    stop_daemons mariadb munged
    # Job steps outlive slurmd; after a crash of slurmctld we could not cancel
    # them.  They are not ours to kill by name: just say so.
    local p left=""
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = slurmstepd ] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF_FILE" && left+=" ${p#/proc/}"
    done
    [ -z "$left" ] || log "WARNING: job steps of this cluster still running (slurmstepd pids:$left)"
    log "stopped in $((SECONDS - t0)) s"
}

cmd_env() {
    set_paths "${1:-}"
    [ -f "$ENV_FILE" ] || die "no cluster was started in $S"
    cat "$ENV_FILE"
}

case "${1:-}" in
    install) cmd_install ;;
    start)   cmd_start "${2:-}" ;;
    stop)    cmd_stop "${2:-}" ;;
    env)     cmd_env "${2:-}" ;;
    *)       usage ;;
esac
