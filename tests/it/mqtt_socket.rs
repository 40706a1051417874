//! The MQTT link's socket: Nagle's algorithm is off on it, so a small publish (a send result,
//! a command's PUBACK) is written at once instead of waiting for the broker's delayed ACK of
//! the previous one (about 40 ms on Linux). Checked on the socket itself: this process reaches
//! its own descriptors through `pidfd_getfd`, which needs no unsafe code.
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};
use tokio::net::TcpListener;

/// The descriptor of this process whose socket is bound to `local`, duplicated.
fn own_socket(local: SocketAddr) -> Option<OwnedFd> {
    let me = pidfd_open(getpid(), PidfdFlags::empty()).expect("pidfd_open on this process");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|n| pidfd_getfd(&me, n, PidfdGetfdFlags::empty()).ok())
        .find(|fd| {
            rustix::net::getsockname(fd)
                .ok()
                .and_then(|a| SocketAddr::try_from(a).ok())
                == Some(local)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_connects_with_tcp_nodelay_set() {
    // A bare listener is broker enough: the option is set before CONNECT is written.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_sink, _bridge) = crate::mqtt::start(listener.local_addr().unwrap().port());
    let (_conn, link) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the link connects in time")
        .unwrap();
    let socket = own_socket(link).expect("the link's socket among this process's descriptors");
    assert!(
        rustix::net::sockopt::tcp_nodelay(&socket).unwrap(),
        "TCP_NODELAY is off on the MQTT link's socket"
    );
}
