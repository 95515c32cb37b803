//! minimqtt over embassy-net on a TAP device, in a network namespace made
//! for this one run.
//!
//! The test creates `minimqtt-<random>` with `ip netns add`, a TAP device
//! in it carrying `10.200.<random>.1/24` (the broker's side), and runs the
//! `minimqtt-embassy-net-tap` program inside it with `ip netns exec`: the
//! program opens the TAP device as embassy-net's driver with the static
//! address `10.200.<random>.2`, starts mosquitto on `.1`, and drives the
//! client through broker restarts (see `src/main.rs` for what it asserts).
//! Everything happens inside the namespace: its only interfaces are `lo`
//! and the TAP device, so no packet can reach any other address. The
//! namespace, the device and any process left in it are removed afterwards,
//! on failure too.
//!
//! Creating a namespace needs root (CAP_SYS_ADMIN) and `ip` (iproute2).
//! Without them the test prints that it was skipped; with `CI` set it fails
//! instead, so CI cannot turn green without running it.

use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The program's whole run takes a few seconds; this only ends a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const TAP: &str = "mqtap0";

/// A directory of our own (the program's output, mosquitto's config and
/// log), removed on drop: the program cannot clean up if it is killed.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A network namespace of our own, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    fn create(name: &str) -> Result<Namespace, String> {
        run_ip(&["netns", "add", name])?;
        Ok(Namespace {
            name: name.to_owned(),
        })
    }

    /// `ip -n <namespace> <args>`: an `ip` command run inside it.
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    fn exists(name: &str) -> bool {
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .any(|line| line.split_whitespace().next() == Some(name))
            })
            .unwrap_or(false)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // A process still in the namespace (mosquitto, if the program was
        // killed before it could stop it) would keep it alive after its
        // name is gone. Only this test's processes can be in it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = self.ip(&["link", "del", TAP]);
        if let Err(e) = run_ip(&["netns", "del", &self.name]) {
            eprintln!("could not delete network namespace {}: {e}", self.name);
        }
    }
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A skip is fine on a laptop without root, not in CI, where it would turn
/// the run green without testing anything.
fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some_and(|value| !value.is_empty()) {
        panic!("{reason}, and CI is set: run as root with iproute2 installed");
    }
    eprintln!("skipped: {reason}");
}

fn random() -> u64 {
    // RandomState is seeded from the OS's random source.
    RandomState::new().build_hasher().finish()
}

#[test]
fn mqtt_over_embassy_net_on_a_tap_device_through_broker_restarts() {
    let random = random();
    let name = format!("minimqtt-{:08x}", random as u32);
    // 10.200.1.0/24 to 10.200.254.0/24: addresses that exist only in the
    // namespace, varied so that two runs never look alike in a log.
    let subnet = 1 + (random >> 32) % 254;
    let broker_ip = format!("10.200.{subnet}.1");
    let client_ip = format!("10.200.{subnet}.2");

    let namespace = match Namespace::create(&name) {
        Ok(namespace) => namespace,
        Err(e) => return skip_or_fail(&format!("cannot create a network namespace ({e})")),
    };
    // The TAP device, created inside the namespace: the kernel's end
    // carries the broker's address, the program opens the other end.
    let setup = namespace
        .ip(&["link", "set", "lo", "up"])
        .and_then(|()| namespace.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"]))
        .and_then(|()| namespace.ip(&["addr", "add", &format!("{broker_ip}/24"), "dev", TAP]))
        .and_then(|()| namespace.ip(&["link", "set", TAP, "up"]));
    if let Err(e) = setup {
        return skip_or_fail(&format!("cannot set up a TAP device in {name} ({e})"));
    }

    let dir = TempDir(std::env::temp_dir().join(&name));
    fs::create_dir_all(&dir.0).expect("create the test's directory");
    let output_path = dir.0.join("output.txt");
    let output = fs::File::create(&output_path).expect("create the program's output file");
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &name,
            env!("CARGO_BIN_EXE_minimqtt-embassy-net-tap"),
        ])
        .args([TAP, &broker_ip, &client_ip])
        .arg(&dir.0)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the output file"))
        .stderr(output)
        .spawn()
        .expect("run ip netns exec");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the program") {
            break Some(status);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let printed = fs::read_to_string(&output_path).unwrap_or_default();
    println!("--- minimqtt-embassy-net-tap in {name} ({broker_ip} <- {client_ip})\n{printed}");
    println!("run time {:.1} s", elapsed.as_secs_f64());

    drop(namespace);
    drop(dir);
    assert!(
        !Namespace::exists(&name),
        "network namespace {name} is still there"
    );
    match status {
        Some(status) => assert!(status.success(), "the program failed: {status}"),
        None => panic!("the program did not finish within {RUN_TIMEOUT:?}"),
    }
}
