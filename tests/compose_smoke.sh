#!/usr/bin/env bash
# Smoke test of the regtest stack (docker-compose.yml): brings it up, checks Electrum and
# the L2 node, waits for merge-mined L2 blocks, then runs one peg swap with rexe's own
# commands: Alice posts a peg-out order, Bob (a bdk wallet funded by mining) pegs in with
# one PSBT-built payment, the claimer proves it to the L2, Alice's wallet sees the BTC.
#
#   tests/compose_smoke.sh            on Docker Compose (needs a Docker engine; not run by CI)
#   tests/compose_smoke.sh --native   the same services as local processes, with the flags
#                                     of .env (the file docker-compose.yml takes them from)
#
# Native mode runs bitcoind and electrs from BITCOIND_EXE and ELECTRS_EXE. Without
# BITCOIND_EXE, rexe's embedded regtest node stands in for bitcoind (`rexe regtest --rest`)
# under a real electrs >= 0.11 from ELECTRS_EXE, or, without that too, for both (its own
# Electrum server), and it says which. It uses REXE (default:
# target/release/rexe, else target/debug/rexe), the ports of docker-compose.yml on
# 127.0.0.1 (18443, 28332, 28333, 60401, 18480, 8342, 3333: they must be free) and a
# temporary directory. SMOKE_PACE_MS overrides the CPU miner's pace (.env: one share per
# 10 s). Every share is a Bitcoin block on regtest's target, and a peg-in must be paid some
# Bitcoin blocks before its deadline: at one share a second the payment can miss it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-compose}
AUTH=rexe:rexe-regtest-only
BURN=bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85
L2=(--rpc=127.0.0.1:18480 --rpc-auth=$AUTH)
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -1; }

# One line from an Electrum server on 127.0.0.1:60401 (no nc needed).
electrum_line() {
  exec 3<>/dev/tcp/127.0.0.1/60401 || return 1
  printf '%s\n' "$1" >&3
  local line
  IFS= read -r -t 10 line <&3 || true
  exec 3>&-
  printf '%s\n' "$line"
}

# Waits up to 2 minutes for a command to succeed.
wait_for() {
  local what=$1
  shift
  for _ in $(seq 1 120); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "$what did not come up"
  exit 1
}

if [ "$mode" = --native ]; then
  REXE=${REXE:-$([ -x target/release/rexe ] && echo target/release/rexe || echo target/debug/rexe)}
  [ -x "$REXE" ] || { echo "no rexe binary at $REXE (cargo build first, or set REXE)"; exit 2; }
  declare -A ARGS
  while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    ARGS[${line%%=*}]=${line#*=}
  done < .env
  work=$(mktemp -d)
  pids=()
  cleanup() {
    status=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$status" != 0 ]; then
      for f in "$work"/*.log; do echo "== $f"; tail -n 25 "$f"; done
    fi
    rm -rf "$work"
  }
  trap cleanup EXIT
  # A service's flags from .env as a local process: the service names and 0.0.0.0 are
  # 127.0.0.1, /data is the service's own directory and /keys a shared one.
  native() {
    echo "${ARGS[$1]}" | sed -e 's#\(bitcoind\|electrs\|rexe-node\|rexe-miner\):#127.0.0.1:#g' \
      -e 's#0\.0\.0\.0#127.0.0.1#g' -e "s#/data#$work/$2#g" -e "s#/keys#$work/keys#g"
  }
  start() {
    local name=$1
    shift
    mkdir -p "$work/$name"
    "$@" >"$work/$name.log" 2>&1 &
    pids+=($!)
  }
  cli() { "$REXE" rpc --rpc=127.0.0.1:18443 --rpc-auth=$AUTH "$@"; }
  electrs_help() { "$ELECTRS_EXE" --help 2>&1 || true; }
  # electrs takes bitcoind's password only from a config file (never a flag or, whatever
  # its documentation once said, the environment): one with ELECTRS_AUTH of .env.
  electrs_conf() {
    printf 'auth = "%s"\n' "${ARGS[ELECTRS_AUTH]}" >"$work/electrs.toml"
    chmod 600 "$work/electrs.toml"
    echo "$work/electrs.toml"
  }
  if [ -n "${BITCOIND_EXE:-}" ]; then
    [ -n "${ELECTRS_EXE:-}" ] || { echo "BITCOIND_EXE is set but ELECTRS_EXE is not"; exit 2; }
    # shellcheck disable=SC2046
    start bitcoind "$BITCOIND_EXE" -datadir="$work/bitcoind" $(native BITCOIND_ARGS bitcoind)
    wait_for bitcoind cli getblockcount
    e_args=$(native ELECTRS_ARGS electrs)
    # electrs 0.11 and later read blocks over REST and have no --daemon-p2p-addr.
    if ! grep -q -- --daemon-p2p-addr <<<"$(electrs_help)"; then
      e_args=$(echo "$e_args" | sed 's/--daemon-p2p-addr=[^ ]*//')
    fi
    # shellcheck disable=SC2086
    start electrs "$ELECTRS_EXE" $e_args --conf="$(electrs_conf)"
  elif [ -n "${ELECTRS_EXE:-}" ] && ! grep -q -- --daemon-p2p-addr <<<"$(electrs_help)"; then
    # A real electrs (>= 0.11, which reads blocks over REST) on rexe's embedded node, whose
    # own Electrum server moves aside to port 60402.
    echo "BITCOIND_EXE is not set: rexe's embedded regtest node (with --rest) stands in for bitcoind; electrs is $ELECTRS_EXE"
    start bitcoind "$REXE" regtest --datadir="$work/bitcoind" --rpc-port=18443 --electrum-port=60402 \
      --rpc-user=rexe --rpc-password=rexe-regtest-only --rest \
      --zmqpubhashblock=tcp://127.0.0.1:28332 --zmqpubrawblock=tcp://127.0.0.1:28332 \
      --zmqpubrawtx=tcp://127.0.0.1:28333
    wait_for bitcoind cli getblockcount
    e_args=$(native ELECTRS_ARGS electrs | sed 's/--daemon-p2p-addr=[^ ]*//')
    # shellcheck disable=SC2086
    start electrs "$ELECTRS_EXE" $e_args --conf="$(electrs_conf)"
  else
    echo "BITCOIND_EXE is not set: rexe's embedded regtest node stands in for bitcoind and electrs"
    start bitcoind "$REXE" regtest --datadir="$work/bitcoind" --rpc-port=18443 --electrum-port=60401 \
      --rpc-user=rexe --rpc-password=rexe-regtest-only \
      --zmqpubhashblock=tcp://127.0.0.1:28332 --zmqpubrawblock=tcp://127.0.0.1:28332 \
      --zmqpubrawtx=tcp://127.0.0.1:28333
    wait_for bitcoind cli getblockcount
  fi
  wait_for electrum bash -c "exec 3<>/dev/tcp/127.0.0.1/60401"
  # shellcheck disable=SC2046
  start rexe-node "$REXE" node $(native NODE_ARGS rexe-node)
  wait_for rexe-node "$REXE" rpc "${L2[@]}" getblockcount
  mkdir -p "$work/keys"
  "$REXE" key new "$work/keys/operator.key" --network regtest >/dev/null
  payout=$("$REXE" key address "$work/keys/operator.key" --network regtest)
  # shellcheck disable=SC2046
  start rexe-miner "$REXE" miner run $(native MINER_ARGS rexe-miner) --payout="$payout"
  wait_for rexe-miner "$REXE" miner stats --proxy=127.0.0.1:8342
  cpu_args=$(native CPUMINER_ARGS cpuminer)
  if [ -n "${SMOKE_PACE_MS:-}" ]; then
    cpu_args=$(echo "$cpu_args" | sed "s/--pace-ms=[0-9]*/--pace-ms=$SMOKE_PACE_MS/")
  fi
  # shellcheck disable=SC2086
  start cpuminer "$REXE" miner cpu $cpu_args
  # shellcheck disable=SC2046
  start rexe-relayer "$REXE" peg relay $(native RELAYER_ARGS rexe-relayer)
  rexe() { "$REXE" "$@"; }
  operator() { "$REXE" "$@"; }
  OP_KEY=$work/keys/operator.key
  OP_L2=127.0.0.1:18480
  DATA=$work
  EL=(--electrum=tcp://127.0.0.1:60401)
  miner_stats() { "$REXE" miner stats --proxy=127.0.0.1:8342; }
else
  docker compose config --quiet
  docker compose up -d --build
  trap 'docker compose logs --tail=80; docker compose down -v' EXIT
  for svc in bitcoind electrs rexe-node rexe-miner; do
    state=
    for _ in $(seq 1 90); do
      state=$(docker inspect -f '{{.State.Health.Status}}' "$(docker compose ps -q "$svc")" 2>/dev/null || true)
      [ "$state" = healthy ] && break
      sleep 2
    done
    [ "$state" = healthy ] || { echo "$svc not healthy"; exit 1; }
  done
  cli() { docker compose exec -T bitcoind bitcoin-cli -regtest -rpcuser=rexe -rpcpassword=rexe-regtest-only "$@"; }
  rexe() { docker compose exec -T rexe-node rexe "$@"; }
  operator() { docker compose exec -T rexe-miner rexe "$@"; }
  OP_KEY=/keys/operator.key
  OP_L2=rexe-node:18480
  DATA=/data
  EL=(--electrum=tcp://electrs:60401)
  miner_stats() { docker compose exec -T rexe-miner rexe miner stats --proxy=127.0.0.1:8342; }
fi

# Bitcoin and Electrum.
cli generatetoaddress 1 "$BURN" >/dev/null
tip=$(electrum_line '{"id":1,"method":"blockchain.headers.subscribe","params":[]}')
echo "electrum tip: $tip"
grep -q '"height"' <<<"$tip"

# Merge mining: the CPU miner's Stratum shares seal L2 blocks (each is also a Bitcoin block
# on regtest's target).
for _ in $(seq 1 60); do
  h=$(rexe rpc "${L2[@]}" getblockcount)
  [ "$h" -ge 2 ] && break
  sleep 5
done
[ "$h" -ge 2 ] || { echo "no merge-mined L2 blocks"; exit 1; }
miner_stats

# Wallets: Alice sells rxBTC, Bob buys it with BTC.
alice=$(rexe wallet create --wallet "$DATA/alice.wallet" "${EL[@]}")
bob=$(rexe wallet create --wallet "$DATA/bob.wallet" "${EL[@]}")
alice_btc=$(echo "$alice" | field address)
alice_l2=$(echo "$alice" | field l2_address)
bob_btc=$(echo "$bob" | field address)
bob_l2=$(echo "$bob" | field l2_address)
cli generatetoaddress 101 "$bob_btc" >/dev/null
# rxBTC for both (the operator earned it as the miner's payout): Alice's escrow, Bob's bond.
for to in "$alice_l2" "$bob_l2"; do
  operator send --key "$OP_KEY" --to "$to" --amount 20000000 --rpc="$OP_L2" --rpc-auth=$AUTH
done
for _ in $(seq 1 60); do
  b=$(rexe balance "$bob_l2" "${L2[@]}" | field balance)
  [ "${b:-0}" -gt 0 ] && break
  sleep 5
done
# The relayer has brought Bitcoin's headers over.
for _ in $(seq 1 60); do
  tracked=$(rexe rpc "${L2[@]}" getpeginfo | tr -d '\n ' | sed -n 's/.*"btc_tip":{[^}]*"height":\([0-9]*\).*/\1/p')
  [ "${tracked:-0}" -ge "$(cli getblockcount)" ] && break
  sleep 5
done
rexe peg out --wallet "$DATA/alice.wallet" --amount 1000000 --to "$alice_btc" "${L2[@]}"
rexe peg in --wallet "$DATA/bob.wallet" --amount 1000000 --claimer-state "$DATA/claimer.sqlite" \
  "${EL[@]}" "${L2[@]}"
cli generatetoaddress 1 "$BURN" >/dev/null
rexe peg claimer --wallet "$DATA/bob.wallet" --state "$DATA/claimer.sqlite" --until-done "${EL[@]}" "${L2[@]}"
# Whole outputs first (no `… | grep -q`): grep stops reading at the match, and a writer
# that exits on SIGPIPE, as rexe and other command-line tools do, fails the pipeline under
# pipefail.
status=$(rexe peg status "${L2[@]}")
grep -q '"state": "claimed"' <<<"$status"
balance=$(rexe wallet balance --wallet "$DATA/alice.wallet" "${EL[@]}")
grep -q '"confirmed": 997000' <<<"$balance"
echo "compose smoke ($mode): OK (peg swap claimed)"
