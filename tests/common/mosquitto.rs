//! A mosquitto 2.x child process for interoperability tests: a second,
//! stricter broker whose log tells when a client breaks the protocol.
//!
//! Self-contained like `broker.rs`. Each instance gets its own temporary
//! directory (config, password file, log) and its own free port; the
//! system's mosquitto service, if any, is never used.
//!
//! # What mosquitto 2.0 logs for a misbehaving client (checked by sending
//! bad packets over raw TCP)
//!
//! ```text
//! Client c1 disconnected due to malformed packet.      (bad lengths, bad SUBSCRIBE flags, QoS 3, ...)
//! Client c1 disconnected due to protocol error.        (reserved packet type, 5-byte length, '#' in a PUBLISH topic, ...)
//! Bad client c1 sending multiple CONNECT messages.
//! Invalid QoS in PUBLISH from c1, disconnecting.
//! Invalid protocol version 9 in CONNECT from 127.0.0.1.
//! Protocol error from ...: password without username, closing connection.
//! ```
//!
//! It closes the socket without a DISCONNECT (MQTT 3.1.1 has none from
//! the server). Refused credentials get `CONNACK 20 02 00 05` and the log
//! line `Client <unknown> disconnected, not authorised.`; a missed
//! keep-alive gives `Client c1 has exceeded timeout, disconnecting.`
//! (not counted as a protocol error: tests may stall a client on purpose).
#![allow(dead_code)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long mosquitto may take to report that it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Mosquitto::wait_for_log`] waits.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// Log lines (after the timestamp) that start like this mean the broker
/// caught the client breaking MQTT 3.1.1.
const ERROR_PREFIXES: &[&str] = &[
    "Bad client ",
    "Invalid ",
    "Protocol error",
    "Empty subscription string",
    "Empty unsubscription string",
    "Too high QoS",
];

/// `Client X disconnected due to {malformed packet, protocol error,
/// oversize packet, QoS too high, ...}`: every "due to" reason in
/// mosquitto 2.0 is the client's fault or a broker limit it broke.
const ERROR_INFIX: &str = " disconnected due to ";

#[derive(Clone, Debug, Default)]
pub struct MosquittoOptions {
    /// Port to listen on; `None` picks a free one.
    pub port: Option<u16>,
    /// `(username, password)` pairs. When non-empty, anonymous clients
    /// are refused (CONNACK 5), like rumqttd with auth configured.
    pub users: Vec<(String, String)>,
    /// Extra `mosquitto.conf` lines, e.g. `"max_keepalive 10"`.
    pub extra_config: Vec<String>,
}

impl MosquittoOptions {
    pub fn with_user(mut self, username: &str, password: &str) -> Self {
        self.users.push((username.to_owned(), password.to_owned()));
        self
    }
}

/// A running mosquitto, killed on drop. When dropped during a panic its
/// log is printed, so a failing test shows what the broker saw.
pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    log_path: PathBuf,
}

impl Mosquitto {
    /// Starts an anonymous mosquitto on a free port, or returns `None`
    /// (after printing why) when mosquitto is not installed. Under CI
    /// (`CI` set) a missing mosquitto is a failure, not a skip.
    pub async fn start() -> Option<Mosquitto> {
        Self::start_with(MosquittoOptions::default()).await
    }

    pub async fn start_with(options: MosquittoOptions) -> Option<Mosquitto> {
        let Some(binary) = find_binary("mosquitto") else {
            skip_or_fail("mosquitto not installed");
            return None;
        };
        let mut last_failure = String::new();
        // A port picked by binding port 0 may be taken again before
        // mosquitto binds it; retry with another one in that case.
        for _ in 0..5 {
            match Self::spawn(&binary, &options).await {
                Ok(mosquitto) => return Some(mosquitto),
                Err(failure) => last_failure = failure,
            }
            if options.port.is_some() {
                break;
            }
        }
        panic!("mosquitto did not start:\n{last_failure}");
    }

    async fn spawn(binary: &Path, options: &MosquittoOptions) -> Result<Mosquitto, String> {
        let port = match options.port {
            Some(port) => port,
            None => free_port(),
        };
        let dir = fresh_dir();
        let log_path = dir.join("mosquitto.log");
        let config_path = dir.join("mosquitto.conf");
        fs::write(&config_path, config(port, options, &dir, &log_path))
            .expect("write mosquitto.conf");
        let stderr = fs::File::create(dir.join("stderr.txt")).expect("create stderr file");
        // The working directory is where a `persistence true` config
        // writes mosquitto.db unless it names a `persistence_location`.
        let child = Command::new(binary)
            .current_dir(&dir)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let mut mosquitto = Mosquitto {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            dir,
            log_path,
        };
        mosquitto.wait_until_running().await?;
        Ok(mosquitto)
    }

    /// Stops mosquitto with SIGTERM, which makes it save its persistence
    /// database (with `persistence true` in `extra_config`), and starts it
    /// again on the same port with the same directory and config: a broker
    /// restart that keeps sessions and queued messages.
    pub async fn restart(mut self) -> Mosquitto {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM mosquitto: {status}");
        let deadline = Instant::now() + START_TIMEOUT;
        while self.child.try_wait().expect("wait for mosquitto").is_none() {
            assert!(Instant::now() < deadline, "mosquitto ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let binary = find_binary("mosquitto").expect("mosquitto was there a moment ago");
        let stderr = fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("stderr.txt"))
            .expect("open stderr file");
        let runs = self.running_lines();
        let child = Command::new(binary)
            .current_dir(&self.dir)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("restart mosquitto");
        // Replacing the child drops nothing: the old one has exited.
        self.child = child;
        self.wait_until_running_after(runs)
            .await
            .unwrap_or_else(|failure| panic!("mosquitto did not restart:\n{failure}"));
        self
    }

    fn running_lines(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.ends_with(" running"))
            .count()
    }

    /// Waits for the log's "running" line rather than probing the port,
    /// so the log holds no connection the test did not make.
    async fn wait_until_running(&mut self) -> Result<(), String> {
        self.wait_until_running_after(0).await
    }

    /// Waits for more than `runs` "running" lines in the log.
    async fn wait_until_running_after(&mut self, runs: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.running_lines() > runs {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let stderr = fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default();
                return Err(format!(
                    "mosquitto on port {} {}\n--- stderr\n{stderr}--- log\n{}",
                    self.port(),
                    exited.map_or("never reported running".to_owned(), |s| format!(
                        "exited: {s}"
                    )),
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Always `127.0.0.1`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The broker's log so far (`log_type all`: every packet it received
    /// and sent, with client ids).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (mosquitto writes it
    /// asynchronously to what the client observes); panics after
    /// `LOG_TIMEOUT`.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + LOG_TIMEOUT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "mosquitto log has no {needle:?} after {LOG_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Log lines showing the broker caught a client breaking the
    /// protocol (see the module docs for the patterns).
    pub fn protocol_errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| is_protocol_error(line))
            .map(str::to_owned)
            .collect()
    }

    /// Panics, quoting the log lines, if mosquitto disconnected any client
    /// for a protocol violation. Call it after the client has finished,
    /// since the broker logs asynchronously.
    pub fn assert_no_protocol_errors(&self) {
        let errors = self.protocol_errors();
        assert!(
            errors.is_empty(),
            "mosquitto reported protocol violations:\n{}",
            errors.join("\n")
        );
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- mosquitto log ({})\n{}", self.addr, self.log());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_protocol_error(line: &str) -> bool {
    // Lines are "<unix time>: <message>".
    let message = line.split_once(": ").map_or(line, |(_, message)| message);
    ERROR_PREFIXES
        .iter()
        .any(|prefix| message.starts_with(prefix))
        || (message.starts_with("Client ") && message.contains(ERROR_INFIX))
}

fn config(port: u16, options: &MosquittoOptions, dir: &Path, log_path: &Path) -> String {
    let mut lines = vec![
        format!("listener {port} 127.0.0.1"),
        // Started as root, mosquitto switches to the `mosquitto` user,
        // which cannot write into our private temp dir. `user root` keeps
        // it as is (and is ignored when not started as root).
        "user root".to_owned(),
        "persistence false".to_owned(),
        "log_type all".to_owned(),
        format!("log_dest file {}", log_path.display()),
    ];
    if options.users.is_empty() {
        lines.push("allow_anonymous true".to_owned());
    } else {
        let password_file = dir.join("passwords");
        for (i, (user, password)) in options.users.iter().enumerate() {
            create_password(&password_file, user, password, i == 0);
        }
        lines.push("allow_anonymous false".to_owned());
        lines.push(format!("password_file {}", password_file.display()));
    }
    lines.extend(options.extra_config.iter().cloned());
    lines.join("\n") + "\n"
}

/// Adds a user with `mosquitto_passwd`, which is the only way to get the
/// salted hash format mosquitto 2.x expects.
fn create_password(file: &Path, user: &str, password: &str, create: bool) {
    let tool = find_binary("mosquitto_passwd").expect("mosquitto_passwd not found");
    let mut command = Command::new(tool);
    command.arg("-b");
    if create {
        command.arg("-c");
    }
    let status = command
        .arg(file)
        .arg(user)
        .arg(password)
        .stdout(Stdio::null())
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed: {status}");
}

/// Looks in `PATH`, then where Debian puts the daemon (`/usr/sbin` is not
/// in a normal user's `PATH`).
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A skipped interop test is fine on a laptop, not in CI: there it would
/// silently turn the suite green without testing anything.
fn skip_or_fail(reason: &str) {
    if std::env::var_os("CI").is_some_and(|value| !value.is_empty()) {
        panic!("{reason}, and CI is set: install it (see .ci/mosquitto.sh)");
    }
    eprintln!("skipped: {reason}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "minimqtt-mosquitto-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create mosquitto temp dir");
    dir
}
