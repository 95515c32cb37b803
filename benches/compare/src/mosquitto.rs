//! A private mosquitto on a free loopback port, killed on drop. The same
//! approach as the library's `tests/common/mosquitto.rs`, with a config
//! tuned so the broker is not the bottleneck: no per-packet logging, no
//! limit on queued or in-flight messages.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        let binary = find_binary("mosquitto")
            .expect("mosquitto not found (apt-get install mosquitto; it lives in /usr/sbin)");
        let mut last = String::new();
        // A port picked by binding port 0 may be taken again before
        // mosquitto binds it: retry with another.
        for attempt in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("minimqtt-compare-{}-{attempt}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create temp dir");
            let config = dir.join("mosquitto.conf");
            fs::write(
                &config,
                [
                    format!("listener {port} 127.0.0.1"),
                    "allow_anonymous true".into(),
                    // Started as root, mosquitto would switch to the
                    // `mosquitto` user, which cannot read our temp dir.
                    "user root".into(),
                    "persistence false".into(),
                    "log_dest stderr".into(),
                    "log_type error".into(),
                    "log_type warning".into(),
                    "max_inflight_messages 0".into(),
                    "max_queued_messages 0".into(),
                    "max_queued_bytes 0".into(),
                    "max_keepalive 65535".into(),
                ]
                .join("\n")
                    + "\n",
            )
            .expect("write mosquitto.conf");
            let stderr = fs::File::create(dir.join("stderr.txt")).expect("create stderr file");
            let child = Command::new(&binary)
                .current_dir(&dir)
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("run mosquitto");
            let mut mosquitto = Mosquitto {
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(mosquitto.addr).is_ok() {
                    return mosquitto;
                }
                if let Ok(Some(status)) = mosquitto.child.try_wait() {
                    last = format!(
                        "exited: {status}\n{}",
                        fs::read_to_string(mosquitto.dir.join("stderr.txt")).unwrap_or_default()
                    );
                    break;
                }
                if Instant::now() > deadline {
                    last = "did not listen within 10 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("mosquitto did not start: {last}");
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's own CPU time so far (user + system), from /proc.
    pub fn cpu(&self) -> Duration {
        let stat =
            fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the ")" of the command name: utime is the 14th
        // field of the line, stime the 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let t = ticks(11) + ticks(12);
        Duration::from_nanos(t * 1_000_000_000 / hz)
    }

    /// What mosquitto wrote to stderr (errors and warnings only).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}
