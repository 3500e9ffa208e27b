#!/usr/bin/env bash
# Smoke test of docker-compose.yml on real bitcoind + electrs (needs a Docker engine; not run
# by CI). Brings the stack up, waits for every service to be healthy, checks electrs and the
# L2 node, waits for merge-mined L2 blocks, then runs one peg swap with rexe's own commands:
# Alice posts a peg-out order, Bob (a bdk wallet funded by bitcoind mining) pegs in with one
# PSBT-built payment, the claimer proves it to the L2, Alice's wallet sees the BTC.
set -euo pipefail
cd "$(dirname "$0")/.."
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
L2=(--rpc=127.0.0.1:18480 --rpc-auth=rexe:rexe-regtest-only)
EL=(--electrum=tcp://electrs:60401)
rexe() { docker compose exec -T rexe-node rexe "$@"; }
field() { sed -n "s/.*\"$1\": *\"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1/p" | head -1; }

# Bitcoin and Electrum.
cli generatetoaddress 1 bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85 >/dev/null
tip=$(echo '{"id":1,"method":"blockchain.headers.subscribe","params":[]}' | timeout 10 nc 127.0.0.1 60401 | head -1)
echo "electrs tip: $tip"
echo "$tip" | grep -q '"height"'

# Merge mining: the CPU miner's Stratum shares seal L2 blocks (each is also a Bitcoin block
# on Core's regtest target).
for _ in $(seq 1 60); do
  h=$(rexe rpc "${L2[@]}" getblockcount)
  [ "$h" -ge 2 ] && break
  sleep 5
done
[ "$h" -ge 2 ] || { echo "no merge-mined L2 blocks"; exit 1; }
docker compose exec -T rexe-miner rexe miner stats --proxy=127.0.0.1:8342

# Wallets: Alice sells rxBTC, Bob buys it with BTC.
alice=$(rexe wallet create --wallet /data/alice.wallet "${EL[@]}")
bob=$(rexe wallet create --wallet /data/bob.wallet "${EL[@]}")
alice_btc=$(echo "$alice" | field address)
alice_l2=$(echo "$alice" | field l2_address)
bob_btc=$(echo "$bob" | field address)
bob_l2=$(echo "$bob" | field l2_address)
cli generatetoaddress 101 "$bob_btc" >/dev/null
# rxBTC for both (the operator earned it as the miner's payout): Alice's escrow, Bob's bond.
for to in "$alice_l2" "$bob_l2"; do
  docker compose exec -T rexe-miner rexe send --key /keys/operator.key --to "$to" \
    --amount 20000000 --rpc=rexe-node:18480 --rpc-auth=rexe:rexe-regtest-only
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
rexe peg out --wallet /data/alice.wallet --amount 1000000 --to "$alice_btc" "${L2[@]}"
rexe peg in --wallet /data/bob.wallet --amount 1000000 --claimer-state /data/claimer.sqlite \
  "${EL[@]}" "${L2[@]}"
cli generatetoaddress 1 bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85 >/dev/null
rexe peg claimer --wallet /data/bob.wallet --state /data/claimer.sqlite --until-done "${EL[@]}" "${L2[@]}"
rexe peg status "${L2[@]}" | grep -q '"state": "claimed"'
rexe wallet balance --wallet /data/alice.wallet "${EL[@]}" | grep -q '"confirmed": 997000'
echo "compose smoke: OK (peg swap claimed)"
