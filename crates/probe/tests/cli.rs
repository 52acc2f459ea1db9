//! The `fieldcast-probe` command as an operator or a test runs it: it names its three tools,
//! and a server that is not there is a clear error and a failing exit, not a hang or a panic.

use std::process::Command;
use std::time::{Duration, Instant};

fn probe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fieldcast-probe"))
}

#[test]
fn the_probe_lists_its_player_and_load_generators() {
    let out = probe()
        .arg("--help")
        .output()
        .expect("run fieldcast-probe --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["watch", "swarm", "hls-swarm"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "`{command}` missing from:\n{help}"
        );
    }
}

#[test]
fn watching_a_server_that_is_not_there_fails_at_once_with_the_reason() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let out = probe()
        .args([
            "watch",
            &format!("http://127.0.0.1:{port}/whep/x"),
            "--seconds",
            "5",
        ])
        .output()
        .expect("run fieldcast-probe watch");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.starts_with("fieldcast-probe: "), "{said}");
    assert!(
        said.contains(&port.to_string()),
        "the error names the address: {said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
