//! `linux.netDevices` (runtime-spec 1.2): host network interfaces moved into the container's
//! network namespace at create, as runc moves them: set down on the host, moved (and renamed)
//! in one RTM_NEWLINK, their permanent global addresses put back inside (the kernel drops
//! addresses on a move), and set up. When the namespace ends, the kernel returns a physical
//! device to the host and destroys a virtual one; a namespace that outlives the container
//! (`linux.namespaces[].path`) keeps them, as the runtime-spec says.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::sched::CloneFlags;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The config's devices, checked as runc checks them; errors name the field.
pub fn check(spec: &Spec) -> Result<()> {
    let Some(devices) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|d| !d.is_empty())
    else {
        return Ok(());
    };
    let has_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    if !has_netns {
        bail!("config.json: linux.netDevices: unable to move network devices without a network namespace in linux.namespaces");
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("config.json: linux.netDevices: network devices are not supported for rootless containers");
    }
    for (name, dev) in devices {
        if !valid_name(name) {
            bail!("config.json: linux.netDevices: invalid network device name {name:?}");
        }
        if let Some(new) = dev.name().as_deref().filter(|n| !n.is_empty()) {
            if !valid_name(new) {
                bail!("config.json: linux.netDevices.{name}.name: invalid network device name {new:?}");
            }
        }
    }
    Ok(())
}

/// An interface name the kernel takes (dev_valid_name): 1 to 15 bytes, not "." or "..",
/// no '/', ':' or whitespace.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

/// Moves every configured device into the network namespace of `init`. A device already
/// moved stays there if a later one fails: the namespace goes with the failed create, and
/// the kernel returns it (runc does the same).
pub fn move_into(spec: &Spec, init: Pid) -> Result<()> {
    let Some(devices) = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) else {
        return Ok(());
    };
    if devices.is_empty() {
        return Ok(());
    }
    let netns = File::open(format!("/proc/{init}/ns/net"))
        .context("linux.netDevices: open the container's network namespace")?;
    let mut host = Route::open()?;
    let mut inside = Route::open_in(&netns)?;
    // In name order, so a failure is the same one each time.
    let mut names: Vec<&String> = devices.keys().collect();
    names.sort();
    for name in names {
        let new_name = devices[name]
            .name()
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(name);
        move_one(&mut host, &mut inside, &netns, name, new_name)
            .with_context(|| format!("linux.netDevices: move {name} into the container"))?;
    }
    Ok(())
}

fn move_one(
    host: &mut Route,
    inside: &mut Route,
    netns: &File,
    name: &str,
    new_name: &str,
) -> Result<()> {
    let index = host
        .link_index(name)?
        .ok_or_else(|| anyhow!("link not found for interface {name} on the host"))?;
    // Down first, so nothing on the host uses it while it changes (runc's order).
    host.set_up(index, false).context("set the link down")?;
    let addresses = host.addresses(index).context("list its addresses")?;
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.attributes
        .push(LinkAttribute::IfName(new_name.to_string()));
    link.attributes
        .push(LinkAttribute::NetNsFd(netns.as_fd().as_raw_fd()));
    host.ack(RouteNetlinkMessage::NewLink(link), 0)
        .context("move it (RTM_NEWLINK)")?;
    let index = inside
        .link_index(new_name)?
        .ok_or_else(|| anyhow!("{new_name} is not in the container's namespace after the move"))?;
    for mut address in addresses {
        address.header.index = index;
        inside
            .ack(
                RouteNetlinkMessage::NewAddress(address),
                NLM_F_CREATE | NLM_F_EXCL,
            )
            .context("put its address back")?;
    }
    inside.set_up(index, true).context("set the link up")
}

/// A blocking rtnetlink socket, in the network namespace it was opened in.
struct Route {
    socket: Socket,
    sequence: u32,
}

impl Route {
    fn open() -> Result<Route> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("linux.netDevices: netlink socket")?;
        socket
            .bind_auto()
            .context("linux.netDevices: bind the netlink socket")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("linux.netDevices: connect the netlink socket")?;
        Ok(Route {
            socket,
            sequence: 0,
        })
    }

    /// A socket of the namespace `netns`: berth enters it for the socket() call and goes
    /// back (a socket stays in the namespace it was made in; berth has one thread).
    fn open_in(netns: &File) -> Result<Route> {
        let own = File::open("/proc/self/ns/net")
            .context("linux.netDevices: open berth's network namespace")?;
        nix::sched::setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("linux.netDevices: enter the container's network namespace")?;
        let route = Route::open();
        nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNET)
            .context("linux.netDevices: return to berth's network namespace")?;
        route
    }

    /// Sends one request; the replies until the kernel's ACK, NACK or end of dump.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).context("netlink send")?;
        let mut replies = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full().context("netlink receive")?;
            let mut at = 0;
            while at < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[at..])
                    .map_err(|e| anyhow!("netlink: malformed reply: {e}"))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    bail!("netlink: reply of length 0");
                }
                at += len;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(replies),
                        Some(code) => {
                            return Err(std::io::Error::from_raw_os_error(-code.get()).into())
                        }
                    },
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(m) => {
                        replies.push(m);
                        if flags & NLM_F_DUMP == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// A request the kernel acknowledges (or refuses with an errno).
    fn ack(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<()> {
        self.request(message, NLM_F_ACK | flags).map(drop)
    }

    /// The index of the link called `name` in this socket's namespace, if there is one.
    fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(get), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.raw_os_error() == Some(libc::ENODEV)) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.context(format!("look up interface {name}"))),
        }
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = if up {
            LinkFlags::Up
        } else {
            LinkFlags::empty()
        };
        link.header.change_mask = LinkFlags::Up;
        self.ack(RouteNetlinkMessage::NewLink(link), 0)
    }

    /// The permanent addresses of global scope on link `index`, as runc moves them: others
    /// are the host's own (link-local, host scope) or have a lifetime tied to it.
    fn addresses(&mut self, index: u32) -> Result<Vec<AddressMessage>> {
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => Some(a),
                _ => None,
            })
            .filter(|a| a.header.index == index && a.header.scope == AddressScope::Universe)
            .filter(|a| {
                a.header.flags.contains(AddressHeaderFlags::Permanent)
                    || a.attributes.iter().any(|attr| {
                        matches!(attr, AddressAttribute::Flags(f) if f.contains(AddressFlags::Permanent))
                    })
            })
            .map(|a| {
                // Only what an `ip address add` would give: the host-side details (cache
                // info, label with the old name, flags) stay behind.
                let mut new = AddressMessage::default();
                new.header.family = a.header.family;
                new.header.prefix_len = a.header.prefix_len;
                new.header.scope = a.header.scope;
                new.attributes = a
                    .attributes
                    .into_iter()
                    .filter(|attr| {
                        matches!(
                            attr,
                            AddressAttribute::Address(_)
                                | AddressAttribute::Local(_)
                                | AddressAttribute::Broadcast(_)
                        )
                    })
                    .collect();
                new
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_as_the_kernel_takes_them() {
        for good in ["eth0", "ctr_dummy0", "a", "fifteen-chars-x"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "sixteen-chars-xx"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn devices_need_a_network_namespace() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "linux": {"namespaces": [{"type": "mount"}], "netDevices": {"eth1": {}}}
        }))
        .unwrap();
        let err = check(&spec).unwrap_err().to_string();
        assert!(err.contains("without a network namespace"), "{err}");
    }
}
