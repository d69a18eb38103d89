//! Forwarding to syslog: a real Unix datagram socket stands in for
//! `/dev/log`; every record arrives as an RFC 5424 message with its fields
//! as structured data, and the anchor sent matches what `log verify`
//! computes over the same log.
#![cfg(unix)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use fltpolicy_audit::forward::{ForwardConfig, Forwarder, Protocol, SD_ID};
use fltpolicy_audit::verify::verify;
use fltpolicy_audit::writer::{rotated_files, FileSink, FlushConfig, FlushThread};
use fltpolicy_audit::ReadOptions;
use fltpolicy_core::event::{Action, Op};
use fltpolicy_core::record::{EventData, PolicyId};

/// Header fields and structured-data params of one RFC 5424 message.
fn parse(msg: &str) -> (u32, Vec<String>, Vec<(String, String)>, String) {
    let rest = msg.strip_prefix('<').expect("PRI");
    let (pri, rest) = rest.split_once('>').unwrap();
    let mut parts = rest.splitn(7, ' ');
    let header: Vec<String> = (0..6).map(|_| parts.next().unwrap().to_owned()).collect();
    let rest = parts.next().unwrap();
    let mut params = Vec::new();
    let text;
    if let Some(sd) = rest.strip_prefix('[') {
        let (id, mut body) = sd.split_once(' ').unwrap();
        assert_eq!(id, SD_ID);
        loop {
            let (k, v) = body.split_once("=\"").unwrap();
            let mut val = String::new();
            let mut chars = v.char_indices();
            let end = loop {
                let (i, c) = chars.next().unwrap();
                match c {
                    // RFC 5424 6.3.3: only \" \\ \] are escapes; any other
                    // backslash is itself.
                    '\\' => {
                        let n = chars.next().unwrap().1;
                        if !matches!(n, '"' | '\\' | ']') {
                            val.push('\\');
                        }
                        val.push(n);
                    }
                    '"' => break i,
                    c => val.push(c),
                }
            };
            params.push((k.to_owned(), val));
            let after = &v[end + 1..];
            if let Some(t) = after.strip_prefix("] ") {
                text = t.to_owned();
                break;
            }
            body = after.strip_prefix(' ').unwrap();
        }
    } else {
        text = rest.strip_prefix("- ").unwrap().to_owned();
    }
    (pri.parse().unwrap(), header, params, text)
}

#[test]
fn records_and_anchors_reach_syslog_as_rfc5424() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("dev-log");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let base = dir.path().join("a.fplog");
    let ft = FlushThread::start(
        FileSink::create(&base).unwrap(),
        FlushConfig {
            interval: Duration::from_millis(10),
            ..FlushConfig::default()
        },
    )
    .unwrap();
    let fw = Forwarder::start(
        &base,
        ForwardConfig {
            socket: sock_path.clone(),
            hostname: "h1".into(),
            anchor_every: Duration::from_millis(50),
            poll: Duration::from_millis(10),
            key: None,
            protocol: Protocol::Rfc5424,
        },
    )
    .unwrap();
    let q = ft.producer();
    let paths = ["/srv/a", "/srv/q\"uote]d\\x", "/srv/new\nline"];
    for (i, p) in paths.iter().enumerate() {
        q.push(&EventData {
            time_ns: 1_700_000_000_123_456_789 + i as u64,
            op: Some(Op::Write),
            action: if i == 1 { Action::Deny } else { Action::Log }.into(),
            pid: 40 + i as u64,
            rule: Some(2),
            policy: PolicyId::new(&[0xab; 32], 1),
            path: p,
            image: "/usr/bin/cp",
            user: "alice",
            tag: "t",
            ..Default::default()
        })
        .unwrap();
    }
    ft.shutdown().unwrap();
    let stats = fw.stop();
    let mut buf = vec![0u8; 65536];
    let mut msgs = Vec::new();
    for _ in 0..stats.sent {
        let n = sock.recv(&mut buf).unwrap();
        msgs.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert_eq!(stats.send_failed, 0);
    let parsed: Vec<_> = msgs.iter().map(|m| parse(m)).collect();
    let events: Vec<_> = parsed.iter().filter(|p| p.1[5] == "event").collect();
    assert_eq!(events.len(), 3, "{msgs:#?}");
    for (i, (pri, header, params, text)) in events.iter().enumerate() {
        let get = |k: &str| params.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(header[0], "1", "VERSION");
        assert_eq!(header[1], format!("2023-11-14T22:13:20.123456Z"));
        assert_eq!(&header[2..4], ["h1", "fltpolicy"]);
        // facility 13 (log audit); deny is a warning, log informational
        assert_eq!(*pri, 13 * 8 + if i == 1 { 4 } else { 6 });
        // `"`, `\` and `]` escaped (and unescaped back here); a newline
        // is shown as `\n`, never sent raw.
        let want = paths[i].replace('\n', "\\n");
        assert_eq!(get("path"), want);
        assert_eq!(get("seq"), (i + 1).to_string());
        assert_eq!(get("op"), "write");
        assert_eq!(get("pid"), (40 + i).to_string());
        assert_eq!(get("user"), "alice");
        assert_eq!(get("rule"), "2");
        assert!(!text.contains('\n'), "{text:?}");
    }
    assert!(parsed.iter().any(|p| p.1[5] == "end"));
    // The last anchor is the chain value verify computes.
    let anchor = parsed
        .iter()
        .rev()
        .find(|p| p.1[5] == "anchor")
        .expect("an anchor message");
    let rep = verify(&rotated_files(&base), ReadOptions::default()).unwrap();
    let head = rep.head.unwrap();
    let get = |k: &str| anchor.2.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(format!("{}:{}", get("seq"), get("chain")), head.to_string());
    assert_eq!(anchor.0, 13 * 8 + 5);
}

/// journald's native protocol: each record field is a journal field; a
/// value holding a newline uses the length-prefixed form.
#[test]
fn records_reach_journald_as_native_fields() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("journal-socket");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let base = dir.path().join("j.fplog");
    let ft = FlushThread::start(FileSink::create(&base).unwrap(), FlushConfig::default()).unwrap();
    let fw = Forwarder::start(
        &base,
        ForwardConfig {
            socket: sock_path.clone(),
            hostname: "h1".into(),
            anchor_every: Duration::ZERO,
            poll: Duration::from_millis(10),
            key: None,
            protocol: Protocol::Journald,
        },
    )
    .unwrap();
    ft.producer()
        .push(&EventData {
            op: Some(Op::Delete),
            action: Action::Deny.into(),
            pid: 7,
            path: "/srv/two\nlines",
            ..Default::default()
        })
        .unwrap();
    ft.shutdown().unwrap();
    let st = fw.stop();
    let mut buf = vec![0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    let msg = &buf[..n];
    // Parse KEY=value lines and binary fields.
    let mut fields = std::collections::HashMap::new();
    let mut i = 0;
    while i < msg.len() {
        let nl = msg[i..].iter().position(|&b| b == b'\n').unwrap() + i;
        let line = &msg[i..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            fields.insert(
                String::from_utf8(line[..eq].to_vec()).unwrap(),
                String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
            );
            i = nl + 1;
        } else {
            let key = String::from_utf8(line.to_vec()).unwrap();
            let len = u64::from_le_bytes(msg[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let val = String::from_utf8(msg[nl + 9..nl + 9 + len].to_vec()).unwrap();
            assert_eq!(msg[nl + 9 + len], b'\n');
            fields.insert(key, val);
            i = nl + 10 + len;
        }
    }
    assert_eq!(fields["FLTPOLICY_PATH"], "/srv/two\nlines", "{fields:?}");
    assert_eq!(fields["FLTPOLICY_OP"], "delete");
    assert_eq!(fields["FLTPOLICY_ACTION"], "deny");
    assert_eq!(fields["FLTPOLICY_SEQ"], "1");
    assert_eq!(fields["PRIORITY"], "4");
    assert_eq!(fields["SYSLOG_FACILITY"], "13");
    assert_eq!(fields["SYSLOG_IDENTIFIER"], "fltpolicy");
    assert!(fields["MESSAGE"].starts_with("deny delete "));
    assert!(st.sent >= 2, "event and end record");
}
