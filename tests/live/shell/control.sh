#!/usr/bin/env bash
# Drive and check a running `sipemu up` with nothing but bash, curl, dig, nsupdate and sipp:
# no Python on this side. Run by tests/live/test_shell_example.py; documented in docs/live.md.
#
#   tests/live/shell/control.sh            # uses `sipemu` from PATH
#   SIPEMU=.venv/bin/sipemu tests/live/shell/control.sh
#
# Exit status 0 when every check holds; otherwise the first failed check is printed.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
sipemu=${SIPEMU:-sipemu}
register_xml="$here/../sipp/register.xml"
work=$(mktemp -d)
pid=""

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" && wait "$pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- sipemu up's output:" >&2
  tail -n 30 "$work/up.log" >&2 || true
  exit 1
}
step() { echo "== $*"; }

# wait_for SECONDS COMMAND...: retry COMMAND every 0.1 s until it succeeds, at most SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# -- start the deployment; its first lines say where everything is ------------------------------
step "sipemu up (control API on an ephemeral port)"
"$sipemu" up "$here/control-lab.toml" --control 127.0.88.1:0 >"$work/up.log" 2>&1 &
pid=$!
up() { grep -q '^sipemu: up' "$work/up.log"; }
wait_for 30 up || fail "sipemu up did not start"

api=$(sed -n 's|^control API: \(http://[^/]*\)/.*|\1|p' "$work/up.log")
endpoint() { awk -v n="$1" -v t="$2" '$1 == n && $3 == t { print $4 }' "$work/up.log"; }
dns=$(endpoint dns UDP)
dns_host=${dns%:*}
dns_port=${dns##*:}
fe1=$(endpoint fe1.contoso.test UDP)
[ -n "$api" ] && [ -n "$dns" ] && [ -n "$fe1" ] || fail "no control API / DNS / fe1 address printed"
echo "control API $api, DNS $dns, fe1 UDP $fe1"

get() { curl -fsS --max-time 10 "$api$1"; }
post() { curl -fsS --max-time 10 -X POST -H 'Content-Type: application/json' -d "${2:-{\}}" "$api$1"; }
ask() { dig +short +time=2 +tries=1 @"$dns_host" -p "$dns_port" "$@"; }
# has PATH TEXT: the API's answer at PATH contains TEXT (read whole first: with pipefail, a
# `grep -q` that stops reading early would fail curl).
has() {
  local body
  body=$(get "$1") || return 1
  grep -qF -- "$2" <<<"$body"
}
metric() { has /metrics "$1"; }

step "status and the OpenAPI document"
has /status '"domain": "contoso.test"' || fail "status does not name the domain"
has /openapi.json '"openapi": "3.1.0"' || fail "no OpenAPI document"

# -- DNS: NAPTR -> SRV -> A, as RFC 3263 §4.1 has a client resolve -----------------------------
step "dig NAPTR, SRV, A"
naptr=$(ask NAPTR contoso.test)
grep -qF '10 50 "s" "SIPS+D2T" "" _sips._tcp.contoso.test.' <<<"$naptr" \
  || fail "no NAPTR for SIPS+D2T: $naptr"
srv=$(ask SRV _sip._udp.contoso.test)
grep -qF "fe1.contoso.test." <<<"$srv" || fail "no SRV for _sip._udp: $srv"
[ "$(ask A fe1.contoso.test)" = "${fe1%:*}" ] || fail "fe1's A record is not its address"

# -- SIP: sipp registers clientuser1 at its home pool --------------------------------------------
step "sipp REGISTER clientuser1 at fe1"
sipp "$fe1" -sf "$register_xml" -s clientuser1 -key domain contoso.test -i 127.0.88.100 \
  -m 1 -timeout 10s -timeout_error -nostdin >"$work/sipp.log" 2>&1 \
  || fail "sipp failed: $(tail -n 5 "$work/sipp.log")"
has "/bindings?pool=fe1.contoso.test" '"aor": "sip:clientuser1@contoso.test"' \
  || fail "clientuser1 is not bound at fe1"
metric 'sipemu_sip_responses_total{method="REGISTER",pool="fe1.contoso.test",status="200"} 1.0' \
  || fail "the REGISTER is not counted"

# -- DNS administration: nsupdate (RFC 2136), then the API's record list ------------------------
step "nsupdate adds fe3; dig and the API see it"
nsupdate <<NSUPDATE || fail "nsupdate failed"
server $dns_host $dns_port
zone contoso.test
prereq nxdomain fe3.contoso.test
update add fe3.contoso.test 60 A 127.0.88.13
send
NSUPDATE
[ "$(ask A fe3.contoso.test)" = "127.0.88.13" ] || fail "fe3 is not served after the update"
has "/dns/records?name=fe3.contoso.test" '"data": "127.0.88.13"' \
  || fail "the API does not list the updated record"
post /dns/records '{"name": "fe4.contoso.test", "type": "A", "data": "127.0.88.14"}' >/dev/null \
  || fail "the API did not add fe4"
[ "$(ask A fe4.contoso.test)" = "127.0.88.14" ] || fail "fe4 is not served"

# -- a live fault: fe2 goes silent; fe1 (its backup) fails over --------------------------------
step "disable fe2's NIC; fe1 fails over within the detection interval"
post /pools/fe2.contoso.test/disable-nic >/dev/null || fail "cannot disable fe2's NIC"
failed_over='sipemu_peer_state{peer="fe2.contoso.test",pool="fe1.contoso.test",state="failed-over"} 1.0'
wait_for 15 metric "$failed_over" || fail "fe1 did not fail over"
metric 'sipemu_failovers_total{peer="fe2.contoso.test",pool="fe1.contoso.test"} 1.0' \
  || fail "the failover is not counted"
post /pools/fe2.contoso.test/enable-nic >/dev/null

# -- an administrative action refused, with the sentence a scenario would print ----------------
step "import-contacts before any export is refused (409, problem+json)"
code=$(curl -sS --max-time 10 -o "$work/problem.json" -w '%{http_code}' -X POST \
  "$api/admin/import-contacts")
[ "$code" = 409 ] || fail "import-contacts answered $code, not 409"
grep -q '"detail": "import-contacts refused: ' "$work/problem.json" || fail "no refusal sentence"

# -- the event stream (SSE) --------------------------------------------------------------------
step "the event stream shows a pool being stopped"
curl -sSN --max-time 10 "$api/events?kinds=notice&limit=1" >"$work/events.txt" &
reader=$!
subscribed() { has /status '"event_subscribers": 1'; }
wait_for 10 subscribed || fail "the event stream did not subscribe"
post /pools/fe2.contoso.test/stop >/dev/null || fail "cannot stop fe2"
wait "$reader" || fail "the event stream ended badly"
grep -q '^event: notice' "$work/events.txt" || fail "no notice event"
grep -q '"text":"pool stopped' "$work/events.txt" || fail "the event does not say pool stopped"

# -- stop: SIGTERM, exit status 0 ----------------------------------------------------------------
step "SIGTERM stops sipemu up cleanly"
kill -TERM "$pid"
wait "$pid" || fail "sipemu up exited with status $?"
pid=""
grep -q '^sipemu: stopped' "$work/up.log" || fail "sipemu up did not say it stopped"
echo "PASS: the control API, dig, nsupdate and sipp drove and checked the deployment"
