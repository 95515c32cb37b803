//! CPU per message of minimqtt against rumqttc 0.25, side by side, on a
//! private mosquitto over loopback.
//!
//! ```text
//! cd benches/compare && cargo run --release
//! ```
//!
//! Four workloads, 32-byte payloads: QoS 0 publish; QoS 1 publish with a
//! window of 100 (every PUBACK awaited at the end); QoS 1 publish with a
//! window of 1; a receive flood (a raw publisher on another thread sends
//! QoS 0 messages to a topic the client subscribed to).
//!
//! Every run gets a fresh connection, on its own thread with a
//! current-thread tokio runtime, and is measured by that thread's CPU time
//! (user + system, `CLOCK_THREAD_CPUTIME_ID`) from after CONNACK (and
//! SUBACK) to the last PUBACK (or the last message received): the broker,
//! the flood publisher and whatever else runs on a shared machine are not
//! counted, and waiting costs nothing. The two clients alternate within
//! each round (minimqtt first in even rounds, rumqttc first in odd ones),
//! so slow phases of a noisy machine hit both alike.
//!
//! Environment: `COMPARE_N` messages per run (20000), `COMPARE_ROUNDS`
//! (9), `COMPARE_WORKLOADS` (a comma list of `qos0,qos1-100,qos1-1,flood`),
//! `COMPARE_CLIENTS` (`minimqtt,rumqttc`: one alone for profiling),
//! `COMPARE_RUMQTTC_CAP` (rumqttc's request channel, 100),
//! `COMPARE_WARMUP=0` (no untimed warm-up runs; `callgrind.sh` uses it).

mod cpu;
mod flood;
mod mosquitto;
mod ours;
mod theirs;

use std::net::SocketAddr;
use std::time::Duration;

use cpu::Cpu;
use ours::Counts;

pub const PUBLISH_TOPIC: &str = "bench/publish";
pub const FLOOD_TOPIC: &str = "bench/flood";
pub const PAYLOAD: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Qos0,
    Qos1Window100,
    Qos1Window1,
    ReceiveFlood,
}

impl Workload {
    const ALL: [Workload; 4] = [
        Workload::Qos0,
        Workload::Qos1Window100,
        Workload::Qos1Window1,
        Workload::ReceiveFlood,
    ];

    fn key(self) -> &'static str {
        match self {
            Workload::Qos0 => "qos0",
            Workload::Qos1Window100 => "qos1-100",
            Workload::Qos1Window1 => "qos1-1",
            Workload::ReceiveFlood => "flood",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Workload::Qos0 => "QoS 0 publish",
            Workload::Qos1Window100 => "QoS 1 publish, window 100",
            Workload::Qos1Window1 => "QoS 1 publish, window 1",
            Workload::ReceiveFlood => "receive flood (QoS 0)",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Minimqtt,
    Rumqttc,
}

impl Side {
    fn key(self) -> &'static str {
        match self {
            Side::Minimqtt => "minimqtt",
            Side::Rumqttc => "rumqttc",
        }
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub cpu: Cpu,
    pub wall: Duration,
    pub messages: usize,
    /// minimqtt's clock and transport calls.
    pub counts: Option<Counts>,
}

impl Sample {
    fn us_per_msg(&self, d: Duration) -> f64 {
        d.as_secs_f64() * 1e6 / self.messages as f64
    }
}

/// A sample plus the broker's CPU during it.
#[derive(Clone, Copy, Debug)]
struct Run {
    sample: Sample,
    broker: Duration,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
}

/// Runs one client on one workload, on a thread of its own.
fn run_once(
    broker: &mosquitto::Mosquitto,
    side: Side,
    workload: Workload,
    n: usize,
    client_id: String,
) -> Run {
    let addr: SocketAddr = broker.addr();
    let flood = (workload == Workload::ReceiveFlood).then(|| {
        flood::Flood::connect(addr, &format!("{client_id}-pub"), FLOOD_TOPIC, &PAYLOAD, n)
    });
    let trigger = flood.as_ref().map(flood::Flood::trigger);
    let broker_cpu = broker.cpu();
    let sample = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async move {
            let run = async {
                match side {
                    Side::Minimqtt => ours::run(addr, workload, n, &client_id, trigger).await,
                    Side::Rumqttc => theirs::run(addr, workload, n, &client_id, trigger).await,
                }
            };
            tokio::time::timeout(Duration::from_secs(120), run)
                .await
                .unwrap_or_else(|_| panic!("{} {} took over 120 s", side.key(), workload.key()))
        })
    })
    .join()
    .unwrap_or_else(|_| panic!("{} {} failed", side.key(), workload.key()));
    let broker_cpu = broker.cpu().saturating_sub(broker_cpu);
    if let Some(flood) = flood {
        flood.finish();
    }
    Run {
        sample,
        broker: broker_cpu,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() {
    let n = env_usize("COMPARE_N", 20_000);
    let rounds = env_usize("COMPARE_ROUNDS", 9).max(1);
    let workloads: Vec<Workload> = match env_list("COMPARE_WORKLOADS") {
        Some(keys) => Workload::ALL
            .into_iter()
            .filter(|w| keys.iter().any(|k| k == w.key()))
            .collect(),
        None => Workload::ALL.to_vec(),
    };
    let sides: Vec<Side> = match env_list("COMPARE_CLIENTS") {
        Some(keys) => [Side::Minimqtt, Side::Rumqttc]
            .into_iter()
            .filter(|s| keys.iter().any(|k| k == s.key()))
            .collect(),
        None => vec![Side::Minimqtt, Side::Rumqttc],
    };

    let broker = mosquitto::Mosquitto::start();
    eprintln!(
        "mosquitto on {}; {n} messages of {} bytes per run, {rounds} rounds; rumqttc request channel {}",
        broker.addr(),
        PAYLOAD.len(),
        theirs::channel_capacity()
    );

    // Warm-up: page in both clients' code and the broker's, untimed.
    let warm_up = env_usize("COMPARE_WARMUP", 1) != 0;
    for &workload in workloads.iter().filter(|_| warm_up) {
        for &side in &sides {
            let id = format!("warm-{}-{}", side.key(), workload.key());
            run_once(&broker, side, workload, (n / 10).max(100), id);
        }
    }

    // results[workload][side] = runs
    let mut results: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); sides.len()]; workloads.len()];
    for round in 0..rounds {
        for (w, &workload) in workloads.iter().enumerate() {
            let mut order: Vec<usize> = (0..sides.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for s in order {
                let side = sides[s];
                let id = format!("cmp-{}-{}-{round}", side.key(), workload.key());
                let run = run_once(&broker, side, workload, n, id);
                eprintln!(
                    "round {round} {:<9} {:<8} {:>7.3} µs/msg CPU ({:>6.0} ms wall)",
                    workload.key(),
                    side.key(),
                    run.sample.us_per_msg(run.sample.cpu.total),
                    run.sample.wall.as_secs_f64() * 1e3,
                );
                results[w][s].push(run);
            }
        }
    }

    report(&workloads, &sides, &results, n, rounds);
    // Started as root (as here), mosquitto warns about it: not news.
    let log: String = broker
        .log()
        .lines()
        .filter(|line| !line.contains("should not be run as root"))
        .map(|line| format!("{line}\n"))
        .collect();
    if !log.trim().is_empty() {
        println!("\nmosquitto said:\n{log}");
    }
}

fn report(
    workloads: &[Workload],
    sides: &[Side],
    results: &[Vec<Vec<Run>>],
    n: usize,
    rounds: usize,
) {
    let per_msg = |runs: &[Run], f: &dyn Fn(&Run) -> Duration| -> Vec<f64> {
        runs.iter().map(|r| r.sample.us_per_msg(f(r))).collect()
    };
    println!();
    println!(
        "CPU per message (thread CPU time, user+sys), µs; median (min) of {rounds} runs of {n} messages"
    );
    print!("{:<27}", "workload");
    for side in sides {
        print!(" {:>18}", side.key());
    }
    let both = sides.len() == 2;
    if both {
        print!(
            " {:>14} {:>10} {:>12}",
            "ratio (median)", "ratio (min)", "ratio (pairs)"
        );
    }
    println!();
    let mut losses = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        print!("{:<27}", workload.title());
        let mut medians = Vec::new();
        let mut mins = Vec::new();
        for s in 0..sides.len() {
            let v = per_msg(&results[w][s], &|r| r.sample.cpu.total);
            let (m, lo) = (median(v.clone()), min(&v));
            print!(" {:>9.3} ({:>6.3})", m, lo);
            medians.push(m);
            mins.push(lo);
        }
        if both {
            let ratio = medians[0] / medians[1];
            // The two runs of a round ran back to back: their ratio is
            // the least disturbed by slow phases of the machine.
            let pairs = median(
                results[w][0]
                    .iter()
                    .zip(&results[w][1])
                    .map(|(a, b)| {
                        a.sample.cpu.total.as_secs_f64() / b.sample.cpu.total.as_secs_f64()
                    })
                    .collect(),
            );
            print!(
                " {:>14.3} {:>10.3} {:>12.3}",
                ratio,
                mins[0] / mins[1],
                pairs
            );
            if ratio >= 1.0 {
                losses.push(workload.title());
            }
        }
        println!();
    }
    if both {
        println!(
            "ratio = minimqtt / rumqttc, below 1 means minimqtt uses less CPU per message: of the medians,"
        );
        println!("of the minimums, and the median of the ratios within each round");
    }

    println!();
    println!(
        "Where it goes (medians, µs per message): user / sys of the client thread (getrusage's split, tick-sampled),"
    );
    println!(
        "mosquitto's CPU during the run (/proc, 10 ms ticks), and throughput (wall clock, noisy)"
    );
    print!("{:<27}", "workload");
    for side in sides {
        print!(" {:>28}", format!("{}: user / sys / broker", side.key()));
        print!(" {:>10}", "msg/s");
    }
    println!();
    for (w, workload) in workloads.iter().enumerate() {
        print!("{:<27}", workload.title());
        for s in 0..sides.len() {
            let runs = &results[w][s];
            let user = median(per_msg(runs, &|r| r.sample.cpu.user));
            let sys = median(per_msg(runs, &|r| r.sample.cpu.sys));
            let broker = median(per_msg(runs, &|r| r.broker));
            let rate = median(
                runs.iter()
                    .map(|r| r.sample.messages as f64 / r.sample.wall.as_secs_f64())
                    .collect(),
            );
            print!(" {:>28}", format!("{user:.3} / {sys:.3} / {broker:.3}"));
            print!(" {:>10.0}", rate);
        }
        println!();
    }

    if let Some(s) = sides.iter().position(|&s| s == Side::Minimqtt) {
        println!();
        println!(
            "minimqtt's calls per message (median run): Clock::now, Clock::sleep_until, Read::read, Write::write, Write::flush"
        );
        for (w, workload) in workloads.iter().enumerate() {
            let runs = &results[w][s];
            let per = |f: &dyn Fn(&Counts) -> u64| {
                median(
                    runs.iter()
                        .map(|r| {
                            f(&r.sample.counts.unwrap_or_default()) as f64
                                / r.sample.messages as f64
                        })
                        .collect(),
                )
            };
            println!(
                "{:<27} now {:>6.2}  sleep {:>6.2}  read {:>6.2}  write {:>6.2}  flush {:>6.2}",
                workload.title(),
                per(&|c| c.now),
                per(&|c| c.sleeps),
                per(&|c| c.reads),
                per(&|c| c.writes),
                per(&|c| c.flushes),
            );
        }
    }

    if both {
        println!();
        if losses.is_empty() {
            println!("minimqtt uses less CPU per message than rumqttc on every workload");
        } else {
            println!(
                "minimqtt uses MORE CPU per message than rumqttc on: {}",
                losses.join(", ")
            );
        }
    }
}
