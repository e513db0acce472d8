#!/bin/sh
# pgrepo-archive: what PostgreSQL's archive_command and restore_command run, once per WAL file.
#
#   archive_command = 'pgrepo-archive push --config /etc/pgrepo/agent.conf %p'
#   restore_command = 'pgrepo-archive get --config /etc/pgrepo/agent.conf %f "%p"'
#
# Starting Node costs ~50 ms, so this script talks to the agent through its spool (status files
# only, never copies of pushed WAL) and starts the Node client only when that cannot work:
#   push: out/<wal>.ok exists once the agent has the segment durable in the repository (with
#         archive-async, usually before PostgreSQL asks): exit 0 at once. While out/<wal>.pending
#         exists the agent is shipping it: wait. Otherwise ask the agent with out/<wal>.request
#         and wait for .ok (exit 0) or .error (exit 1, with the reason).
#   get:  in/<wal> is a segment the agent prefetched and checked: move it to %p, exit 0.
#         in/<wal>.missing says the archive did not have it a moment ago: exit 1 (end of
#         recovery), but only while the agent that wrote it is alive.
# Everything else (no agent alive on the spool, no answer in time, anything odd) goes to the Node
# client, which asks the agent over its socket and exits 0 only when the segment is durable
# (push) or written and checked (get). This script never answers 0 for a push unless the agent's
# .ok mark says so.
#
# Options (the flags win over the config file, which is the agent's own: socket, spool-path,
# stanza are read from it):
#   --config FILE  --socket PATH  --spool-path DIR  --stanza NAME
#   --node PATH    the node binary for the slow path (default: $PGREPO_NODE, else node on PATH)

usage() {
  echo 'usage: pgrepo-archive push [--config FILE] [--socket PATH] [--spool-path DIR] [--stanza NAME] [--node PATH] WAL_PATH' >&2
  echo '       pgrepo-archive get  [--config FILE] [--socket PATH] [--spool-path DIR] [--stanza NAME] [--node PATH] WAL_NAME DEST_PATH' >&2
  exit 2
}

fail() {
  echo "pgrepo-archive: error: $*" >&2
  exit 1
}

command=${1-}
[ $# -gt 0 ] && shift
case $command in push|get) ;; *) usage ;; esac

config= socket= spool= stanza= node=${PGREPO_NODE-}
while [ $# -gt 0 ]; do
  case $1 in
    --config|--socket|--spool-path|--stanza|--node)
      [ $# -ge 2 ] || usage
      opt=$1 value=$2
      shift 2 ;;
    --config=*|--socket=*|--spool-path=*|--stanza=*|--node=*)
      opt=${1%%=*} value=${1#*=}
      shift ;;
    --) shift; break ;;
    --*) echo "pgrepo-archive: unknown option '$1'" >&2; usage ;;
    *) break ;;
  esac
  case $opt in
    --config) config=$value ;;
    --socket) socket=$value ;;
    --spool-path) spool=$value ;;
    --stanza) stanza=$value ;;
    --node) node=$value ;;
  esac
done

trim() {
  trimmed=${1#"${1%%[![:space:]]*}"}
  trimmed=${trimmed%"${trimmed##*[![:space:]]}"}
}

# The agent's config file: key=value lines, '#'/';' comments, an optional [global] header.
if [ -n "$config" ]; then
  [ -r "$config" ] || fail "cannot read config file $config"
  while IFS= read -r line || [ -n "$line" ]; do
    trim "$line"
    case $trimmed in ''|'#'*|';'*|'['*) continue ;; *=*) ;; *) continue ;; esac
    trim "${trimmed%%=*}"; key=$trimmed
    trim "${line#*=}"; value=$trimmed
    case $key in
      socket) [ -n "$socket" ] || socket=$value ;;
      spool-path) [ -n "$spool" ] || spool=$value ;;
      stanza) [ -n "$stanza" ] || stanza=$value ;;
    esac
  done < "$config"
fi
[ -n "$spool" ] || spool=/var/spool/pgrepo

# The spool is usable only for a plain WAL file name and a stanza (names from PostgreSQL are
# always plain; anything else goes to the Node client, which validates and explains).
dir=
case $stanza in
  ''|.*|*[!0-9A-Za-z._-]*) ;;
  *) dir=$spool/archive/$stanza ;;
esac

plain_name() {
  case $1 in ''|.*|*[!0-9A-Za-z._-]*) return 1 ;; esac
  return 0
}

# Polls in 10 ms steps; without a sub-second sleep, go straight to the Node client. Each step
# costs a fork of sleep (~0.75 ms of CPU), so a push the agent does because we asked (sync mode:
# PostgreSQL waits for exactly this answer, 40-200 ms for a 16 MiB segment) is polled in 2 ms
# steps for its first 10 and then in 5 ms steps, and every other wait (archive-async's
# read-ahead, prefetch) in 10 ms steps, leaving the cores to the agent.
nap() {
  if [ -z "${asked-}" ]; then
    sleep 0.01 2>/dev/null
  elif [ "$waited" -lt 10 ]; then
    sleep 0.002 2>/dev/null
  else
    sleep 0.005 2>/dev/null
  fi
}

node_client() {
  self=$0
  while [ -h "$self" ]; do
    link=$(readlink "$self") || break
    case $link in /*) self=$link ;; *) self=${self%/*}/$link ;; esac
  done
  case $self in */*) here=${self%/*} ;; *) here=. ;; esac
  if [ -z "$node" ]; then
    node=$(command -v node) || fail "cannot find node: put it on PostgreSQL's PATH, or pass --node PATH or set PGREPO_NODE"
  fi
  sub=$1
  shift
  [ -n "$dir" ] && set -- --spool-dir "$dir" "$@"
  [ -n "$socket" ] && set -- --socket "$socket" "$@"
  exec "$node" "$here/main.js" "$sub" "$@"
}

# The agent that owns the spool is alive (same OS user as PostgreSQL: kill -0 is allowed)
agent_alive() {
  pid=
  IFS= read -r pid < "$dir/agent.pid" 2>/dev/null
  case $pid in ''|*[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null
}

if [ "$command" = push ]; then
  [ $# -eq 1 ] || usage
  wal=$1
  name=${wal##*/}
  if [ -n "$dir" ] && plain_name "$name"; then
    out=$dir/out
    case $wal in /*) abs=$wal ;; *) abs=$PWD/$wal ;; esac
    waited=0 limit=300 asked=
    while :; do
      if [ -e "$out/$name.ok" ]; then
        # the mark vouches for one file (line 1): %p must be that very file (same device and
        # inode, however spelled); a dropped segment (archive-push-queue-max) has the warning
        # PostgreSQL should log on line 2
        marked= msg=
        { IFS= read -r marked; IFS= read -r msg; } < "$out/$name.ok" 2>/dev/null
        if [ -n "$marked" ] && [ "$wal" -ef "$marked" ]; then
          [ -n "$msg" ] && echo "pgrepo-archive: $msg" >&2
          exit 0
        fi
      fi
      if [ -n "$asked" ] && [ -e "$out/$name.error" ]; then
        msg=
        IFS= read -r msg < "$out/$name.error" 2>/dev/null
        echo "pgrepo-archive push: error: ${msg:-the agent could not archive $name (see its log)}" >&2
        exit 1
      fi
      if [ -e "$out/$name.pending" ]; then
        # the agent is shipping it: wait (~10 s at most), that beats starting Node
        if [ -n "$asked" ]; then limit=2000; else limit=1000; fi
      elif [ -z "$asked" ]; then
        # ask the agent through the spool; a dead agent is asked through the Node client, which says so
        agent_alive || break
        [ -e "$out/$name.error" ] && rm -f -- "$out/$name.error"
        printf '%s\n' "$abs" > "$out/$name.request" 2>/dev/null || break
        asked=1
      fi
      [ "$waited" -lt "$limit" ] || break
      nap || break
      waited=$((waited + 1))
    done
  fi
  node_client archive-push "$wal"
fi

[ $# -eq 2 ] || usage
name=$1
dest=$2
if [ -n "$dir" ] && plain_name "$name"; then
  in=$dir/in
  waited=0
  while :; do
    if [ -e "$in/$name" ]; then
      # mv falls back to copy + remove across filesystems; on failure the Node client fetches
      mv -f -- "$in/$name" "$dest" 2>/dev/null && exit 0
      break
    fi
    if [ -e "$in/$name.missing" ]; then
      pid=
      IFS= read -r pid < "$in/$name.missing" 2>/dev/null
      case $pid in ''|*[!0-9]*) break ;; esac
      # a mark left by a dead agent proves nothing: ask the agent (or fail) instead
      kill -0 "$pid" 2>/dev/null && exit 1
      break
    fi
    [ -e "$in/$name.pending" ] || break
    [ "$waited" -lt 1000 ] || break
    nap || break
    waited=$((waited + 1))
  done
fi
node_client archive-get "$name" "$dest"
