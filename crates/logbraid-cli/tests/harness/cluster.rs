//! A 3-node NATS JetStream cluster on loopback, in a directory of its
//! own, on ports the system hands out: for the NATS tests, and for the
//! NATS bench, which includes this file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A port free now (the system's choice for port 0, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `$NATS_SERVER`, or `nats-server` from PATH.
pub fn nats_server() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string())
}

/// A server, with the file its stderr goes to.
pub type Node = (Child, PathBuf);

/// Starts three servers of one cluster below `dir` (`nats0`…`nats2`),
/// taking messages up to `max_payload` (`"64KB"`); returns each server
/// with the file its stderr goes to, and the servers' `nats://` URLs.
pub fn start(dir: &Path, max_payload: &str) -> std::io::Result<(Vec<Node>, Vec<String>)> {
    let client: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let route: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<String> = route
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect();
    let mut nodes = Vec::new();
    for i in 0..3 {
        let d = dir.join(format!("nats{i}"));
        std::fs::create_dir_all(&d)?;
        let conf = d.join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\nmax_payload: {max_payload}\n\
                 jetstream {{ store_dir: {:?}, max_memory_store: 64MB, max_file_store: 4GB }}\n\
                 cluster {{ name: logs, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                client[i],
                d.join("js").display().to_string(),
                route[i],
                routes.join(", ")
            ),
        )?;
        let stderr = d.join("server.err");
        let child = Command::new(nats_server())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()?;
        nodes.push((child, stderr));
    }
    let urls = client
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    Ok((nodes, urls))
}
