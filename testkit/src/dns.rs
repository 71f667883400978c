//! A test DNS server on loopback: answers TXT queries from a fixed table and NXDOMAIN for
//! every name it does not know, so that code doing DNS look-ups (SPF, DMARC, MTA-STS) runs
//! against something real and fast, and never against the Internet.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A running test DNS server; stops when dropped.
pub struct TestDns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const TXT: u16 = 16;

/// The lowercased dotted name of the question starting at byte 12, and where it ends.
fn question(packet: &[u8]) -> Option<(String, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*packet.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(packet.get(at..at + len)?).to_lowercase());
        at += len;
    }
    packet.get(at..at + 4)?;
    Some((labels.join("."), at + 4))
}

fn answer(packet: &[u8], records: &HashMap<String, Vec<String>>) -> Option<Vec<u8>> {
    if packet.len() < 12 || u16::from_be_bytes([packet[4], packet[5]]) != 1 {
        return None;
    }
    let (name, end) = question(packet)?;
    let qtype = u16::from_be_bytes([packet[end - 4], packet[end - 3]]);
    let found = records.get(name.trim_end_matches('.'));
    let answers: &[String] = match found {
        Some(txts) if qtype == TXT => txts,
        _ => &[],
    };
    let rcode = if found.is_some() { 0 } else { 3 };
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&packet[0..2]);
    out.push(0x80 | (packet[2] & 0x01)); // QR, copy RD
    out.push(0x80 | rcode); // RA, rcode
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&packet[12..end]);
    for txt in answers {
        let chunks: Vec<&[u8]> = txt.as_bytes().chunks(255).collect();
        let rdlen: usize = chunks.iter().map(|c| c.len() + 1).sum();
        out.extend_from_slice(&[0xC0, 0x0C]);
        out.extend_from_slice(&TXT.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&300u32.to_be_bytes());
        out.extend_from_slice(&(rdlen as u16).to_be_bytes());
        for c in chunks {
            out.push(c.len() as u8);
            out.extend_from_slice(c);
        }
    }
    Some(out)
}

impl TestDns {
    /// Serves `records` (name → TXT strings) on a free UDP port of 127.0.0.1.
    pub fn start(records: &[(&str, &str)]) -> TestDns {
        let mut table: HashMap<String, Vec<String>> = HashMap::new();
        for (name, txt) in records {
            table.entry(name.to_lowercase()).or_default().push((*txt).to_owned());
        }
        let socket = UdpSocket::bind("127.0.0.1:0").expect("binding the test DNS server");
        socket.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        let addr = socket.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else { continue };
                if let Some(reply) = answer(&buf[..n], &table) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        TestDns { addr, stop, thread: Some(thread) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn answers_known_txt_and_nxdomain_otherwise() {
        let dns = TestDns::start(&[("Example.org", "v=spf1 -all")]);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1500];
        socket.send_to(&query("example.org", TXT), dns.addr()).unwrap();
        let n = socket.recv(&mut buf).unwrap();
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(buf[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 1);
        assert!(buf[..n].windows(11).any(|w| w == b"v=spf1 -all"));
        socket.send_to(&query("nowhere.example", TXT), dns.addr()).unwrap();
        socket.recv(&mut buf).unwrap();
        assert_eq!(buf[3] & 0x0f, 3);
        assert!(answer(&[1, 2, 3], &HashMap::new()).is_none());
    }
}
