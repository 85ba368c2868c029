#!/bin/sh
# Builds (or removes) a small internet in network namespaces for the NAT tests:
#
#   ${P}pub   "the internet": bridge 203.0.113.1/24; coturn and the hub listen here
#   ${P}nata  home router A: wan 203.0.113.2 (MASQUERADE, drops unsolicited UDP), lan 192.168.1.1/24
#   ${P}natb  home router B: wan 203.0.113.3 (the same), lan 192.168.2.1/24
#   ${P}a     alice's machine 192.168.1.2, default route via router A
#   ${P}b     bob's machine 192.168.2.2, default route via router B
#
# `block-udp P` makes both routers drop UDP except to and from the server (203.0.113.1), so
# only a TURN relay can carry a link. `renumber-udp P` gives each router a new public address
# for UDP (A 203.0.113.12, B 203.0.113.13) and makes it forget its UDP mappings, as when a
# provider renumbers a line or a NAT reboots: every UDP flow through them breaks while TCP
# (the hub) carries on. `renumber P` does the same to every protocol, as when a laptop moves
# to another network: the hub's TCP connection breaks too. `dual-stack P` adds IPv6 the way home lines get it: no NAT, a
# routed /64 per home (2001:db8:a::/64 behind A, 2001:db8:b::/64 behind B, 2001:db8::/64 on
# the internet side with "the provider" at 2001:db8::1 routing them), and each router's
# stateful firewall dropping unsolicited UDP from outside. Only namespaces made here are touched.
set -eu
cmd=$1
P=$2
run() { n=$1; shift; ip netns exec "$P$n" "$@"; }

case "$cmd" in
up)
    for n in pub nata natb a b; do ip netns add "$P$n"; run "$n" ip link set lo up; done
    run pub ip link add br0 type bridge
    run pub ip addr add 203.0.113.1/24 dev br0
    run pub ip link set br0 up
    # The rest of the internet: a default route out of a veth whose other end drops
    # everything (a fixed neighbour entry, so nothing waits for ARP). Without one, a relay
    # towards a peer's private address fails with "network unreachable" (which makes coturn
    # drop the whole allocation) instead of going nowhere.
    run pub ip link add void type veth peer name void-end
    run pub ip addr add 10.255.255.1/30 dev void
    run pub ip link set void up
    run pub ip link set void-end up
    run pub ip neigh add 10.255.255.2 lladdr 02:00:00:00:00:01 dev void nud permanent
    run pub ip route add default via 10.255.255.2 dev void
    for side in a b; do
        case $side in a) wan=203.0.113.2; lan=1;; b) wan=203.0.113.3; lan=2;; esac
        # router <-> internet
        ip link add "${P}w$side" netns "${P}nat$side" type veth peer name "${P}p$side" netns "${P}pub"
        run "nat$side" ip link set "${P}w$side" name wan
        run "nat$side" ip addr add "$wan/24" dev wan
        run "nat$side" ip link set wan up
        run pub ip link set "${P}p$side" master br0
        run pub ip link set "${P}p$side" up
        # machine <-> router
        ip link add "${P}l$side" netns "${P}nat$side" type veth peer name "${P}h$side" netns "$P$side"
        run "nat$side" ip link set "${P}l$side" name lan
        run "nat$side" ip addr add "192.168.$lan.1/24" dev lan
        run "nat$side" ip link set lan up
        run "$side" ip link set "${P}h$side" name eth0
        run "$side" ip addr add "192.168.$lan.2/24" dev eth0
        run "$side" ip link set eth0 up
        run "$side" ip route add default via "192.168.$lan.1"
        run "nat$side" sysctl -qw net.ipv4.ip_forward=1
        run "nat$side" iptables -t nat -A POSTROUTING -o wan -j MASQUERADE
        # Like a home router's firewall: unsolicited UDP from outside is dropped. Without this
        # the router's own stack tracks a peer's early probe as a connection to itself, and
        # the NAT then maps our outgoing probe to that peer to another port (no hole punched).
        run "nat$side" iptables -A INPUT -i wan -p udp -j DROP
    done
    ;;
block-udp)
    for side in a b; do
        run "nat$side" iptables -A FORWARD -p udp -o wan ! -d 203.0.113.1 -j DROP
        run "nat$side" iptables -A FORWARD -p udp -i wan ! -s 203.0.113.1 -j DROP
    done
    ;;
renumber-udp|renumber)
    if [ "$cmd" = renumber ]; then proto=""; else proto="-p udp"; fi
    for side in a b; do
        case $side in a) new=203.0.113.12;; b) new=203.0.113.13;; esac
        run "nat$side" ip addr add "$new/24" dev wan
        # shellcheck disable=SC2086 # $proto is empty or two words
        run "nat$side" iptables -t nat -I POSTROUTING 1 -o wan $proto -j SNAT --to-source "$new"
        # `conntrack -D` exits 1 when there was nothing to delete.
        # shellcheck disable=SC2086
        run "nat$side" conntrack -D $proto >/dev/null 2>&1 || true
    done
    ;;
dual-stack)
    # nodad: no duplicate address detection, so addresses are usable at once.
    run pub sysctl -qw net.ipv6.conf.all.forwarding=1
    run pub ip -6 addr add 2001:db8::1/64 dev br0 nodad
    for side in a b; do
        case $side in a) wan=2001:db8::2;; b) wan=2001:db8::3;; esac
        run pub ip -6 route add "2001:db8:$side::/64" via "$wan"
        run "nat$side" sysctl -qw net.ipv6.conf.all.forwarding=1
        run "nat$side" ip -6 addr add "$wan/64" dev wan nodad
        run "nat$side" ip -6 addr add "2001:db8:$side::1/64" dev lan nodad
        run "nat$side" ip -6 route add default via 2001:db8::1
        run "$side" ip -6 addr add "2001:db8:$side::2/64" dev eth0 nodad
        run "$side" ip -6 route add default via "2001:db8:$side::1"
        run "nat$side" ip6tables -A FORWARD -i wan -p udp -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        run "nat$side" ip6tables -A FORWARD -i wan -p udp -j DROP
    done
    ;;
down)
    for n in a b nata natb pub; do ip netns del "$P$n" 2>/dev/null || true; done
    ;;
*)
    echo "usage: $0 up|block-udp|renumber-udp|renumber|dual-stack|down PREFIX" >&2
    exit 2
    ;;
esac
