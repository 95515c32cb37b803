//! The receive flood's publisher: a raw MQTT 3.1.1 connection on a thread
//! of its own that writes N pre-encoded QoS 0 PUBLISH packets as fast as
//! the socket takes them. Neither client under test sends them, and its
//! CPU time is not counted (the runs measure only their own thread).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;

pub struct Flood {
    go: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Flood {
    /// Connects (CONNECT / CONNACK) now; the messages go on [`go`](Self::go).
    pub fn connect(
        addr: SocketAddr,
        client_id: &str,
        topic: &str,
        payload: &[u8],
        n: usize,
    ) -> Flood {
        let mut stream = TcpStream::connect(addr).expect("flood publisher: connect");
        stream.set_nodelay(true).unwrap();
        stream.write_all(&connect_packet(client_id)).unwrap();
        let mut connack = [0u8; 4];
        stream
            .read_exact(&mut connack)
            .expect("flood publisher: CONNACK");
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "flood publisher refused");
        let one = publish_packet(topic, payload);
        let all = one.repeat(n);
        let (go, wait) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if wait.recv().is_err() {
                return;
            }
            stream.write_all(&all).expect("flood publisher: write");
            // DISCONNECT, then wait for the broker to close: every message
            // has then been handed to the subscriber's queue.
            stream.write_all(&[0xe0, 0x00]).unwrap();
            let _ = stream.shutdown(Shutdown::Write);
            let mut sink = [0u8; 64];
            while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
        });
        Flood { go, thread }
    }

    /// A handle the measured thread uses to start the flood.
    pub fn trigger(&self) -> mpsc::Sender<()> {
        self.go.clone()
    }

    pub fn finish(self) {
        drop(self.go);
        self.thread.join().expect("flood publisher panicked");
    }
}

fn remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3c];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    let mut packet = vec![0x10];
    remaining_length(&mut packet, body.len());
    packet.extend_from_slice(&body);
    packet
}

fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x30];
    remaining_length(&mut packet, 2 + topic.len() + payload.len());
    packet.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    packet.extend_from_slice(topic.as_bytes());
    packet.extend_from_slice(payload);
    packet
}
