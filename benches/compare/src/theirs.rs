//! rumqttc 0.25's side, used as its README shows: an `AsyncClient` that
//! queues requests through a channel, and an `EventLoop` polled in a loop.
//! The publishing task is spawned on the same current-thread runtime, so
//! the thread's CPU time covers both halves.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant as WallClock};

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};

use crate::cpu::Cpu;
use crate::{FLOOD_TOPIC, PAYLOAD, PUBLISH_TOPIC, Sample, Workload};

/// The request channel's capacity (`AsyncClient::new(options, cap)`):
/// rumqttc's examples use 10; `COMPARE_RUMQTTC_CAP` changes it.
pub fn channel_capacity() -> usize {
    std::env::var("COMPARE_RUMQTTC_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

pub async fn run(
    addr: SocketAddr,
    workload: Workload,
    n: usize,
    client_id: &str,
    flood: Option<mpsc::Sender<()>>,
) -> Sample {
    let mut options = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
    options
        .set_keep_alive(Duration::from_secs(60))
        .set_clean_session(true)
        .set_inflight(match workload {
            Workload::Qos1Window1 => 1,
            _ => 100,
        });
    let (client, mut eventloop) = AsyncClient::new(options, channel_capacity());
    let mut network = NetworkOptions::new();
    // Nagle off, as on minimqtt's side.
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) =
            eventloop.poll().await.expect("rumqttc: connect")
        {
            break;
        }
    }
    let sample = match workload {
        Workload::Qos0 => publish(client.clone(), &mut eventloop, QoS::AtMostOnce, n).await,
        Workload::Qos1Window100 | Workload::Qos1Window1 => {
            publish(client.clone(), &mut eventloop, QoS::AtLeastOnce, n).await
        }
        Workload::ReceiveFlood => {
            receive(&client, &mut eventloop, n, flood.expect("flood trigger")).await
        }
    };
    let _ = client.disconnect().await;
    // Until DISCONNECT is written (or the connection is gone).
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    sample
}

async fn publish(client: AsyncClient, eventloop: &mut EventLoop, qos: QoS, n: usize) -> Sample {
    let wall = WallClock::now();
    let cpu = Cpu::now();
    let publisher = tokio::spawn(async move {
        for _ in 0..n {
            client
                .publish(PUBLISH_TOPIC, qos, false, &PAYLOAD[..])
                .await
                .expect("rumqttc: publish");
        }
        if qos == QoS::AtMostOnce {
            // The QoS 1 fence, as on minimqtt's side.
            client
                .publish(PUBLISH_TOPIC, QoS::AtLeastOnce, false, &PAYLOAD[..])
                .await
                .expect("rumqttc: fence");
        }
    });
    let acks_expected = if qos == QoS::AtMostOnce { 1 } else { n };
    let mut acks = 0;
    let mut published = 0;
    while acks < acks_expected {
        match eventloop.poll().await.expect("rumqttc: poll") {
            Event::Incoming(Packet::PubAck(_)) => acks += 1,
            Event::Outgoing(Outgoing::Publish(_)) => published += 1,
            _ => {}
        }
    }
    let cpu = Cpu::now().since(cpu);
    let wall = wall.elapsed();
    publisher.await.expect("rumqttc publisher");
    let expected = if qos == QoS::AtMostOnce { n + 1 } else { n };
    assert_eq!(published, expected, "rumqttc: outgoing publishes");
    Sample {
        cpu,
        wall,
        messages: n,
        counts: None,
    }
}

async fn receive(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    n: usize,
    go: mpsc::Sender<()>,
) -> Sample {
    client
        .subscribe(FLOOD_TOPIC, QoS::AtMostOnce)
        .await
        .expect("rumqttc: subscribe");
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.expect("rumqttc: poll") {
            break;
        }
    }
    let wall = WallClock::now();
    let cpu = Cpu::now();
    go.send(()).expect("start the flood");
    let mut received = 0;
    while received < n {
        if let Event::Incoming(Packet::Publish(publish)) =
            eventloop.poll().await.expect("rumqttc: poll")
        {
            std::hint::black_box(&publish.payload);
            received += 1;
        }
    }
    let cpu = Cpu::now().since(cpu);
    let wall = wall.elapsed();
    Sample {
        cpu,
        wall,
        messages: n,
        counts: None,
    }
}
