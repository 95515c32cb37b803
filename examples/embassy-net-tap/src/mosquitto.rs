//! A private mosquitto on the namespace's side of the TAP device, stopped
//! and started again on the same address to make the client reconnect.
//!
//! This program runs inside the network namespace, so the broker it
//! spawns does too: its listener address exists only there.

use embassy_time::{Duration, Instant, Timer};
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// How long mosquitto may take to report that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long mosquitto may take to exit after a signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a running broker is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: mosquitto shuts down and closes its sockets itself.
    Term,
    /// SIGKILL: the kernel closes the sockets of a process that did
    /// nothing more, as after a crash.
    Kill,
}

/// Log lines (after the timestamp) that mean the broker caught the client
/// breaking MQTT 3.1.1: the same patterns as the interop tests'
/// (`tests/common/mosquitto.rs`, where each one was checked).
const ERROR_PREFIXES: &[&str] = &[
    "Bad client ",
    "Invalid ",
    "Protocol error",
    "Empty subscription string",
    "Empty unsubscription string",
    "Too high QoS",
];

/// A mosquitto process in a temporary directory (config and log), killed
/// on drop. The log is one file across restarts, one "running" line per
/// start, so it can be split into the broker's lives.
pub struct Mosquitto {
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    /// Writes a config that listens on `ip:1883` only into `dir` (created,
    /// removed on drop) and starts the broker; returns once it is
    /// listening.
    pub async fn start(ip: Ipv4Addr, dir: PathBuf) -> Mosquitto {
        let binary = [
            "/usr/sbin/mosquitto",
            "/usr/local/sbin/mosquitto",
            "/usr/bin/mosquitto",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .expect("mosquitto is not installed");
        fs::create_dir_all(&dir).expect("create mosquitto's directory");
        let config = [
            format!("listener 1883 {ip}"),
            "allow_anonymous true".to_owned(),
            // Nothing survives a restart: each start is a broker that
            // never saw the client, which is what the test asserts on.
            "persistence false".to_owned(),
            // As root mosquitto would switch to its own user, which cannot
            // write the log into this directory.
            "user root".to_owned(),
            "log_type all".to_owned(),
            format!("log_dest file {}", dir.join("mosquitto.log").display()),
        ]
        .join("\n")
            + "\n";
        fs::write(dir.join("mosquitto.conf"), config).expect("write mosquitto.conf");
        let mut mosquitto = Mosquitto {
            binary,
            dir,
            child: None,
        };
        mosquitto.spawn().await;
        mosquitto
    }

    /// Starts the broker again with the same config (same address, same
    /// log). It must be stopped.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "mosquitto is already running");
        let lives = self.lives();
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.txt"))
            .expect("open mosquitto's stderr file");
        let child = Command::new(&self.binary)
            .current_dir(&self.dir)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("run mosquitto");
        self.child = Some(child);
        // The log's "running" line, not a probe of the port: a probe would
        // be a connection the assertions on the log would have to ignore.
        let deadline = Instant::now() + START_TIMEOUT;
        while self.lives() == lives {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "mosquitto did not start ({exited:?}):\n{}\n{}",
                fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default(),
                self.log()
            );
            Timer::after_millis(10).await;
        }
    }

    /// Stops the broker and waits until it has exited (its sockets are
    /// closed then).
    pub async fn stop(&mut self, how: Stop) {
        let mut child = self.child.take().expect("mosquitto is not running");
        match how {
            Stop::Kill => child.kill().expect("SIGKILL mosquitto"),
            Stop::Term => {
                let status = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status()
                    .expect("run kill");
                assert!(status.success(), "kill -TERM mosquitto: {status}");
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().expect("wait for mosquitto").is_none() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not exit after {how:?}"
            );
            Timer::after_millis(5).await;
        }
    }

    /// The log so far, all lives (`log_type all`: every packet with the
    /// client id).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log split at each start ("starting" line): one string per life
    /// of the broker.
    pub fn log_by_life(&self) -> Vec<String> {
        let mut lives: Vec<String> = Vec::new();
        for line in self.log().lines() {
            if (line.contains("mosquitto version ") && line.ends_with(" starting"))
                || lives.is_empty()
            {
                lives.push(String::new());
            }
            let life = lives.last_mut().expect("pushed above");
            life.push_str(line);
            life.push('\n');
        }
        lives
    }

    /// How many times the broker has reported that it is listening.
    pub fn lives(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains("mosquitto version ") && line.ends_with(" running"))
            .count()
    }

    /// Log lines showing that the broker caught a protocol violation.
    pub fn protocol_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| {
                let message = line.split_once(": ").map_or(*line, |(_, m)| m);
                ERROR_PREFIXES.iter().any(|p| message.starts_with(p))
                    || (message.starts_with("Client ") && message.contains(" disconnected due to "))
            })
            .map(str::to_owned)
            .collect()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("mosquitto.log")
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- mosquitto log\n{}", self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
