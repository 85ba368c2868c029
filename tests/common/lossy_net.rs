//! A network namespace that loses UDP datagrams, for the tests of calls over bad paths.

/// A network namespace with only loopback, where nftables drops a random share of all UDP
/// datagrams (the hub's TCP is untouched); removed on drop.
pub struct LossyNet {
    pub name: String,
}

impl LossyNet {
    pub fn up(name: &str, percent: u32) -> Option<Self> {
        let run = |args: &[&str]| {
            std::process::Command::new(args[0]).args(&args[1..]).status().is_ok_and(|s| s.success())
        };
        let root =
            std::process::Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let tools = run(&["ip", "-V"]) && run(&["nft", "--version"]);
        if !root || !tools {
            assert!(
                std::env::var_os("CI").is_none(),
                "the loss test needs root, ip and nft (installed by .ci/run)"
            );
            super::say_skipped("the loss tests need root, iproute2 and nftables");
            return None;
        }
        let _ = run(&["ip", "netns", "del", name]);
        assert!(run(&["ip", "netns", "add", name]), "ip netns add {name}");
        let net = Self { name: name.to_string() };
        assert!(run(&["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"]));
        net.nft("add table inet loss");
        net.nft("add chain inet loss out { type filter hook output priority 0 ; }");
        net.set_loss(percent);
        Some(net)
    }

    /// From now on, drop `percent` of the UDP datagrams (100: a burst of total loss).
    pub fn set_loss(&self, percent: u32) {
        self.nft("flush chain inet loss out");
        match percent {
            0 => {}
            // nft refuses a comparison that always holds.
            100.. => self.nft("add rule inet loss out meta l4proto udp drop"),
            _ => self.nft(&format!(
                "add rule inet loss out meta l4proto udp numgen random mod 100 < {percent} drop"
            )),
        }
    }

    /// From now on, the path carries at most `kbytes` KiB of UDP a second (all of it, both
    /// ways: on loopback every datagram passes the output hook once), dropping the rest as
    /// a policer does; a short burst passes.
    pub fn set_rate(&self, kbytes: u32) {
        self.nft("flush chain inet loss out");
        self.nft(&format!(
            "add rule inet loss out meta l4proto udp limit rate over {kbytes} kbytes/second burst 16 kbytes drop"
        ));
    }

    fn nft(&self, rule: &str) {
        let mut args = vec!["netns", "exec", self.name.as_str(), "nft"];
        args.extend(rule.split(' '));
        let ok = std::process::Command::new("ip").args(&args).status().is_ok_and(|s| s.success());
        assert!(ok, "nft {rule}");
    }
}

impl Drop for LossyNet {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
