//! The walkthrough's in-process broker: just enough MQTT 3.1.1 for one
//! walkthrough on a loopback port, written on minimqtt's codec so that
//! running the example compiles nothing but minimqtt, tokio and the
//! adapter. The integration tests run the client against real brokers
//! (rumqttd and mosquitto); set `MQTT_BROKER` to run the walkthrough
//! against one too.
//!
//! What it does: accepts any CONNECT (no credentials checked, no session
//! kept: session present is always 0); grants each subscription at most
//! QoS 1; acknowledges a PUBLISH (PUBACK, or PUBREC then PUBCOMP) and
//! forwards it at once to every connection with a matching filter, at the
//! lower of the two QoS levels; answers PINGREQ. What it leaves out: retained
//! messages, wills, resends, and exactly-once delivery of a QoS 2 message
//! that its publisher sends again.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use minimqtt::codec::{
    ConnAck, ConnectReturnCode, DecodeError, Packet, PubAck, PubComp, PubRec, Publish, QoS,
    ReturnCodes, SubAck, SubscribeReturnCode, UnsubAck,
};
use minimqtt::topic;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A running broker on `127.0.0.1`; dropping it stops accepting.
pub struct Broker {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Broker {
    /// Starts a broker on a free loopback port.
    pub async fn start() -> Broker {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("walkthrough broker: bind a loopback port");
        let addr = listener
            .local_addr()
            .expect("walkthrough broker: its address");
        let task = tokio::spawn(serve(listener));
        Broker { addr, task }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Bytes queued for one connection's writer task, so a PUBLISH from one
/// client can be forwarded to another without sharing its socket.
type Outbox = mpsc::UnboundedSender<Vec<u8>>;

/// What the broker knows of one connection.
struct Subscriber {
    filters: Vec<(String, QoS)>,
    outbox: Outbox,
    last_packet_id: u16,
}

type Subscribers = Arc<Mutex<HashMap<u64, Subscriber>>>;

async fn serve(listener: TcpListener) {
    let subscribers = Subscribers::default();
    let mut next_id = 0;
    while let Ok((stream, _)) = listener.accept().await {
        next_id += 1;
        tokio::spawn(connection(next_id, stream, subscribers.clone()));
    }
}

async fn connection(id: u64, stream: TcpStream, subscribers: Subscribers) {
    // Small packets must not wait in Nagle's buffer.
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (outbox, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
    let writing = tokio::spawn(async move {
        while let Some(bytes) = queue.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    subscribers.lock().expect("broker state").insert(
        id,
        Subscriber {
            filters: Vec::new(),
            outbox: outbox.clone(),
            last_packet_id: 0,
        },
    );

    let mut received = Vec::new();
    let mut chunk = [0; 4096];
    'connection: loop {
        // Every whole packet first: one read may carry several.
        loop {
            let used = match Packet::decode(&received) {
                Ok((packet, used)) => {
                    if !handle(id, packet, &outbox, &subscribers) {
                        break 'connection;
                    }
                    used
                }
                Err(DecodeError::Incomplete { .. }) => break,
                // Malformed or too large: a broker closes the connection.
                Err(_) => break 'connection,
            };
            received.drain(..used);
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }

    subscribers.lock().expect("broker state").remove(&id);
    // The writer ends once the last sender, ours, is gone: queued packets
    // (a final UNSUBACK, say) still go out first.
    drop(outbox);
    let _ = writing.await;
}

/// Answers one packet from connection `id`; `false` ends the connection.
fn handle(id: u64, packet: Packet<'_>, outbox: &Outbox, subscribers: &Subscribers) -> bool {
    let reply = |packet: Packet<'_>| {
        let _ = outbox.send(encode(&packet));
    };
    match packet {
        Packet::Connect(_) => reply(Packet::ConnAck(ConnAck {
            session_present: false,
            return_code: ConnectReturnCode::Accepted,
        })),
        Packet::Subscribe(subscribe) => {
            let mut codes = Vec::new();
            let mut all = subscribers.lock().expect("broker state");
            let Some(me) = all.get_mut(&id) else {
                return false;
            };
            for wanted in subscribe.filters.iter() {
                let granted = wanted.qos.min(QoS::AtLeastOnce);
                me.filters.retain(|(filter, _)| filter != wanted.filter);
                me.filters.push((wanted.filter.to_owned(), granted));
                codes.push(SubscribeReturnCode::Success(granted).to_u8());
            }
            drop(all);
            reply(Packet::SubAck(SubAck {
                packet_id: subscribe.packet_id,
                return_codes: ReturnCodes::new(&codes),
            }));
        }
        Packet::Unsubscribe(unsubscribe) => {
            if let Some(me) = subscribers.lock().expect("broker state").get_mut(&id) {
                let gone: Vec<&str> = unsubscribe.filters.iter().collect();
                me.filters
                    .retain(|(filter, _)| !gone.contains(&filter.as_str()));
            }
            reply(Packet::UnsubAck(UnsubAck {
                packet_id: unsubscribe.packet_id,
            }));
        }
        Packet::Publish(publish) => {
            match (publish.qos, publish.packet_id) {
                (QoS::AtLeastOnce, Some(packet_id)) => reply(Packet::PubAck(PubAck { packet_id })),
                (QoS::ExactlyOnce, Some(packet_id)) => reply(Packet::PubRec(PubRec { packet_id })),
                _ => {}
            }
            forward(&publish, subscribers);
        }
        Packet::PubRel(release) => reply(Packet::PubComp(PubComp {
            packet_id: release.packet_id,
        })),
        Packet::PingReq => reply(Packet::PingResp),
        Packet::Disconnect => return false,
        // Acknowledgements of what this broker forwarded: it resends
        // nothing, so there is nothing to settle.
        Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {}
        // Packets only a broker sends.
        Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
            return false;
        }
    }
    true
}

/// Sends `publish` to every connection with a matching filter, once each,
/// at the best QoS among its matching filters, capped at the publisher's.
fn forward(publish: &Publish<'_>, subscribers: &Subscribers) {
    let mut all = subscribers.lock().expect("broker state");
    for subscriber in all.values_mut() {
        let Some(granted) = subscriber
            .filters
            .iter()
            .filter(|(filter, _)| topic::matches(filter, publish.topic))
            .map(|&(_, qos)| qos)
            .max()
        else {
            continue;
        };
        let qos = granted.min(publish.qos);
        let packet_id = (qos != QoS::AtMostOnce).then(|| {
            subscriber.last_packet_id = subscriber.last_packet_id.checked_add(1).unwrap_or(1);
            subscriber.last_packet_id
        });
        let copy = Publish {
            dup: false,
            qos,
            retain: false,
            topic: publish.topic,
            packet_id,
            payload: publish.payload,
        };
        let _ = subscriber.outbox.send(encode(&Packet::Publish(copy)));
    }
}

fn encode(packet: &Packet<'_>) -> Vec<u8> {
    let mut bytes = vec![0; packet.encoded_len()];
    let n = packet
        .encode(&mut bytes)
        .expect("walkthrough broker: encode");
    bytes.truncate(n);
    bytes
}
